"""Iteration and episode reports: every figure that the simulator accounts, per worker and in total."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["EpisodeTotals", "IterationReport"]

# Integer counters kept per worker, in the order reports list them.
COUNT_FIELDS = (
    "samples",
    "lookups",
    "hits",
    "pulls",
    "pushes",
    "write_backs",
    "transient",
    "evictions",
    "bytes_down",
    "bytes_up",
)
# Times per worker, seconds.
TIME_FIELDS = ("lookup_cost_s", "push_cost_s", "compute_s", "busy_s")


@dataclass(frozen=True)
class IterationReport:
    """One bulk-synchronous iteration (or the end-of-episode flush, ``kind == "flush"``).

    Per-worker arrays have shape [W]. ``hits`` counts fresh lookups; ``pulls = lookups − hits``. Link-time cost is
    ``lookup_cost_s + push_cost_s`` (seconds on each worker's links, see :mod:`esd_gym.cost`). ``busy_s`` is compute
    plus communication, or their maximum when compute and communication overlap; ``iteration_time_s`` is the maximum
    of ``busy_s`` over workers.
    """

    kind: str
    iteration: int
    start_time_s: float
    samples: np.ndarray
    lookups: np.ndarray
    hits: np.ndarray
    pulls: np.ndarray
    pushes: np.ndarray
    write_backs: np.ndarray
    transient: np.ndarray
    evictions: np.ndarray
    bytes_down: np.ndarray
    bytes_up: np.ndarray
    lookup_cost_s: np.ndarray
    push_cost_s: np.ndarray
    compute_s: np.ndarray
    busy_s: np.ndarray
    iteration_time_s: float
    allreduce_s: float

    @property
    def cost_s(self) -> np.ndarray:
        """Embedding transmission cost per worker: link time of lookups, pulls and pushes, seconds [W]."""
        return self.lookup_cost_s + self.push_cost_s

    @property
    def total_cost_s(self) -> float:
        return float(self.lookup_cost_s.sum() + self.push_cost_s.sum())

    def totals(self) -> dict[str, float | int]:
        """Figures summed over workers, plus cost, hit rate and iteration time."""
        summary: dict[str, float | int] = {name: int(getattr(self, name).sum()) for name in COUNT_FIELDS}
        summary["lookup_cost_s"] = float(self.lookup_cost_s.sum())
        summary["push_cost_s"] = float(self.push_cost_s.sum())
        summary["cost_s"] = self.total_cost_s
        summary["hit_rate"] = summary["hits"] / summary["lookups"] if summary["lookups"] else 0.0
        summary["iteration_time_s"] = self.iteration_time_s
        return summary

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: totals and per-worker lists."""
        per_worker = {name: getattr(self, name).tolist() for name in COUNT_FIELDS + TIME_FIELDS}
        per_worker["cost_s"] = self.cost_s.tolist()
        return {
            "kind": self.kind,
            "iteration": self.iteration,
            "start_time_s": self.start_time_s,
            "allreduce_s": self.allreduce_s,
            **self.totals(),
            "per_worker": per_worker,
        }


@dataclass
class EpisodeTotals:
    """Running totals over the iterations of an episode, flush included."""

    iterations: int = 0
    cost_s: float = 0.0
    lookup_cost_s: float = 0.0
    push_cost_s: float = 0.0
    flush_cost_s: float = 0.0
    time_s: float = 0.0
    allreduce_s: float = 0.0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNT_FIELDS, 0))

    def add(self, report: IterationReport) -> None:
        if report.kind == "iteration":
            self.iterations += 1
        else:
            self.flush_cost_s += report.total_cost_s
        self.cost_s += report.total_cost_s
        self.lookup_cost_s += float(report.lookup_cost_s.sum())
        self.push_cost_s += float(report.push_cost_s.sum())
        self.time_s += report.iteration_time_s
        self.allreduce_s += report.allreduce_s
        for name in COUNT_FIELDS:
            self.counts[name] += int(getattr(report, name).sum())

    @property
    def hit_rate(self) -> float:
        lookups = self.counts["lookups"]
        return self.counts["hits"] / lookups if lookups else 0.0

    def to_dict(self) -> dict[str, float | int]:
        """Flat dictionary with the keys of ``esd-gym replay``'s JSON output."""
        counts = self.counts
        return {
            "cost_s": self.cost_s,
            "time_s": self.time_s,
            "bytes_down": counts["bytes_down"],
            "bytes_up": counts["bytes_up"],
            "pulled_rows": counts["pulls"],
            "pushed_rows": counts["pushes"],
            "lookups": counts["lookups"],
            "hits": counts["hits"],
            "hit_rate": self.hit_rate,
            "iterations": self.iterations,
            "samples": counts["samples"],
            "write_backs": counts["write_backs"],
            "transient_rows": counts["transient"],
            "evictions": counts["evictions"],
            "lookup_cost_s": self.lookup_cost_s,
            "push_cost_s": self.push_cost_s,
            "flush_cost_s": self.flush_cost_s,
            "allreduce_s": self.allreduce_s,
        }


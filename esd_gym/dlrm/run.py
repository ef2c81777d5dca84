"""A whole DLRM training run under one dispatcher: the iterations, held-out evaluations, the final flush, and the
TensorBoard and CSV records.

Every ``eval_every`` iterations (and at iteration 0) the model is scored on the held-out samples with the PS's
master rows. The last evaluation comes after the flush, so it includes every pushed gradient, and its simulated time
and cost include the flush. :meth:`DlrmRunResult.time_to_auc` reads the simulated time of the first evaluation that
reaches a target AUC from these points, so its resolution is ``eval_every`` iterations.

TensorBoard scalars (one event directory per run): ``dlrm/auc``, ``dlrm/logloss``, ``dlrm/cost_s`` (cumulative
embedding transmission cost), ``dlrm/time_s`` (simulated time) and ``dlrm/train_loss`` against the iteration, and
``dlrm_vs_time/auc`` and ``dlrm_vs_time/logloss`` against simulated time in milliseconds (TensorBoard steps are
integers), so that runs under different dispatchers overlay on both axes.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from esd_gym.dispatch import DispatchContext
from esd_gym.dlrm.embeddings import TensorTraffic
from esd_gym.dlrm.training import DistributedTrainer, Evaluation
from esd_gym.report import EpisodeTotals

__all__ = ["CSV_FIELDS", "DispatchPolicy", "DlrmRunResult", "EvalPoint", "train_dlrm", "write_points_csv"]


class DispatchPolicy(Protocol):
    """What :func:`train_dlrm` needs of a dispatcher (``agents.base.Dispatcher`` fits)."""

    def dispatch(self, context: DispatchContext) -> np.ndarray: ...


@dataclass(frozen=True)
class EvalPoint:
    """One held-out evaluation and the run's running totals at that moment."""

    iteration: int
    samples: int
    time_s: float
    cost_s: float
    auc: float
    logloss: float
    train_loss: float
    hit_rate: float
    pulled_rows: int
    pushed_rows: int
    stale_reads: int


# Columns of metrics.csv: the arm's label and seed, then the fields of EvalPoint.
CSV_FIELDS = ("label", "seed", *EvalPoint.__dataclass_fields__)


@dataclass
class DlrmRunResult:
    """Evaluations, simulator totals and tensor traffic of one run."""

    label: str
    seed: int
    points: list[EvalPoint]
    totals: EpisodeTotals
    traffic: TensorTraffic
    final: Evaluation
    log_dir: Path | None = None
    records: list[dict[str, Any]] = field(default_factory=list)

    def time_to_auc(self, target: float) -> float | None:
        """Simulated time of the first evaluation with AUC ≥ ``target``, or None when no evaluation reached it."""
        for point in self.points:
            if point.auc >= target:
                return point.time_s
        return None

    def summary(self) -> dict[str, Any]:
        """Final figures: ``auc``, ``logloss``, ``cost_s``, ``time_s`` and the traffic counters."""
        last = self.points[-1]
        return {
            "label": self.label,
            "seed": self.seed,
            "auc": self.final.auc,
            "logloss": self.final.logloss,
            "cost_s": self.totals.cost_s,
            "time_s": last.time_s,
            "iterations": self.totals.iterations,
            "samples": self.totals.counts["samples"],
            "hit_rate": self.totals.hit_rate,
            "pulled_rows": self.totals.counts["pulls"],
            "pushed_rows": self.totals.counts["pushes"],
            "stale_reads": self.traffic.stale_reads,
            "heldout_samples": self.final.samples,
        }


def write_points_csv(path: str | os.PathLike[str], results: list[DlrmRunResult]) -> Path:
    """Write every evaluation point of ``results`` to ``path`` (columns :data:`CSV_FIELDS`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for result in results:
            for point in result.points:
                writer.writerow({"label": result.label, "seed": result.seed, **asdict(point)})
    return path


def train_dlrm(
    trainer: DistributedTrainer,
    dispatcher: DispatchPolicy,
    iterations: int,
    batch_size: int,
    eval_every: int,
    seed: int = 0,
    label: str = "run",
    log_dir: str | os.PathLike[str] | None = None,
    progress: Callable[[int, EvalPoint | None], None] | None = None,
) -> DlrmRunResult:
    """Train ``iterations`` batches of ``batch_size`` training samples under ``dispatcher``, then flush.

    The dispatcher is reset with ``seed`` when it has a ``reset`` method. When it has a true
    ``charge_decision_time`` attribute, simulated time stalls as in :func:`agents.episode.run_episode`: the plan of
    batch t+1 is made while batch t trains, so only the decision time beyond batch t's iteration time is added.

    :param log_dir: TensorBoard event directory; None writes no events.
    :param progress: called after every iteration with the number done and the new evaluation point, if any.
    """
    if hasattr(dispatcher, "reset"):
        dispatcher.reset(seed)
    charge = bool(getattr(dispatcher, "charge_decision_time", False))
    writer = None
    if log_dir is not None:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(log_dir))

    data, simulator = trainer.data, trainer.simulator
    stream = data.training_stream(0, iterations, batch_size)
    totals = EpisodeTotals()
    records: list[dict[str, Any]] = []
    points: list[EvalPoint] = []
    overlap_s = 0.0
    train_loss = float("nan")

    def record_point(iteration: int, evaluation: Evaluation) -> EvalPoint:
        point = EvalPoint(
            iteration=iteration,
            samples=totals.counts["samples"],
            time_s=simulator.time_s,
            cost_s=totals.cost_s,
            auc=evaluation.auc,
            logloss=evaluation.logloss,
            train_loss=train_loss,
            hit_rate=totals.hit_rate,
            pulled_rows=totals.counts["pulls"],
            pushed_rows=totals.counts["pushes"],
            stale_reads=trainer.traffic.stale_reads,
        )
        points.append(point)
        if writer is not None:
            time_ms = int(round(point.time_s * 1000.0))
            for name in ("auc", "logloss", "cost_s", "time_s"):
                writer.add_scalar(f"dlrm/{name}", getattr(point, name), iteration)
            writer.add_scalar("dlrm_vs_time/auc", point.auc, time_ms)
            writer.add_scalar("dlrm_vs_time/logloss", point.logloss, time_ms)
        return point

    try:
        record_point(0, trainer.evaluate())
        for index in range(iterations):
            samples = stream[index]
            batch = trainer.make_batch(samples)
            capacity = trainer.cluster.capacities(batch.size)
            context = DispatchContext.build(simulator, batch, capacity, data.table_offsets)
            assignment = dispatcher.dispatch(context)
            record = dict(getattr(dispatcher, "last_record", {}) or {})
            stall_s = 0.0
            if charge and "decision_time_s" in record:
                stall_s = max(0.0, record["decision_time_s"] - overlap_s)
                simulator.stall(stall_s)
                totals.time_s += stall_s
            report = trainer.step(batch, samples, assignment, capacity)
            overlap_s = report.iteration_time_s
            totals.add(report)
            records.append({key: value for key, value in record.items() if _is_scalar(value)} | {"stall_s": stall_s})
            train_loss = trainer.last_loss
            if writer is not None:
                writer.add_scalar("dlrm/train_loss", train_loss, index + 1)
            point = None
            done = index + 1
            if done < iterations and done % eval_every == 0:
                point = record_point(done, trainer.evaluate())
            elif done == iterations:
                totals.add(trainer.flush())
                point = record_point(done, trainer.evaluate())
            if progress is not None:
                progress(done, point)
    finally:
        if writer is not None:
            writer.close()
    final = Evaluation(auc=points[-1].auc, logloss=points[-1].logloss, samples=len(data.holdout_samples))
    return DlrmRunResult(
        label=label,
        seed=seed,
        points=points,
        totals=totals,
        traffic=trainer.traffic,
        final=final,
        log_dir=None if log_dir is None else Path(log_dir),
        records=records,
    )


def _is_scalar(value: Any) -> bool:
    if isinstance(value, (bool, int, str)):
        return True
    return isinstance(value, float) and not math.isnan(value)

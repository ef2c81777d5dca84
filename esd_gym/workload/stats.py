"""Summary statistics of a trace: table cardinalities, ids per sample, skew of id popularity, and the rank plot."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from esd_gym.errors import ConfigError
from esd_gym.workload.trace import Trace

__all__ = ["TableStats", "TraceStats", "check_plot_path", "compute_stats", "plot_rank_frequency"]

# Ids read per step, so that a memory-mapped trace is never loaded whole.
_CHUNK_IDS = 1 << 22


@dataclass
class TableStats:
    """Statistics of one table (or of all tables together, for the "all" entry)."""

    name: str
    rows: int
    distinct_ids: int
    lookups: int
    top_share: float


@dataclass
class TraceStats:
    """Statistics of a trace.

    ``top_share`` is the share of all lookups that go to the most frequent 1 % of the distinct ids (at least one id).
    ``counts`` contains the lookups of every row of the id space, indexed by id, or of the distinct ids only for a
    trace without table offsets whose largest id exceeds its length (see :func:`compute_stats`).
    """

    num_samples: int
    num_ids: int
    min_ids_per_sample: int
    max_ids_per_sample: int
    overall: TableStats
    tables: list[TableStats]
    counts: np.ndarray

    @property
    def mean_ids_per_sample(self) -> float:
        return self.num_ids / self.num_samples


def _top_share(counts: np.ndarray, fraction: float) -> float:
    used = counts[counts > 0]
    if used.size == 0:
        return 0.0
    top = max(1, math.ceil(fraction * used.size))
    return float(np.partition(used, used.size - top)[used.size - top :].sum() / used.sum())


def compute_stats(trace: Trace, top_fraction: float = 0.01) -> TraceStats:
    """Count how often every id is looked up, reading the ids in chunks.

    Memory is one counter per row of the id space (``table_offsets[-1]``), 4 bytes each while the trace has fewer
    than 2^32 ids. A trace without table offsets has one table up to its largest id; when that id space is larger
    than the trace, ``counts`` contains the counts of the distinct ids only, as a counter per row could exhaust memory
    (ids may be 64-bit hashes).
    """
    ids = trace.ids
    if trace.table_offsets is not None:
        num_rows = int(trace.table_offsets[-1])
        table_offsets = np.asarray(trace.table_offsets, dtype=np.int64)
    else:
        num_rows = 1 + max((int(ids[i : i + _CHUNK_IDS].max()) for i in range(0, len(ids), _CHUNK_IDS)), default=-1)
        table_offsets = np.array([0, num_rows], dtype=np.int64)
    if trace.table_offsets is None and num_rows > len(ids):
        counts = _distinct_id_counts(ids)
    else:
        counts = np.zeros(max(num_rows, 1), dtype=np.uint32 if len(ids) < 2**32 else np.int64)
        for start in range(0, len(ids), _CHUNK_IDS):
            unique, unique_counts = np.unique(np.asarray(ids[start : start + _CHUNK_IDS]), return_counts=True)
            counts[unique] += unique_counts.astype(counts.dtype)

    names = trace.table_names or tuple(f"table_{t}" for t in range(len(table_offsets) - 1))
    tables = []
    for t, name in enumerate(names):
        table_counts = counts[table_offsets[t] : table_offsets[t + 1]]
        tables.append(
            TableStats(
                name=name,
                rows=int(table_offsets[t + 1] - table_offsets[t]),
                distinct_ids=int(np.count_nonzero(table_counts)),
                lookups=int(table_counts.sum(dtype=np.int64)),
                top_share=_top_share(table_counts, top_fraction),
            )
        )
    overall = TableStats("all", num_rows, int(np.count_nonzero(counts)), len(ids), _top_share(counts, top_fraction))
    per_sample = np.diff(np.asarray(trace.offsets))
    return TraceStats(
        num_samples=trace.num_samples,
        num_ids=len(ids),
        min_ids_per_sample=int(per_sample.min()),
        max_ids_per_sample=int(per_sample.max()),
        overall=overall,
        tables=tables,
        counts=counts,
    )


def _distinct_id_counts(ids: np.ndarray) -> np.ndarray:
    """Lookups of every distinct id, int64, in id order; chunk results are merged so memory stays O(distinct ids)."""
    distinct = np.zeros(0, dtype=np.int64)
    counts = np.zeros(0, dtype=np.int64)
    for start in range(0, len(ids), _CHUNK_IDS):
        unique, unique_counts = np.unique(np.asarray(ids[start : start + _CHUNK_IDS]), return_counts=True)
        merged, inverse = np.unique(np.concatenate((distinct, unique)), return_inverse=True)
        counts = np.bincount(inverse, weights=np.concatenate((counts, unique_counts)), minlength=len(merged))
        distinct, counts = merged, counts.astype(np.int64)
    return counts


def _rank_curve(counts: np.ndarray, points: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Return (rank, frequency) at up to ``points`` log-spaced ranks of the ids that occur."""
    frequencies = np.sort(counts[counts > 0])[::-1]
    if frequencies.size == 0:
        return np.zeros(0), np.zeros(0)
    ranks = np.unique(np.geomspace(1, frequencies.size, num=min(points, frequencies.size)).astype(np.int64))
    return ranks, frequencies[ranks - 1]


def check_plot_path(path: str | os.PathLike[str]) -> Path:
    """Return ``path`` as a Path; raise :class:`ConfigError` unless its suffix names an image format matplotlib writes.

    Call it before the work that the plot ends, so that a bad path fails first.
    """
    from matplotlib.backend_bases import FigureCanvasBase

    path = Path(path)
    formats = sorted(FigureCanvasBase.get_supported_filetypes())
    if path.is_dir():
        raise ConfigError(f"{path}: the plot path is a directory; name an image file such as rank.png")
    if path.suffix.lstrip(".").lower() not in formats:
        raise ConfigError(
            f"{path}: the plot file needs the suffix of an image format ({', '.join(formats)}), got {path.suffix!r}"
        )
    return path


def plot_rank_frequency(
    stats: TraceStats, path: str | os.PathLike[str], table_offsets: np.ndarray | None = None, max_tables: int = 8
) -> Path:
    """Save a PNG of lookup frequency against popularity rank on log-log axes: all ids, and the largest tables."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 5))
    ranks, frequencies = _rank_curve(stats.counts)
    axes.plot(ranks, frequencies, color="black", linewidth=2, label="all tables")
    if table_offsets is not None and len(stats.tables) > 1:
        largest = sorted(range(len(stats.tables)), key=lambda t: -stats.tables[t].distinct_ids)[:max_tables]
        for t in largest:
            table = stats.tables[t]
            ranks, frequencies = _rank_curve(stats.counts[table_offsets[t] : table_offsets[t + 1]])
            axes.plot(ranks, frequencies, linewidth=1, label=f"{table.name} ({table.distinct_ids:,} ids)")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("id rank (most frequent first)")
    axes.set_ylabel("lookups")
    axes.set_title(f"Id frequency by rank, {stats.num_samples:,} samples")
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)
    return path

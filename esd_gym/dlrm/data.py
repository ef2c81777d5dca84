"""The samples of the DLRM mode: a trace with dense features and 0/1 labels, split into a training stream and a
held-out set, and the embedding-bag layout of any group of samples.

A trace qualifies when it has a ``labels`` member (every value 0 or 1) and a ``dense`` member. A ``dense`` member
with zero columns is accepted: the model then has no bottom MLP and interacts the embeddings only. MovieLens-100K
converted by :func:`esd_gym.workload.recbole.convert_recbole` has one dense feature, the rating's timestamp (the
rating itself becomes the label, rating >= 4, and is not a feature); its user, item, age, gender, occupation,
zip code, title words, release year and genres are embedding tables.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from esd_gym.errors import TraceError
from esd_gym.workload.trace import Trace

__all__ = ["BagLayout", "DlrmData", "bag_layout", "check_trace"]


def check_trace(trace: Trace) -> None:
    """Raise :class:`TraceError` in one line when ``trace`` lacks what the DLRM needs: dense features and 0/1 labels."""
    missing = [name for name, value in (("dense features", trace.dense), ("labels", trace.labels)) if value is None]
    if missing:
        members = " and ".join(f"'{name.split()[0]}'" for name in missing)
        raise TraceError(
            f"{trace.source}: the trace has no {' and no '.join(missing)} (member {members} missing); the DLRM mode "
            "needs both, so convert the data with a reader that keeps float columns and a label"
        )
    dense, labels = np.asarray(trace.dense), np.asarray(trace.labels)
    if dense.ndim != 2:
        raise TraceError(f"{trace.source}: 'dense' must be 2-d [samples, features], got shape {dense.shape}")
    bad = np.flatnonzero((labels != 0) & (labels != 1))
    if len(bad):
        raise TraceError(
            f"{trace.source}: labels must be 0 or 1, got {float(labels[bad[0]])} at sample {int(bad[0])}"
        )
    if dense.size and not np.isfinite(dense).all():
        sample = int(np.flatnonzero(~np.isfinite(dense).all(axis=1))[0])
        raise TraceError(f"{trace.source}: dense features of sample {sample} are not finite")


@dataclass(frozen=True)
class BagLayout:
    """Entries of a group of samples ordered by bag, for :func:`torch.nn.functional.embedding_bag`.

    Bag ``b = sample * T + table`` pools the rows that one sample uses in one table; a sample without an id in a
    table has an empty bag, which pools to zeros.

    Attributes:
        order: int64 [M], permutation of the group's entries into bag order.
        bag_offsets: int64 [n·T], start of every bag in the permuted entries.
    """

    order: np.ndarray
    bag_offsets: np.ndarray


def bag_layout(sample_of_entry: np.ndarray, ids: np.ndarray, num_samples: int, table_offsets: np.ndarray) -> BagLayout:
    """Lay out the entries (sample index in ``0..num_samples-1``, global id) of a group of samples by bag."""
    num_tables = len(table_offsets) - 1
    table = np.searchsorted(table_offsets, ids, side="right") - 1
    bag = np.asarray(sample_of_entry, dtype=np.int64) * num_tables + table
    order = np.argsort(bag, kind="stable")
    counts = np.bincount(bag, minlength=num_samples * num_tables)
    bag_offsets = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
    return BagLayout(order=order, bag_offsets=bag_offsets)


@dataclass(frozen=True)
class DlrmData:
    """A checked trace with its training stream and held-out set.

    Attributes:
        trace: the workload (ids per sample in CSR form).
        table_offsets: int64 [T+1]; a trace without table offsets is one table of ``max id + 1`` rows.
        dense: float32 [N, D], standardised by the training split's mean and standard deviation when requested.
        labels: float32 [N], 0 or 1.
        train_samples: int64, trace indices of the training split in trace order; training cycles through them.
        holdout_samples: int64, trace indices scored at every evaluation, sorted.
    """

    trace: Trace
    table_offsets: np.ndarray
    dense: np.ndarray
    labels: np.ndarray
    train_samples: np.ndarray
    holdout_samples: np.ndarray

    @classmethod
    def from_trace(
        cls,
        trace: Trace,
        holdout_fraction: float = 0.1,
        seed: int = 0,
        standardize: bool = True,
        max_holdout: int | None = None,
    ) -> "DlrmData":
        """Check ``trace`` (see :func:`check_trace`) and split it: each sample is held out with ``holdout_fraction``
        probability, drawn with ``seed``; at most ``max_holdout`` of them are scored."""
        check_trace(trace)
        if not 0.0 < holdout_fraction < 1.0:
            raise TraceError(f"holdout_fraction must lie in (0, 1), got {holdout_fraction}")
        num_samples = trace.num_samples
        held_out = np.random.default_rng(seed).random(num_samples) < holdout_fraction
        train_samples = np.flatnonzero(~held_out).astype(np.int64)
        holdout_samples = np.flatnonzero(held_out).astype(np.int64)
        if len(train_samples) == 0 or len(holdout_samples) == 0:
            raise TraceError(
                f"{trace.source}: {num_samples} samples leave an empty training or held-out split at "
                f"holdout_fraction={holdout_fraction}"
            )
        if max_holdout is not None and len(holdout_samples) > max_holdout:
            holdout_samples = holdout_samples[:max_holdout]

        dense = np.asarray(trace.dense, dtype=np.float32)
        if standardize and dense.shape[1]:
            train_dense = dense[train_samples].astype(np.float64)
            mean, std = train_dense.mean(axis=0), train_dense.std(axis=0)
            dense = ((dense - mean) / np.where(std > 0, std, 1.0)).astype(np.float32)
        if trace.table_offsets is not None:
            table_offsets = np.asarray(trace.table_offsets, dtype=np.int64)
        else:
            top = int(np.asarray(trace.ids).max(initial=-1))
            table_offsets = np.array([0, top + 1], dtype=np.int64)
        return cls(
            trace=trace,
            table_offsets=table_offsets,
            dense=dense,
            labels=np.asarray(trace.labels, dtype=np.float32),
            train_samples=train_samples,
            holdout_samples=holdout_samples,
        )

    @property
    def num_tables(self) -> int:
        return len(self.table_offsets) - 1

    @property
    def num_rows(self) -> int:
        return int(self.table_offsets[-1])

    @property
    def num_dense(self) -> int:
        return int(self.dense.shape[1])

    def table_sizes(self) -> np.ndarray:
        return np.diff(self.table_offsets)

    def training_stream(self, start_iteration: int, iterations: int, batch_size: int) -> np.ndarray:
        """Trace indices of ``iterations`` consecutive batches, int64 [iterations, batch_size].

        Batch ``k`` holds training samples ``k·S .. (k+1)·S − 1`` of the split, wrapping around at its end, so
        every run with the same seed sees the same samples in the same order.
        """
        positions = (start_iteration * batch_size + np.arange(iterations * batch_size)) % len(self.train_samples)
        return self.train_samples[positions].reshape(iterations, batch_size)

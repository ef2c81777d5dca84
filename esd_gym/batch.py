"""A global batch of samples with the index structures that the simulator and the cost model share."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Batch", "gather_batch"]


@dataclass(frozen=True)
class Batch:
    """S samples, their ids de-duplicated within each sample, and the batch's distinct ids numbered 0..U-1.

    A sample that lists an id twice (multi-hot) uses the row once: it is looked up once and adds one update.

    Attributes (M = number of (sample, distinct id) pairs):
        offsets: int64 [S+1], CSR offsets into ``ids`` and ``local_ids``.
        ids: int64 [M], global ids in feature order, first occurrence within a sample kept.
        unique_ids: int64 [U], the batch's distinct global ids, sorted.
        local_ids: int64 [M], index of each entry of ``ids`` in ``unique_ids``.
        sample_of: int64 [M], sample index of each entry.
    """

    offsets: np.ndarray
    ids: np.ndarray
    unique_ids: np.ndarray
    local_ids: np.ndarray
    sample_of: np.ndarray

    @classmethod
    def from_csr(cls, offsets: np.ndarray, ids: np.ndarray) -> "Batch":
        """Build a batch from CSR arrays (``offsets`` may start anywhere; it is rebased to 0)."""
        offsets = np.asarray(offsets, dtype=np.int64)
        ids = np.asarray(ids[offsets[0] : offsets[-1]], dtype=np.int64)
        offsets = offsets - offsets[0]
        lengths = np.diff(offsets)
        sample_of = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)

        # One stable sort by (id, sample) finds the repeats of an id within a sample: they are equal neighbours, and
        # the first occurrence in feature order sorts first. The same order gives the batch's distinct ids.
        num_samples = max(len(lengths), 1)
        lowest = int(ids.min()) if len(ids) else 0
        span = int(ids.max()) - lowest + 1 if len(ids) else 1
        if span * num_samples < 2**62:
            order = np.argsort((ids - lowest) * num_samples + sample_of, kind="stable")
        else:
            order = np.lexsort((np.arange(len(ids)), sample_of, ids))
        sorted_ids, sorted_samples = ids[order], sample_of[order]
        repeat = np.zeros(len(ids), dtype=bool)
        repeat[1:] = (sorted_ids[1:] == sorted_ids[:-1]) & (sorted_samples[1:] == sorted_samples[:-1])
        new_id = np.ones(len(ids), dtype=bool)
        new_id[1:] = sorted_ids[1:] != sorted_ids[:-1]
        unique_ids = sorted_ids[new_id]
        local_ids = np.empty(len(ids), dtype=np.int64)
        local_ids[order] = np.cumsum(new_id) - 1

        if repeat.any():
            keep = np.ones(len(ids), dtype=bool)
            keep[order[repeat]] = False
            ids, sample_of, local_ids = ids[keep], sample_of[keep], local_ids[keep]
            lengths = np.bincount(sample_of, minlength=len(lengths))
            offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)

        return cls(
            offsets=offsets,
            ids=ids,
            unique_ids=unique_ids,
            local_ids=local_ids,
            sample_of=sample_of,
        )

    @property
    def size(self) -> int:
        return len(self.offsets) - 1

    @property
    def num_unique(self) -> int:
        return len(self.unique_ids)

    def sample_local_ids(self, sample: int) -> np.ndarray:
        return self.local_ids[self.offsets[sample] : self.offsets[sample + 1]]


def gather_batch(offsets: np.ndarray, ids: np.ndarray, samples: np.ndarray) -> Batch:
    """Build the batch of the given sample indices (in that order) from a CSR trace, without a Python loop."""
    samples = np.asarray(samples, dtype=np.int64)
    starts = np.asarray(offsets[samples], dtype=np.int64)
    lengths = np.asarray(offsets[samples + 1], dtype=np.int64) - starts
    batch_offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    # Position of every entry in the trace: its sample's start plus its rank within the sample.
    rank = np.arange(batch_offsets[-1], dtype=np.int64) - np.repeat(batch_offsets[:-1], lengths)
    positions = np.repeat(starts, lengths) + rank
    return Batch.from_csr(batch_offsets, np.asarray(ids[positions], dtype=np.int64))

"""Baseline dispatchers, each standing for one mechanism of the literature.

Every baseline places all samples of the batch and never exceeds a worker's capacity: when the worker it prefers is
full, it moves on to another worker with room, as each class's docstring describes. None of them reads the cost model
except through what its mechanism needs (cache snapshot, link bandwidth or nothing at all).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.base import Dispatcher, register_dispatcher
from esd_gym.dispatch import DispatchContext
from esd_gym.errors import ConfigError

__all__ = [
    "BandwidthDispatcher",
    "HashDispatcher",
    "HotColdDispatcher",
    "LeastLoadedDispatcher",
    "LocalityDispatcher",
    "RandomDispatcher",
    "RoundRobinDispatcher",
    "hash_to_worker",
    "least_loaded_order",
]

# Odd 64-bit constant of Fibonacci hashing: 2^64 divided by the golden ratio, rounded to odd.
_FIBONACCI_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)


def hash_to_worker(keys: np.ndarray, num_workers: int) -> np.ndarray:
    """Deterministic worker of each non-negative integer key, int64: the high 32 bits of key × 0x9E3779B97F4A7C15
    (mod 2^64), mod W.

    The product's high bits depend on every bit of the key, so consecutive keys spread over the workers.
    """
    product = np.asarray(keys, dtype=np.int64).astype(np.uint64) * _FIBONACCI_MULTIPLIER
    return ((product >> np.uint64(32)) % np.uint64(num_workers)).astype(np.int64)


def least_loaded_order(capacity: np.ndarray, count: int) -> np.ndarray:
    """Workers picked by ``count`` successive least-loaded choices, int64 [count].

    Each choice takes the worker with room whose load / capacity is lowest, ties to the lower index. Worker w's
    k-th sample is picked at fill k / cap_w, so the sequence is the ``count`` smallest (k / cap_w, w) pairs.
    """
    capacity = np.asarray(capacity, dtype=np.int64)
    workers = np.repeat(np.arange(len(capacity), dtype=np.int64), capacity)
    rank = np.arange(len(workers)) - np.repeat(np.cumsum(capacity) - capacity, capacity)
    # Equal fractions give equal doubles because IEEE division is correctly rounded.
    fill = rank / capacity[workers]
    order = np.lexsort((workers, fill))
    return workers[order[:count]]


def _spill(preferred: int, load: np.ndarray, capacity: np.ndarray) -> int:
    """``preferred`` when it has room, else the next worker with room in cyclic index order."""
    num_workers = len(capacity)
    for step in range(num_workers):
        worker = (preferred + step) % num_workers
        if load[worker] < capacity[worker]:
            return worker
    raise AssertionError("no worker has room; Dispatcher.dispatch checks the total capacity first")


@register_dispatcher("random")
class RandomDispatcher(Dispatcher):
    """Uniformly random free slot for every sample (what HET-style training does: caches, blind dispatch).

    Worker w offers cap_w slots, and the batch takes S of them without replacement. So a worker's expected share
    is proportional to its capacity, and no capacity is exceeded. Seeded by :meth:`reset`; consecutive batches draw
    from one generator.
    """

    def __init__(self) -> None:
        super().__init__()
        self._rng = np.random.default_rng()

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self._rng = np.random.default_rng(seed)

    def _plan(self, context: DispatchContext) -> tuple[np.ndarray, dict[str, Any]]:
        slots = np.repeat(np.arange(context.num_workers, dtype=np.int64), context.capacity)
        return self._rng.permutation(slots)[: context.batch.size], {}


@register_dispatcher("round-robin")
class RoundRobinDispatcher(Dispatcher):
    """Sample after sample to the next worker in cyclic order, skipping full workers.

    The rotation continues across batches (the next batch starts after the worker that took the last sample) and
    restarts at worker 0 on :meth:`reset`.
    """

    def __init__(self) -> None:
        super().__init__()
        self._next = 0

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self._next = 0

    def _plan(self, context: DispatchContext) -> tuple[np.ndarray, dict[str, Any]]:
        capacity = context.capacity
        load = np.zeros(context.num_workers, dtype=np.int64)
        assignment = np.empty(context.batch.size, dtype=np.int64)
        for sample in range(context.batch.size):
            worker = _spill(self._next % context.num_workers, load, capacity)
            assignment[sample] = worker
            load[worker] += 1
            self._next = worker + 1
        return assignment, {}


@register_dispatcher("hash")
class HashDispatcher(Dispatcher):
    """Sample to the worker that a hash of one of its features names ("the data stays where the user is").

    The key is the row index within table ``table`` of the sample's first id from that table (global id minus the
    table offset), mapped by :func:`hash_to_worker`. A sample whose preferred worker is full goes to the next
    worker with room in cyclic order. A sample without an id of that table goes to the least-filled worker.
    Without ``context.table_offsets`` the key is the sample's first id (only ``table=0`` is accepted then).

    :param table: index of the embedding table (feature) to hash, 0 = the first table (e.g. user id).
    """

    def __init__(self, table: int = 0) -> None:
        super().__init__()
        if table < 0:
            raise ConfigError(f"hash dispatcher option table must be non-negative (got {table})")
        self.table = table

    def _plan(self, context: DispatchContext) -> tuple[np.ndarray, dict[str, Any]]:
        batch = context.batch
        keys = self._feature_keys(context)
        preferred = np.where(keys >= 0, hash_to_worker(np.maximum(keys, 0), context.num_workers), -1)
        capacity = context.capacity
        load = np.zeros(context.num_workers, dtype=np.int64)
        assignment = np.empty(batch.size, dtype=np.int64)
        for sample in range(batch.size):
            if preferred[sample] >= 0:
                worker = _spill(int(preferred[sample]), load, capacity)
            else:
                worker = int(np.argmin(np.where(load < capacity, load / np.maximum(capacity, 1), np.inf)))
            assignment[sample] = worker
            load[worker] += 1
        return assignment, {}

    def _feature_keys(self, context: DispatchContext) -> np.ndarray:
        """Row index in the hashed table of each sample's first id from it, int64 [S]; −1 where it has none."""
        batch = context.batch
        num_samples = batch.size
        offsets = context.table_offsets
        if offsets is None:
            if self.table != 0:
                raise ConfigError(
                    f"hash dispatcher option table={self.table} needs the trace's table offsets, "
                    "which this context does not have"
                )
            low, high = 0, np.iinfo(np.int64).max
        else:
            if self.table >= len(offsets) - 1:
                raise ConfigError(
                    f"hash dispatcher option table={self.table} is out of range: the trace has {len(offsets) - 1} tables"
                )
            low, high = int(offsets[self.table]), int(offsets[self.table + 1])
        in_table = (batch.ids >= low) & (batch.ids < high)
        keys = np.full(num_samples, -1, dtype=np.int64)
        entries = np.flatnonzero(in_table)
        # Entries are in sample order, ids in feature order: the first entry of each sample is its first id.
        samples, first = np.unique(batch.sample_of[entries], return_index=True)
        keys[samples] = batch.ids[entries[first]] - low
        return keys


@register_dispatcher("least-loaded")
class LeastLoadedDispatcher(Dispatcher):
    """Sample after sample to the worker with the lowest fill (load / capacity), ties to the lower index."""

    def _plan(self, context: DispatchContext) -> tuple[np.ndarray, dict[str, Any]]:
        return least_loaded_order(context.capacity, context.batch.size), {}


@register_dispatcher("locality")
class LocalityDispatcher(Dispatcher):
    """Herald-style location-aware allocation: each sample to the worker whose cache contains most of its ids.

    The score of sample i on worker w is the number of i's distinct ids that are cached and fresh on w at the
    batch's start. Placements within the batch do not change this snapshot. Samples are taken in batch order;
    each goes to a worker with room and the highest score. Ties rotate: a pointer starts at worker 0 on
    :meth:`reset`, a tie goes to the first tied worker at or after the pointer in cyclic order, and the pointer then
    moves past that worker. Blind to bandwidth.
    """

    def __init__(self) -> None:
        super().__init__()
        self._pointer = 0

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self._pointer = 0

    def _plan(self, context: DispatchContext) -> tuple[np.ndarray, dict[str, Any]]:
        batch, num_workers = context.batch, context.num_workers
        scores = np.zeros((batch.size, num_workers), dtype=np.int64)
        fresh = context.costs.fresh
        for worker in range(num_workers):
            scores[:, worker] = np.bincount(
                batch.sample_of, weights=fresh[worker, batch.local_ids], minlength=batch.size
            ).astype(np.int64)

        load = np.zeros(num_workers, dtype=np.int64)
        capacity = context.capacity
        assignment = np.empty(batch.size, dtype=np.int64)
        for sample in range(batch.size):
            score = np.where(load < capacity, scores[sample], -1)
            tied = np.flatnonzero(score == score.max())
            # First tied worker at or after the pointer, cyclically.
            worker = int(tied[np.argmin((tied - self._pointer) % num_workers)])
            if len(tied) > 1:
                self._pointer = (worker + 1) % num_workers
            assignment[sample] = worker
            load[worker] += 1
        return assignment, {}


@register_dispatcher("bandwidth")
class BandwidthDispatcher(Dispatcher):
    """Fill the fastest links first, blind to caches.

    Workers are ranked by their mean downlink bandwidth over all parameter servers at the batch's start (bandwidth
    traces applied), fastest first, ties to the lower index. Samples in batch order fill the first worker up to its
    capacity, then the next.
    """

    def _plan(self, context: DispatchContext) -> tuple[np.ndarray, dict[str, Any]]:
        cluster = context.cluster
        down = cluster.down_bytes_per_s * cluster.bandwidth_factors(context.time_s)[:, None]
        ranking = np.lexsort((np.arange(context.num_workers), -down.mean(axis=1)))
        slots = np.repeat(ranking, context.capacity[ranking])
        return slots[: context.batch.size].astype(np.int64), {"worker_ranking": ranking.tolist()}


@register_dispatcher("hot-cold")
class HotColdDispatcher(Dispatcher):
    """FAE-style hot/cold split: samples whose rows are all hot go where those rows are; the rest are spread.

    A sample is *hot on worker w* when every one of its distinct ids is cached and fresh on w at the batch's start,
    and *hot* when it is hot on at least one worker. First, hot samples in batch order each go to the least-filled
    worker (load / capacity, ties to the lower index) among those it is hot on that have room. A hot sample that
    finds all of them full becomes cold. Then cold samples in batch order each go to the least-filled worker with
    room. Under the ``static`` cache policy every worker caches the same hot set, so hot samples spread over all
    workers as FAE's hot mini-batches do.
    """

    def _plan(self, context: DispatchContext) -> tuple[np.ndarray, dict[str, Any]]:
        batch, num_workers = context.batch, context.num_workers
        fresh = context.costs.fresh
        lengths = np.diff(batch.offsets)
        hot_on = np.zeros((batch.size, num_workers), dtype=bool)
        for worker in range(num_workers):
            fresh_count = np.bincount(batch.sample_of, weights=fresh[worker, batch.local_ids], minlength=batch.size)
            hot_on[:, worker] = (fresh_count == lengths) & (lengths > 0)

        capacity = context.capacity
        load = np.zeros(num_workers, dtype=np.int64)
        assignment = np.full(batch.size, -1, dtype=np.int64)
        for sample in np.flatnonzero(hot_on.any(axis=1)):
            fill = np.where(hot_on[sample] & (load < capacity), load / np.maximum(capacity, 1), np.inf)
            if np.isfinite(fill.min()):
                worker = int(np.argmin(fill))
                assignment[sample] = worker
                load[worker] += 1
        cold = np.flatnonzero(assignment < 0)
        for sample in cold:
            fill = np.where(load < capacity, load / np.maximum(capacity, 1), np.inf)
            worker = int(np.argmin(fill))
            assignment[sample] = worker
            load[worker] += 1
        hot_count = batch.size - len(cold)
        return assignment, {"hot_samples": hot_count}

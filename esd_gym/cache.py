"""A worker's embedding cache under HET's bounded-staleness protocol.

Each worker keeps, per cached row k: ``lag`` = V(k) − v_w(k), the number of gradient updates that *other*
workers applied at the parameter server since the copy was last refreshed; ``pending`` = u_w(k), the worker's own
updates not yet pushed; and the recency stamp and use count that LRU and LFU evict by. Storing the lag instead of
absolute versions means the simulator keeps no per-row state for rows that no worker caches, so its memory is
bounded by the cache sizes, not by the table sizes or the trace length.

A copy is *fresh* when it is cached and ``lag <= s`` (s = staleness bound). One iteration of a worker
(:meth:`WorkerCache.run_iteration`) takes its distinct ids K in first-appearance order and:

1. looks up every id; ids that are absent or stale are pulled (a stale copy keeps its pending updates);
2. inserts the absent ids in order. The rows of K are pinned for the whole iteration, so an insert into a full
   cache evicts the least recently used row (LFU: least used, then least recent) *not in K*. When only rows of K
   are left, the remaining absent ids are *transient*: used in this iteration and not cached. A dirty evicted row
   joins the write-back set. Under the ``static`` policy only ids of the hot set are ever cached, and nothing is
   evicted;
3. adds to ``pending`` the number of the worker's samples that used each id, then pushes every cached row with
   ``pending > s``, every transient row and every written-back row. A push clears ``pending``.

The lags of other workers' copies grow when the simulator applies all pushes at the end of the iteration
(:meth:`WorkerCache.apply_remote_pushes`), so every lookup of an iteration reads the PS as it was at its start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["CachePolicy", "WorkerCache", "WorkerIteration", "most_frequent_ids"]

CachePolicy = Literal["lru", "lfu", "static"]

_EMPTY_INT = np.zeros(0, dtype=np.int64)
# LFU ranks rows by use_count * _STAMP_LIMIT + last_used while recency stamps stay below it.
_STAMP_LIMIT = 2**40
# Slots allocated when a cache is created; the arrays double as rows arrive, up to the capacity.
_INITIAL_SLOTS = 1024


@dataclass(frozen=True)
class WorkerIteration:
    """Outcome of one worker's lookups, inserts and pushes in an iteration.

    Arrays over K (the worker's distinct ids in first-appearance order): ``keys``, ``pulled``, ``transient``.
    Pushes (cached rows past the bound, transient rows, then write-backs): ``push_ids``, ``push_amounts``.
    """

    keys: np.ndarray
    pulled: np.ndarray
    transient: np.ndarray
    push_ids: np.ndarray
    push_amounts: np.ndarray
    write_backs: int
    evictions: int


class WorkerCache:
    """The cache of one worker: sorted NumPy arrays keyed by global row id.

    :param capacity_rows: C_w, the most rows kept between iterations.
    :param policy: ``"lru"``, ``"lfu"`` or ``"static"``.
    :param hot_ids: the rows the ``static`` policy may cache, most important first; the first ``capacity_rows``
        distinct ones are kept. Ignored by the other policies.
    """

    def __init__(self, capacity_rows: int, policy: CachePolicy = "lru", hot_ids: np.ndarray | None = None) -> None:
        self.capacity_rows = int(capacity_rows)
        self.policy = policy
        if policy == "static":
            ranked = np.asarray(hot_ids if hot_ids is not None else _EMPTY_INT, dtype=np.int64)
            _, first = np.unique(ranked, return_index=True)
            distinct_in_rank_order = ranked[np.sort(first)]
            self.hot_ids = np.sort(distinct_in_rank_order[: self.capacity_rows])
        else:
            self.hot_ids = None
        self.clear()

    def clear(self) -> None:
        # Per-row state is indexed by slot and never moves. So an iteration rewrites only the two arrays of the
        # sorted index (ids and their slots) instead of five state arrays.
        self.sorted_ids = _EMPTY_INT.copy()
        self.sorted_slots = _EMPTY_INT.copy()
        allocated = min(self.capacity_rows, _INITIAL_SLOTS)
        self.slot_ids = np.zeros(allocated, dtype=np.int64)
        self.lag = np.zeros(allocated, dtype=np.int64)
        self.pending = np.zeros(allocated, dtype=np.int64)
        self.last_used = np.zeros(allocated, dtype=np.int64)
        self.use_count = np.zeros(allocated, dtype=np.int64)
        self.occupied = np.zeros(allocated, dtype=bool)

    @property
    def ids(self) -> np.ndarray:
        """The cached row ids, sorted."""
        return self.sorted_ids

    @property
    def size(self) -> int:
        return len(self.sorted_ids)

    def rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return (ids, lag, pending) of every cached row, sorted by id (copies)."""
        slots = self.sorted_slots
        return self.sorted_ids.copy(), self.lag[slots], self.pending[slots]

    def locate(self, query_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (slot, cached): the slot of each query id (meaningful where cached) and whether it is cached.

        Slots index the per-row state arrays ``lag``, ``pending``, ``last_used`` and ``use_count``.
        """
        if self.size == 0:
            return np.zeros(len(query_ids), dtype=np.int64), np.zeros(len(query_ids), dtype=bool)
        position = np.searchsorted(self.sorted_ids, query_ids)
        np.minimum(position, self.size - 1, out=position)
        return self.sorted_slots[position], self.sorted_ids[position] == query_ids

    def freshness(self, query_ids: np.ndarray, staleness_bound: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (cached, fresh), bool arrays over ``query_ids``."""
        slot, cached = self.locate(query_ids)
        fresh = cached.copy()
        if cached.any():
            fresh[cached] = self.lag[slot[cached]] <= staleness_bound
        return cached, fresh

    def cacheable(self, query_ids: np.ndarray) -> np.ndarray:
        """bool over ``query_ids``: whether this cache may keep the row (always, except under ``static``)."""
        if self.hot_ids is None:
            return np.ones(len(query_ids), dtype=bool)
        return np.isin(query_ids, self.hot_ids, assume_unique=False)

    def run_iteration(
        self, keys: np.ndarray, use_counts: np.ndarray, staleness_bound: int, stamp: int
    ) -> WorkerIteration:
        """Execute the lookups, inserts and pushes of one iteration (steps 1 to 3 of the module docstring).

        :param keys: int64 [K], distinct ids in first-appearance order.
        :param use_counts: int64 [K], number of this worker's samples that used each id.
        :param stamp: recency stamp of the first key; key j gets ``stamp + j``.
        """
        num_keys = len(keys)
        position, cached = self.locate(keys)
        fresh = cached.copy()
        fresh[cached] = self.lag[position[cached]] <= staleness_bound
        pulled = ~fresh

        # Step 2: which absent ids get a slot, and which cached rows make room for them.
        absent = ~cached
        cacheable = self.cacheable(keys)
        to_insert = np.flatnonzero(absent & cacheable)
        free_slots = max(self.capacity_rows - self.size, 0)
        pinned = np.zeros(len(self.occupied), dtype=bool)
        pinned[position[cached]] = True
        evicted = _EMPTY_INT
        if len(to_insert) > free_slots and self.policy != "static":
            candidates = self.sorted_slots[~pinned[self.sorted_slots]]
            num_evict = min(len(to_insert) - free_slots, len(candidates))
            if num_evict > 0:
                evicted = candidates[self._eviction_order(candidates, num_evict)]
        num_inserted = min(len(to_insert), free_slots + len(evicted))
        transient = absent.copy()
        transient[to_insert[:num_inserted]] = False

        # Write-back set: dirty evicted rows.
        dirty = self.pending[evicted] > 0
        write_back_ids = self.slot_ids[evicted][dirty]
        write_back_amounts = self.pending[evicted][dirty]

        # Update the rows already cached: refresh stale copies, recency, use count, pending updates; rows past
        # the bound are pushed (step 3).
        stamps = stamp + np.arange(num_keys, dtype=np.int64)
        hit_keys = np.flatnonzero(cached)
        hit_rows = position[hit_keys]
        self.lag[hit_rows] = np.where(pulled[hit_keys], 0, self.lag[hit_rows])
        self.last_used[hit_rows] = stamps[hit_keys]
        self.use_count[hit_rows] += 1
        hit_pending = self.pending[hit_rows] + use_counts[hit_keys]
        hit_pushed = hit_pending > staleness_bound
        self.pending[hit_rows] = np.where(hit_pushed, 0, hit_pending)

        # New rows start with this iteration's updates as pending; the same rule pushes them.
        inserted = to_insert[:num_inserted]
        new_pending = use_counts[inserted]
        new_pushed = new_pending > staleness_bound

        # Free the evicted rows' slots, then fill free slots with the new rows.
        if len(evicted):
            self._remove_rows(evicted)
        if len(inserted):
            self._insert_rows(keys[inserted], stamps[inserted], np.where(new_pushed, 0, new_pending))

        # Pushes: cached rows past the bound, transient rows, written-back rows.
        push_ids = np.concatenate(
            (keys[hit_keys[hit_pushed]], keys[inserted[new_pushed]], keys[transient], write_back_ids)
        )
        push_amounts = np.concatenate(
            (hit_pending[hit_pushed], new_pending[new_pushed], use_counts[transient], write_back_amounts)
        )

        return WorkerIteration(
            keys=keys,
            pulled=pulled,
            transient=transient,
            push_ids=push_ids,
            push_amounts=push_amounts,
            write_backs=int(len(write_back_ids)),
            evictions=int(len(evicted)),
        )

    def apply_remote_pushes(self, pushed_ids: np.ndarray, remote_amounts: np.ndarray) -> None:
        """Age cached copies by updates that *other* workers pushed.

        :param pushed_ids: int64, sorted distinct ids pushed in the iteration by any worker.
        :param remote_amounts: int64, updates pushed to each of those ids by workers other than this one.
        """
        remote = remote_amounts > 0
        pushed_ids, remote_amounts = pushed_ids[remote], remote_amounts[remote]
        if self.size == 0 or len(pushed_ids) == 0:
            return
        slot, present = self.locate(pushed_ids)
        # Distinct ids sit in distinct slots, so a plain fancy-index update adds each amount once.
        self.lag[slot[present]] += remote_amounts[present]

    def flush(self) -> tuple[np.ndarray, np.ndarray]:
        """Push every dirty row; return (ids, amounts) of the pushes, ids sorted."""
        dirty = self.sorted_slots[self.pending[self.sorted_slots] > 0]
        ids, amounts = self.slot_ids[dirty].copy(), self.pending[dirty].copy()
        self.pending[dirty] = 0
        return ids, amounts

    def _eviction_order(self, candidates: np.ndarray, count: int) -> np.ndarray:
        """Indices into ``candidates`` (slots) of the ``count`` rows to evict (LRU: oldest; LFU: least used, then
        oldest).

        Recency stamps are distinct within a worker, so the keys below have no ties and a partial selection
        (``argpartition``, linear time) picks the same rows as a full sort would.
        """
        last_used = self.last_used[candidates]
        if self.policy == "lfu":
            if int(last_used.max(initial=0)) < _STAMP_LIMIT:
                key = self.use_count[candidates] * _STAMP_LIMIT + last_used
            else:
                return np.lexsort((last_used, self.use_count[candidates]))[:count]
        else:
            key = last_used
        if count >= len(candidates):
            return np.arange(len(candidates))
        return np.argpartition(key, count - 1)[:count]

    def _remove_rows(self, slots: np.ndarray) -> None:
        self.occupied[slots] = False
        positions = np.searchsorted(self.sorted_ids, self.slot_ids[slots])
        keep = np.ones(self.size, dtype=bool)
        keep[positions] = False
        self.sorted_ids = self.sorted_ids[keep]
        self.sorted_slots = self.sorted_slots[keep]

    def _insert_rows(self, new_ids: np.ndarray, stamps: np.ndarray, pending: np.ndarray) -> None:
        needed = self.size + len(new_ids)
        if needed > len(self.occupied):
            self._grow(needed)
        slots = np.flatnonzero(~self.occupied)[: len(new_ids)]
        self.occupied[slots] = True
        self.slot_ids[slots] = new_ids
        self.lag[slots] = 0
        self.pending[slots] = pending
        self.last_used[slots] = stamps
        self.use_count[slots] = 1

        # Merge into the sorted index. A stable sort of two sorted runs is a linear merge (timsort finds the runs).
        by_id = np.argsort(new_ids)
        all_ids = np.concatenate((self.sorted_ids, new_ids[by_id]))
        all_slots = np.concatenate((self.sorted_slots, slots[by_id]))
        order = np.argsort(all_ids, kind="stable")
        self.sorted_ids, self.sorted_slots = all_ids[order], all_slots[order]

    def _grow(self, needed: int) -> None:
        """Enlarge the slot arrays (doubling, at most to the capacity) so that ``needed`` rows fit."""
        allocated = min(self.capacity_rows, max(needed, 2 * len(self.occupied)))
        extra = allocated - len(self.occupied)
        for name in ("slot_ids", "lag", "pending", "last_used", "use_count"):
            setattr(self, name, np.concatenate((getattr(self, name), np.zeros(extra, dtype=np.int64))))
        self.occupied = np.concatenate((self.occupied, np.zeros(extra, dtype=bool)))


def most_frequent_ids(ids: np.ndarray, count: int) -> np.ndarray:
    """Return the ``count`` most frequent ids of ``ids``, most frequent first (ties to the smaller id).

    This is the static policy's hot set when taken over a trace.
    """
    if count <= 0 or len(ids) == 0:
        return _EMPTY_INT.copy()
    values, frequencies = np.unique(np.asarray(ids, dtype=np.int64), return_counts=True)
    order = np.lexsort((values, -frequencies))
    return values[order[:count]]

"""The exact simulator of bulk-synchronous DLRM training on edge workers with cached embedding rows.

:meth:`Simulator.step` executes one iteration for a given dispatch. Every worker looks up the distinct ids of its
samples (see :mod:`esd_gym.cache` for the protocol), trains, and pushes. The pushes reach the parameter servers at
the iteration's end. All transfers are priced by :class:`esd_gym.cost.LinkPrices` at the bandwidth in force when the
iteration starts, and simulated time advances by the iteration time. :meth:`Simulator.flush` pushes every dirty row
at the end of an episode.
"""

from __future__ import annotations

import numpy as np

from esd_gym.batch import Batch
from esd_gym.cache import WorkerCache, WorkerIteration
from esd_gym.cluster import Cluster
from esd_gym.cost import LinkPrices
from esd_gym.errors import AssignmentError
from esd_gym.report import IterationReport

__all__ = ["Simulator"]


class Simulator:
    """Caches, staleness, parameter-server shards, links and simulated time of one cluster.

    :param cluster: the cluster to simulate.
    :param hot_ids: the hot set of the ``static`` cache policy (the same rows on every worker, as FAE replicates
        hot embeddings); see :func:`esd_gym.cache.most_frequent_ids`. Ignored by the other policies.
    """

    def __init__(self, cluster: Cluster, hot_ids: np.ndarray | None = None) -> None:
        self.cluster = cluster
        policy = cluster.config.cache_policy
        self.caches = [WorkerCache(int(rows), policy, hot_ids) for rows in cluster.cache_rows]
        self.reset()

    def reset(self) -> None:
        """Empty every cache and return to time 0."""
        for cache in self.caches:
            cache.clear()
        self.time_s = 0.0
        self.iteration = 0
        self._stamp = 0

    @property
    def num_workers(self) -> int:
        return self.cluster.num_workers

    def stall(self, seconds: float) -> None:
        """Advance simulated time by ``seconds`` without training (e.g. waiting for a dispatch decision)."""
        if seconds < 0:
            raise ValueError(f"stall time must be non-negative (got {seconds})")
        self.time_s += seconds

    def prices(self) -> LinkPrices:
        """Link prices at the current simulated time."""
        return LinkPrices.at_time(self.cluster, self.time_s)

    def cache_state(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return (cached, fresh, cacheable), bool [W, len(ids)], for the sorted distinct ``ids``."""
        shape = (self.num_workers, len(ids))
        cached, fresh, cacheable = np.zeros(shape, bool), np.zeros(shape, bool), np.zeros(shape, bool)
        bound = self.cluster.staleness_bound
        for worker, cache in enumerate(self.caches):
            cached[worker], fresh[worker] = cache.freshness(ids, bound)
            cacheable[worker] = cache.cacheable(ids)
        return cached, fresh, cacheable

    def cache_fill(self) -> np.ndarray:
        """Fraction of each worker's cache in use, float64 [W] (0 for a zero-size cache)."""
        sizes = np.array([cache.size for cache in self.caches], dtype=np.float64)
        return np.divide(sizes, self.cluster.cache_rows, out=np.zeros_like(sizes), where=self.cluster.cache_rows > 0)

    def validate_assignment(self, batch: Batch, assignment: np.ndarray, capacity: np.ndarray | None) -> np.ndarray:
        """Check a dispatch; return it as int64 [S] or raise :class:`AssignmentError` naming the bad entry."""
        assignment = np.asarray(assignment)
        if assignment.shape != (batch.size,):
            raise AssignmentError(f"assignment has shape {assignment.shape}, expected ({batch.size},)")
        if not np.issubdtype(assignment.dtype, np.integer):
            raise AssignmentError(f"assignment must hold integer worker indices (got dtype {assignment.dtype})")
        assignment = assignment.astype(np.int64)
        bad = np.flatnonzero((assignment < 0) | (assignment >= self.num_workers))
        if len(bad):
            raise AssignmentError(
                f"sample {int(bad[0])} is assigned to worker {int(assignment[bad[0]])}, "
                f"outside 0..{self.num_workers - 1}"
            )
        if capacity is not None:
            loads = np.bincount(assignment, minlength=self.num_workers)
            over = np.flatnonzero(loads > capacity)
            if len(over):
                worker = int(over[0])
                raise AssignmentError(
                    f"worker {worker} gets {int(loads[worker])} samples, above its capacity {int(capacity[worker])}"
                )
        return assignment

    def step(self, batch: Batch, assignment: np.ndarray, capacity: np.ndarray | None = None) -> IterationReport:
        """Execute one iteration: sample ``i`` of ``batch`` trains on worker ``assignment[i]``.

        :param capacity: int64 [W]; when given, a worker above its capacity raises :class:`AssignmentError`.
        """
        assignment = self.validate_assignment(batch, assignment, capacity)
        cluster, bound = self.cluster, self.cluster.staleness_bound
        num_workers, num_ps = self.num_workers, cluster.num_ps
        prices = self.prices()

        # Each worker's distinct ids in first-appearance order (samples in batch order, ids in feature order) and
        # how many of its samples use each, for all workers with two sorts. Entries are sorted by (worker, id),
        # stably, so the first entry of each (worker, id) group is its first appearance; Batch.from_csr dropped
        # repeats within a sample, so a group's size is the number of samples using the id.
        entry_worker = assignment[batch.sample_of]
        num_unique = max(batch.num_unique, 1)
        entry_key = entry_worker * num_unique + batch.local_ids
        order = np.argsort(entry_key, kind="stable")
        sorted_key = entry_key[order]
        group_start = np.ones(len(sorted_key), dtype=bool)
        group_start[1:] = sorted_key[1:] != sorted_key[:-1]
        starts = np.flatnonzero(group_start)
        group_key = sorted_key[starts]
        group_counts = np.diff(np.append(starts, len(sorted_key)))
        group_worker = group_key // num_unique
        appearance = np.lexsort((order[starts], group_worker))
        worker_keys = batch.unique_ids[group_key[appearance] % num_unique]
        worker_counts = group_counts[appearance]
        bounds = np.searchsorted(group_worker[appearance], np.arange(num_workers + 1))
        samples = np.bincount(assignment, minlength=num_workers)

        results: list[WorkerIteration] = []
        lookups = np.zeros((num_workers, num_ps), dtype=np.int64)
        pulls = np.zeros_like(lookups)
        pushes = np.zeros_like(lookups)
        for worker, cache in enumerate(self.caches):
            first, last = bounds[worker], bounds[worker + 1]
            result = cache.run_iteration(worker_keys[first:last], worker_counts[first:last], bound, self._stamp)
            self._stamp += int(last - first)
            results.append(result)

            key_ps = cluster.ps_of(result.keys)
            lookups[worker] = np.bincount(key_ps, minlength=num_ps)
            pulls[worker] = np.bincount(key_ps[result.pulled], minlength=num_ps)
            pushes[worker] = np.bincount(cluster.ps_of(result.push_ids), weights=None, minlength=num_ps)

        self._apply_pushes(results)
        report = self._report("iteration", prices, samples, lookups, pulls, pushes, results)
        self.time_s += report.iteration_time_s
        self.iteration += 1
        return report

    def flush(self) -> IterationReport:
        """Push every dirty row of every worker (the end of an episode) and advance time by the slowest worker."""
        cluster, num_ps = self.cluster, self.cluster.num_ps
        prices = self.prices()
        pushes = np.zeros((self.num_workers, num_ps), dtype=np.int64)
        flushed: list[WorkerIteration] = []
        for worker, cache in enumerate(self.caches):
            ids, amounts = cache.flush()
            pushes[worker] = np.bincount(cluster.ps_of(ids), minlength=num_ps)
            flushed.append(
                WorkerIteration(
                    keys=ids[:0], pulled=np.zeros(0, bool), transient=np.zeros(0, bool),
                    push_ids=ids, push_amounts=amounts, write_backs=0, evictions=0,
                )
            )
        self._apply_pushes(flushed)
        zeros = np.zeros_like(pushes)
        report = self._report("flush", prices, np.zeros(self.num_workers, np.int64), zeros, zeros, pushes, flushed)
        self.time_s += report.iteration_time_s
        return report

    def _apply_pushes(self, results: list[WorkerIteration]) -> None:
        """Age every cached copy by the updates that the other workers pushed in this iteration."""
        all_ids = np.concatenate([r.push_ids for r in results])
        if len(all_ids) == 0:
            return
        all_amounts = np.concatenate([r.push_amounts for r in results])
        pushed_ids, inverse = np.unique(all_ids, return_inverse=True)
        totals = np.bincount(inverse, weights=all_amounts, minlength=len(pushed_ids)).astype(np.int64)
        start = 0
        for cache, result in zip(self.caches, results):
            stop = start + len(result.push_ids)
            own = np.bincount(inverse[start:stop], weights=result.push_amounts, minlength=len(pushed_ids))
            cache.apply_remote_pushes(pushed_ids, totals - own.astype(np.int64))
            start = stop

    def _report(
        self,
        kind: str,
        prices: LinkPrices,
        samples: np.ndarray,
        lookups: np.ndarray,
        pulls: np.ndarray,
        pushes: np.ndarray,
        results: list[WorkerIteration],
    ) -> IterationReport:
        cluster = self.cluster
        row_message_bytes = cluster.row_bytes + cluster.config.row_header_bytes
        lookup_cost_s = prices.lookup_cost_s(lookups, pulls)
        push_cost_s = prices.push_cost_s(pushes)
        compute_s = samples / cluster.compute_samples_per_s
        communication_s = lookup_cost_s + push_cost_s
        if cluster.config.overlap_compute:
            busy_s = np.maximum(compute_s, communication_s)
        else:
            busy_s = compute_s + communication_s
        total_lookups, total_pulls = lookups.sum(axis=1), pulls.sum(axis=1)
        total_pushes = pushes.sum(axis=1)
        return IterationReport(
            kind=kind,
            iteration=self.iteration,
            start_time_s=self.time_s,
            samples=samples.astype(np.int64),
            lookups=total_lookups,
            hits=total_lookups - total_pulls,
            pulls=total_pulls,
            pushes=total_pushes,
            write_backs=np.array([r.write_backs for r in results], dtype=np.int64),
            transient=np.array([int(r.transient.sum()) for r in results], dtype=np.int64),
            evictions=np.array([r.evictions for r in results], dtype=np.int64),
            bytes_down=total_pulls * row_message_bytes,
            bytes_up=total_lookups * cluster.config.request_bytes_per_id + total_pushes * row_message_bytes,
            lookup_cost_s=lookup_cost_s,
            push_cost_s=push_cost_s,
            compute_s=compute_s,
            busy_s=busy_s,
            iteration_time_s=float(busy_s.max()) if len(busy_s) else 0.0,
            allreduce_s=cluster.allreduce_s() if kind == "iteration" else 0.0,
        )

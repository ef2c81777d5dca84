"""What a dispatcher sees at a batch's start, and the greedy placement shared by the heuristic and the env.

:class:`DispatchContext` bundles the batch, the cost model priced at the batch's start and the worker capacities.
:func:`greedy_dispatch` places the samples one by one on the feasible worker with the smallest marginal cost given
the rows already planned for it (ties to the less loaded worker, then the lower index). It is the
HybridDis-Heuristic (``order="regret"``) and the placement step of the environment's batch mode, whose per-worker
score adjustments enter as ``adjust_s``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from esd_gym.batch import Batch
from esd_gym.cluster import Cluster
from esd_gym.cost import BatchCosts, PlanState
from esd_gym.simulator import Simulator

__all__ = ["DispatchContext", "greedy_dispatch", "standalone_costs"]


@dataclass(frozen=True)
class DispatchContext:
    """The state a dispatcher may use to place one batch.

    Attributes:
        batch: the samples to place (``batch.size`` = S, ``batch.num_unique`` = U).
        costs: marginal-cost model at the batch's start (prices, freshness, push expectation).
        capacity: int64 [W], most samples per worker in this batch.
        cached: bool [W, U], local id u is in worker w's cache (fresh or stale).
        cache_fill: float64 [W], fraction of each cache in use.
        sample_ps_offsets: int64 [S+1], CSR offsets into ``sample_ps``.
        sample_ps: int64, the distinct parameter servers of each sample's ids.
        cluster: the simulated cluster (rates, bandwidths).
        time_s: simulated time at the batch's start, seconds.
        table_offsets: int64 [T+1] of the trace, or None; lets a dispatcher read one feature (e.g. the user id).
    """

    batch: Batch
    costs: BatchCosts
    capacity: np.ndarray
    cached: np.ndarray
    cache_fill: np.ndarray
    sample_ps_offsets: np.ndarray
    sample_ps: np.ndarray
    cluster: Cluster
    time_s: float
    table_offsets: np.ndarray | None = None

    @classmethod
    def build(
        cls, simulator: Simulator, batch: Batch, capacity: np.ndarray, table_offsets: np.ndarray | None = None
    ) -> "DispatchContext":
        """Snapshot ``simulator`` at the start of ``batch``."""
        cached, fresh, cacheable = simulator.cache_state(batch.unique_ids)
        cluster = simulator.cluster
        ps_of_local = cluster.ps_of(batch.unique_ids)
        costs = BatchCosts(
            prices=simulator.prices(),
            ps_of_local=ps_of_local,
            fresh=fresh,
            cacheable=cacheable if cluster.config.cache_policy == "static" else None,
            staleness_bound=cluster.staleness_bound,
        )
        ps_offsets, sample_ps = _distinct_per_sample(batch.offsets, ps_of_local[batch.local_ids], cluster.num_ps)
        return cls(
            batch=batch,
            costs=costs,
            capacity=np.asarray(capacity, dtype=np.int64),
            cached=cached,
            cache_fill=simulator.cache_fill(),
            sample_ps_offsets=ps_offsets,
            sample_ps=sample_ps,
            cluster=cluster,
            time_s=simulator.time_s,
            table_offsets=table_offsets,
        )

    @property
    def num_workers(self) -> int:
        return len(self.capacity)

    def sample_ps_of(self, sample: int) -> np.ndarray:
        return self.sample_ps[self.sample_ps_offsets[sample] : self.sample_ps_offsets[sample + 1]]

    def new_plan(self) -> PlanState:
        return PlanState(self.num_workers, self.batch.num_unique, self.cluster.num_ps, self.capacity)


def _distinct_per_sample(offsets: np.ndarray, values: np.ndarray, num_values: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of each CSR row (values in ``0..num_values-1``), as CSR (offsets, values)."""
    num_rows = len(offsets) - 1
    row_of = np.repeat(np.arange(num_rows, dtype=np.int64), np.diff(offsets))
    present = np.zeros((num_rows, num_values), dtype=bool)
    present[row_of, values] = True
    rows, distinct = np.nonzero(present)
    counts = np.bincount(rows, minlength=num_rows)
    return np.concatenate(([0], np.cumsum(counts))).astype(np.int64), distinct.astype(np.int64)


def standalone_costs(context: DispatchContext, lookup_only: bool = False) -> np.ndarray:
    """Cost of each sample on each worker if it were the only one placed, float64 [S, W], seconds."""
    batch, costs = context.batch, context.costs
    unit = costs.unit_lookup_s if lookup_only else costs.unit_s
    fixed = costs.lookup_latency_s if lookup_only else costs.fixed_s
    num_samples = batch.size
    ps_rows = np.repeat(np.arange(num_samples), np.diff(context.sample_ps_offsets))
    row_cost = np.empty((num_samples, costs.num_workers))
    # bincount adds the entries of each sample in entry order, as a sequential sum would.
    for worker in range(costs.num_workers):
        row_cost[:, worker] = np.bincount(
            batch.sample_of, weights=unit[worker, batch.local_ids], minlength=num_samples
        ) + np.bincount(ps_rows, weights=fixed[worker, context.sample_ps], minlength=num_samples)
    return row_cost


def greedy_dispatch(
    context: DispatchContext,
    order: Literal["regret", "batch"] = "regret",
    adjust_s: np.ndarray | None = None,
) -> np.ndarray:
    """Place every sample greedily on the cheapest feasible worker; return the assignment, int64 [S].

    :param order: ``"regret"`` places first the samples whose best and second-best standalone placements differ
        most (HybridDis-Heuristic); ``"batch"`` keeps the batch order.
    :param adjust_s: float64 [W] or None, seconds added to every marginal cost on each worker (batch-mode actions).
    """
    batch = context.batch
    num_samples, num_workers = batch.size, context.num_workers
    if order == "regret" and num_workers > 1:
        standalone = standalone_costs(context)
        if adjust_s is not None:
            standalone = standalone + adjust_s
        two_best = np.partition(standalone, 1, axis=1)[:, :2]
        regret = two_best[:, 1] - two_best[:, 0]
        sequence = np.argsort(-regret, kind="stable")
    else:
        sequence = np.arange(num_samples)

    # Rows and PS already planned on a worker cost nothing more there: the loop zeroes their prices (in a copy) as
    # it places samples. Rows (0..U-1) and PS (U..U+P-1) share one C-ordered [U+P, W] price table, so a sample's
    # marginal cost on every worker is one gather of contiguous rows and one sum.
    costs = context.costs
    open_price_s = np.ascontiguousarray(np.concatenate((costs.unit_s.T, costs.fixed_s.T)))
    ps_sample = np.repeat(np.arange(num_samples), np.diff(context.sample_ps_offsets))
    entry_sample = np.concatenate((batch.sample_of, ps_sample))
    entry_index = np.concatenate((batch.local_ids, batch.num_unique + context.sample_ps))
    by_sample = np.argsort(entry_sample, kind="stable")
    bounds = np.searchsorted(entry_sample[by_sample], np.arange(1, num_samples))
    price_rows = np.split(entry_index[by_sample], bounds)

    # 0 on workers with room, +inf on full ones (plus the batch-mode adjustment).
    offset_s = np.zeros(num_workers) if adjust_s is None else np.asarray(adjust_s, dtype=np.float64).copy()
    capacity = context.capacity.tolist()
    load = [0] * num_workers
    for worker in range(num_workers):
        if capacity[worker] <= 0:
            offset_s[worker] = np.inf
    # ones[:k] @ prices sums k price rows, several times faster than prices.sum(axis=0) on small arrays. The sum
    # may round differently from a sequential one, but workers with equal prices still get equal sums.
    ones = np.ones(max((len(rows) for rows in price_rows), default=0))

    assignment = np.empty(num_samples, dtype=np.int64)
    for sample in sequence.tolist():
        rows = price_rows[sample]
        marginal = (ones[: len(rows)].dot(open_price_s.take(rows, axis=0)) + offset_s).tolist()
        lowest = min(marginal)
        worker = marginal.index(lowest)
        if marginal.count(lowest) > 1:
            # Ties go to the less loaded worker, then the lower index.
            worker = min((w for w in range(num_workers) if marginal[w] == lowest), key=load.__getitem__)
        open_price_s[rows, worker] = 0.0
        load[worker] += 1
        if load[worker] >= capacity[worker]:
            offset_s[worker] = np.inf
        assignment[sample] = worker
    return assignment

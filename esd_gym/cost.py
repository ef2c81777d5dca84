"""The one cost model: what pulls, requests and pushes cost on each link, and what placing a sample costs.

Every figure of esd-gym is priced here. The simulator prices the transfers it executes with
:meth:`LinkPrices.link_time_s`; the environment's observations and rewards, the ILP and the heuristic price a
placement with :class:`BatchCosts`, which is built from the same :class:`LinkPrices`. So "the optimum" of a
dispatcher and "the realised cost" of the simulator are computed by the same arithmetic.

Prices are link time in seconds. On the link between worker w and parameter server p:

* a lookup of one id sends ``request_bytes_per_id`` up: ``request_s[w, p]``;
* a pulled row comes down with its key and version: ``pull_s[w, p] = (row_bytes + row_header_bytes) / down``;
* a pushed gradient goes up the same way: ``push_s[w, p] = (row_bytes + row_header_bytes) / up``;
* each message pays ``latency_s[w, p]`` once: one lookup message per PS that has ids of the worker in an
  iteration, and one push message per PS that receives at least one push.

Marginal cost of a placement (what :class:`BatchCosts` computes). Placing sample i on worker w costs the request,
the pull (when e is not fresh on w) and the expected push of every id e of the sample not yet planned on w. It also
costs the message latencies of every PS that the worker did not talk to yet in this batch. The lookup part (requests,
pulls, lookup latencies) is exact: summed over a batch it equals the simulator's lookup cost of the iteration. The
push part is exact when the staleness bound s is 0 (every used row is pushed at the end of the iteration). When
s > 0 it is an expectation: a row the worker caches is pushed once every s + 1 uses on average, so each use is
charged ``push_s / (s + 1)``; a row that is not cacheable (static policy, row outside the hot set) is pushed every
time. Write-backs of evicted dirty rows depend on future evictions and are not priced at placement time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from esd_gym.cluster import Cluster

__all__ = ["BatchCosts", "LinkPrices", "PlanState"]


@dataclass(frozen=True)
class LinkPrices:
    """Per-unit link-time prices on every worker → PS link at one moment; arrays float64 [W, P], seconds."""

    latency_s: np.ndarray
    request_s: np.ndarray
    pull_s: np.ndarray
    push_s: np.ndarray

    @classmethod
    def at_time(cls, cluster: Cluster, time_s: float) -> "LinkPrices":
        """Prices with the bandwidth in force at simulated time ``time_s``."""
        factors = cluster.bandwidth_factors(time_s)[:, None]
        down = cluster.down_bytes_per_s * factors
        up = cluster.up_bytes_per_s * factors
        row_message_bytes = cluster.row_bytes + cluster.config.row_header_bytes
        return cls(
            latency_s=cluster.latency_s.copy(),
            request_s=cluster.config.request_bytes_per_id / up,
            pull_s=row_message_bytes / down,
            push_s=row_message_bytes / up,
        )

    def lookup_cost_s(self, lookups: np.ndarray, pulls: np.ndarray) -> np.ndarray:
        """Link time of lookups and pulls per worker, float64 [W], from counts int [W, P].

        One latency per PS that receives at least one lookup, plus the request bytes of every lookup and the reply
        bytes of every pull.
        """
        return (
            (lookups > 0) * self.latency_s + lookups * self.request_s + pulls * self.pull_s
        ).sum(axis=1)

    def push_cost_s(self, pushes: np.ndarray) -> np.ndarray:
        """Link time of pushes per worker, float64 [W], from counts int [W, P]: one latency per PS pushed to."""
        return ((pushes > 0) * self.latency_s + pushes * self.push_s).sum(axis=1)


class BatchCosts:
    """Marginal placement costs for one batch, built at the batch's start.

    The batch's distinct ids are numbered ``0..U-1`` (its *local* ids, see :class:`esd_gym.simulator.Batch`).

    :param prices: link prices at the batch's start.
    :param ps_of_local: int64 [U], parameter server of each local id.
    :param fresh: bool [W, U], whether local id u is fresh on worker w at the batch's start.
    :param cacheable: bool [W, U] or None (everything cacheable), whether worker w may keep local id u in cache.
    :param staleness_bound: s; the push expectation above depends on it.
    """

    def __init__(
        self,
        prices: LinkPrices,
        ps_of_local: np.ndarray,
        fresh: np.ndarray,
        cacheable: np.ndarray | None,
        staleness_bound: int,
    ) -> None:
        self.prices = prices
        self.ps_of_local = ps_of_local
        self.fresh = fresh
        self.staleness_bound = staleness_bound

        request = prices.request_s[:, ps_of_local]
        pull = prices.pull_s[:, ps_of_local]
        push = prices.push_s[:, ps_of_local]

        # [W, U] link time of the first use of id u on worker w in this batch: request, pull when stale or absent.
        self.unit_lookup_s = request + np.where(fresh, 0.0, pull)

        # [W, U] expected push of that row at the batch's end (exact when s = 0, see the module docstring).
        if staleness_bound == 0:
            self.unit_push_s = push
        else:
            amortised = push / (staleness_bound + 1)
            self.unit_push_s = amortised if cacheable is None else np.where(cacheable, amortised, push)

        self.unit_s = self.unit_lookup_s + self.unit_push_s

        # [W, P] fixed cost of talking to a PS at all in this batch: the lookup message, and the push message
        # (certain when s = 0, expected otherwise; charged in full in both cases).
        self.lookup_latency_s = prices.latency_s
        self.fixed_s = 2.0 * prices.latency_s

    @property
    def num_workers(self) -> int:
        return self.unit_s.shape[0]

    def marginal_cost_s(
        self, local_ids: np.ndarray, sample_ps: np.ndarray, plan: "PlanState", lookup_only: bool = False
    ) -> np.ndarray:
        """Cost of placing one sample on each worker given ``plan``, float64 [W], seconds.

        :param local_ids: the sample's distinct local ids.
        :param sample_ps: the distinct parameter servers of those ids.
        :param lookup_only: price only requests, pulls and lookup latencies (the exact part; see module docstring).
        """
        unit = self.unit_lookup_s if lookup_only else self.unit_s
        fixed = self.lookup_latency_s if lookup_only else self.fixed_s
        new_rows = ~plan.planned[:, local_ids]
        new_ps = ~plan.touched[:, sample_ps]
        return (new_rows * unit[:, local_ids]).sum(axis=1) + (new_ps * fixed[:, sample_ps]).sum(axis=1)

    def plan_cost_s(self, plan: "PlanState", lookup_only: bool = False) -> float:
        """Total cost of a complete plan, seconds: the sum of its placements' marginal costs."""
        unit = self.unit_lookup_s if lookup_only else self.unit_s
        fixed = self.lookup_latency_s if lookup_only else self.fixed_s
        return float((plan.planned * unit).sum() + (plan.touched * fixed).sum())


class PlanState:
    """Rows and parameter servers already planned on each worker while a batch is being dispatched.

    :param num_workers: W.
    :param num_local_ids: U, distinct ids of the batch.
    :param num_ps: P.
    :param capacity: int64 [W], the most samples each worker may take in this batch.
    """

    def __init__(self, num_workers: int, num_local_ids: int, num_ps: int, capacity: np.ndarray) -> None:
        self.planned = np.zeros((num_workers, num_local_ids), dtype=bool)
        self.touched = np.zeros((num_workers, num_ps), dtype=bool)
        self.load = np.zeros(num_workers, dtype=np.int64)
        self.capacity = np.asarray(capacity, dtype=np.int64)

    def place(self, worker: int, local_ids: np.ndarray, sample_ps: np.ndarray) -> None:
        self.planned[worker, local_ids] = True
        self.touched[worker, sample_ps] = True
        self.load[worker] += 1

    def room(self) -> np.ndarray:
        """bool [W]: workers that can take one more sample."""
        return self.load < self.capacity

"""greedy_dispatch after its speed-up: the same placements as the per-sample reference loop, and the regret order."""

from __future__ import annotations

import numpy as np
import pytest

from esd_gym.dispatch import DispatchContext, greedy_dispatch, standalone_costs
from esd_gym.simulator import Simulator
from tests.agents.helpers import batch_of, make_cluster, priced_context, random_batch


def reference_greedy(context: DispatchContext, order: str, adjust_s: np.ndarray | None) -> np.ndarray:
    """The loop greedy_dispatch had before its speed-up: PlanState and marginal_cost_s per sample."""
    batch = context.batch
    if order == "regret" and context.num_workers > 1:
        standalone = standalone_costs(context)
        if adjust_s is not None:
            standalone = standalone + adjust_s
        two_best = np.partition(standalone, 1, axis=1)[:, :2]
        sequence = np.argsort(-(two_best[:, 1] - two_best[:, 0]), kind="stable")
    else:
        sequence = np.arange(batch.size)
    plan = context.new_plan()
    assignment = np.empty(batch.size, dtype=np.int64)
    for sample in sequence:
        ids = batch.sample_local_ids(sample)
        ps = context.sample_ps_of(sample)
        marginal = context.costs.marginal_cost_s(ids, ps, plan)
        if adjust_s is not None:
            marginal = marginal + adjust_s
        marginal = np.where(plan.load < plan.capacity, marginal, np.inf)
        best = np.flatnonzero(marginal == marginal.min())
        worker = int(best[np.argmin(plan.load[best])])
        plan.place(worker, ids, ps)
        assignment[sample] = worker
    return assignment


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("order", ["regret", "batch"])
def test_greedy_matches_reference_loop(seed, order):
    rng = np.random.default_rng(seed)
    num_workers = int(rng.integers(2, 7))
    # Even seeds: identical workers, so ties (broken by load, then index) happen at every step.
    if seed % 2 == 0:
        down = [1e5] * num_workers
    else:
        down = (10 ** rng.uniform(4, 6, size=num_workers)).tolist()
    cluster = make_cluster(down, cache_rows=20, num_ps=int(rng.integers(1, 4)))
    simulator = Simulator(cluster)
    num_samples = int(rng.integers(10, 120))
    warm = random_batch(rng, num_samples, 60, 5)
    simulator.step(warm, rng.integers(0, num_workers, size=num_samples))
    batch = random_batch(rng, num_samples, 60, 5)
    capacity = cluster.capacities(num_samples)
    context = DispatchContext.build(simulator, batch, capacity)
    adjust = None if seed % 3 else rng.normal(0, 1e-4, size=num_workers)

    fast = greedy_dispatch(context, order=order, adjust_s=adjust)
    np.testing.assert_array_equal(fast, reference_greedy(context, order, adjust))


def test_greedy_leaves_context_prices_unchanged():
    # One PS makes fixed_s.T a [1, W] array, which once aliased the context's prices.
    cluster = make_cluster([1e5, 2e5])
    simulator = Simulator(cluster)
    batch = batch_of([[0], [1], [0, 1]])
    context = DispatchContext.build(simulator, batch, cluster.capacities(3))
    unit, fixed = context.costs.unit_s.copy(), context.costs.fixed_s.copy()
    greedy_dispatch(context)
    np.testing.assert_array_equal(context.costs.unit_s, unit)
    np.testing.assert_array_equal(context.costs.fixed_s, fixed)


def test_regret_order_places_high_regret_sample_first():
    # Pull prices 1 s on worker 0, 2 s on worker 1; nothing is fresh; capacities 1 and 2.
    # Sample 0 uses one row: 1 s vs 2 s, regret 1. Sample 1 uses three rows: 3 s vs 6 s, regret 3.
    # Regret order: sample 1 takes worker 0 (3 s), which is then full, so sample 0 goes to worker 1 (2 s): 5 s.
    # Batch order: sample 0 takes worker 0 (1 s), sample 1 must go to worker 1 (6 s): 7 s.
    batch = batch_of([[0], [1, 2, 3]])
    fresh = np.zeros((2, 4), dtype=bool)
    context = priced_context(batch, pull_s=[1.0, 2.0], fresh=fresh, capacity=[1, 2])
    np.testing.assert_array_equal(greedy_dispatch(context, order="regret"), [1, 0])
    np.testing.assert_array_equal(greedy_dispatch(context, order="batch"), [0, 1])


def test_greedy_ties_go_to_less_loaded_worker():
    # Equal prices everywhere, rows never shared: every placement ties, so loads alternate 0, 1, 0, 1.
    batch = batch_of([[0], [1], [2], [3]])
    context = priced_context(batch, pull_s=[1.0, 1.0], fresh=np.zeros((2, 4), bool), capacity=[4, 4])
    np.testing.assert_array_equal(greedy_dispatch(context, order="batch"), [0, 1, 0, 1])


def test_greedy_shares_planned_rows():
    # Sample 1 reuses row 0, which sample 0 already planned on worker 1, so it costs 0 there and follows it.
    batch = batch_of([[0], [0]])
    fresh = np.array([[False], [True]])
    context = priced_context(batch, pull_s=[1.0, 5.0], fresh=fresh, capacity=[2, 2])
    np.testing.assert_array_equal(greedy_dispatch(context, order="batch"), [1, 1])

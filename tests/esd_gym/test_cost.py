"""The cost model: hand-computed prices, and planned cost == realised cost when the staleness bound is 0."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esd_gym.cost import LinkPrices
from esd_gym.dispatch import DispatchContext
from esd_gym.simulator import Simulator
from tests.esd_gym.helpers import make_batch, make_cluster


def test_prices_from_bandwidth_and_bytes():
    cluster = make_cluster([4], down=1000.0, up=500.0, latency=0.25)
    prices = LinkPrices.at_time(cluster, 0.0)
    # (64 + 16) / 1000, (64 + 16) / 500, 16 / 500.
    assert prices.pull_s[0, 0] == pytest.approx(0.08)
    assert prices.push_s[0, 0] == pytest.approx(0.16)
    assert prices.request_s[0, 0] == pytest.approx(0.032)
    assert prices.latency_s.tolist() == [[0.25]]


def test_marginal_cost_counts_shared_rows_once():
    cluster = make_cluster([4, 4], latency=0.25)
    simulator = Simulator(cluster)
    batch = make_batch([[1, 2], [2, 3]])
    context = DispatchContext.build(simulator, batch, np.array([2, 2]))
    plan = context.new_plan()
    first = context.costs.marginal_cost_s(batch.sample_local_ids(0), context.sample_ps_of(0), plan)
    # Empty caches: each new row costs request + pull + push = 0.272 s; the first sample on a worker also opens
    # the lookup and push messages: 2 × 0.25 s.
    assert first.tolist() == pytest.approx([2 * 0.272 + 0.5] * 2)
    plan.place(0, batch.sample_local_ids(0), context.sample_ps_of(0))
    second = context.costs.marginal_cost_s(batch.sample_local_ids(1), context.sample_ps_of(1), plan)
    # On worker 0, row 2 and both messages are already planned: only row 3 is new.
    assert second.tolist() == pytest.approx([0.272, 2 * 0.272 + 0.5])


def test_fresh_row_costs_request_and_push_only():
    simulator = Simulator(make_cluster([4]))
    simulator.step(make_batch([[5]]), np.array([0]))
    batch = make_batch([[5]])
    context = DispatchContext.build(simulator, batch, np.array([1]))
    cost = context.costs.marginal_cost_s(batch.sample_local_ids(0), context.sample_ps_of(0), context.new_plan())
    assert cost.tolist() == pytest.approx([0.032 + 0.16])


@settings(max_examples=100, deadline=None)
@given(
    st.integers(1, 3),
    st.integers(1, 2),
    st.lists(st.lists(st.integers(0, 12), max_size=4), min_size=1, max_size=8),
    st.integers(0, 2**31 - 1),
)
def test_planned_cost_equals_realised_at_s0(num_workers, num_ps, samples, seed):
    rng = np.random.default_rng(seed)
    cluster = make_cluster([3] * num_workers, num_ps=num_ps, latency=0.01)
    simulator = Simulator(cluster)
    # Warm the caches with one random batch so that some rows are fresh, some stale, some absent.
    simulator.step(make_batch(samples), rng.integers(0, num_workers, len(samples)))

    batch = make_batch(samples)
    context = DispatchContext.build(simulator, batch, np.full(num_workers, len(samples)))
    assignment = rng.integers(0, num_workers, len(samples))
    plan = context.new_plan()
    planned_s = 0.0
    lookup_s = 0.0
    for sample, worker in enumerate(assignment):
        ids, ps = batch.sample_local_ids(sample), context.sample_ps_of(sample)
        planned_s += context.costs.marginal_cost_s(ids, ps, plan)[worker]
        lookup_s += context.costs.marginal_cost_s(ids, ps, plan, lookup_only=True)[worker]
        plan.place(int(worker), ids, ps)
    report = simulator.step(batch, assignment)
    assert planned_s == pytest.approx(report.total_cost_s, rel=1e-12, abs=1e-12)
    assert context.costs.plan_cost_s(plan) == pytest.approx(report.total_cost_s, rel=1e-12, abs=1e-12)
    assert lookup_s == pytest.approx(report.lookup_cost_s.sum(), rel=1e-12, abs=1e-12)

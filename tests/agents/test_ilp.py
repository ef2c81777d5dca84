"""The dispatch ILP against brute force on tiny instances, its bounds, and its solver fallbacks."""

from __future__ import annotations

import copy
import itertools
import logging
import sys

import numpy as np
import pytest

from agents.base import make_dispatcher, plan_cost_s
from agents.bounds import lp_bound_s
from agents.hybriddis import solve_with_fallback
from agents.ilp import batch_problem, solve_cbc, solve_highs, window_problem
from esd_gym.dispatch import DispatchContext, greedy_dispatch
from tests.agents.helpers import random_tiny_instance

TINY_SEEDS = range(8)


def brute_force_minimum_s(simulator, batch, capacity) -> float:
    """Cheapest feasible assignment, each priced by running one step on a copy of the simulator."""
    num_workers = simulator.num_workers
    best = np.inf
    for assignment in itertools.product(range(num_workers), repeat=batch.size):
        loads = np.bincount(assignment, minlength=num_workers)
        if (loads > capacity).any():
            continue
        report = copy.deepcopy(simulator).step(batch, np.array(assignment), capacity)
        best = min(best, report.total_cost_s)
    return best


@pytest.mark.parametrize("seed", TINY_SEEDS)
def test_ilp_matches_brute_force(seed):
    simulator, batch, capacity = random_tiny_instance(seed)
    context = DispatchContext.build(simulator, batch, capacity)
    dispatcher = make_dispatcher("hybriddis-optimal", time_limit_s=30.0)
    dispatcher.reset(0)
    assignment = dispatcher.dispatch(context)
    record = dispatcher.last_record

    expected = brute_force_minimum_s(simulator, batch, capacity)
    realised = copy.deepcopy(simulator).step(batch, assignment, capacity).total_cost_s
    assert record["status"] == "optimal"
    assert realised == pytest.approx(expected, rel=1e-9, abs=1e-15)
    assert record["plan_cost_s"] == pytest.approx(expected, rel=1e-9, abs=1e-15)
    assert record["bound_s"] <= expected * (1 + 1e-6) + 1e-15


@pytest.mark.parametrize("seed", TINY_SEEDS)
def test_lp_bound_below_ilp_below_heuristic(seed):
    simulator, batch, capacity = random_tiny_instance(seed)
    context = DispatchContext.build(simulator, batch, capacity)
    optimum = solve_highs(batch_problem(context), time_limit_s=30.0)
    heuristic_s = plan_cost_s(context, greedy_dispatch(context, order="regret"))
    bound = lp_bound_s(context)

    assert optimum.status == "optimal"
    assert bound <= optimum.objective_s * (1 + 1e-9) + 1e-15
    assert optimum.objective_s <= heuristic_s * (1 + 1e-9) + 1e-15


@pytest.mark.parametrize("seed", [1, 4])
def test_cbc_matches_highs(seed):
    simulator, batch, capacity = random_tiny_instance(seed)
    context = DispatchContext.build(simulator, batch, capacity)
    problem = batch_problem(context)
    highs = solve_highs(problem, time_limit_s=30.0)
    cbc = solve_cbc(problem, time_limit_s=30.0, warm_start=greedy_dispatch(context))
    assert cbc.status == "optimal"
    assert cbc.objective_s == pytest.approx(highs.objective_s, rel=1e-9)


def test_window_problem_prices_rest_of_plan():
    # A window's objective at the current placement equals the whole plan's cost, since the others are constant.
    simulator, batch, capacity = random_tiny_instance(5)
    context = DispatchContext.build(simulator, batch, capacity)
    assignment = greedy_dispatch(context)
    window = np.array([0, batch.size - 1])
    problem = window_problem(context, assignment, window)
    assert problem.cost_s(assignment[window]) == pytest.approx(plan_cost_s(context, assignment), rel=1e-12)

    result = solve_highs(problem, time_limit_s=30.0, warm_start=assignment[window])
    improved = assignment.copy()
    improved[window] = result.assignment
    assert result.objective_s == pytest.approx(plan_cost_s(context, improved), rel=1e-12)
    assert result.objective_s <= plan_cost_s(context, assignment) * (1 + 1e-12)


def test_missing_highs_falls_back_to_cbc(monkeypatch, caplog):
    simulator, batch, capacity = random_tiny_instance(2)
    context = DispatchContext.build(simulator, batch, capacity)
    monkeypatch.setitem(sys.modules, "highspy", None)  # "import highspy" now raises ImportError
    with caplog.at_level(logging.WARNING, logger="agents"):
        result = solve_with_fallback(batch_problem(context), 30.0, greedy_dispatch(context))
    assert result.solver == "cbc"
    assert result.status == "optimal"
    assert "highspy is not installed" in result.extra["failures"][0]
    assert "trying cbc" in caplog.text


def test_failed_solvers_fall_back_to_heuristic(monkeypatch, caplog):
    simulator, batch, capacity = random_tiny_instance(3)
    context = DispatchContext.build(simulator, batch, capacity)
    monkeypatch.setitem(sys.modules, "highspy", None)
    monkeypatch.setitem(sys.modules, "pulp", None)
    dispatcher = make_dispatcher("hybriddis-optimal")
    dispatcher.reset(0)
    with caplog.at_level(logging.WARNING, logger="agents"):
        assignment = dispatcher.dispatch(context)
    record = dispatcher.last_record

    np.testing.assert_array_equal(assignment, greedy_dispatch(context, order="regret"))
    assert record["fallback"] is True
    assert record["arm"] == "heuristic"
    assert record["status"] == "error"
    assert "using the heuristic plan" in caplog.text


def test_raising_solver_falls_back_to_heuristic(monkeypatch):
    # A solver whose model building raises: solve_highs reports an error instead of raising.
    simulator, batch, capacity = random_tiny_instance(6)
    context = DispatchContext.build(simulator, batch, capacity)

    def broken_model(*args, **kwargs):
        raise RuntimeError("simulated solver crash")

    monkeypatch.setattr("agents.ilp.model_arrays", broken_model)
    dispatcher = make_dispatcher("hybriddis-optimal", fallback_solver=None)
    dispatcher.reset(0)
    assignment = dispatcher.dispatch(context)
    assert dispatcher.last_record["fallback"] is True
    assert "simulated solver crash" in dispatcher.last_record["fallback_reason"]
    np.testing.assert_array_equal(assignment, greedy_dispatch(context, order="regret"))


def test_time_limit_keeps_better_plan():
    # 60 samples on 6 workers cannot be proven optimal in 50 ms; the warm start guarantees a plan.
    from tests.agents.helpers import make_cluster, random_batch
    from esd_gym.simulator import Simulator

    rng = np.random.default_rng(0)
    cluster = make_cluster((10 ** rng.uniform(4, 6, size=6)).tolist(), cache_rows=30)
    simulator = Simulator(cluster)
    simulator.step(random_batch(rng, 60, 80, 4), rng.integers(0, 6, size=60))
    batch = random_batch(rng, 60, 80, 4)
    context = DispatchContext.build(simulator, batch, cluster.capacities(60))
    dispatcher = make_dispatcher("hybriddis-optimal", time_limit_s=0.05)
    dispatcher.reset(0)
    assignment = dispatcher.dispatch(context)
    record = dispatcher.last_record

    assert record["status"] in ("time_limit", "no_solution")
    assert record["plan_cost_s"] <= record["heuristic_cost_s"]
    assert record["plan_cost_s"] == pytest.approx(plan_cost_s(context, assignment))
    # The wall-time limit is enforced by the interrupt callback; model building adds a little.
    assert record["solve_time_s"] < 1.0


def test_overrunning_solve_is_killed(monkeypatch):
    # With no grace period and a 1 ms limit, the parent stops waiting before the child can even build the model.
    from agents import highs_process
    from agents.ilp import column_values, model_arrays
    from tests.agents.helpers import make_cluster, random_batch
    from esd_gym.simulator import Simulator

    rng = np.random.default_rng(1)
    cluster = make_cluster((10 ** rng.uniform(4, 6, size=6)).tolist(), cache_rows=30)
    batch = random_batch(rng, 60, 80, 4)
    context = DispatchContext.build(Simulator(cluster), batch, cluster.capacities(60))
    problem = batch_problem(context)
    arrays, columns = model_arrays(problem)
    warm = column_values(problem, columns, greedy_dispatch(context))
    monkeypatch.setattr(highs_process, "GRACE_S", 0.0)
    monkeypatch.setattr(highs_process, "GRACE_FRACTION", 0.0)
    process = highs_process.HighsProcess()
    try:
        process.warm_up()
        outcome = process.solve(arrays, warm, {"threads": 1}, time_limit_s=0.001)
        assert outcome["killed"] is True
        assert outcome["status"] == "time_limit"

        # The next solve runs in a fresh child and finishes normally.
        monkeypatch.setattr(highs_process, "GRACE_S", 5.0)
        tiny_simulator, tiny_batch, tiny_capacity = random_tiny_instance(0)
        tiny = batch_problem(DispatchContext.build(tiny_simulator, tiny_batch, tiny_capacity))
        tiny_arrays, _ = model_arrays(tiny)
        again = process.solve(tiny_arrays, None, {"threads": 1}, time_limit_s=30.0)
        assert again["status"] == "optimal"
    finally:
        process.close()

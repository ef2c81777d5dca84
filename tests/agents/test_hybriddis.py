"""HybridDis: never worse than the heuristic, the solve-time model, and charging decision time."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agents import make_dispatcher, plan_cost_s
from agents.episode import run_episode
from agents.hybriddis import SolveTimeModel
from esd_gym.dispatch import DispatchContext, greedy_dispatch
from esd_gym.simulator import Simulator
from tests.agents.helpers import make_cluster, random_batch, random_tiny_instance


def medium_instance(seed: int) -> DispatchContext:
    """60 samples of up to 4 ids from 80 rows on 6 heterogeneous workers, caches warmed by one batch."""
    rng = np.random.default_rng(seed)
    cluster = make_cluster((10 ** rng.uniform(4, 6, size=6)).tolist(), cache_rows=30, latency_s=1e-4)
    simulator = Simulator(cluster)
    simulator.step(random_batch(rng, 60, 80, 4), rng.integers(0, 6, size=60))
    return DispatchContext.build(simulator, random_batch(rng, 60, 80, 4), cluster.capacities(60))


@pytest.mark.parametrize("seed", range(3))
def test_windows_never_worse_than_heuristic(seed):
    context = medium_instance(seed)
    dispatcher = make_dispatcher("hybriddis", budget_s=0.3, window_size=12)
    dispatcher.reset(seed)
    assignment = dispatcher.dispatch(context)
    record = dispatcher.last_record
    heuristic_s = plan_cost_s(context, greedy_dispatch(context, order="regret"))

    assert record["arm"] in ("windows", "heuristic")
    assert record["heuristic_cost_s"] == pytest.approx(heuristic_s)
    assert plan_cost_s(context, assignment) == pytest.approx(record["plan_cost_s"])
    assert record["plan_cost_s"] <= heuristic_s
    assert record["solves"] >= 1


def test_windows_improve_random_instances():
    # On at least one of three instances the windows find a plan cheaper than the greedy's.
    improved = 0
    for seed in range(3):
        context = medium_instance(seed)
        dispatcher = make_dispatcher("hybriddis", budget_s=0.5, window_size=12)
        dispatcher.reset(seed)
        dispatcher.dispatch(context)
        improved += dispatcher.last_record["plan_cost_s"] < dispatcher.last_record["heuristic_cost_s"]
    assert improved >= 1


def test_small_batch_solved_whole(seed=4):
    # A tiny batch is predicted to solve well within the budget, so HybridDis takes the optimal arm.
    simulator, batch, capacity = random_tiny_instance(seed)
    context = DispatchContext.build(simulator, batch, capacity)
    dispatcher = make_dispatcher("hybriddis", budget_s=5.0)
    dispatcher.reset(0)
    dispatcher.dispatch(context)
    record = dispatcher.last_record
    assert record["solves"] == 1
    assert record["status"] == "optimal"
    assert record["plan_cost_s"] <= record["heuristic_cost_s"]


def test_max_windows_makes_result_reproducible():
    # The whole batch (size 60 × 6 × ~80) is predicted to take longer than 3 s, so HybridDis uses windows.
    context = medium_instance(1)
    plans = []
    for _ in range(2):
        dispatcher = make_dispatcher("hybriddis", budget_s=3.0, window_size=10, max_windows=4)
        dispatcher.reset(11)
        plans.append(dispatcher.dispatch(context))
        assert dispatcher.last_record["window_solves"] == 4
    np.testing.assert_array_equal(plans[0], plans[1])


def test_solve_time_model_learns_power_law():
    # Observations of t = 2e-6 × size^1.5 dominate the two prior points after enough of them.
    model = SolveTimeModel(prior_s=1.0, prior_size=1e3)
    for size in np.geomspace(1e2, 1e5, 60):
        model.observe(size, 2e-6 * size**1.5, finished=True)
    assert model.predict_s(1e4) == pytest.approx(2e-6 * 1e4**1.5, rel=0.3)
    largest = model.largest_size_within(model.predict_s(5e4))
    assert largest == pytest.approx(5e4, rel=1e-6)


def test_solve_time_model_penalises_timeouts():
    finished, stopped = SolveTimeModel(1.0, 1e3), SolveTimeModel(1.0, 1e3)
    for size in (1e3, 2e3, 4e3):
        finished.observe(size, 1.0, finished=True)
        stopped.observe(size, 1.0, finished=False)
    assert stopped.predict_s(2e3) > finished.predict_s(2e3)


def test_charged_decision_time_stalls_training():
    # Decision time beyond the previous iteration's time delays the next iteration by exactly that excess.
    rng = np.random.default_rng(0)
    cluster = make_cluster([1e5, 2e5, 4e5], cache_rows=10)
    batches = [random_batch(rng, 12, 30, 3) for _ in range(3)]

    class SlowHeuristic:
        """Wraps the heuristic and reports a fixed 2 s decision time."""

        name = "slow"
        charge_decision_time = True

        def __init__(self):
            self.inner = make_dispatcher("hybriddis-heuristic")
            self.last_record = {}

        def reset(self, seed=None):
            self.inner.reset(seed)

        def dispatch(self, context):
            assignment = self.inner.dispatch(context)
            self.last_record = {**self.inner.last_record, "decision_time_s": 2.0}
            return assignment

    charged = run_episode(SlowHeuristic(), Simulator(cluster), batches)
    free = run_episode(make_dispatcher("hybriddis-heuristic"), Simulator(cluster), batches)
    stalls = [record["stall_s"] for record in charged.records]
    assert stalls[0] == pytest.approx(2.0)
    # Iteration times are far below 2 s here, so each later stall is 2 s minus the previous iteration's time.
    assert all(1.0 < stall < 2.0 for stall in stalls[1:])
    assert charged.stall_s == pytest.approx(sum(stalls))
    assert charged.totals.time_s == pytest.approx(free.totals.time_s + charged.stall_s)
    assert charged.cost_s == pytest.approx(free.cost_s)
    assert math.isclose(charged.totals.cost_s, free.totals.cost_s)

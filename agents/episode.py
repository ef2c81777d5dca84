"""Run a dispatcher against the simulator for an episode of batches, without the Gymnasium environment."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agents.base import Dispatcher
from esd_gym.batch import Batch
from esd_gym.dispatch import DispatchContext
from esd_gym.report import EpisodeTotals
from esd_gym.simulator import Simulator

__all__ = ["EpisodeResult", "run_episode", "run_scenario_episode", "scenario_episode"]


@dataclass
class EpisodeResult:
    """Totals of an episode (flush included) and the dispatcher's record of every batch."""

    totals: EpisodeTotals
    records: list[dict[str, Any]] = field(default_factory=list)
    batch_costs_s: list[float] = field(default_factory=list)
    stall_s: float = 0.0

    @property
    def cost_s(self) -> float:
        return self.totals.cost_s


def run_episode(
    dispatcher: Dispatcher,
    simulator: Simulator,
    batches: Iterable[Batch],
    table_offsets: np.ndarray | None = None,
    seed: int | None = None,
    charge_decision_time: bool | None = None,
    flush: bool = True,
) -> EpisodeResult:
    """Dispatch and execute every batch in turn, then flush the dirty rows.

    The simulator is used as it is (call ``simulator.reset()`` first for a cold start); the dispatcher is reset with
    ``seed``. When decision time is charged, the plan of batch t+1 is computed while batch t trains, so training
    stalls by ``max(0, decision time − iteration time of batch t)`` (the whole decision time for the first batch).

    :param charge_decision_time: charge decision time to simulated time; None takes the dispatcher's own
        ``charge_decision_time`` attribute when it has one, else False.
    """
    if charge_decision_time is None:
        charge_decision_time = bool(getattr(dispatcher, "charge_decision_time", False))
    dispatcher.reset(seed)
    totals = EpisodeTotals()
    result = EpisodeResult(totals=totals)
    overlap_s = 0.0
    for batch in batches:
        capacity = simulator.cluster.capacities(batch.size)
        context = DispatchContext.build(simulator, batch, capacity, table_offsets)
        assignment = dispatcher.dispatch(context)
        record = dict(dispatcher.last_record)
        if charge_decision_time:
            stall_s = max(0.0, record["decision_time_s"] - overlap_s)
            simulator.stall(stall_s)
            record["stall_s"] = stall_s
            result.stall_s += stall_s
            totals.time_s += stall_s
        report = simulator.step(batch, assignment, capacity)
        overlap_s = report.iteration_time_s
        totals.add(report)
        result.records.append(record)
        result.batch_costs_s.append(report.total_cost_s)
    if flush:
        totals.add(simulator.flush())
    return result


def scenario_episode(scenario, seed: int) -> tuple[Simulator, list[Batch]]:
    """The simulator and batches of episode ``seed`` of an :class:`esd_gym.scenarios.Scenario`.

    As :func:`esd_gym.scenarios.measure_random_dispatch_cost` does: a generator seeded with ``seed`` draws the
    start offset in the trace (and then the bandwidth traces of a dynamic scenario); caches start empty.
    """
    spec = scenario.spec
    trace, size, iterations = scenario.trace, spec.batch_size, spec.episode_iterations
    rng = np.random.default_rng(seed)
    start = int(rng.integers(0, trace.num_samples - size * iterations + 1))
    cluster = scenario.build_cluster(rng if scenario.dynamic else None)
    simulator = Simulator(cluster, scenario.hot_ids())
    offsets = np.asarray(trace.offsets)
    batches = [
        Batch.from_csr(offsets[start + k * size : start + (k + 1) * size + 1], trace.ids) for k in range(iterations)
    ]
    return simulator, batches


def run_scenario_episode(
    dispatcher: Dispatcher, scenario, seed: int, charge_decision_time: bool | None = None
) -> EpisodeResult:
    """Run ``dispatcher`` on episode ``seed`` of ``scenario`` (see :func:`scenario_episode`), flush included."""
    simulator, batches = scenario_episode(scenario, seed)
    table_offsets = None if scenario.trace.table_offsets is None else np.asarray(scenario.trace.table_offsets)
    return run_episode(
        dispatcher, simulator, batches, table_offsets, seed=seed, charge_decision_time=charge_decision_time
    )

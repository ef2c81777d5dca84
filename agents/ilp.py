"""The per-batch dispatch ILP: its data, its HiGHS model and the solvers that run it.

For the samples i of a (sub)problem, workers w, the problem's distinct ids v and parameter servers p:

    minimise   Σ unit_s[w, v] · y[w, v] + Σ fixed_s[w, p] · z[w, p]
    subject to Σ_w x[i, w] = 1                      every sample placed once
               Σ_i x[i, w] ≤ capacity[w]            worker capacity
               y[w, v] ≥ x[i, w]   for v in sample i  pay for row v on w once if any sample there uses it
               z[w, p] ≥ x[i, w]   for p of sample i  pay the messages to PS p once
               x binary, y and z in [0, 1]

``unit_s`` and ``fixed_s`` are :class:`esd_gym.cost.BatchCosts`'s ``unit_s`` and ``fixed_s``, so at staleness
bound 0 the objective of a plan is the simulator's realised cost of the iteration. A *window* problem re-places a
subset of the batch's samples while the others stay where a plan put them: the rows and PS that the others already
use on a worker cost 0 there, and the others' load comes off the capacities (see :func:`window_problem`). Columns
y and z of cost 0 are left out with their rows, because they can be 1 for free.

:func:`solve_highs` builds the model with highspy's API and reads status, objective, dual bound and gap from
HiGHS itself: PuLP 3.3.2 reports ``Optimal`` for solves that HiGHS stopped at its time limit. HiGHS runs in a
separate process that is killed when it overruns the wall-time limit (see :mod:`agents.highs_process`).
:func:`solve_cbc` is the fallback through PuLP's bundled CBC.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from esd_gym.dispatch import DispatchContext

__all__ = ["DispatchProblem", "SolveResult", "batch_problem", "solve_cbc", "solve_highs", "window_problem"]

logger = logging.getLogger(__name__)

# Solutions are rounded: an x entry above this counts as 1.
_ROUND_AT = 0.5


@dataclass(frozen=True)
class DispatchProblem:
    """Samples to place with their residual prices (see the module docstring).

    Attributes (n samples, V distinct ids, W workers, P parameter servers):
        samples: int64 [n], the batch indices of the problem's samples.
        offsets: int64 [n+1], CSR offsets into ``ids``.
        ids: int64, each sample's distinct ids numbered 0..V-1.
        ps_offsets: int64 [n+1], CSR offsets into ``ps``.
        ps: int64, each sample's distinct parameter servers.
        unit_s: float64 [W, V], cost of using id v on worker w (0 when already paid there).
        fixed_s: float64 [W, P], cost of talking to PS p from worker w (0 when already paid there).
        capacity: int64 [W], samples each worker may still take.
        constant_s: cost of the part of the plan that the problem does not change, seconds.
    """

    samples: np.ndarray
    offsets: np.ndarray
    ids: np.ndarray
    ps_offsets: np.ndarray
    ps: np.ndarray
    unit_s: np.ndarray
    fixed_s: np.ndarray
    capacity: np.ndarray
    constant_s: float = 0.0

    @property
    def num_samples(self) -> int:
        return len(self.samples)

    @property
    def num_workers(self) -> int:
        return len(self.capacity)

    @property
    def num_ids(self) -> int:
        return self.unit_s.shape[1]

    def cost_s(self, assignment: np.ndarray) -> float:
        """Objective of an assignment of the problem's samples (int64 [n]), ``constant_s`` included."""
        assignment = np.asarray(assignment, dtype=np.int64)
        row_of = np.repeat(np.arange(self.num_samples), np.diff(self.offsets))
        ps_row_of = np.repeat(np.arange(self.num_samples), np.diff(self.ps_offsets))
        used = np.zeros(self.unit_s.shape, dtype=bool)
        used[assignment[row_of], self.ids] = True
        touched = np.zeros(self.fixed_s.shape, dtype=bool)
        touched[assignment[ps_row_of], self.ps] = True
        return float((used * self.unit_s).sum() + (touched * self.fixed_s).sum()) + self.constant_s

    def size_feature(self) -> float:
        """n × W × V, the size that predicts solve time (see :class:`agents.hybriddis.SolveTimeModel`)."""
        return float(self.num_samples * self.num_workers * max(self.num_ids, 1))


def batch_problem(context: DispatchContext) -> DispatchProblem:
    """Return the whole batch as one problem."""
    batch, costs = context.batch, context.costs
    return DispatchProblem(
        samples=np.arange(batch.size, dtype=np.int64),
        offsets=batch.offsets,
        ids=batch.local_ids,
        ps_offsets=context.sample_ps_offsets,
        ps=context.sample_ps,
        unit_s=costs.unit_s,
        fixed_s=costs.fixed_s,
        capacity=context.capacity.copy(),
    )


def window_problem(context: DispatchContext, assignment: np.ndarray, window: np.ndarray) -> DispatchProblem:
    """Re-place the samples ``window`` while every other sample stays on its worker in ``assignment``."""
    batch, costs = context.batch, context.costs
    window = np.asarray(window, dtype=np.int64)
    in_window = np.zeros(batch.size, dtype=bool)
    in_window[window] = True

    # Rows, PS and load that the samples outside the window already plan on each worker.
    outside_entries = ~in_window[batch.sample_of]
    planned = np.zeros(costs.unit_s.shape, dtype=bool)
    planned[assignment[batch.sample_of[outside_entries]], batch.local_ids[outside_entries]] = True
    ps_sample_of = np.repeat(np.arange(batch.size), np.diff(context.sample_ps_offsets))
    outside_ps = ~in_window[ps_sample_of]
    touched = np.zeros(costs.fixed_s.shape, dtype=bool)
    touched[assignment[ps_sample_of[outside_ps]], context.sample_ps[outside_ps]] = True
    outside_load = np.bincount(assignment[~in_window], minlength=context.num_workers)
    constant_s = float((planned * costs.unit_s).sum() + (touched * costs.fixed_s).sum())

    # The window's entries, with its distinct ids renumbered 0..V-1.
    lengths = np.diff(batch.offsets)[window]
    starts = batch.offsets[window]
    positions = np.repeat(starts, lengths) + (np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths))
    window_ids, local = np.unique(batch.local_ids[positions], return_inverse=True)
    ps_lengths = np.diff(context.sample_ps_offsets)[window]
    ps_starts = context.sample_ps_offsets[window]
    ps_positions = np.repeat(ps_starts, ps_lengths) + (
        np.arange(ps_lengths.sum()) - np.repeat(np.cumsum(ps_lengths) - ps_lengths, ps_lengths)
    )
    return DispatchProblem(
        samples=window,
        offsets=np.concatenate(([0], np.cumsum(lengths))).astype(np.int64),
        ids=local.astype(np.int64),
        ps_offsets=np.concatenate(([0], np.cumsum(ps_lengths))).astype(np.int64),
        ps=context.sample_ps[ps_positions],
        unit_s=np.where(planned[:, window_ids], 0.0, costs.unit_s[:, window_ids]),
        fixed_s=np.where(touched, 0.0, costs.fixed_s),
        capacity=context.capacity - outside_load,
        constant_s=constant_s,
    )


@dataclass
class SolveResult:
    """Outcome of one solve.

    Attributes:
        solver: ``"highs"`` or ``"cbc"``.
        status: ``"optimal"``; ``"time_limit"`` (stopped with a feasible, maybe non-optimal plan); ``"no_solution"``
            (stopped before finding any plan); ``"infeasible"``; or ``"error"``.
        assignment: int64 [n], worker of each problem sample, checked (each sample once, capacities held); None
            when the solver returned no valid plan.
        objective_s: cost of ``assignment`` recomputed from the problem's prices (``constant_s`` included).
        bound_s: the solver's best lower bound on the objective (``constant_s`` included), or None.
        gap: (objective − bound) / objective, or None without a bound.
        solve_time_s: wall time of the solve, model building included.
        message: what went wrong, for the log, or "".
    """

    solver: str
    status: str
    assignment: np.ndarray | None = None
    objective_s: float | None = None
    bound_s: float | None = None
    gap: float | None = None
    solve_time_s: float = 0.0
    message: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def has_plan(self) -> bool:
        return self.assignment is not None


@dataclass(frozen=True)
class _Columns:
    """Column layout of the model: x first (sample-major), then the y and z columns kept."""

    num_x: int
    y_worker: np.ndarray
    y_id: np.ndarray
    y_index: np.ndarray  # int64 [W, V], column of y[w, v] or −1 when left out
    z_worker: np.ndarray
    z_ps: np.ndarray
    z_index: np.ndarray  # int64 [W, P]

    @property
    def num_cols(self) -> int:
        return self.num_x + len(self.y_worker) + len(self.z_worker)


def _layout(problem: DispatchProblem) -> _Columns:
    num_x = problem.num_samples * problem.num_workers
    used_ids = np.zeros(problem.num_ids, dtype=bool)
    used_ids[problem.ids] = True
    y_keep = (problem.unit_s > 0) & used_ids[None, :]
    y_worker, y_id = np.nonzero(y_keep)
    y_index = np.full(problem.unit_s.shape, -1, dtype=np.int64)
    y_index[y_worker, y_id] = num_x + np.arange(len(y_worker))
    used_ps = np.zeros(problem.fixed_s.shape[1], dtype=bool)
    used_ps[problem.ps] = True
    z_keep = (problem.fixed_s > 0) & used_ps[None, :]
    z_worker, z_ps = np.nonzero(z_keep)
    z_index = np.full(problem.fixed_s.shape, -1, dtype=np.int64)
    z_index[z_worker, z_ps] = num_x + len(y_worker) + np.arange(len(z_worker))
    return _Columns(num_x, y_worker, y_id, y_index, z_worker, z_ps, z_index)


def _linking_rows(
    offsets: np.ndarray, values: np.ndarray, index: np.ndarray, num_workers: int
) -> tuple[np.ndarray, np.ndarray]:
    """(x column, y or z column) of every linking row ``y[w, v] − x[i, w] ≥ 0`` whose y column is kept."""
    sample_of = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    workers = np.arange(num_workers)
    x_col = (sample_of[:, None] * num_workers + workers[None, :]).ravel()
    link_col = index[:, values].T.ravel()
    keep = link_col >= 0
    return x_col[keep], link_col[keep]


def model_arrays(problem: DispatchProblem) -> tuple[dict[str, Any], _Columns]:
    """Build the problem's model as plain arrays (row-wise matrix), which pickle cheaply, and its column layout.

    Keys: ``cost``, ``row_lower``, ``row_upper`` (±inf for no bound), ``starts``, ``index``, ``value``, ``num_x``
    (the first ``num_x`` columns are x, integer unless relaxed) and ``offset`` (``constant_s``).
    """
    columns = _layout(problem)
    n, num_workers = problem.num_samples, problem.num_workers

    cost = np.concatenate(
        (
            np.zeros(columns.num_x),
            problem.unit_s[columns.y_worker, columns.y_id],
            problem.fixed_s[columns.z_worker, columns.z_ps],
        )
    )
    x_cols = np.arange(columns.num_x, dtype=np.int64)

    # Rows: n assignment rows, W capacity rows, then one linking row (y or z column, x column) per kept pair.
    assign_starts = np.arange(n + 1, dtype=np.int64) * num_workers
    capacity_index = x_cols.reshape(n, num_workers).T.ravel()
    capacity_starts = np.arange(num_workers + 1, dtype=np.int64) * n
    link_x, link_y = _linking_rows(problem.offsets, problem.ids, columns.y_index, num_workers)
    ps_x, ps_z = _linking_rows(problem.ps_offsets, problem.ps, columns.z_index, num_workers)
    linking_x = np.concatenate((link_x, ps_x))
    linking_other = np.concatenate((link_y, ps_z))
    num_linking = len(linking_x)

    index = np.concatenate((x_cols, capacity_index, np.column_stack((linking_other, linking_x)).ravel()))
    value = np.concatenate((np.ones(2 * columns.num_x), np.tile([1.0, -1.0], num_linking)))
    starts = np.concatenate(
        (
            assign_starts,
            capacity_starts[1:] + assign_starts[-1],
            assign_starts[-1] + capacity_starts[-1] + 2 * np.arange(1, num_linking + 1),
        )
    )
    arrays = {
        "cost": cost,
        "row_lower": np.concatenate((np.ones(n), np.full(num_workers, -np.inf), np.zeros(num_linking))),
        "row_upper": np.concatenate((np.ones(n), problem.capacity.astype(np.float64), np.full(num_linking, np.inf))),
        "starts": starts.astype(np.int32),
        "index": index.astype(np.int32),
        "value": value,
        "num_x": columns.num_x,
        "offset": float(problem.constant_s),
    }
    return arrays, columns


def highs_lp(arrays: dict[str, Any], relax: bool = False):
    """Build a ``highspy.HighsLp`` from :func:`model_arrays`; x is integer unless ``relax``."""
    import highspy

    num_cols, num_rows = len(arrays["cost"]), len(arrays["row_lower"])
    lp = highspy.HighsLp()
    lp.num_col_ = num_cols
    lp.num_row_ = num_rows
    lp.col_cost_ = arrays["cost"]
    lp.col_lower_ = np.zeros(num_cols)
    lp.col_upper_ = np.ones(num_cols)
    lp.row_lower_ = arrays["row_lower"]
    lp.row_upper_ = arrays["row_upper"]
    lp.offset_ = arrays["offset"]
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.num_col_ = num_cols
    lp.a_matrix_.num_row_ = num_rows
    lp.a_matrix_.start_ = arrays["starts"]
    lp.a_matrix_.index_ = arrays["index"]
    lp.a_matrix_.value_ = arrays["value"]
    if not relax:
        integrality = [highspy.HighsVarType.kContinuous] * num_cols
        integrality[: arrays["num_x"]] = [highspy.HighsVarType.kInteger] * arrays["num_x"]
        lp.integrality_ = integrality
    return lp


def column_values(problem: DispatchProblem, columns: _Columns, assignment: np.ndarray) -> np.ndarray:
    """Full column vector of the model for an assignment (x one-hot, y and z at their smallest feasible values)."""
    values = np.zeros(columns.num_cols)
    n, num_workers = problem.num_samples, problem.num_workers
    values[np.arange(n) * num_workers + assignment] = 1.0
    row_of = np.repeat(np.arange(n), np.diff(problem.offsets))
    y_cols = columns.y_index[assignment[row_of], problem.ids]
    values[y_cols[y_cols >= 0]] = 1.0
    ps_row_of = np.repeat(np.arange(n), np.diff(problem.ps_offsets))
    z_cols = columns.z_index[assignment[ps_row_of], problem.ps]
    values[z_cols[z_cols >= 0]] = 1.0
    return values


def assignment_from_x(problem: DispatchProblem, x_values: np.ndarray) -> tuple[np.ndarray | None, str]:
    """Round the x columns to an assignment and check it; return (assignment, "") or (None, reason)."""
    n, num_workers = problem.num_samples, problem.num_workers
    x = np.asarray(x_values[: n * num_workers]).reshape(n, num_workers) > _ROUND_AT
    placements = x.sum(axis=1)
    if (placements != 1).any():
        sample = int(np.flatnonzero(placements != 1)[0])
        return None, f"solver plan places sample {int(problem.samples[sample])} {int(placements[sample])} times"
    assignment = np.argmax(x, axis=1).astype(np.int64)
    loads = np.bincount(assignment, minlength=num_workers)
    if (loads > problem.capacity).any():
        worker = int(np.flatnonzero(loads > problem.capacity)[0])
        return None, f"solver plan gives worker {worker} {int(loads[worker])} samples, above {int(problem.capacity[worker])}"
    return assignment, ""


def _relative_gap(objective: float, bound: float | None) -> float | None:
    if bound is None or not math.isfinite(bound):
        return None
    if objective <= 0:
        return 0.0 if objective - bound <= 1e-12 else None
    return max(0.0, (objective - bound) / objective)


def solve_highs(
    problem: DispatchProblem,
    time_limit_s: float,
    warm_start: np.ndarray | None = None,
    mip_rel_gap: float = 1e-6,
    seed: int = 0,
    isolate: bool = True,
) -> SolveResult:
    """Solve ``problem`` with HiGHS through highspy; never raises for solver trouble (status ``"error"``).

    :param time_limit_s: wall-time limit, seconds, model building included.
    :param warm_start: int64 [n] feasible assignment handed to HiGHS as its first incumbent, or None.
    :param isolate: solve in the solver process of :mod:`agents.highs_process`, which is killed when the limit
        has passed by a grace period; otherwise solve in this process, where HiGHS 1.16 can overrun the limit by
        seconds, because some root-node work (e.g. cut separation) checks neither its time limit nor interrupts.
    """
    from agents import highs_process

    start = time.perf_counter()
    try:
        import highspy  # noqa: F401
    except ImportError as error:
        return SolveResult("highs", "error", message=f"highspy is not installed: {error}")

    try:
        arrays, columns = model_arrays(problem)
        warm_values = None
        if warm_start is not None:
            warm_values = column_values(problem, columns, np.asarray(warm_start, dtype=np.int64))
        options = {"mip_rel_gap": mip_rel_gap, "random_seed": int(seed) % (2**31 - 1), "threads": 1}
        remaining_s = time_limit_s - (time.perf_counter() - start)
        if isolate:
            outcome = highs_process.shared_process().solve(arrays, warm_values, options, remaining_s)
        else:
            outcome = highs_process.run_highs(arrays, warm_values, options, remaining_s)
    except Exception as error:  # highspy raises several types (HighsError, RuntimeError, ValueError)
        elapsed = time.perf_counter() - start
        return SolveResult("highs", "error", solve_time_s=elapsed, message=f"HiGHS failed: {error!r}")
    elapsed = time.perf_counter() - start

    keys = ("highs_status", "highs_gap", "nodes", "killed", "startup_s", "not_started")
    extra = {key: outcome[key] for key in keys if key in outcome}
    status = outcome["status"]
    if status in ("infeasible", "error"):
        return SolveResult("highs", status, solve_time_s=elapsed, message=outcome.get("message", ""), extra=extra)
    if outcome["x"] is None:
        message = f"HiGHS: {outcome.get('highs_status', status)}, no plan found"
        return SolveResult("highs", "no_solution", solve_time_s=elapsed, message=message, extra=extra)

    assignment, reason = assignment_from_x(problem, outcome["x"])
    if assignment is None:
        return SolveResult("highs", "error", solve_time_s=elapsed, message=reason, extra=extra)
    objective = problem.cost_s(assignment)
    bound = outcome.get("bound")
    bound_s = bound if bound is not None and math.isfinite(bound) else None
    if status == "optimal" and bound_s is None:
        bound_s = objective
    return SolveResult(
        "highs",
        status,
        assignment=assignment,
        objective_s=objective,
        bound_s=bound_s,
        gap=_relative_gap(objective, bound_s),
        solve_time_s=elapsed,
        extra=extra,
    )


def solve_lp_relaxation(problem: DispatchProblem, time_limit_s: float = 60.0) -> float | None:
    """Optimal value of the problem with x relaxed to [0, 1], seconds; None when HiGHS does not reach optimality."""
    import highspy

    from agents.highs_process import new_highs

    arrays, _ = model_arrays(problem)
    lp = highs_lp(arrays, relax=True)
    highs = new_highs()
    highs.setOptionValue("time_limit", float(time_limit_s))
    highs.passModel(lp)
    highs.run()
    if highs.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    return float(highs.getInfo().objective_function_value)


def solve_cbc(
    problem: DispatchProblem,
    time_limit_s: float,
    warm_start: np.ndarray | None = None,
    mip_rel_gap: float = 1e-6,
) -> SolveResult:
    """Solve ``problem`` with CBC through PuLP (``PULP_CBC_CMD``); never raises for solver trouble.

    CBC stops itself at ``time_limit_s`` (its ``-sec`` option). A watchdog kills the CBC process that this call
    started when it is still running 2 s after the limit, so the call returns by then plus PuLP's model building.
    PuLP reports no dual bound, so ``bound_s`` is only set for an optimal plan.
    """
    start = time.perf_counter()
    try:
        import pulp
    except ImportError as error:
        return SolveResult("cbc", "error", message=f"PuLP is not installed: {error}")

    try:
        model, x = _pulp_model(pulp, problem)
        if warm_start is not None:
            for sample, worker in enumerate(np.asarray(warm_start, dtype=np.int64)):
                for w in range(problem.num_workers):
                    x[sample][w].setInitialValue(1.0 if w == worker else 0.0)
        with tempfile.TemporaryDirectory(prefix="esd-gym-cbc-") as folder:
            solver = pulp.PULP_CBC_CMD(
                msg=False,
                timeLimit=max(time_limit_s - (time.perf_counter() - start), 1.0),
                gapRel=mip_rel_gap,
                warmStart=warm_start is not None,
                threads=1,
                keepFiles=False,
            )
            solver.tmpDir = folder
            watchdog = _CbcWatchdog(solver.path, deadline=start + time_limit_s + 2.0)
            watchdog.start()
            try:
                model.solve(solver)
            finally:
                watchdog.stop()
    except Exception as error:  # PuLP raises PulpSolverError, OSError and others
        elapsed = time.perf_counter() - start
        return SolveResult("cbc", "error", solve_time_s=elapsed, message=f"CBC failed: {error!r}")
    elapsed = time.perf_counter() - start

    # PuLP's sol_status separates a proven optimum (1) from a plan found before the time limit (2).
    if model.sol_status == pulp.LpSolutionOptimal:
        status = "optimal"
    elif model.sol_status == pulp.LpSolutionIntegerFeasible:
        status = "time_limit"
    elif model.sol_status == pulp.LpSolutionInfeasible:
        return SolveResult("cbc", "infeasible", solve_time_s=elapsed, message="CBC: model is infeasible")
    else:
        return SolveResult(
            "cbc", "no_solution", solve_time_s=elapsed,
            message=f"CBC: {pulp.LpSolution[model.sol_status]}, no plan found",
        )
    values = np.array([[x[i][w].value() or 0.0 for w in range(problem.num_workers)] for i in range(problem.num_samples)])
    assignment, reason = assignment_from_x(problem, values.ravel())
    if assignment is None:
        return SolveResult("cbc", "error", solve_time_s=elapsed, message=reason)
    objective = problem.cost_s(assignment)
    bound_s = objective if status == "optimal" else None
    return SolveResult(
        "cbc", status, assignment=assignment, objective_s=objective, bound_s=bound_s,
        gap=_relative_gap(objective, bound_s), solve_time_s=elapsed,
    )


def _pulp_model(pulp, problem: DispatchProblem):
    """The problem as a PuLP model; returns (model, x) with x[i][w] the placement variables."""
    columns = _layout(problem)
    n, num_workers = problem.num_samples, problem.num_workers
    model = pulp.LpProblem("dispatch", pulp.LpMinimize)
    x = [[model.add_variable(f"x_{i}_{w}", cat=pulp.LpBinary) for w in range(num_workers)] for i in range(n)]
    y = {
        (int(w), int(v)): model.add_variable(f"y_{w}_{v}", lowBound=0, upBound=1)
        for w, v in zip(columns.y_worker, columns.y_id)
    }
    z = {
        (int(w), int(p)): model.add_variable(f"z_{w}_{p}", lowBound=0, upBound=1)
        for w, p in zip(columns.z_worker, columns.z_ps)
    }
    model += (
        pulp.lpSum(float(problem.unit_s[w, v]) * var for (w, v), var in y.items())
        + pulp.lpSum(float(problem.fixed_s[w, p]) * var for (w, p), var in z.items())
        + problem.constant_s
    )
    for i in range(n):
        model += pulp.lpSum(x[i]) == 1, f"assign_{i}"
    for w in range(num_workers):
        model += pulp.lpSum(x[i][w] for i in range(n)) <= int(problem.capacity[w]), f"capacity_{w}"
    for i in range(n):
        for v in problem.ids[problem.offsets[i] : problem.offsets[i + 1]]:
            for w in range(num_workers):
                if (w, int(v)) in y:
                    model += y[w, int(v)] >= x[i][w]
        for p in problem.ps[problem.ps_offsets[i] : problem.ps_offsets[i + 1]]:
            for w in range(num_workers):
                if (w, int(p)) in z:
                    model += z[w, int(p)] >= x[i][w]
    return model, x


class _CbcWatchdog:
    """Kills the CBC processes that this Python process started once ``deadline`` (perf_counter) has passed."""

    def __init__(self, executable: str, deadline: float) -> None:
        self._executable = os.path.realpath(executable)
        self._deadline = deadline
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="cbc-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def _watch(self) -> None:
        if self._done.wait(max(self._deadline - time.perf_counter(), 0.0)):
            return
        import psutil

        for child in psutil.Process().children(recursive=False):
            try:
                if os.path.realpath(child.exe()) == self._executable:
                    logger.warning("CBC process %d passed its wall-time limit; killing it", child.pid)
                    child.kill()
            except psutil.Error:
                continue

"""HybridDis: the greedy heuristic, the optimal ILP dispatcher and the rule that chooses between them per batch.

* ``hybriddis-heuristic``: :func:`esd_gym.dispatch.greedy_dispatch` in regret order.
* ``hybriddis-optimal``: the ILP of :mod:`agents.ilp` on the whole batch, warm-started from the heuristic, with
  HiGHS first and CBC when HiGHS fails. The cheaper of the solver's plan and the heuristic's is used.
* ``hybriddis``: the heuristic plan, then as much optimisation as the per-batch decision budget allows: the whole
  batch when its predicted solve time fits, else windows of samples re-placed optimally while the rest of the
  plan stays fixed. A window's warm start is its current placement, so no window makes the plan worse, and the
  result is never worse than the heuristic's plan.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np

from agents.base import Dispatcher, plan_cost_s, register_dispatcher
from agents.ilp import DispatchProblem, SolveResult, batch_problem, solve_cbc, solve_highs, window_problem
from esd_gym.dispatch import DispatchContext, greedy_dispatch
from esd_gym.errors import ConfigError

__all__ = [
    "HybridDisDispatcher",
    "HybridDisHeuristic",
    "HybridDisOptimal",
    "SolveTimeModel",
    "solve_with_fallback",
]

logger = logging.getLogger(__name__)

SOLVERS = ("highs", "cbc")


def _check_solver(option: str, value: str | None, allow_none: bool) -> None:
    if value is None and allow_none:
        return
    if value not in SOLVERS:
        valid = ", ".join(SOLVERS) + (", None" if allow_none else "")
        raise ConfigError(f"{option} {value!r} is not a known solver; valid: {valid}")


def _run_solver(
    solver: str, problem: DispatchProblem, time_limit_s: float, warm_start: np.ndarray | None, seed: int
) -> SolveResult:
    if solver == "highs":
        return solve_highs(problem, time_limit_s, warm_start=warm_start, seed=seed)
    return solve_cbc(problem, time_limit_s, warm_start=warm_start)


def solve_with_fallback(
    problem: DispatchProblem,
    time_limit_s: float,
    warm_start: np.ndarray | None,
    solver: str = "highs",
    fallback_solver: str | None = "cbc",
    seed: int = 0,
) -> SolveResult:
    """Solve with ``solver``; when it fails (status ``"error"``), try ``fallback_solver`` in the time left.

    A solver that stops at its time limit without a plan is not retried, because the fallback would face the same
    limit. The returned result is that of the last solver tried; its ``extra["failures"]`` lists earlier failures.
    """
    start = time.perf_counter()
    result = _run_solver(solver, problem, time_limit_s, warm_start, seed)
    failures = []
    if result.status == "error" and fallback_solver is not None and fallback_solver != solver:
        failures.append(f"{solver}: {result.message}")
        logger.warning("solver %s failed (%s); trying %s", solver, result.message, fallback_solver)
        remaining_s = time_limit_s - (time.perf_counter() - start)
        if remaining_s > 0:
            result = _run_solver(fallback_solver, problem, remaining_s, warm_start, seed)
        else:
            result = SolveResult(fallback_solver, "no_solution", message="no time left for the fallback solver")
        result.solve_time_s = time.perf_counter() - start
    result.extra["failures"] = failures
    return result


class SolveTimeModel:
    """Predict the wall time of an ILP solve from its size n × W × V (samples × workers × distinct ids).

    Least squares of log(time) on log(size), refitted after every observation, over the last ``history``
    observations plus two pseudo-observations of the prior ``time = prior_s × (size / prior_size) ^ prior_exponent``
    (at ``prior_size`` / 10 and × 10), which keep the fit defined until real observations dominate. A solve that
    stopped at its time limit is recorded at twice its time, because its true time is longer.
    """

    def __init__(
        self, prior_s: float, prior_size: float, prior_exponent: float = 1.2, history: int = 200
    ) -> None:
        self.history = history
        self._prior = [
            (prior_size * factor, prior_s * factor**prior_exponent) for factor in (0.1, 10.0)
        ]
        self._observations: list[tuple[float, float]] = []
        self._coefficients = self._fit()

    def observe(self, size: float, seconds: float, finished: bool) -> None:
        seconds = max(seconds, 1e-4) * (1.0 if finished else 2.0)
        self._observations.append((max(size, 1.0), seconds))
        if len(self._observations) > self.history:
            self._observations.pop(0)
        self._coefficients = self._fit()

    def predict_s(self, size: float) -> float:
        intercept, slope = self._coefficients
        return math.exp(intercept + slope * math.log(max(size, 1.0)))

    def largest_size_within(self, seconds: float) -> float:
        """Return the largest size whose predicted time is at most ``seconds``."""
        intercept, slope = self._coefficients
        return math.exp((math.log(max(seconds, 1e-9)) - intercept) / slope)

    @property
    def num_observations(self) -> int:
        return len(self._observations)

    def _fit(self) -> tuple[float, float]:
        points = np.array(self._prior + self._observations)
        log_size, log_time = np.log(points[:, 0]), np.log(points[:, 1])
        design = np.column_stack((np.ones(len(points)), log_size))
        (intercept, slope), *_ = np.linalg.lstsq(design, log_time, rcond=None)
        # Solve time never shrinks with size; a flat or negative slope comes from noise on few points.
        return float(intercept), float(max(slope, 0.1))


# Priors of the two solve-time models: estimates from HiGHS 1.16 on one core (MovieLens-100K batches, 8 workers,
# 2 ids per sample). A whole batch of 64 samples (size ≈ 3·10^4) took about 8 s. A window of 64 samples inside a
# full plan took under 0.1 s, because the capacities leave little freedom there.
BATCH_PRIOR = {"prior_s": 8.0, "prior_size": 3e4}
WINDOW_PRIOR = {"prior_s": 0.05, "prior_size": 3e4}


@register_dispatcher("hybriddis-heuristic")
class HybridDisHeuristic(Dispatcher):
    """Greedy on marginal cost in regret order (samples with the largest gap between their best and second-best
    standalone placement first), each to its cheapest feasible worker given the rows already planned there, ties to
    the less loaded worker."""

    def _plan(self, context: DispatchContext) -> tuple[np.ndarray, dict[str, Any]]:
        return greedy_dispatch(context, order="regret"), {"arm": "heuristic"}


@register_dispatcher("hybriddis-optimal")
class HybridDisOptimal(Dispatcher):
    """The whole-batch ILP, warm-started from the heuristic; the cheaper of its plan and the heuristic's is used.

    :param time_limit_s: wall-time limit of each solve, seconds.
    :param solver: ``"highs"`` (highspy) or ``"cbc"`` (PuLP's bundled CBC).
    :param fallback_solver: solver tried when ``solver`` fails, or None.
    :param warm_start: hand the heuristic's plan to the solver as its first incumbent.

    The record's ``status`` is the solver's (``optimal``, ``time_limit``, ``no_solution``, ``infeasible``,
    ``error``); ``fallback`` is True when the heuristic's plan was used because the solver returned none.
    """

    def __init__(
        self,
        time_limit_s: float = 10.0,
        solver: str = "highs",
        fallback_solver: str | None = "cbc",
        warm_start: bool = True,
    ) -> None:
        super().__init__()
        if not time_limit_s > 0:
            raise ConfigError(f"time_limit_s must be positive (got {time_limit_s})")
        _check_solver("solver", solver, allow_none=False)
        _check_solver("fallback_solver", fallback_solver, allow_none=True)
        self.time_limit_s = float(time_limit_s)
        self.solver = solver
        self.fallback_solver = fallback_solver
        self.warm_start = warm_start

    def _plan(self, context: DispatchContext) -> tuple[np.ndarray, dict[str, Any]]:
        heuristic = greedy_dispatch(context, order="regret")
        heuristic_cost_s = plan_cost_s(context, heuristic)
        problem = batch_problem(context)
        result = solve_with_fallback(
            problem,
            self.time_limit_s,
            heuristic if self.warm_start else None,
            self.solver,
            self.fallback_solver,
            seed=self.seed or 0,
        )
        return _choose(context, result, heuristic, heuristic_cost_s, arm="optimal")


def _choose(
    context: DispatchContext,
    result: SolveResult,
    heuristic: np.ndarray,
    heuristic_cost_s: float,
    arm: str,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Pick the cheaper of the solver's plan and the heuristic's; return it with the decision record."""
    record: dict[str, Any] = {
        "solver": result.solver,
        "status": result.status,
        "objective_s": result.objective_s,
        "bound_s": result.bound_s,
        "solve_time_s": result.solve_time_s,
        "heuristic_cost_s": heuristic_cost_s,
        "solver_failures": result.extra.get("failures", []),
    }
    if not result.has_plan:
        logger.warning(
            "ILP solve gave no plan (%s: %s, %s); using the heuristic plan",
            result.solver, result.status, result.message or "no message",
        )
        record.update(arm="heuristic", fallback=True, fallback_reason=f"{result.status}: {result.message}")
        record.update(plan_cost_s=heuristic_cost_s, gap=None)
        return heuristic, record

    solver_cost_s = plan_cost_s(context, result.assignment)
    use_solver = solver_cost_s < heuristic_cost_s
    chosen, chosen_cost_s = (result.assignment, solver_cost_s) if use_solver else (heuristic, heuristic_cost_s)
    gap = None
    if result.bound_s is not None and chosen_cost_s > 0:
        gap = max(0.0, (chosen_cost_s - result.bound_s) / chosen_cost_s)
    record.update(
        arm=arm if use_solver else "heuristic",
        fallback=False,
        plan_cost_s=chosen_cost_s,
        gap=gap,
    )
    return chosen, record


@register_dispatcher("hybriddis")
class HybridDisDispatcher(Dispatcher):
    """Heuristic plan, improved by optimal solves as far as the per-batch decision budget allows.

    Per batch:

    1. the heuristic plan (``hybriddis-heuristic``);
    2. when the predicted solve time of the whole-batch ILP fits the budget left, that solve, warm-started from the
       heuristic, and the cheaper plan;
    3. otherwise, while budget is left, windows of samples re-placed optimally while every other sample stays where
       the current plan puts it (so a window's rows already used by the others cost nothing). Each pass splits the
       batch into windows at random (seeded). A window's current placement is its warm start, and a window's plan
       is kept only when it lowers the batch's cost, so the plan never gets worse than the heuristic's. Passes stop
       when the budget or ``max_windows`` is reached, or after two passes without improvement.

    Random windows mix samples of different workers, which lets a solve exchange samples between workers; windows
    of samples in the heuristic's own order hold samples of the same few workers and improve the plan far less.
    Predicted solve times come from two :class:`SolveTimeModel` (whole batches, windows) fitted online to every
    solve of this dispatcher; they persist across :meth:`reset`.

    :param budget_s: decision budget per batch, seconds of wall time (the solver runs on one thread, so this is
        about CPU seconds), the heuristic included.
    :param window_size: samples per window; None chooses the largest size whose predicted solve time is at most a
        quarter of the budget, up to ``max_window_size``.
    :param max_windows: most window solves per batch; None is no limit. With a limit and a generous budget the
        result depends only on the seed.
    :param charge_decision_time: tell :func:`agents.episode.run_episode` (and other callers) to stall simulated
        time by the part of the decision time that exceeds the previous iteration's training time.
    :param solver, fallback_solver: as for ``hybriddis-optimal``.
    """

    def __init__(
        self,
        budget_s: float = 0.5,
        window_size: int | None = None,
        min_window_size: int = 8,
        max_window_size: int = 64,
        max_windows: int | None = None,
        charge_decision_time: bool = False,
        solver: str = "highs",
        fallback_solver: str | None = "cbc",
    ) -> None:
        super().__init__()
        if not budget_s > 0:
            raise ConfigError(f"budget_s must be positive (got {budget_s})")
        if window_size is not None and window_size < 1:
            raise ConfigError(f"window_size must be at least 1 (got {window_size})")
        if not 1 <= min_window_size <= max_window_size:
            raise ConfigError(
                f"window sizes must satisfy 1 <= min_window_size <= max_window_size "
                f"(got {min_window_size} and {max_window_size})"
            )
        if max_windows is not None and max_windows < 0:
            raise ConfigError(f"max_windows must be non-negative (got {max_windows})")
        _check_solver("solver", solver, allow_none=False)
        _check_solver("fallback_solver", fallback_solver, allow_none=True)
        self.budget_s = float(budget_s)
        self.window_size = window_size
        self.min_window_size = min_window_size
        self.max_window_size = max_window_size
        self.max_windows = max_windows
        self.charge_decision_time = charge_decision_time
        self.solver = solver
        self.fallback_solver = fallback_solver
        self.batch_time_model = SolveTimeModel(**BATCH_PRIOR)
        self.window_time_model = SolveTimeModel(**WINDOW_PRIOR)
        self._rng = np.random.default_rng()

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self._rng = np.random.default_rng(seed)
        if self.solver == "highs":
            # Start the solver process now, so that the first batch does not wait for its start-up.
            from agents.highs_process import shared_process

            shared_process().start()

    def _plan(self, context: DispatchContext) -> tuple[np.ndarray, dict[str, Any]]:
        deadline = time.perf_counter() + self.budget_s
        heuristic = greedy_dispatch(context, order="regret")
        heuristic_cost_s = plan_cost_s(context, heuristic)
        record: dict[str, Any] = {"heuristic_cost_s": heuristic_cost_s, "solves": 0, "windows_improved": 0}

        problem = batch_problem(context)
        predicted_s = self.batch_time_model.predict_s(problem.size_feature())
        record["predicted_batch_solve_s"] = predicted_s
        remaining_s = deadline - time.perf_counter()
        if predicted_s <= remaining_s:
            result = self._solve(problem, remaining_s, heuristic, self.batch_time_model)
            record["solves"] = 1
            chosen, solve_record = _choose(context, result, heuristic, heuristic_cost_s, arm="optimal")
            record.update(solve_record)
            return chosen, record

        assignment, cost_s = self._improve_by_windows(context, heuristic, heuristic_cost_s, deadline, record)
        record.update(
            arm="windows" if record["windows_improved"] else "heuristic",
            plan_cost_s=cost_s,
            fallback=False,
        )
        return assignment, record

    def _improve_by_windows(
        self,
        context: DispatchContext,
        assignment: np.ndarray,
        cost_s: float,
        deadline: float,
        record: dict[str, Any],
    ) -> tuple[np.ndarray, float]:
        num_samples = context.batch.size
        assignment = assignment.copy()
        statuses: dict[str, int] = {}
        passes_without_gain = 0
        window_solves = 0
        while passes_without_gain < 2:
            improved = False
            sequence = self._rng.permutation(num_samples)
            position = 0
            while position < num_samples:
                remaining_s = deadline - time.perf_counter()
                size = self._window_size(context, remaining_s)
                if size < self.min_window_size or (self.max_windows is not None and window_solves >= self.max_windows):
                    record["window_statuses"] = statuses
                    record["window_solves"] = window_solves
                    return assignment, cost_s
                window = sequence[position : position + size]
                position += size
                subproblem = window_problem(context, assignment, window)
                result = self._solve(subproblem, remaining_s, assignment[window], self.window_time_model)
                window_solves += 1
                record["solves"] += 1
                statuses[result.status] = statuses.get(result.status, 0) + 1
                if result.has_plan and result.objective_s < cost_s * (1 - 1e-12):
                    candidate = assignment.copy()
                    candidate[window] = result.assignment
                    candidate_cost_s = plan_cost_s(context, candidate)
                    if candidate_cost_s < cost_s:
                        assignment, cost_s = candidate, candidate_cost_s
                        record["windows_improved"] += 1
                        improved = True
            passes_without_gain = 0 if improved else passes_without_gain + 1
        record["window_statuses"] = statuses
        record["window_solves"] = window_solves
        return assignment, cost_s

    def _solve(
        self, problem: DispatchProblem, time_limit_s: float, warm_start: np.ndarray, model: SolveTimeModel
    ) -> SolveResult:
        result = solve_with_fallback(
            problem, time_limit_s, warm_start, self.solver, self.fallback_solver, seed=self.seed or 0
        )
        if result.status in ("optimal", "time_limit", "no_solution") and not result.extra.get("not_started"):
            # Waiting for the solver process to start says nothing about the problem's difficulty.
            solve_s = result.solve_time_s - result.extra.get("startup_s", 0.0)
            model.observe(problem.size_feature(), solve_s, finished=result.status == "optimal")
        return result

    def _window_size(self, context: DispatchContext, remaining_s: float) -> int:
        """Samples in the next window, from the option or from the solve-time model; 0 when no time is left."""
        if remaining_s <= 0:
            return 0
        if self.window_size is not None:
            return min(self.window_size, context.batch.size)
        # Size n × W × V, with V ≈ n × (distinct ids per sample in this batch).
        ids_per_sample = max(context.batch.num_unique / max(context.batch.size, 1), 1.0)
        largest = self.window_time_model.largest_size_within(min(remaining_s, self.budget_s / 4))
        size = int(math.sqrt(largest / (context.num_workers * ids_per_sample)))
        return min(size, self.max_window_size, context.batch.size)

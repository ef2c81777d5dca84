"""Lower bounds on the cost of a batch, for context beside the dispatchers' costs."""

from __future__ import annotations

from agents.ilp import batch_problem, solve_lp_relaxation
from esd_gym.dispatch import DispatchContext
from esd_gym.errors import SolverError

__all__ = ["lp_bound_s"]


def lp_bound_s(context: DispatchContext, time_limit_s: float = 60.0) -> float:
    """Optimal value of the batch's dispatch ILP with x relaxed to [0, 1], seconds.

    Every dispatcher's plan costs at least this much under :class:`esd_gym.cost.BatchCosts` (at staleness bound 0,
    that is its realised cost). The relaxation may spread a sample over several workers, which pays a fraction of
    each worker's message latency, so the bound is loose when latency dominates the cost.

    Raises :class:`SolverError` when HiGHS does not solve the LP to optimality within ``time_limit_s``.
    """
    value = solve_lp_relaxation(batch_problem(context), time_limit_s)
    if value is None:
        raise SolverError(
            f"LP relaxation of a batch of {context.batch.size} samples was not solved within {time_limit_s} s"
        )
    return value

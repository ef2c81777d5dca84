"""The dispatcher interface, the registry of reference dispatchers and the helpers that check and price plans.

A dispatcher receives a :class:`esd_gym.dispatch.DispatchContext` (the batch, the cost model priced at the batch's
start, the worker capacities, the cache snapshot) and returns one worker per sample. It needs nothing else, so the
same object can drive the simulator directly (:func:`agents.episode.run_episode`) or act inside the Gymnasium
environment through an adapter that plans a batch at its first step.
"""

from __future__ import annotations

import inspect
import time
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np
import pydantic

from esd_gym.config import is_numeric_annotation
from esd_gym.cost import PlanState
from esd_gym.dispatch import DispatchContext
from esd_gym.errors import AssignmentError, ConfigError

__all__ = [
    "Dispatcher",
    "check_assignment",
    "list_dispatchers",
    "make_dispatcher",
    "plan_cost_s",
    "plan_from_assignment",
    "register_dispatcher",
]


class Dispatcher(ABC):
    """Place the samples of one batch on workers.

    Subclasses implement :meth:`_plan`; :meth:`dispatch` times it, checks the plan (every sample on a valid worker,
    no capacity exceeded) and stores the decision details in :attr:`last_record`.

    Attributes:
        name: registry name of the dispatcher.
        last_record: details of the last decision. Every dispatcher sets ``dispatcher``, ``arm`` (the method that
            produced the plan), ``plan_cost_s`` (the plan's cost under :class:`esd_gym.cost.BatchCosts`) and
            ``decision_time_s`` (wall time of :meth:`dispatch`); solver-based ones add ``status``, ``objective_s``,
            ``bound_s``, ``gap``, ``solve_time_s`` and ``fallback``.
    """

    name: str = ""

    def __init__(self) -> None:
        self.last_record: dict[str, Any] = {}
        self.seed: int | None = None

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode; ``seed`` fixes every random choice of the dispatcher."""
        self.seed = seed
        self.last_record = {}

    def dispatch(self, context: DispatchContext) -> np.ndarray:
        """Return the worker of every sample of ``context.batch``, int64 [S]; capacities are respected.

        Raises :class:`ConfigError` when the capacities sum to less than the batch size, and
        :class:`AssignmentError` when a dispatcher returns an invalid plan (a bug in that dispatcher).
        """
        total_capacity = int(context.capacity.sum())
        if total_capacity < context.batch.size:
            raise ConfigError(f"capacity sums to {total_capacity}, below the batch size {context.batch.size}")
        start = time.perf_counter()
        assignment, record = self._plan(context)
        decision_time_s = time.perf_counter() - start
        assignment = check_assignment(context, assignment)
        record = {"dispatcher": self.name, "arm": self.name, **record}
        record.setdefault("plan_cost_s", plan_cost_s(context, assignment))
        record["decision_time_s"] = decision_time_s
        self.last_record = record
        return assignment

    @abstractmethod
    def _plan(self, context: DispatchContext) -> tuple[np.ndarray, dict[str, Any]]:
        """Return the assignment and the decision details to merge into :attr:`last_record`."""


def check_assignment(context: DispatchContext, assignment: np.ndarray) -> np.ndarray:
    """Return ``assignment`` as int64 [S] after checking shape, worker range and capacities.

    Raises :class:`AssignmentError` naming the first bad sample or worker.
    """
    num_samples, num_workers = context.batch.size, context.num_workers
    assignment = np.asarray(assignment)
    if assignment.shape != (num_samples,):
        raise AssignmentError(f"assignment has shape {assignment.shape}, expected ({num_samples},)")
    if not np.issubdtype(assignment.dtype, np.integer):
        raise AssignmentError(f"assignment must hold integer worker indices (got dtype {assignment.dtype})")
    assignment = assignment.astype(np.int64)
    outside = np.flatnonzero((assignment < 0) | (assignment >= num_workers))
    if len(outside):
        sample = int(outside[0])
        raise AssignmentError(
            f"sample {sample} is assigned to worker {int(assignment[sample])}, outside 0..{num_workers - 1}"
        )
    loads = np.bincount(assignment, minlength=num_workers)
    over = np.flatnonzero(loads > context.capacity)
    if len(over):
        worker = int(over[0])
        raise AssignmentError(
            f"worker {worker} gets {int(loads[worker])} samples, above its capacity {int(context.capacity[worker])}"
        )
    return assignment


def plan_from_assignment(context: DispatchContext, assignment: np.ndarray) -> PlanState:
    """Build the rows, parameter servers and loads that ``assignment`` plans on each worker."""
    batch = context.batch
    plan = context.new_plan()
    plan.planned[assignment[batch.sample_of], batch.local_ids] = True
    ps_rows = np.repeat(np.arange(batch.size), np.diff(context.sample_ps_offsets))
    plan.touched[assignment[ps_rows], context.sample_ps] = True
    plan.load[:] = np.bincount(assignment, minlength=context.num_workers)
    return plan


def plan_cost_s(context: DispatchContext, assignment: np.ndarray) -> float:
    """Cost of a complete assignment under the batch's cost model, seconds.

    With staleness bound 0 this equals the simulator's realised cost of the iteration.
    """
    return context.costs.plan_cost_s(plan_from_assignment(context, np.asarray(assignment, dtype=np.int64)))


# Registry name -> factory. Filled by the modules that define dispatchers (imported by :mod:`agents`).
_REGISTRY: dict[str, Callable[..., Dispatcher]] = {}


def register_dispatcher(name: str) -> Callable[[type[Dispatcher]], type[Dispatcher]]:
    """Class decorator that lists a dispatcher under ``name`` for :func:`make_dispatcher`."""

    def decorate(cls: type[Dispatcher]) -> type[Dispatcher]:
        if name in _REGISTRY:
            raise ValueError(f"dispatcher name {name!r} is registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def list_dispatchers() -> list[str]:
    """Names accepted by :func:`make_dispatcher`, in registration order."""
    _load_builtin_dispatchers()
    return list(_REGISTRY)


def make_dispatcher(name: str, **options: Any) -> Dispatcher:
    """Build the dispatcher registered as ``name`` with its keyword ``options``.

    Raises :class:`ConfigError` for an unknown name (listing the valid ones) or an unknown option.
    """
    _load_builtin_dispatchers()
    factory = _REGISTRY.get(name)
    if factory is None:
        raise ConfigError(f"dispatcher {name!r} is not known; valid names: {', '.join(_REGISTRY)}")
    parameters = inspect.signature(factory).parameters
    unknown = sorted(set(options) - set(parameters))
    if unknown:
        valid = ", ".join(parameters) or "none"
        raise ConfigError(f"dispatcher {name!r} has no option {unknown[0]!r}; valid options: {valid}")
    return factory(**_checked_options(name, factory, options))


def _checked_options(name: str, factory: Callable[..., Dispatcher], options: dict[str, Any]) -> dict[str, Any]:
    """Convert every option to the type its parameter declares, or raise :class:`ConfigError` naming it.

    Options often come from YAML or ``KEY=VALUE`` text, so ``"0.5"`` becomes 0.5 (as in the configuration files),
    while ``"abc"`` for a number, 2.5 for an integer or ``true`` for a number are errors.
    """
    try:
        hints = typing.get_type_hints(factory.__init__ if isinstance(factory, type) else factory)
    except (NameError, TypeError):
        # Annotations that name types imported only for type checkers cannot be resolved; check nothing then.
        hints = {}
    checked = {}
    for key, value in options.items():
        annotation = hints.get(key)
        if annotation is None:
            checked[key] = value
            continue
        if isinstance(value, bool) and is_numeric_annotation(annotation):
            raise ConfigError(f"dispatcher {name!r} option {key}: expected a number, not a boolean (got {value!r})")
        try:
            checked[key] = pydantic.TypeAdapter(annotation).validate_python(value)
        except pydantic.ValidationError as error:
            problem = error.errors(include_url=False)[0]["msg"]
            raise ConfigError(f"dispatcher {name!r} option {key}: {problem} (got {value!r})") from None
    return checked


def _load_builtin_dispatchers() -> None:
    # The modules register their classes on import; importing them here keeps ``agents.base`` importable alone.
    import agents.baselines  # noqa: F401
    import agents.hybriddis  # noqa: F401

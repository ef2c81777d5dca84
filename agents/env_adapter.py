"""Let a reference dispatcher act inside the per-sample environment ``esd_gym/Dispatch-v0``.

The environment requests one worker per step, in batch order; a dispatcher places a whole batch at once. The
adapter plans the batch at its first step, from the :class:`esd_gym.dispatch.DispatchContext` that the environment
built at the batch's start, and then emits the planned worker of each sample in turn. Because the plan respects the
capacities, no action is ever redirected, so the environment executes exactly the dispatcher's plan.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.base import Dispatcher
from esd_gym.dispatch import DispatchContext
from esd_gym.errors import ConfigError

__all__ = ["DispatcherPolicy", "current_context", "current_sample"]


def _base_env(env: Any) -> Any:
    return getattr(env, "unwrapped", env)


def current_context(env: Any) -> DispatchContext:
    """Return the dispatch context of the batch that ``env`` (a per-sample ``DispatchEnv``, wrapped or not) places.

    :raises ConfigError: when ``env`` is not a per-sample dispatch environment.
    """
    base = _base_env(env)
    context = getattr(base, "dispatch_context", None)
    if not isinstance(context, DispatchContext) or not hasattr(base, "sample_index"):
        raise ConfigError(
            f"a reference dispatcher needs the per-sample environment esd_gym/Dispatch-v0 (got {type(base).__name__})"
        )
    return context


def current_sample(env: Any) -> int:
    """Return the index, within the current batch, of the sample that the next step places."""
    return int(_base_env(env).sample_index)


class DispatcherPolicy:
    """Drive a per-sample ``DispatchEnv`` with a :class:`Dispatcher`: one plan per batch, one action per sample.

    Attributes:
        dispatcher: the wrapped dispatcher.
        records: the dispatcher's ``last_record`` of every batch planned since :meth:`reset`.
    """

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self.records: list[dict[str, Any]] = []
        self._plan: np.ndarray | None = None
        self._context: DispatchContext | None = None

    @property
    def name(self) -> str:
        return self.dispatcher.name

    def reset(self, seed: int | None = None) -> None:
        """Start an episode: reset the dispatcher with ``seed`` and forget the previous plan."""
        self.dispatcher.reset(seed)
        self.records = []
        self._plan = None
        self._context = None

    def act(self, env: Any) -> int:
        """Return the worker of the sample that ``env`` places next; plan the batch when that sample is its first."""
        sample = current_sample(env)
        context = current_context(env)
        if self._plan is None or context is not self._context:
            if sample != 0:
                raise RuntimeError(
                    f"the dispatcher {self.name!r} joined a batch at sample {sample}; reset it with the environment"
                )
            self._plan = self.dispatcher.dispatch(context)
            self._context = context
            self.records.append(dict(self.dispatcher.last_record))
        return int(self._plan[sample])

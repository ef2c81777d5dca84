"""Stable-Baselines3 callbacks of ``esd-gym train``: episode metrics in TensorBoard, a rich progress bar, and
evaluation on the same held-out episodes at every evaluation.

SB3's own ``progress_bar=True`` needs ``tqdm``, which the project does not depend on; :class:`RichProgressCallback`
draws the same bar with ``rich``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from sb3_contrib.common.maskable.callbacks import MaskableEvalCallback
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback

__all__ = [
    "EpisodeMetricsCallback",
    "HeldOutEvalCallback",
    "HeldOutMaskableEvalCallback",
    "RichProgressCallback",
]

logger = logging.getLogger(__name__)


class EpisodeMetricsCallback(BaseCallback):
    """Log the environment's episode totals (the ``info`` keys of an episode's last step) to the SB3 logger.

    Each finished episode adds its values to a running mean under ``episode/<key without the episode_ prefix>``
    (``episode_cost_s`` becomes ``episode/cost_s``); SB3 writes the means to TensorBoard whenever it dumps its logs
    (after every rollout for PPO and A2C, every ``log_interval`` episodes for DQN).

    :param keys: the ``info`` keys to log; an episode whose final ``info`` lacks a key skips that key.
    """

    def __init__(self, keys: Sequence[str]) -> None:
        super().__init__()
        self.keys = tuple(keys)
        self.episodes = 0

    def _on_step(self) -> bool:
        infos: list[dict[str, Any]] = self.locals.get("infos", [])
        dones = self.locals.get("dones")
        if dones is None:
            return True
        for done, info in zip(dones, infos):
            if not done:
                continue
            self.episodes += 1
            for key in self.keys:
                if key in info:
                    tag = "episode/" + key.removeprefix("episode_")
                    self.logger.record_mean(tag, float(info[key]))
        return True


class RichProgressCallback(BaseCallback):
    """A progress bar over the environment steps of one ``learn`` call, drawn with ``rich``.

    With ``reset_num_timesteps=False`` (a resumed run) the bar starts at the steps already done.
    """

    def __init__(self, description: str = "training", console: Console | None = None) -> None:
        super().__init__()
        self.description = description
        self.console = console
        self._progress: Progress | None = None
        self._task: Any = None

    def _on_training_start(self) -> None:
        total = int(self.locals["total_timesteps"])
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("steps"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task(self.description, total=total, completed=self.model.num_timesteps)

    def _on_step(self) -> bool:
        if self._progress is not None:
            self._progress.update(self._task, completed=self.model.num_timesteps)
        return True

    def _on_training_end(self) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=self.model.num_timesteps)
            self._progress.stop()
            self._progress = None


class _HeldOutSeeds:
    """Reseed the evaluation environment before every evaluation, so each one plays the same episodes, and log
    each evaluation's mean return. Listed before the SB3 evaluation callback in the bases, so ``super()`` is it."""

    eval_env: Any
    eval_freq: int
    n_calls: int
    num_timesteps: int
    last_mean_reward: float

    def __init__(self, *args: Any, eval_seed: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.eval_seed = eval_seed

    def _on_step(self) -> bool:
        due = self.eval_freq > 0 and self.n_calls % self.eval_freq == 0
        if due:
            self.eval_env.seed(self.eval_seed)
        continue_training = super()._on_step()
        if due:
            logger.info("evaluation at %d steps: mean return %.4f", self.num_timesteps, self.last_mean_reward)
        return continue_training


class HeldOutEvalCallback(_HeldOutSeeds, EvalCallback):
    """:class:`EvalCallback` whose evaluations all start from ``eval_seed`` (sub-environment i gets seed + i)."""


class HeldOutMaskableEvalCallback(_HeldOutSeeds, MaskableEvalCallback):
    """:class:`MaskableEvalCallback` (action masks during evaluation) whose evaluations all start from
    ``eval_seed``."""

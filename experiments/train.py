"""Training of learned dispatchers with Stable-Baselines3: the YAML schema, the run directory and ``--resume``.

A training config follows RL Zoo's hyperparameter files (``n_envs``, ``n_timesteps``, ``policy``, ``policy_kwargs``,
``normalize``, ``env_kwargs``), with the algorithm's constructor arguments under ``hyperparameters``; see
``configs/train/`` and docs/experiments.md. Every key is validated before any environment is built.

A run writes under ``runs/<name>/``:

* ``config.yaml``: the resolved config (defaults filled in);
* ``checkpoints/model_<steps>_steps.zip`` (+ ``model_vecnormalize_<steps>_steps.pkl``): every ``checkpoint_freq``
  steps and at the end; ``--resume`` continues from the newest one and keeps counting steps;
* ``model.zip`` (+ ``vecnormalize.pkl``): the final model;
* ``eval/evaluations.npz`` and ``best/best_model.zip``: the held-out evaluations of ``EvalCallback``;
* ``tensorboard/<algo>_1/``: SB3's training curves and the environment's episode metrics (``episode/cost_s`` …);
* ``monitor/<rank>.monitor.csv``: one line per training episode with its return, length and totals.
"""

from __future__ import annotations

import inspect
import logging
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import gymnasium
import yaml
from pydantic import Field

from esd_gym.config import StrictModel, load_yaml, validate_config
from esd_gym.env import EPISODE_INFO_KEYS
from esd_gym.errors import ConfigError

__all__ = [
    "ALGORITHMS",
    "EPISODE_INFO_KEYS",
    "MASKED_ALGORITHMS",
    "NormalizeConfig",
    "PerSamplePushReward",
    "TrainConfig",
    "TrainResult",
    "check_train_config",
    "latest_checkpoint",
    "load_train_config",
    "make_env",
    "train",
]

logger = logging.getLogger(__name__)

# Algorithm name in the config -> "module:class".
ALGORITHMS: dict[str, str] = {
    "MaskablePPO": "sb3_contrib:MaskablePPO",
    "PPO": "stable_baselines3:PPO",
    "A2C": "stable_baselines3:A2C",
    "DQN": "stable_baselines3:DQN",
}
# Algorithms that read the environment's ``action_masks()``.
MASKED_ALGORITHMS = frozenset({"MaskablePPO"})


# Names accepted for ``policy_kwargs.activation_fn``, as in RL Zoo (``nn.ReLU`` also works).
ACTIVATIONS = ("Tanh", "ReLU", "ELU", "LeakyReLU", "GELU", "SiLU")

# Hyperparameters that take a schedule; ``lin_<value>`` decays linearly from value to 0 over the run.
SCHEDULE_KEYS = ("learning_rate", "clip_range", "clip_range_vf")

CHECKPOINT_PATTERN = re.compile(r"^model_(\d+)_steps\.zip$")


class NormalizeConfig(StrictModel):
    """Keyword arguments of SB3's ``VecNormalize`` (running mean and variance of observations and returns)."""

    norm_obs: bool = True
    norm_reward: bool = True
    clip_obs: float = Field(default=10.0, gt=0)
    clip_reward: float = Field(default=10.0, gt=0)
    gamma: float | None = Field(default=None, gt=0, le=1, description="None takes the algorithm's gamma")
    epsilon: float = Field(default=1e-8, gt=0)


class TrainConfig(StrictModel):
    """One training run of a learned dispatcher (schema of ``configs/train/*.yaml``)."""

    name: str | None = Field(default=None, description="run name (runs/<name>/); default: the config file's stem")
    algo: Literal["MaskablePPO", "PPO", "A2C", "DQN"] = "MaskablePPO"
    env_id: str = Field(default="esd_gym/Dispatch-v0", description="Gymnasium id of the environment")
    scenario: str = Field(description="scenario name, see `esd-gym scenarios`")
    env_kwargs: dict[str, Any] = Field(default_factory=dict, description="extra gymnasium.make keyword arguments")
    n_envs: int = Field(default=1, ge=1, description="environments stepped together")
    vec_env: Literal["dummy", "subproc"] = Field(default="dummy", description="DummyVecEnv or SubprocVecEnv")
    n_timesteps: int = Field(gt=0, description="environment steps in total (all environments together)")
    push_reward: Literal["batch_end", "per_sample"] = Field(
        default="batch_end",
        description="when pushes are rewarded in per-sample mode; see PerSamplePushReward",
    )
    policy: str = "MlpPolicy"
    policy_kwargs: dict[str, Any] = Field(default_factory=dict)
    normalize: bool | NormalizeConfig = Field(default=False, description="wrap the envs in VecNormalize")
    hyperparameters: dict[str, Any] = Field(default_factory=dict, description="algorithm constructor arguments")
    seed: int = Field(default=0, ge=0, description="seed of the model and of the training episodes")
    eval_freq: int = Field(default=0, ge=0, description="evaluate every this many steps; 0 disables")
    eval_episodes: int = Field(default=2, ge=1)
    eval_seed: int = Field(default=1_000_000, ge=0, description="seed of the held-out evaluation episodes")
    checkpoint_freq: int = Field(default=0, ge=0, description="checkpoint every this many steps; 0: at the end")
    device: str = "cpu"
    torch_threads: int = Field(default=1, ge=1, description="torch.set_num_threads during training")
    output_dir: str = Field(default="runs", description="parent of the run directory")

    @property
    def run_name(self) -> str:
        if self.name is None:
            raise ConfigError("train config: name is not set and there is no file name to take it from")
        return self.name

    def normalize_config(self) -> NormalizeConfig | None:
        if self.normalize is False:
            return None
        return NormalizeConfig() if self.normalize is True else self.normalize


def load_train_config(path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read and validate a training config; ``name`` defaults to the file's stem, ``overrides`` replace keys."""
    path = Path(path)
    data = load_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a training config must be a mapping (got {type(data).__name__})")
    data = {**data, **(overrides or {})}
    data.setdefault("name", path.stem)
    config = validate_config(TrainConfig, data, str(path))
    check_train_config(config, str(path))
    return config


def algorithm_class(algo: str) -> type:
    module_name, class_name = ALGORITHMS[algo].split(":")
    module = __import__(module_name, fromlist=[class_name])
    return getattr(module, class_name)


def _signature_names(function: Callable[..., Any], exclude: set[str]) -> list[str]:
    names = [
        name
        for name, parameter in inspect.signature(function).parameters.items()
        if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
        and name not in exclude
        and not name.startswith("_")
    ]
    return names


def check_train_config(config: TrainConfig, source: str) -> None:
    """Check what pydantic cannot: the scenario, the hyperparameter and ``policy_kwargs`` keys, the schedules.

    :raises ConfigError: naming ``source``, the key and the valid choices.
    """
    from esd_gym.scenarios import scenario_names

    known = scenario_names()
    if config.scenario not in known:
        raise ConfigError(f"{source}: scenario: unknown scenario '{config.scenario}' (known: {', '.join(known)})")
    algorithm = algorithm_class(config.algo)
    reserved = {"self", "policy", "env", "policy_kwargs", "seed", "tensorboard_log", "verbose", "device"}
    valid = _signature_names(algorithm.__init__, reserved)
    for key, value in config.hyperparameters.items():
        if key not in valid:
            raise ConfigError(
                f"{source}: hyperparameters: unknown key '{key}' for {config.algo} (valid: {', '.join(valid)})"
            )
        if isinstance(value, str) and key in SCHEDULE_KEYS:
            _parse_schedule(value, f"{source}: hyperparameters.{key}")
    policies = getattr(algorithm, "policy_aliases", {})
    if config.policy not in policies:
        raise ConfigError(
            f"{source}: policy: unknown policy '{config.policy}' for {config.algo} (valid: {', '.join(policies)})"
        )
    policy_valid = _signature_names(
        policies[config.policy].__init__, {"self", "observation_space", "action_space", "lr_schedule"}
    )
    for key in config.policy_kwargs:
        if key not in policy_valid:
            raise ConfigError(
                f"{source}: policy_kwargs: unknown key '{key}' for {config.policy} (valid: {', '.join(policy_valid)})"
            )
    if "activation_fn" in config.policy_kwargs:
        _activation(config.policy_kwargs["activation_fn"], source)
    if config.algo == "DQN" and config.env_kwargs.get("mode") == "batch":
        raise ConfigError(f"{source}: algo: DQN needs a discrete action space; batch mode has a continuous one")


def _parse_schedule(value: Any, where: str) -> Any:
    """``lin_<x>`` -> a linear decay from x to 0; numbers pass through."""
    from stable_baselines3.common.utils import LinearSchedule

    if not isinstance(value, str):
        return value
    match = re.fullmatch(r"lin_([0-9.eE+-]+)", value)
    if match is None:
        raise ConfigError(f"{where}: expected a number or 'lin_<number>' (got {value!r})")
    try:
        start = float(match.group(1))
    except ValueError:
        raise ConfigError(f"{where}: expected a number or 'lin_<number>' (got {value!r})") from None
    return LinearSchedule(start, 0.0, 1.0)


def _activation(name: Any, source: str) -> type:
    import torch.nn as nn

    text = str(name).removeprefix("nn.")
    for candidate in ACTIVATIONS:
        if text.lower() == candidate.lower():
            return getattr(nn, candidate)
    raise ConfigError(
        f"{source}: policy_kwargs.activation_fn: unknown activation {name!r} (valid: {', '.join(ACTIVATIONS)})"
    )


def _policy_kwargs(config: TrainConfig) -> dict[str, Any]:
    kwargs = dict(config.policy_kwargs)
    if "activation_fn" in kwargs:
        kwargs["activation_fn"] = _activation(kwargs["activation_fn"], "policy_kwargs")
    return kwargs


def _hyperparameters(config: TrainConfig) -> dict[str, Any]:
    return {
        key: _parse_schedule(value, f"hyperparameters.{key}") if key in SCHEDULE_KEYS else value
        for key, value in config.hyperparameters.items()
    }


# ---------------------------------------------------------------------------------------------------------------
# Environments
# ---------------------------------------------------------------------------------------------------------------


def make_env(env_id: str, push_reward: str = "batch_end", **kwargs: Any) -> Any:
    """Build one environment; importing :mod:`esd_gym` here registers its ids in every worker process too.

    :param push_reward: ``"per_sample"`` wraps a per-sample environment in :class:`PerSamplePushReward`.
    """
    import esd_gym  # noqa: F401

    env = gymnasium.make(env_id, **kwargs)
    if push_reward == "per_sample":
        if not hasattr(env.unwrapped, "action_masks"):
            raise ConfigError(f"push_reward: per_sample needs the per-sample environment (got {env_id})")
        env = PerSamplePushReward(env)
    return env


class PerSamplePushReward(gymnasium.Wrapper):
    """Charge each placement its expected push cost at once instead of at the batch's last step.

    The per-sample environment rewards a step with minus the lookup cost of the placement and charges the batch's
    realised push cost at the batch's last step, up to S steps after the placements that caused it. This wrapper
    subtracts, at every step, the push part of the chosen worker's marginal cost: the cost model's expected push
    of the rows that this placement adds to the worker. At the batch's last step, where the environment subtracts
    the realised push cost, it adds the sum of those charges back. With staleness bound 0 the expectation is exact,
    so the last step's reward then contains no push cost at all. The charges and the refund cancel within each batch,
    so the episode's return is unchanged: minus its transmission cost divided by ``cost_scale_s``.
    """

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        self._charged = 0.0

    def reset(self, **kwargs: Any) -> Any:
        self._charged = 0.0
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> Any:
        base = self.env.unwrapped
        full_s, lookup_s = base.marginal_costs_s()
        observation, reward, terminated, truncated, info = self.env.step(action)
        worker = int(info["worker"])
        charge = float(full_s[worker] - lookup_s[worker]) / base.cost_scale_s
        reward = float(reward) - charge
        self._charged += charge
        if "iteration_cost_s" in info:
            reward += self._charged
            self._charged = 0.0
        return observation, reward, terminated, truncated, info


def build_vec_env(
    config: TrainConfig,
    n_envs: int,
    seed: int,
    monitor_dir: Path | None,
    resume: bool = False,
) -> Any:
    """Build the vectorised, monitored environments of a run (without ``VecNormalize``)."""
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    env_kwargs = {
        "env_id": config.env_id,
        "push_reward": config.push_reward,
        "scenario": config.scenario,
        **config.env_kwargs,
    }
    vec_env_cls = SubprocVecEnv if config.vec_env == "subproc" and n_envs > 1 else DummyVecEnv
    return make_vec_env(
        make_env,
        n_envs=n_envs,
        seed=seed,
        monitor_dir=str(monitor_dir) if monitor_dir is not None else None,
        env_kwargs=env_kwargs,
        vec_env_cls=vec_env_cls,
        monitor_kwargs={"info_keywords": EPISODE_INFO_KEYS, "override_existing": not resume},
    )


def _normalize_kwargs(config: TrainConfig, gamma: float) -> dict[str, Any] | None:
    normalize = config.normalize_config()
    if normalize is None:
        return None
    kwargs = normalize.model_dump()
    if kwargs["gamma"] is None:
        kwargs["gamma"] = gamma
    return kwargs


# ---------------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainResult:
    """Model path, statistics path and step count of a finished training run."""

    run_dir: Path
    model_path: Path
    vecnormalize_path: Path | None
    num_timesteps: int
    algo: str


def latest_checkpoint(run_dir: Path) -> tuple[Path, Path | None, int] | None:
    """Return the newest ``checkpoints/model_<steps>_steps.zip`` of a run, its VecNormalize file (or None) and its
    step count."""
    directory = Path(run_dir) / "checkpoints"
    if not directory.is_dir():
        return None
    found = []
    for path in directory.iterdir():
        match = CHECKPOINT_PATTERN.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    if not found:
        return None
    steps, path = max(found)
    vecnormalize = directory / f"model_vecnormalize_{steps}_steps.pkl"
    return path, vecnormalize if vecnormalize.is_file() else None, steps


def write_config(config: TrainConfig, path: Path) -> None:
    """Save the resolved config (every default filled in) as YAML."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
    path.write_text(text, encoding="utf-8")


def train(
    config: TrainConfig,
    run_dir: Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    console: Any = None,
) -> TrainResult:
    """Train (or, with ``resume``, continue training) one learned dispatcher and save it under ``run_dir``.

    :param run_dir: the run directory; default ``<output_dir>/<name>``.
    :param overwrite: delete an existing run directory first; without it, a directory that already contains
        checkpoints raises :class:`ConfigError` unless ``resume`` is set.
    :raises ConfigError: resume without a checkpoint, or a fresh run over an existing one.
    """
    import torch
    from stable_baselines3.common.vec_env import VecNormalize

    from experiments.callbacks import EpisodeMetricsCallback, RichProgressCallback

    run_dir = Path(run_dir) if run_dir is not None else Path(config.output_dir) / config.run_name
    checkpoint = latest_checkpoint(run_dir)
    if resume and checkpoint is None:
        raise ConfigError(f"{run_dir}: no checkpoint to resume from (expected checkpoints/model_<steps>_steps.zip)")
    if not resume and checkpoint is not None:
        if not overwrite:
            raise ConfigError(
                f"{run_dir} already contains a training run; pass --resume to continue it or --overwrite to replace it"
            )
        shutil.rmtree(run_dir)
        checkpoint = None
    # Build one environment before anything is written, so that a bad scenario or env_kwargs value leaves no
    # half-made run directory behind.
    make_env(config.env_id, push_reward=config.push_reward, scenario=config.scenario, **config.env_kwargs).close()
    run_dir.mkdir(parents=True, exist_ok=True)
    write_config(config, run_dir / "config.yaml")

    torch.set_num_threads(config.torch_threads)
    algorithm = algorithm_class(config.algo)
    checkpoint_dir = run_dir / "checkpoints"
    done_steps = checkpoint[2] if checkpoint is not None else 0
    # A resumed run draws fresh training episodes rather than replaying those of its first part.
    vec_env = build_vec_env(config, config.n_envs, config.seed + done_steps, run_dir / "monitor", resume=resume)
    try:
        if checkpoint is not None:
            model_path, vecnormalize_path, _ = checkpoint
            if vecnormalize_path is not None:
                vec_env = VecNormalize.load(str(vecnormalize_path), vec_env)
                vec_env.training = True
            model = algorithm.load(str(model_path), env=vec_env, device=config.device)
            model.tensorboard_log = str(run_dir / "tensorboard")
            logger.info("resuming %s from %s at %d steps", config.run_name, model_path, model.num_timesteps)
        else:
            gamma = float(config.hyperparameters.get("gamma", 0.99))
            normalize_kwargs = _normalize_kwargs(config, gamma)
            if normalize_kwargs is not None:
                vec_env = VecNormalize(vec_env, **normalize_kwargs)
            model = algorithm(
                config.policy,
                vec_env,
                policy_kwargs=_policy_kwargs(config) or None,
                seed=config.seed,
                tensorboard_log=str(run_dir / "tensorboard"),
                device=config.device,
                verbose=0,
                **_hyperparameters(config),
            )
        callbacks = [EpisodeMetricsCallback(EPISODE_INFO_KEYS)]
        callbacks += _checkpoint_and_eval_callbacks(config, run_dir, checkpoint_dir)
        if progress:
            callbacks.append(RichProgressCallback(f"{config.run_name} ({config.algo})", console=console))
        remaining = config.n_timesteps - model.num_timesteps
        try:
            if remaining > 0:
                model.learn(
                    total_timesteps=remaining,
                    callback=callbacks,
                    reset_num_timesteps=checkpoint is None,
                    tb_log_name=config.algo,
                )
            else:
                logger.info("%s has already trained %d steps of %d", config.run_name, model.num_timesteps,
                            config.n_timesteps)
        finally:
            # A checkpoint at the end, including after Ctrl-C, so that --resume continues from here.
            _save_checkpoint(model, checkpoint_dir)
        model.save(run_dir / "model.zip")
        vecnormalize_path = None
        if model.get_vec_normalize_env() is not None:
            vecnormalize_path = run_dir / "vecnormalize.pkl"
            model.get_vec_normalize_env().save(str(vecnormalize_path))
        return TrainResult(
            run_dir=run_dir,
            model_path=run_dir / "model.zip",
            vecnormalize_path=vecnormalize_path,
            num_timesteps=int(model.num_timesteps),
            algo=config.algo,
        )
    finally:
        vec_env.close()


def _save_checkpoint(model: Any, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    model.save(directory / f"model_{model.num_timesteps}_steps.zip")
    normalizer = model.get_vec_normalize_env()
    if normalizer is not None:
        normalizer.save(str(directory / f"model_vecnormalize_{model.num_timesteps}_steps.pkl"))


def _checkpoint_and_eval_callbacks(config: TrainConfig, run_dir: Path, checkpoint_dir: Path) -> list[Any]:
    from stable_baselines3.common.callbacks import CheckpointCallback
    from stable_baselines3.common.vec_env import VecNormalize

    from experiments.callbacks import HeldOutEvalCallback, HeldOutMaskableEvalCallback

    callbacks: list[Any] = []
    if config.checkpoint_freq > 0:
        # CheckpointCallback counts calls, and every call steps all n_envs environments.
        callbacks.append(
            CheckpointCallback(
                save_freq=max(config.checkpoint_freq // config.n_envs, 1),
                save_path=str(checkpoint_dir),
                name_prefix="model",
                save_vecnormalize=True,
            )
        )
    if config.eval_freq > 0:
        eval_env = build_vec_env(config, 1, config.eval_seed, None)
        normalize = config.normalize_config()
        if normalize is not None:
            # Statistics are copied from the training envs before every evaluation; rewards stay raw.
            eval_env = VecNormalize(eval_env, training=False, norm_obs=normalize.norm_obs, norm_reward=False)
        callback_class = HeldOutMaskableEvalCallback if config.algo in MASKED_ALGORITHMS else HeldOutEvalCallback
        callbacks.append(
            callback_class(
                eval_env,
                eval_seed=config.eval_seed,
                n_eval_episodes=config.eval_episodes,
                eval_freq=max(config.eval_freq // config.n_envs, 1),
                log_path=str(run_dir / "eval"),
                best_model_save_path=str(run_dir / "best"),
                deterministic=True,
                warn=False,
                verbose=0,
            )
        )
    return callbacks

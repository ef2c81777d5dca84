"""Evaluation of any agent, reference or learned, on a scenario's episodes, by one loop over the environment.

Episode j of an evaluation with seed K is ``env.reset(seed=K + j)`` (its start offset in the trace and, in a
scenario with changing bandwidth, its bandwidth traces) and the agent is reset with the same seed, so every agent
evaluated with the same scenario, overrides and seed sees exactly the same episodes.

An agent is a reference dispatcher, acting through :class:`agents.env_adapter.DispatcherPolicy`, or a saved
Stable-Baselines3 model (``.zip``), acting on the observations (normalised with the run's ``VecNormalize``
statistics when it has them) with deterministic actions and, for ``MaskablePPO``, the action masks.
"""

from __future__ import annotations

import json
import logging
import pickle
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from esd_gym.errors import ConfigError

__all__ = [
    "BatchRecord",
    "DispatcherAgent",
    "EpisodeResult",
    "ModelAgent",
    "RESULT_COLUMNS",
    "build_agent",
    "evaluate_agent",
    "load_model_agent",
    "run_episode",
]

logger = logging.getLogger(__name__)

DISPATCH_ENV_ID = "esd_gym/Dispatch-v0"

# Columns of results.csv and keys of ``esd-gym evaluate --json``, in order. ``decision_time_s`` is wall time.
RESULT_COLUMNS = (
    "agent",
    "scenario",
    "seed",
    "cost_s",
    "bytes_down",
    "bytes_up",
    "hits",
    "lookups",
    "hit_rate",
    "time_s",
    "decision_time_s",
)


# ---------------------------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchRecord:
    """Cost of one batch (iteration) of an episode, from the environment's ``info`` at the batch's last step.

    Costs and times are in seconds. ``simulated_time_s`` is the episode's simulated time after the batch, and
    ``decision_time_s`` is the wall time that the agent spent choosing the batch's actions.
    """

    iteration: int
    cost_s: float
    cumulative_cost_s: float
    hits: int
    lookups: int
    hit_rate: float
    bytes_down: int
    bytes_up: int
    simulated_time_s: float
    worker_bytes_down: tuple[int, ...]
    worker_bytes_up: tuple[int, ...]
    decision_time_s: float


@dataclass
class EpisodeResult:
    """Totals of one evaluated episode (flush included) and its batches.

    ``hits`` and ``lookups`` sum the batches (a flush looks nothing up); ``time_s`` is simulated training time;
    ``decision_time_s`` is the agent's wall time over the episode; ``episode_return`` is the sum of rewards.
    """

    agent: str
    scenario: str
    seed: int
    cost_s: float
    bytes_down: int
    bytes_up: int
    hits: int
    lookups: int
    hit_rate: float
    time_s: float
    decision_time_s: float
    episode_return: float
    penalty: float
    batches: list[BatchRecord] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        """Return the :data:`RESULT_COLUMNS` of this episode."""
        return {name: getattr(self, name) for name in RESULT_COLUMNS}

    def to_json(self) -> str:
        """Format the episode as one line of ``esd-gym evaluate --json``."""
        return json.dumps({**self.row(), "return": self.episode_return, "penalty": self.penalty})


# ---------------------------------------------------------------------------------------------------------------
# Agents
# ---------------------------------------------------------------------------------------------------------------


class DispatcherAgent:
    """A reference dispatcher acting in the per-sample environment (plans each batch at its first step)."""

    env_id = DISPATCH_ENV_ID

    def __init__(self, name: str, dispatcher: Any) -> None:
        from agents.env_adapter import DispatcherPolicy

        self.name = name
        self.policy = DispatcherPolicy(dispatcher)

    def check_env(self, env: Any) -> None:
        if not hasattr(env.unwrapped, "action_masks"):
            raise ConfigError(f"agent {self.name!r}: a reference dispatcher needs {DISPATCH_ENV_ID}")

    def reset(self, seed: int) -> None:
        self.policy.reset(seed)

    def act(self, env: Any, observation: np.ndarray) -> int:
        return self.policy.act(env)


class ModelAgent:
    """A saved Stable-Baselines3 model acting deterministically on (normalised) observations."""

    def __init__(self, name: str, model: Any, algo: str, env_id: str, normalizer: Any = None) -> None:
        from experiments.train import MASKED_ALGORITHMS

        self.name = name
        self.model = model
        self.algo = algo
        self.env_id = env_id
        self.normalizer = normalizer
        self.masked = algo in MASKED_ALGORITHMS

    def check_env(self, env: Any) -> None:
        expected, actual = self.model.observation_space.shape, env.observation_space.shape
        if expected != actual:
            raise ConfigError(
                f"agent {self.name!r}: the model expects observations of shape {expected} but the scenario gives "
                f"{actual} (trained with another number of workers?)"
            )
        if self.model.action_space != env.action_space:
            raise ConfigError(
                f"agent {self.name!r}: the model acts in {self.model.action_space}, the environment in "
                f"{env.action_space}"
            )

    def reset(self, seed: int) -> None:
        # Deterministic actions use no randomness; nothing to reseed.
        return None

    def act(self, env: Any, observation: np.ndarray) -> Any:
        if self.normalizer is not None:
            observation = self.normalizer.normalize_obs(observation)
        if self.masked:
            masks = env.unwrapped.action_masks()
            action, _ = self.model.predict(observation, deterministic=True, action_masks=masks)
        else:
            action, _ = self.model.predict(observation, deterministic=True)
        if np.ndim(action) == 0:
            return int(action)
        return action


def _algo_from_zip(path: Path) -> str:
    """Tell the algorithm of a saved SB3 model from its policy class and parameters (``data`` in the zip)."""
    try:
        with zipfile.ZipFile(path) as archive:
            data = json.loads(archive.read("data"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as error:
        raise ConfigError(f"{path}: not a Stable-Baselines3 model file ({error})") from None
    module = str(data.get("policy_class", {}).get("__module__", ""))
    if "maskable" in module:
        return "MaskablePPO"
    if module.startswith("stable_baselines3.dqn"):
        return "DQN"
    return "PPO" if "n_epochs" in data else "A2C"


def _run_config(path: Path) -> dict[str, Any] | None:
    """Return the ``config.yaml`` of the run a model file belongs to (its directory or the one above), or None."""
    import yaml

    for directory in (path.parent, path.parent.parent):
        candidate = directory / "config.yaml"
        if candidate.is_file():
            data = yaml.safe_load(candidate.read_text(encoding="utf-8"))
            if isinstance(data, dict) and "algo" in data:
                return data
    return None


def _vecnormalize_path(path: Path) -> Path | None:
    """Find the VecNormalize statistics saved with a model: beside a final model or a checkpoint (esd-gym train),
    in RL Zoo's layout, else the run's final ones. Return None when there are none."""
    name = path.name
    candidates = []
    if name.startswith("model_") and name.endswith("_steps.zip"):
        candidates.append(path.with_name(name.replace("model_", "model_vecnormalize_", 1)[: -len(".zip")] + ".pkl"))
    candidates.append(path.parent / "vecnormalize.pkl")
    # RL Zoo saves <run>/<env>.zip beside <run>/<env>/vecnormalize.pkl.
    candidates.append(path.with_suffix("") / "vecnormalize.pkl")
    # NOTE: EvalCallback saves best/best_model.zip without statistics; the run's final ones are used for it.
    candidates.append(path.parent.parent / "vecnormalize.pkl")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return None


def load_model_agent(path: str | Path, name: str | None = None, algo: str | None = None) -> ModelAgent:
    """Load a saved SB3 model; the algorithm comes from ``algo``, its run's ``config.yaml`` or the file itself.

    :raises ConfigError: the file is missing or is not an SB3 model.
    """
    from experiments.train import ALGORITHMS, algorithm_class

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"model file not found: {path}")
    run_config = _run_config(path) or {}
    algo = algo or run_config.get("algo") or _algo_from_zip(path)
    if algo not in ALGORITHMS:
        raise ConfigError(f"{path}: unknown algorithm {algo!r} (valid: {', '.join(ALGORITHMS)})")
    try:
        model = algorithm_class(algo).load(str(path), device="cpu")
    except (ValueError, KeyError, zipfile.BadZipFile) as error:
        raise ConfigError(f"{path}: cannot load it as a {algo} model ({error})") from None
    normalizer = None
    stats_path = _vecnormalize_path(path)
    if stats_path is not None:
        with open(stats_path, "rb") as stream:
            normalizer = pickle.load(stream)
        normalizer.training = False
    env_id = run_config.get("env_id", DISPATCH_ENV_ID)
    return ModelAgent(name or str(path), model, algo, env_id, normalizer)


def build_agent(agent: str, options: dict[str, Any] | None = None, name: str | None = None) -> Any:
    """Build a reference dispatcher by registry name (with its ``options``) or load a saved model (``.zip``).

    :raises ConfigError: an unknown dispatcher name or option, or a model file that is missing or invalid.
    """
    from agents.base import make_dispatcher

    looks_like_path = agent.endswith(".zip") or "/" in agent or Path(agent).is_file()
    if looks_like_path:
        if options:
            raise ConfigError(f"agent {agent!r}: options apply to reference dispatchers, not to saved models")
        return load_model_agent(agent, name=name)
    return DispatcherAgent(name or agent, make_dispatcher(agent, **(options or {})))


# ---------------------------------------------------------------------------------------------------------------
# The evaluation loop
# ---------------------------------------------------------------------------------------------------------------


def run_episode(env: Any, agent: Any, scenario: str, seed: int) -> EpisodeResult:
    """Play one episode (``env.reset(seed=seed)``) with ``agent`` and collect its batches and totals."""
    observation, info = env.reset(seed=seed)
    agent.reset(seed)
    batches: list[BatchRecord] = []
    cumulative_cost_s = 0.0
    batch_decision_s = 0.0
    decision_time_s = 0.0
    episode_return = 0.0
    while True:
        start = time.perf_counter()
        action = agent.act(env, observation)
        batch_decision_s += time.perf_counter() - start
        observation, reward, terminated, truncated, info = env.step(action)
        episode_return += float(reward)
        if "iteration_cost_s" in info:
            cumulative_cost_s += float(info["iteration_cost_s"])
            batches.append(_batch_record(info, cumulative_cost_s, batch_decision_s))
            decision_time_s += batch_decision_s
            batch_decision_s = 0.0
        if terminated or truncated:
            break
    if "episode_cost_s" not in info:
        raise RuntimeError(f"the environment ended an episode without its totals in info (keys: {sorted(info)})")
    return EpisodeResult(
        agent=agent.name,
        scenario=scenario,
        seed=seed,
        cost_s=float(info["episode_cost_s"]),
        bytes_down=int(info["episode_bytes_down"]),
        bytes_up=int(info["episode_bytes_up"]),
        hits=sum(batch.hits for batch in batches),
        lookups=sum(batch.lookups for batch in batches),
        hit_rate=float(info["episode_hit_rate"]),
        time_s=float(info["episode_time_s"]),
        decision_time_s=decision_time_s + batch_decision_s,
        episode_return=episode_return,
        penalty=float(info.get("episode_penalty", 0.0)),
        batches=batches,
    )


def _batch_record(info: dict[str, Any], cumulative_cost_s: float, decision_time_s: float) -> BatchRecord:
    return BatchRecord(
        iteration=int(info["iteration"]),
        cost_s=float(info["iteration_cost_s"]),
        cumulative_cost_s=cumulative_cost_s,
        hits=int(info["iteration_hits"]),
        lookups=int(info["iteration_lookups"]),
        hit_rate=float(info["iteration_hit_rate"]),
        bytes_down=int(info["iteration_bytes_down"]),
        bytes_up=int(info["iteration_bytes_up"]),
        simulated_time_s=float(info["simulated_time_s"]),
        worker_bytes_down=tuple(int(value) for value in info["worker_bytes_down"]),
        worker_bytes_up=tuple(int(value) for value in info["worker_bytes_up"]),
        decision_time_s=decision_time_s,
    )


def make_eval_env(agent: Any, scenario: str, env_kwargs: dict[str, Any] | None = None) -> Any:
    """Build the environment that ``agent`` acts in, for ``scenario`` with ``env_kwargs`` (scenario overrides)."""
    from experiments.train import make_env

    env = make_env(agent.env_id, scenario=scenario, **(env_kwargs or {}))
    agent.check_env(env)
    return env


def evaluate_agent(
    agent: Any,
    scenario: str,
    seeds: Sequence[int],
    env_kwargs: dict[str, Any] | None = None,
    on_episode: Callable[[EpisodeResult], None] | None = None,
) -> list[EpisodeResult]:
    """Evaluate ``agent`` on ``scenario`` for one episode per seed; call ``on_episode`` with each result as it ends."""
    env = make_eval_env(agent, scenario, env_kwargs)
    results = []
    try:
        for seed in seeds:
            result = run_episode(env, agent, scenario, int(seed))
            results.append(result)
            if on_episode is not None:
                on_episode(result)
    finally:
        env.close()
    return results

"""``esd-gym compare``: evaluate reference and learned agents on the same episodes and write the comparison.

A comparison config (``configs/compare/*.yaml``) lists scenarios and agents. For every scenario, each learned agent
with a ``train`` entry is trained first (into ``runs/<name>/train/<agent>/<scenario>/``; a finished training with
the same resolved config is reused), then every agent plays the same episodes (seeds ``seed … seed + episodes − 1``).
The run directory ``runs/<name>/`` receives ``config.yaml`` (resolved), ``results.csv``, ``results.md``, the
plots under ``plots/<scenario>/`` and TensorBoard logs under ``tensorboard/<scenario>/<agent>/`` (see
:mod:`experiments.tensorboard_logging`).
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, model_validator

from esd_gym.config import StrictModel, load_yaml, validate_config
from esd_gym.errors import ConfigError
from experiments.evaluate import EpisodeResult
from experiments.train import TrainConfig, load_train_config

__all__ = ["AgentEntry", "CompareConfig", "CompareResult", "load_compare_config", "run_compare"]

logger = logging.getLogger(__name__)


class AgentEntry(StrictModel):
    """One agent of a comparison: exactly one of ``dispatcher``, ``train`` or ``model``.

    A plain string in the config's ``agents`` list is a reference dispatcher of that name.
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$", description="label in tables, plots and logs")
    dispatcher: str | None = Field(default=None, description="reference dispatcher name (esd-gym evaluate --help)")
    options: dict[str, Any] = Field(default_factory=dict, description="keyword options of the dispatcher")
    train: str | None = Field(default=None, description="training config to train this agent from, per scenario")
    train_overrides: dict[str, Any] = Field(default_factory=dict, description="keys replacing the training config's")
    model: str | None = Field(default=None, description="a saved SB3 model (.zip) to evaluate as it is")

    @model_validator(mode="after")
    def _one_source(self) -> "AgentEntry":
        sources = [key for key in ("dispatcher", "train", "model") if getattr(self, key) is not None]
        if len(sources) != 1:
            raise ValueError(f"give exactly one of dispatcher, train or model (got {sources or 'none'})")
        if self.options and self.dispatcher is None:
            raise ValueError("options apply only to a dispatcher entry")
        if self.train_overrides and self.train is None:
            raise ValueError("train_overrides apply only to a train entry")
        return self


class CompareConfig(StrictModel):
    """A comparison (schema of ``configs/compare/*.yaml``)."""

    name: str | None = Field(default=None, description="run name (runs/<name>/); default: the config file's stem")
    output_dir: str = "runs"
    scenarios: list[str] = Field(min_length=1)
    env_kwargs: dict[str, Any] = Field(default_factory=dict, description="scenario overrides for every scenario")
    seed: int = Field(default=0, ge=0, description="episode j plays seed + j")
    episodes: int = Field(default=3, ge=1)
    agents: list[AgentEntry] = Field(min_length=1)
    tensorboard: bool = True
    plots: bool = True

    @model_validator(mode="before")
    @classmethod
    def _agent_shorthand(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("agents"), list):
            data = dict(data)
            data["agents"] = [
                {"name": agent, "dispatcher": agent} if isinstance(agent, str) else agent for agent in data["agents"]
            ]
        return data

    @model_validator(mode="after")
    def _unique(self) -> "CompareConfig":
        names = [agent.name for agent in self.agents]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"agent names must be unique (repeated: {', '.join(duplicates)})")
        repeated = sorted({name for name in self.scenarios if self.scenarios.count(name) > 1})
        if repeated:
            raise ValueError(f"scenarios are listed twice: {', '.join(repeated)}")
        return self

    @property
    def seeds(self) -> list[int]:
        return list(range(self.seed, self.seed + self.episodes))


@dataclass
class ResolvedCompare:
    """A validated comparison: its config and, per learned agent, the training config of every scenario."""

    config: CompareConfig
    run_dir: Path
    training: dict[tuple[str, str], TrainConfig] = field(default_factory=dict)


def load_compare_config(path: str | Path, output_dir: str | None = None) -> ResolvedCompare:
    """Read and validate a comparison config and everything it refers to, before any work starts.

    Checks: the schema (unknown keys), the scenarios, every dispatcher name and option, every training config,
    every model file. ``output_dir`` replaces the config's.

    :raises ConfigError: naming the file, the key and the bad value.
    """
    from agents.base import make_dispatcher
    from esd_gym.scenarios import scenario_names
    from experiments.evaluate import DISPATCH_ENV_ID
    from experiments.train import make_env

    path = Path(path)
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a comparison config must be a mapping (got {type(data).__name__})")
    data = dict(data)
    data.setdefault("name", path.stem)
    if output_dir is not None:
        data["output_dir"] = output_dir
    config = validate_config(CompareConfig, data, str(path))

    known = scenario_names()
    for scenario in config.scenarios:
        if scenario not in known:
            raise ConfigError(f"{path}: scenarios: unknown scenario '{scenario}' (known: {', '.join(known)})")

    resolved = ResolvedCompare(config=config, run_dir=Path(config.output_dir) / str(config.name))
    for agent in config.agents:
        where = f"{path}: agent '{agent.name}'"
        if agent.dispatcher is not None:
            try:
                make_dispatcher(agent.dispatcher, **agent.options)
            except ConfigError as error:
                raise ConfigError(f"{where}: {error}") from None
        elif agent.model is not None:
            if not Path(agent.model).is_file():
                raise ConfigError(f"{where}: model file not found: {agent.model}")
        else:
            for scenario in config.scenarios:
                overrides = {
                    **agent.train_overrides,
                    "scenario": scenario,
                    "env_kwargs": {**_train_env_kwargs(agent, config), **config.env_kwargs},
                    "name": agent.name,
                }
                try:
                    resolved.training[(agent.name, scenario)] = load_train_config(agent.train, overrides)
                except ConfigError as error:
                    raise ConfigError(f"{where}: {error}") from None

    for scenario in config.scenarios:
        # Building the environment checks env_kwargs (scenario overrides and environment arguments) in full.
        try:
            make_env(DISPATCH_ENV_ID, scenario=scenario, **config.env_kwargs).close()
        except (ConfigError, TypeError) as error:
            raise ConfigError(f"{path}: env_kwargs of scenario {scenario}: {error}") from None
    return resolved


def _train_env_kwargs(agent: AgentEntry, config: CompareConfig) -> dict[str, Any]:
    """Return the training config's own ``env_kwargs`` (e.g. a penalty), kept beside the comparison's overrides."""
    if agent.train is None:
        return {}
    data = load_yaml(agent.train)
    kwargs = data.get("env_kwargs", {}) if isinstance(data, dict) else {}
    return dict(kwargs) if isinstance(kwargs, dict) else {}


@dataclass
class CompareResult:
    """Outputs and results of one comparison."""

    run_dir: Path
    results: list[EpisodeResult]
    results_csv: Path
    results_md: Path
    plots: list[Path]
    tensorboard_dir: Path | None
    wall_time_s: float


def _train_agents(
    resolved: ResolvedCompare, console: Any, progress: bool
) -> tuple[dict[tuple[str, str], Path], list[str]]:
    """Train every learned agent of every scenario, or reuse a finished run with the same resolved config.

    :returns: the model path of each (agent, scenario) and one line per training for ``results.md``.
    """
    from experiments.train import latest_checkpoint, train

    models: dict[tuple[str, str], Path] = {}
    notes: list[str] = []
    sources = {entry.name: entry.train for entry in resolved.config.agents}
    for (agent, scenario), train_config in resolved.training.items():
        run_dir = resolved.run_dir / "train" / agent / scenario
        model_path = run_dir / "model.zip"
        saved = run_dir / "config.yaml"
        if model_path.is_file() and saved.is_file():
            expected = yaml.safe_dump(train_config.model_dump(mode="json"), sort_keys=False)
            if saved.read_text(encoding="utf-8") == expected:
                logger.info("reusing the trained model %s (same training config)", model_path)
                models[(agent, scenario)] = model_path
                checkpoint = latest_checkpoint(run_dir)
                steps = checkpoint[2] if checkpoint is not None else train_config.n_timesteps
                notes.append(
                    f"{agent} on {scenario}: {train_config.algo} from {sources[agent]}, {steps} steps "
                    "(model reused from an earlier run with the same training config)"
                )
                continue
        start = time.perf_counter()
        result = train(train_config, run_dir=run_dir, overwrite=True, progress=progress, console=console)
        seconds = time.perf_counter() - start
        logger.info("trained %s on %s: %d steps in %.0f s", agent, scenario, result.num_timesteps, seconds)
        models[(agent, scenario)] = result.model_path
        notes.append(
            f"{agent} on {scenario}: {train_config.algo} from {sources[agent]}, {result.num_timesteps} steps "
            f"trained in {seconds:.0f} s"
        )
    return models, notes


def _build_agents(resolved: ResolvedCompare, scenario: str, models: dict[tuple[str, str], Path]) -> list[Any]:
    from agents.base import make_dispatcher
    from experiments.evaluate import DispatcherAgent, load_model_agent

    built = []
    for entry in resolved.config.agents:
        if entry.dispatcher is not None:
            built.append(DispatcherAgent(entry.name, make_dispatcher(entry.dispatcher, **entry.options)))
        elif entry.model is not None:
            built.append(load_model_agent(entry.model, name=entry.name))
        else:
            built.append(load_model_agent(models[(entry.name, scenario)], name=entry.name))
    return built


def run_compare(resolved: ResolvedCompare, console: Any = None, progress: bool = True) -> CompareResult:
    """Train what needs training, evaluate every agent on every scenario, and write the results."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from experiments.evaluate import evaluate_agent, make_eval_env
    from experiments.reports import results_markdown, write_plots, write_results_csv
    from experiments.tensorboard_logging import write_agent_scalars

    config, run_dir = resolved.config, resolved.run_dir
    start = time.perf_counter()
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(
        yaml.safe_dump(config.model_dump(mode="json", exclude_none=True), sort_keys=False), encoding="utf-8"
    )
    models, notes = _train_agents(resolved, console, progress)

    # Build every agent and environment first, so that a mismatch (a model for another worker count) stops the
    # comparison before the long evaluation.
    plan = []
    for scenario in config.scenarios:
        for agent in _build_agents(resolved, scenario, models):
            make_eval_env(agent, scenario, config.env_kwargs).close()
            plan.append((scenario, agent))

    results: list[EpisodeResult] = []
    tensorboard_dir = run_dir / "tensorboard" if config.tensorboard else None
    if tensorboard_dir is not None and tensorboard_dir.exists():
        # Logs of agents that an earlier run of this comparison had would otherwise stay in the overlay.
        shutil.rmtree(tensorboard_dir)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("episodes"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, disable=not progress) as bar:
        task = bar.add_task("evaluating", total=len(plan) * config.episodes)
        for scenario, agent in plan:
            bar.update(task, description=f"{scenario} · {agent.name}")
            episodes = evaluate_agent(
                agent, scenario, config.seeds, config.env_kwargs, on_episode=lambda _: bar.advance(task)
            )
            results.extend(episodes)
            if tensorboard_dir is not None:
                write_agent_scalars(tensorboard_dir, scenario, agent.name, episodes)
        bar.update(task, description="evaluated")

    results_csv = run_dir / "results.csv"
    write_results_csv(results_csv, results)
    results_md = run_dir / "results.md"
    results_md.write_text(
        results_markdown(results, f"Comparison '{config.name}'", config.seeds, notes) + "\n", encoding="utf-8"
    )
    plots = write_plots(run_dir / "plots", results) if config.plots else []
    return CompareResult(
        run_dir=run_dir,
        results=results,
        results_csv=results_csv,
        results_md=results_md,
        plots=plots,
        tensorboard_dir=tensorboard_dir,
        wall_time_s=time.perf_counter() - start,
    )

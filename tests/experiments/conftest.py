"""Shared set-up of the experiment tests: a tiny synthetic scenario and config writers.

The scenario is ``criteo-synth-8w-hetero-v0`` shrunk through overrides (4 workers, 4 small tables, batches of 16,
3 batches per episode), so that its trace is generated in milliseconds and no dataset has to be on disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

TINY_SCENARIO = "criteo-synth-8w-hetero-v0"
TINY_ENV_KWARGS: dict[str, Any] = {
    "trace": {"num_samples": 2000, "cardinalities": [40, 60, 80, 100]},
    "batch_size": 16,
    "episode_iterations": 3,
    "cluster": {"num_workers": 4},
}
# The same overrides as ``esd-gym evaluate --override`` arguments.
TINY_OVERRIDE_ARGS = [
    "--override", "trace={num_samples: 2000, cardinalities: [40, 60, 80, 100]}",
    "--override", "batch_size=16",
    "--override", "episode_iterations=3",
    "--override", "cluster={num_workers: 4}",
]


@pytest.fixture(autouse=True)
def data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data directory shared by the session, so the synthetic trace is generated once and nothing is fetched."""
    directory = tmp_path_factory.getbasetemp() / "esd-gym-data"
    monkeypatch.setenv("ESD_GYM_DATA_DIR", str(directory))
    return directory


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def tiny_train_config(**overrides: Any) -> dict[str, Any]:
    """A PPO run of 128 steps on the tiny scenario, checkpointing every 64 steps."""
    config: dict[str, Any] = {
        "algo": "PPO",
        "scenario": TINY_SCENARIO,
        "env_kwargs": dict(TINY_ENV_KWARGS),
        "n_timesteps": 128,
        "policy_kwargs": {"net_arch": [16, 16]},
        "hyperparameters": {"n_steps": 64, "batch_size": 32, "n_epochs": 1},
        "checkpoint_freq": 64,
        "seed": 0,
    }
    config.update(overrides)
    return config


def tiny_compare_config(agents: list[Any], **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "scenarios": [TINY_SCENARIO],
        "env_kwargs": dict(TINY_ENV_KWARGS),
        "seed": 0,
        "episodes": 2,
        "agents": agents,
    }
    config.update(overrides)
    return config

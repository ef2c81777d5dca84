"""Bad ``train``, ``evaluate`` and ``compare`` input stops before any work with one line on stderr and exit 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from experiments.cli import main
from tests.experiments.conftest import TINY_SCENARIO, tiny_compare_config, tiny_train_config, write_yaml


def assert_one_line_error(capsys, command: str, *fragments: str) -> None:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"esd-gym {command}: error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in captured.err


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        ({"agents": ["random", "randomm"]}, ("randomm", "valid names")),
        ({"scenarios": ["no-such-scenario-v0"]}, ("unknown scenario 'no-such-scenario-v0'",)),
        ({"episdes": 3}, ("unknown key 'episdes'",)),
        ({"agents": [{"name": "x", "dispatcher": "hybriddis", "options": {"budget": 1}}]}, ("no option 'budget'",)),
        ({"agents": [{"name": "x", "dispatcher": "random", "model": "m.zip"}]}, ("exactly one of",)),
        ({"agents": ["random", "random"]}, ("unique",)),
        ({"agents": [{"name": "x", "model": "missing.zip"}]}, ("model file not found",)),
        ({"env_kwargs": {"batch_sise": 8}}, ("batch_sise",)),
    ],
)
def test_bad_compare_config(tmp_path, capsys, change, fragments):
    path = write_yaml(tmp_path / "bad.yaml", {**tiny_compare_config(["random"]), **change})
    status = main(["compare", "--config", str(path), "--output-dir", str(tmp_path / "runs"), "--no-progress"])
    assert status == 2
    assert_one_line_error(capsys, "compare", *fragments)
    assert not (tmp_path / "runs").exists()


def test_compare_bad_train_entry(tmp_path, capsys):
    train_path = write_yaml(tmp_path / "typo.yaml", {**tiny_train_config(), "n_timestep": 10})
    agents = ["random", {"name": "learned", "train": str(train_path)}]
    path = write_yaml(tmp_path / "bad.yaml", tiny_compare_config(agents))
    status = main(["compare", "--config", str(path), "--output-dir", str(tmp_path / "runs"), "--no-progress"])
    assert status == 2
    assert_one_line_error(capsys, "compare", "agent 'learned'", "unknown key 'n_timestep'")
    assert not (tmp_path / "runs").exists()


def test_bad_train_config(tmp_path, capsys):
    path = write_yaml(tmp_path / "bad.yaml", {**tiny_train_config(), "hyperparameters": {"n_step": 8}})
    status = main(["train", "--config", str(path), "--output-dir", str(tmp_path / "runs")])
    assert status == 2
    assert_one_line_error(capsys, "train", "unknown key 'n_step' for PPO")
    assert not (tmp_path / "runs").exists()


def test_missing_config_file(tmp_path, capsys):
    status = main(["compare", "--config", str(tmp_path / "absent.yaml")])
    assert status == 2
    assert_one_line_error(capsys, "compare", "configuration file not found")


@pytest.mark.parametrize(
    ("arguments", "fragments"),
    [
        (["--agent", "no-such-agent", "--scenario", TINY_SCENARIO], ("no-such-agent",)),
        (["--agent", "random", "--scenario", "no-such-v0"], ("unknown scenario 'no-such-v0'",)),
        (["--agent", "missing/model.zip", "--scenario", TINY_SCENARIO], ("model file not found",)),
        (["--agent", "random", "--scenario", TINY_SCENARIO, "--option", "x"], ("KEY=VALUE",)),
        (["--agent", "random", "--scenario", TINY_SCENARIO, "--episodes", "0"], ("--episodes",)),
    ],
)
def test_bad_evaluate_arguments(capsys, arguments, fragments):
    assert main(["evaluate", *arguments]) == 2
    assert_one_line_error(capsys, "evaluate", *fragments)


def test_cli_subprocess_one_line(tmp_path):
    path = write_yaml(tmp_path / "bad.yaml", {**tiny_compare_config(["random"]), "seeed": 1})
    completed = subprocess.run(
        [sys.executable, "-m", "experiments.cli", "compare", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines() == [f"esd-gym compare: error: {path}: unknown key 'seeed'"]

"""``esd-gym compare`` on the tiny scenario: result files, plots, TensorBoard logs and reproducibility."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib.image
import pytest

from experiments.cli import main
from experiments.reports import PLOT_NAMES
from experiments.tensorboard_logging import COMPARE_TAGS, agent_log_dir, read_scalars
from tests.experiments.conftest import TINY_SCENARIO, tiny_compare_config, tiny_train_config, write_yaml

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run one comparison (two reference agents and a 200-step PPO) and return its run directory."""
    root = tmp_path_factory.mktemp("compare")
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("ESD_GYM_DATA_DIR", str(tmp_path_factory.getbasetemp() / "esd-gym-data"))
    try:
        train_path = write_yaml(root / "ppo.yaml", tiny_train_config(n_timesteps=200, checkpoint_freq=0))
        agents = ["random", "hybriddis-heuristic", {"name": "ppo", "train": str(train_path)}]
        config_path = write_yaml(root / "tiny.yaml", tiny_compare_config(agents))
        status = main(["compare", "--config", str(config_path), "--output-dir", str(root / "runs"), "--no-progress"])
    finally:
        monkeypatch.undo()
    assert status == 0
    return root / "runs" / "tiny"


def test_results_csv_row_per_agent_and_seed(compared):
    rows = read_rows(compared / "results.csv")
    pairs = sorted((row["agent"], row["seed"]) for row in rows)
    expected = sorted((agent, seed) for agent in ("random", "hybriddis-heuristic", "ppo") for seed in ("0", "1"))
    assert pairs == expected
    assert list(rows[0]) == [
        "agent", "scenario", "seed", "cost_s", "bytes_down", "bytes_up", "hits", "lookups", "hit_rate", "time_s",
        "decision_time_s",
    ]
    for row in rows:
        assert row["scenario"] == TINY_SCENARIO
        assert float(row["cost_s"]) > 0
        assert int(row["hits"]) <= int(row["lookups"])


def test_results_markdown_lists_every_agent(compared):
    text = (compared / "results.md").read_text(encoding="utf-8")
    assert f"## {TINY_SCENARIO}" in text
    for agent in ("random", "hybriddis-heuristic", "ppo"):
        assert f"| {agent} |" in text
    random_line = next(line for line in text.splitlines() if line.startswith("| random |"))
    assert "| 1.000 | 1.000 |" in random_line


def test_plots_are_valid_png(compared):
    for name in PLOT_NAMES:
        path = compared / "plots" / TINY_SCENARIO / name
        assert path.read_bytes()[:8] == PNG_SIGNATURE, name
        image = matplotlib.image.imread(path)
        assert image.shape[0] > 200 and image.shape[1] > 200, name


def test_tensorboard_same_tags_every_agent(compared):
    scalars = {
        agent: read_scalars(agent_log_dir(compared / "tensorboard", TINY_SCENARIO, agent))
        for agent in ("random", "hybriddis-heuristic", "ppo")
    }
    for agent, tags in scalars.items():
        assert sorted(tags) == sorted(COMPARE_TAGS), agent
    # Same x-axis: 2 episodes of 3 iterations are steps 0..5 for every agent.
    for agent, tags in scalars.items():
        assert [step for step, _ in tags["cost/batch_cost_s"]] == list(range(6)), agent
        assert [step for step, _ in tags["cost/episode_cost_s"]] == [2, 5], agent


def test_tensorboard_matches_results(compared):
    rows = [row for row in read_rows(compared / "results.csv") if row["agent"] == "random"]
    episode_costs = [value for _, value in read_scalars(compared / "tensorboard" / TINY_SCENARIO / "random")[
        "cost/episode_cost_s"
    ]]
    assert episode_costs == pytest.approx([float(row["cost_s"]) for row in rows], rel=1e-6)


def test_compare_writes_resolved_config_and_training(compared):
    assert (compared / "config.yaml").is_file()
    assert (compared / "train" / "ppo" / TINY_SCENARIO / "model.zip").is_file()
    assert (compared / "train" / "ppo" / TINY_SCENARIO / "config.yaml").is_file()


def test_compare_reference_agents_reproducible(tmp_path):
    agents = ["random", "locality", "hybriddis-heuristic"]
    config_path = write_yaml(tmp_path / "same.yaml", tiny_compare_config(agents, tensorboard=False, plots=False))
    outputs = []
    for attempt in ("first", "second"):
        status = main(["compare", "--config", str(config_path), "--output-dir", str(tmp_path / attempt),
                       "--no-progress"])
        assert status == 0
        outputs.append(tmp_path / attempt / "same" / "results.csv")

    # decision_time_s is wall time; every other column must be byte-identical.
    def without_wall_time(path: Path) -> list[list[str]]:
        with open(path, newline="", encoding="utf-8") as stream:
            return [row[:-1] for row in csv.reader(stream)]

    assert without_wall_time(outputs[0]) == without_wall_time(outputs[1])
    assert len(without_wall_time(outputs[0])) == 1 + len(agents) * 2


def test_compare_reuses_finished_training(tmp_path):
    train_path = write_yaml(tmp_path / "short.yaml", tiny_train_config(n_timesteps=64, checkpoint_freq=0))
    agents = ["random", {"name": "short", "train": str(train_path)}]
    config_path = write_yaml(tmp_path / "again.yaml", tiny_compare_config(agents, tensorboard=False, plots=False))
    arguments = ["compare", "--config", str(config_path), "--output-dir", str(tmp_path / "runs"), "--no-progress"]
    run_dir = tmp_path / "runs" / "again"
    model = run_dir / "train" / "short" / TINY_SCENARIO / "model.zip"

    assert main(arguments) == 0
    assert "64 steps trained in" in (run_dir / "results.md").read_text(encoding="utf-8")
    first_model = model.read_bytes()
    assert main(arguments) == 0
    assert "model reused" in (run_dir / "results.md").read_text(encoding="utf-8")
    assert model.read_bytes() == first_model

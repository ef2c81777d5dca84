"""``esd-gym evaluate`` and the evaluation loop: seeded episodes, JSON lines, dispatchers and saved models."""

from __future__ import annotations

import json

import numpy as np
import pytest

from agents.base import make_dispatcher
from agents.env_adapter import DispatcherPolicy, current_context, current_sample
from agents.episode import run_episode as run_simulator_episode
from esd_gym.batch import Batch
from esd_gym.simulator import Simulator
from experiments.cli import main
from experiments.evaluate import build_agent, evaluate_agent
from experiments.train import load_train_config, make_env, train
from tests.experiments.conftest import (
    TINY_ENV_KWARGS,
    TINY_OVERRIDE_ARGS,
    TINY_SCENARIO,
    tiny_train_config,
    write_yaml,
)

JSON_KEYS = {"agent", "scenario", "seed", "cost_s", "time_s", "hit_rate", "bytes_down", "bytes_up", "decision_time_s"}


def test_evaluate_json_line_per_episode(capsys):
    status = main(
        ["evaluate", "--agent", "random", "--scenario", TINY_SCENARIO, "--episodes", "2", "--seed", "5", "--json",
         *TINY_OVERRIDE_ARGS]
    )
    assert status == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    records = [json.loads(line) for line in lines]
    for record, seed in zip(records, (5, 6)):
        assert JSON_KEYS <= set(record)
        assert record["agent"] == "random"
        assert record["scenario"] == TINY_SCENARIO
        assert record["seed"] == seed
        assert record["cost_s"] > 0


def test_evaluate_table_with_dispatcher_option(capsys):
    status = main(
        ["evaluate", "--agent", "hybriddis", "--option", "budget_s=0.05", "--scenario", TINY_SCENARIO,
         "--episodes", "1", *TINY_OVERRIDE_ARGS]
    )
    assert status == 0
    assert "mean cost" in capsys.readouterr().out


class RecordingAgent:
    """Wrap an evaluation agent and keep the ids of every batch it is asked to place."""

    def __init__(self, agent):
        self.inner = agent
        self.name = agent.name
        self.env_id = agent.env_id
        self.batches: list[list[int]] = []

    def check_env(self, env):
        self.inner.check_env(env)

    def reset(self, seed):
        self.inner.reset(seed)

    def act(self, env, observation):
        if current_sample(env) == 0:
            self.batches.append(current_context(env).batch.ids.tolist())
        return self.inner.act(env, observation)


def test_same_seed_same_episodes():
    seeds = [3, 4]
    first = evaluate_agent(build_agent("random"), TINY_SCENARIO, seeds, TINY_ENV_KWARGS)
    second = evaluate_agent(build_agent("random"), TINY_SCENARIO, seeds, TINY_ENV_KWARGS)
    assert [result.row() | {"decision_time_s": 0} for result in first] == [
        result.row() | {"decision_time_s": 0} for result in second
    ]


def test_agents_meet_same_batches():
    seeds = [7, 8]
    blind = RecordingAgent(build_agent("random"))
    aware = RecordingAgent(build_agent("locality"))
    evaluate_agent(blind, TINY_SCENARIO, seeds, TINY_ENV_KWARGS)
    evaluate_agent(aware, TINY_SCENARIO, seeds, TINY_ENV_KWARGS)
    assert len(blind.batches) == len(seeds) * TINY_ENV_KWARGS["episode_iterations"]
    assert blind.batches == aware.batches
    # Different seeds start at different places in the trace.
    assert blind.batches[0] != blind.batches[TINY_ENV_KWARGS["episode_iterations"]]


def test_adapter_matches_direct_simulation():
    """A dispatcher acting through the environment costs exactly what it costs on the simulator directly."""
    env = make_env("esd_gym/Dispatch-v0", scenario=TINY_SCENARIO, **TINY_ENV_KWARGS)
    start = 100
    observation, info = env.reset(seed=0, options={"start": start})
    policy = DispatcherPolicy(make_dispatcher("hybriddis-heuristic"))
    policy.reset(0)
    while True:
        observation, _, terminated, truncated, info = env.step(policy.act(env))
        if terminated or truncated:
            break

    scenario = env.unwrapped.scenario
    trace = scenario.trace
    size, iterations = TINY_ENV_KWARGS["batch_size"], TINY_ENV_KWARGS["episode_iterations"]
    batches = [
        Batch.from_csr(np.asarray(trace.offsets[first : first + size + 1]), trace.ids)
        for first in range(start, start + size * iterations, size)
    ]
    simulator = Simulator(scenario.build_cluster(), scenario.hot_ids())
    direct = run_simulator_episode(
        make_dispatcher("hybriddis-heuristic"), simulator, batches, table_offsets=trace.table_offsets, seed=0
    )
    assert info["episode_cost_s"] == pytest.approx(direct.cost_s, rel=1e-12)
    assert len(policy.records) == iterations


@pytest.mark.parametrize("algo", ["MaskablePPO", "DQN"])
def test_evaluate_saved_model(tmp_path, capsys, algo):
    hyperparameters = (
        {"n_steps": 64, "batch_size": 32, "n_epochs": 1}
        if algo == "MaskablePPO"
        else {"learning_starts": 16, "buffer_size": 1000, "train_freq": 4}
    )
    config = tiny_train_config(algo=algo, n_timesteps=64, hyperparameters=hyperparameters, normalize=algo == "DQN")
    path = write_yaml(tmp_path / "model.yaml", config)
    result = train(load_train_config(path, {"output_dir": str(tmp_path)}), progress=False)
    status = main(
        ["evaluate", "--agent", str(result.model_path), "--scenario", TINY_SCENARIO, "--episodes", "1", "--json",
         *TINY_OVERRIDE_ARGS]
    )
    assert status == 0
    record = json.loads(capsys.readouterr().out.strip())
    assert record["agent"] == str(result.model_path)
    assert record["cost_s"] > 0
    agent = build_agent(str(result.model_path))
    assert agent.algo == algo
    assert (agent.normalizer is not None) == (algo == "DQN")

"""``esd-gym train``: checkpoints and ``--resume``, the run directory, config checks and the push-reward wrapper."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import yaml

from esd_gym.errors import ConfigError
from experiments.cli import main
from experiments.tensorboard_logging import read_scalars
from experiments.train import PerSamplePushReward, latest_checkpoint, load_train_config, make_env, train
from tests.experiments.conftest import TINY_ENV_KWARGS, TINY_SCENARIO, tiny_train_config, write_yaml


def test_train_writes_run_directory(tmp_path):
    path = write_yaml(tmp_path / "run.yaml", tiny_train_config(eval_freq=64, eval_episodes=1))
    status = main(["train", "--config", str(path), "--output-dir", str(tmp_path / "runs"), "--no-progress"])
    assert status == 0
    run_dir = tmp_path / "runs" / "run"
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["name"] == "run"
    assert saved["n_timesteps"] == 128
    assert saved["algo"] == "PPO"
    assert (run_dir / "model.zip").is_file()
    assert (run_dir / "eval" / "evaluations.npz").is_file()
    assert (run_dir / "best" / "best_model.zip").is_file()
    assert (run_dir / "monitor" / "0.monitor.csv").is_file()
    assert latest_checkpoint(run_dir)[2] == 128
    assert sorted(p.name for p in (run_dir / "tensorboard").iterdir()) == ["PPO_1"]


def test_resume_continues_step_count(tmp_path):
    config = tiny_train_config(algo="MaskablePPO", normalize={"norm_obs": True, "norm_reward": False})
    path = write_yaml(tmp_path / "resumable.yaml", config)
    first = train(load_train_config(path, {"output_dir": str(tmp_path)}), progress=False)
    assert first.num_timesteps == 128
    checkpoints = first.run_dir / "checkpoints"
    assert (checkpoints / "model_64_steps.zip").is_file()
    assert (checkpoints / "model_128_steps.zip").is_file()
    assert (checkpoints / "model_vecnormalize_128_steps.pkl").is_file()
    with open(checkpoints / "model_vecnormalize_128_steps.pkl", "rb") as stream:
        first_count = pickle.load(stream).obs_rms.count

    longer = load_train_config(path, {"output_dir": str(tmp_path), "n_timesteps": 256})
    resumed = train(longer, resume=True, progress=False)
    assert resumed.num_timesteps == 256
    assert latest_checkpoint(resumed.run_dir)[2] == 256
    # The observation statistics continue from the checkpoint's instead of starting over.
    with open(checkpoints / "model_vecnormalize_256_steps.pkl", "rb") as stream:
        assert pickle.load(stream).obs_rms.count > first_count
    # TensorBoard continues the same run, with steps past the checkpoint.
    logs = sorted((resumed.run_dir / "tensorboard").iterdir())
    assert [log.name for log in logs] == ["MaskablePPO_1"]
    steps = [step for step, _ in read_scalars(logs[0])["episode/cost_s"]]
    assert max(steps) == 256
    assert min(steps) <= 128
    assert len(steps) == len(set(steps))


def test_resume_without_checkpoint_rejected(tmp_path):
    path = write_yaml(tmp_path / "fresh.yaml", tiny_train_config())
    with pytest.raises(ConfigError, match="no checkpoint to resume from"):
        train(load_train_config(path, {"output_dir": str(tmp_path)}), resume=True, progress=False)


def test_existing_run_needs_resume_or_overwrite(tmp_path):
    path = write_yaml(tmp_path / "twice.yaml", tiny_train_config(n_timesteps=64))
    config = load_train_config(path, {"output_dir": str(tmp_path)})
    train(config, progress=False)
    with pytest.raises(ConfigError, match="--resume"):
        train(config, progress=False)
    assert train(config, overwrite=True, progress=False).num_timesteps == 64


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"n_timestep": 10}, "unknown key 'n_timestep'"),
        ({"hyperparameters": {"n_step": 64}}, "unknown key 'n_step' for PPO"),
        ({"policy_kwargs": {"netarch": [8]}}, "policy_kwargs: unknown key 'netarch'"),
        ({"policy_kwargs": {"activation_fn": "swish"}}, "unknown activation 'swish'"),
        ({"scenario": "no-such-v0"}, "unknown scenario 'no-such-v0'"),
        ({"algo": "SAC"}, "algo"),
        ({"hyperparameters": {"learning_rate": "cosine_1e-3"}}, "lin_<number>"),
        ({"policy": "TransformerPolicy"}, "unknown policy"),
    ],
)
def test_bad_train_config_rejected(tmp_path, change, message):
    path = write_yaml(tmp_path / "bad.yaml", {**tiny_train_config(), **change})
    with pytest.raises(ConfigError, match=message):
        load_train_config(path)


def test_linear_schedule_accepted(tmp_path):
    path = write_yaml(tmp_path / "lin.yaml", tiny_train_config(hyperparameters={"learning_rate": "lin_1e-3"}))
    assert load_train_config(path).hyperparameters["learning_rate"] == "lin_1e-3"


def run_random_episode(env, seed: int) -> tuple[list[float], dict]:
    rng = np.random.default_rng(seed)
    _, info = env.reset(seed=seed)
    rewards = []
    while True:
        action = int(rng.choice(np.flatnonzero(info["action_mask"])))
        _, reward, terminated, truncated, info = env.step(action)
        rewards.append(float(reward))
        if terminated or truncated:
            return rewards, info


def test_push_reward_keeps_return(tmp_path):
    plain = make_env("esd_gym/Dispatch-v0", scenario=TINY_SCENARIO, **TINY_ENV_KWARGS)
    shaped = make_env("esd_gym/Dispatch-v0", push_reward="per_sample", scenario=TINY_SCENARIO, **TINY_ENV_KWARGS)
    assert isinstance(shaped, PerSamplePushReward)
    plain_rewards, plain_info = run_random_episode(plain, seed=4)
    shaped_rewards, shaped_info = run_random_episode(shaped, seed=4)
    assert shaped_info["episode_cost_s"] == plain_info["episode_cost_s"]
    assert sum(shaped_rewards) == pytest.approx(sum(plain_rewards), rel=1e-9)
    scale = plain.unwrapped.cost_scale_s
    assert sum(shaped_rewards) == pytest.approx(-plain_info["episode_cost_s"] / scale, rel=1e-9)
    # Pushes move from the batch's last step to the placements: every other step now costs more.
    batch = TINY_ENV_KWARGS["batch_size"]
    inside = [index for index in range(len(plain_rewards)) if (index + 1) % batch]
    assert all(shaped_rewards[i] <= plain_rewards[i] + 1e-12 for i in inside)
    assert any(shaped_rewards[i] < plain_rewards[i] for i in inside)


def test_bad_env_kwargs_leave_no_run_directory(tmp_path):
    env_kwargs = {**TINY_ENV_KWARGS, "batch_size": 0}
    path = write_yaml(tmp_path / "bad_env.yaml", tiny_train_config(env_kwargs=env_kwargs))
    config = load_train_config(path, {"output_dir": str(tmp_path / "runs")})
    with pytest.raises(ConfigError, match="batch_size"):
        train(config, progress=False)
    assert not (tmp_path / "runs").exists()


def test_nonpositive_timesteps_option_named(tmp_path, capsys):
    from experiments.cli import main

    path = write_yaml(tmp_path / "run.yaml", tiny_train_config())
    assert main(["train", "--config", str(path), "--timesteps", "-1"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.endswith("--timesteps must be positive (got -1)")

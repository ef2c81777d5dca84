"""The environments inside Gymnasium's and Stable-Baselines3's vector environments, and a MaskablePPO smoke run."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AsyncVectorEnv, SyncVectorEnv
from sb3_contrib import MaskablePPO
from sb3_contrib.common.maskable.utils import get_action_masks
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import SubprocVecEnv

import esd_gym  # noqa: F401  (registers the environments)
from tests.esd_gym.helpers import write_movielens_like


@pytest.fixture(scope="module")
def env_kwargs(tmp_path_factory):
    directory = tmp_path_factory.mktemp("data")
    write_movielens_like(directory)
    return {"scenario": "ml100k-8w-hetero-v0", "data_dir": str(directory), "batch_size": 16, "episode_iterations": 2}


def make_factory(env_id: str, kwargs: dict):
    return lambda: gym.make(env_id, **kwargs)


@pytest.mark.parametrize("vector_class", [SyncVectorEnv, AsyncVectorEnv])
@pytest.mark.parametrize("env_id", ["esd_gym/Dispatch-v0", "esd_gym/DispatchBatch-v0"])
def test_gymnasium_vector_env_runs_episodes(vector_class, env_id, env_kwargs):
    envs = vector_class([make_factory(env_id, env_kwargs)] * 2)
    try:
        observations, _ = envs.reset(seed=[0, 1])
        assert observations.shape == (2,) + envs.single_observation_space.shape
        steps = 2 * 16 + 3 if env_id == "esd_gym/Dispatch-v0" else 5
        truncations = 0
        for _ in range(steps):
            observations, rewards, _, truncated, _ = envs.step(envs.action_space.sample())
            assert np.all(np.isfinite(observations))
            assert np.all(rewards <= 0)
            truncations += int(truncated.sum())
        assert truncations >= 2
    finally:
        envs.close()


def test_sync_vector_env_same_seeds_same_rewards(env_kwargs):
    results = []
    for _ in range(2):
        envs = SyncVectorEnv([make_factory("esd_gym/Dispatch-v0", env_kwargs)] * 2)
        envs.reset(seed=[3, 4])
        envs.action_space.seed(0)
        rewards = [envs.step(envs.action_space.sample())[1] for _ in range(20)]
        results.append(np.stack(rewards))
        envs.close()
    np.testing.assert_array_equal(results[0], results[1])


def test_maskable_ppo_trains_in_subprocesses(env_kwargs):
    # "module:id" makes each subprocess import esd_gym, which registers the id there.
    venv = make_vec_env("esd_gym:esd_gym/Dispatch-v0", n_envs=2, seed=0, vec_env_cls=SubprocVecEnv, env_kwargs=env_kwargs)
    try:
        venv.reset()
        masks = get_action_masks(venv)
        assert masks.shape == (2, 8)
        assert masks.all()
        model = MaskablePPO("MlpPolicy", venv, n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu")
        model.learn(total_timesteps=256)
        assert model.num_timesteps >= 256
    finally:
        venv.close()

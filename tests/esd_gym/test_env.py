"""The Gymnasium environments: API checks, determinism, the return identity, invalid actions, observations."""

from __future__ import annotations

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecCheckNan

import esd_gym
from esd_gym.env import EPISODE_INFO_KEYS, DispatchEnv
from esd_gym.errors import AssignmentError, ConfigError
from esd_gym.scenarios import scenario_names
from tests.esd_gym.helpers import SMALL_SYNTHETIC, write_movielens_like

ENV_IDS = ("esd_gym/Dispatch-v0", "esd_gym/DispatchBatch-v0")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("data")
    write_movielens_like(directory)
    return directory


def short_kwargs(scenario: str, data_dir, **extra) -> dict:
    """Keyword arguments of a small variant of ``scenario``: 16-sample batches, 3 per episode."""
    kwargs = {"scenario": scenario, "data_dir": str(data_dir), "batch_size": 16, "episode_iterations": 3}
    if scenario.startswith("criteo"):
        kwargs["trace"] = dict(SMALL_SYNTHETIC)
    kwargs.update(extra)
    return kwargs


def masked_random_action(info: dict, rng: np.random.Generator) -> int:
    return int(rng.choice(np.flatnonzero(info["action_mask"])))


def run_episode(env: gym.Env, seed: int, action_seed: int = 0):
    """Run one episode with random valid actions; return (observations, rewards, infos)."""
    rng = np.random.default_rng(action_seed)
    obs, info = env.reset(seed=seed)
    observations, rewards, infos = [obs], [], [info]
    truncated = False
    while not truncated:
        if isinstance(env.action_space, gym.spaces.Discrete):
            action = masked_random_action(info, rng)
        else:
            action = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
        obs, reward, terminated, truncated, info = env.step(action)
        assert not terminated
        observations.append(obs)
        rewards.append(reward)
        infos.append(info)
    return observations, rewards, infos


def test_import_registers_both_ids():
    for env_id in ENV_IDS:
        assert env_id in gym.registry
    assert esd_gym.__version__


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("scenario", scenario_names())
def test_checkers_pass_without_warnings(env_id, scenario, data_dir):
    kwargs = short_kwargs(scenario, data_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(gym.make(env_id, **kwargs).unwrapped)
        sb3_check_env(gym.make(env_id, **kwargs).unwrapped, warn=True)


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("scenario", scenario_names())
def test_same_seed_same_episode(env_id, scenario, data_dir):
    first = run_episode(gym.make(env_id, **short_kwargs(scenario, data_dir)), seed=5)
    second = run_episode(gym.make(env_id, **short_kwargs(scenario, data_dir)), seed=5)
    for obs_a, obs_b in zip(first[0], second[0]):
        np.testing.assert_array_equal(obs_a, obs_b)
    assert first[1] == second[1]
    for info_a, info_b in zip(first[2], second[2]):
        assert info_a.keys() == info_b.keys()
        for key in info_a:
            np.testing.assert_array_equal(info_a[key], info_b[key])


def test_different_seeds_start_elsewhere(data_dir):
    env = gym.make("esd_gym/Dispatch-v0", **short_kwargs("ml100k-8w-hetero-v0", data_dir))
    starts = set()
    for seed in range(5):
        env.reset(seed=seed)
        starts.add(env.unwrapped._start_sample)
    assert len(starts) > 1


def test_public_batch_accessors(data_dir):
    env = gym.make("esd_gym/Dispatch-v0", **short_kwargs("ml100k-8w-hetero-v0", data_dir)).unwrapped
    assert env.dispatch_context is None
    env.reset(seed=0)
    assert env.dispatch_context.batch.size == 16
    assert env.sample_index == 0
    env.step(0)
    assert env.sample_index == 1


def test_reset_option_sets_start(data_dir):
    env = gym.make("esd_gym/Dispatch-v0", **short_kwargs("ml100k-8w-hetero-v0", data_dir))
    env.reset(seed=0, options={"start": 123})
    assert env.unwrapped._start_sample == 123
    with pytest.raises(ConfigError, match="options\\['start'\\]"):
        env.reset(options={"start": 10**9})


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("scenario", scenario_names())
def test_return_equals_normalised_cost(env_id, scenario, data_dir):
    env = gym.make(env_id, **short_kwargs(scenario, data_dir, episode_iterations=4))
    for seed in (0, 1):
        _, rewards, infos = run_episode(env, seed=seed, action_seed=seed)
        episode_return = float(np.sum(rewards))
        expected = -infos[-1]["episode_cost_s"] / env.unwrapped.cost_scale_s
        assert infos[-1]["episode_penalty"] == 0.0
        assert episode_return == pytest.approx(expected, rel=1e-9)


def test_full_scenario_return_identity(tmp_path):
    """The identity on the full-size synthetic scenario (256-sample batches), shortened to 3 iterations."""
    env = gym.make("esd_gym/Dispatch-v0", scenario="criteo-synth-8w-hetero-v0", data_dir=str(tmp_path),
                   episode_iterations=3, trace={"num_samples": 5000})
    _, rewards, infos = run_episode(env, seed=3)
    assert len(rewards) == 3 * 256
    assert float(np.sum(rewards)) == pytest.approx(-infos[-1]["episode_cost_s"] / env.unwrapped.cost_scale_s, rel=1e-9)


@pytest.mark.parametrize("overrides", [{}, {"cluster": {"num_ps": 3}}, {"cluster": {"staleness_bound": 2}}])
def test_observed_cost_matches_cost_model(overrides, data_dir):
    """Every step's marginal costs equal BatchCosts.marginal_cost_s under the plan built so far."""
    env = gym.make("esd_gym/Dispatch-v0", **short_kwargs("ml100k-8w-hetero-v0", data_dir, **overrides)).unwrapped
    rng = np.random.default_rng(0)
    _, info = env.reset(seed=1)
    for _ in range(3 * 16):
        context = env._context
        plan = context.new_plan()
        for placed in range(env._sample):
            plan.place(int(env._assignment[placed]), context.batch.sample_local_ids(placed), context.sample_ps_of(placed))
        ids, ps = context.batch.sample_local_ids(env._sample), context.sample_ps_of(env._sample)
        full_s, lookup_s = env.marginal_costs_s()
        np.testing.assert_allclose(full_s, context.costs.marginal_cost_s(ids, ps, plan), rtol=1e-12)
        np.testing.assert_allclose(lookup_s, context.costs.marginal_cost_s(ids, ps, plan, lookup_only=True),
                                   rtol=1e-12)
        _, _, _, truncated, info = env.step(masked_random_action(info, rng))
        if truncated:
            break


def test_batch_end_info_has_iteration_report(data_dir):
    env = gym.make("esd_gym/Dispatch-v0", **short_kwargs("ml100k-8w-hetero-v0", data_dir))
    _, _, infos = run_episode(env, seed=0)
    batch_ends = [info for info in infos if "iteration_cost_s" in info]
    assert len(batch_ends) == 3
    assert [info["iteration"] for info in batch_ends] == [0, 1, 2]
    for info in batch_ends:
        assert info["worker_samples"].sum() == 16
        assert info["iteration_cost_s"] == pytest.approx(info["worker_cost_s"].sum())
        assert 0.0 <= info["iteration_hit_rate"] <= 1.0
    for key in EPISODE_INFO_KEYS:
        assert key in infos[-1]
        assert key not in infos[-2]
    assert infos[-1]["episode_cost_s"] == pytest.approx(infos[-1]["total_cost_s"])


def test_monitor_logs_episode_keys(data_dir, tmp_path):
    env = Monitor(gym.make("esd_gym/Dispatch-v0", **short_kwargs("ml100k-4w-homo-v0", data_dir)),
                  filename=str(tmp_path / "monitor"), info_keywords=EPISODE_INFO_KEYS)
    _, _, infos = run_episode(env, seed=0)
    logged = infos[-1]["episode"]
    assert logged["l"] == 3 * 16
    assert logged["r"] == pytest.approx(-infos[-1]["episode_cost_s"] / env.unwrapped.cost_scale_s, rel=1e-5)
    header = (tmp_path / "monitor.monitor.csv").read_text().splitlines()[1]
    assert "episode_cost_s" in header


def test_one_worker_policy_runs_to_end_under_penalize(data_dir):
    env = gym.make("esd_gym/Dispatch-v0", **short_kwargs("ml100k-8w-hetero-v0", data_dir, invalid_action_penalty=0.5))
    env.reset(seed=0)
    steps, total_reward, redirected = 0, 0.0, 0
    truncated = False
    while not truncated:
        _, reward, _, truncated, info = env.step(0)
        steps += 1
        total_reward += reward
        redirected += info["penalty"] > 0
    assert steps == 3 * 16
    capacity = int(env.unwrapped.capacity[0])
    assert redirected == 3 * (16 - capacity)
    assert info["episode_penalty"] == pytest.approx(0.5 * redirected)
    expected = -info["episode_cost_s"] / env.unwrapped.cost_scale_s - info["episode_penalty"]
    assert total_reward == pytest.approx(expected, rel=1e-9)


def test_one_worker_policy_raises_under_raise(data_dir):
    env = gym.make("esd_gym/Dispatch-v0", **short_kwargs("ml100k-8w-hetero-v0", data_dir, invalid_action="raise"))
    env.reset(seed=0)
    capacity = int(env.unwrapped.capacity[0])
    for _ in range(capacity):
        env.step(0)
    with pytest.raises(AssignmentError, match="worker 0 is full"):
        env.step(0)


@pytest.mark.parametrize("action", [1.5, "1", None, True, np.array([0, 1]), np.float32(2.0)])
def test_wrong_action_type_raises(action, data_dir):
    env = gym.make("esd_gym/Dispatch-v0", **short_kwargs("ml100k-8w-hetero-v0", data_dir)).unwrapped
    env.reset(seed=0)
    with pytest.raises(AssignmentError, match="integer worker index"):
        env.step(action)


@pytest.mark.parametrize("action", [-1, 8, np.int64(99)])
def test_out_of_range_action_raises(action, data_dir):
    env = gym.make("esd_gym/Dispatch-v0", **short_kwargs("ml100k-8w-hetero-v0", data_dir)).unwrapped
    env.reset(seed=0)
    with pytest.raises(AssignmentError, match="outside Discrete\\(8\\)"):
        env.step(action)


@pytest.mark.parametrize("action", [np.int32(3), np.array(3), np.array([3])])
def test_integer_like_actions_are_accepted(action, data_dir):
    env = gym.make("esd_gym/Dispatch-v0", **short_kwargs("ml100k-8w-hetero-v0", data_dir)).unwrapped
    env.reset(seed=0)
    _, _, _, _, info = env.step(action)
    assert info["worker"] == 3


@pytest.mark.parametrize(
    "action, fragment",
    [(np.zeros(3, np.float32), "shape \\(8,\\)"), (np.full(8, 2.0, np.float32), "within \\[-1, 1\\]"),
     (np.full(8, np.nan, np.float32), "finite")],
)
def test_batch_mode_rejects_bad_actions(action, fragment, data_dir):
    env = gym.make("esd_gym/DispatchBatch-v0", **short_kwargs("ml100k-8w-hetero-v0", data_dir)).unwrapped
    env.reset(seed=0)
    with pytest.raises(AssignmentError, match=fragment):
        env.step(action)


def test_batch_mode_adjustment_moves_samples(data_dir):
    env = gym.make("esd_gym/DispatchBatch-v0", **short_kwargs("ml100k-8w-hetero-v0", data_dir, adjust_scale=100.0))
    env.reset(seed=0)
    push_away = np.full(8, -1.0, np.float32)
    push_away[7] = 1.0
    _, _, _, _, info = env.step(push_away)
    assert np.count_nonzero(info["assignment"] == 7) == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"invalid_action": "ignore"},
        {"invalid_action_penalty": -1.0},
        {"no_such_field": 1},
    ],
)
def test_bad_constructor_arguments_raise(kwargs, data_dir):
    with pytest.raises(ConfigError):
        DispatchEnv(**short_kwargs("ml100k-8w-hetero-v0", data_dir, **kwargs))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_env_pickles_and_continues_identically(env_id, data_dir):
    env = gym.make(env_id, **short_kwargs("ml100k-8w-stale-v0", data_dir)).unwrapped
    env.reset(seed=2)
    for _ in range(5 if env_id == "esd_gym/Dispatch-v0" else 1):
        env.step(env.action_space.sample())
    clone = pickle.loads(pickle.dumps(env))
    action = env.action_space.sample()
    first, second = env.step(action), clone.step(action)
    np.testing.assert_array_equal(first[0], second[0])
    assert first[1] == second[1]


EXTREME_STATES = [
    pytest.param({"cluster": {"cache_fraction": 0.0}}, id="empty-caches"),
    pytest.param({"cluster": {"capacities": [0, 0, 16, 0, 4, 0, 0, 1]}}, id="zero-capacity-workers"),
    pytest.param({"cluster": {"capacities": [16, 16, 16, 16, 16, 16, 16, 16]}}, id="idle-workers"),
    pytest.param({"cluster": {"capacities": [16, 0, 0, 0, 0, 0, 0, 0]}}, id="one-worker-takes-all"),
    pytest.param({"cluster": {"num_ps": 2, "cache_policy": "static", "staleness_bound": 1}}, id="static-policy"),
]


@pytest.mark.parametrize("overrides", EXTREME_STATES)
def test_observations_finite_and_mask_never_empty(overrides, data_dir):
    env = gym.make("esd_gym/Dispatch-v0", **short_kwargs("ml100k-8w-hetero-v0", data_dir, **overrides))
    space = env.observation_space
    rng = np.random.default_rng(0)
    for seed in range(3):
        obs, info = env.reset(seed=seed)
        truncated = False
        while not truncated:
            assert np.all(np.isfinite(obs))
            assert space.contains(obs)
            assert info["action_mask"].any()
            np.testing.assert_array_equal(info["action_mask"], env.unwrapped.action_masks())
            obs, _, _, truncated, info = env.step(int(rng.integers(0, 8)))
        assert info["action_mask"].any()


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("scenario", ["ml100k-8w-hetero-v0", "criteo-synth-16w-dynamic-v0"])
def test_vec_check_nan_over_random_steps(env_id, scenario, data_dir):
    kwargs = short_kwargs(scenario, data_dir, cluster={"cache_fraction": 0.0})
    venv = VecCheckNan(DummyVecEnv([lambda: gym.make(env_id, **kwargs)] * 2), raise_exception=True)
    venv.seed(0)
    venv.reset()
    steps = 300 if env_id == "esd_gym/Dispatch-v0" else 30
    for _ in range(steps):
        venv.step(np.stack([venv.action_space.sample() for _ in range(2)]))
    venv.close()


def test_render_ansi_table(data_dir):
    env = gym.make("esd_gym/Dispatch-v0", render_mode="ansi", **short_kwargs("ml100k-4w-homo-v0", data_dir))
    env.reset(seed=0)
    assert "no batch executed yet" in env.render()
    for _ in range(16):
        env.step(env.action_space.sample())
    text = env.render()
    lines = text.splitlines()
    assert "pulls" in lines[2] and "cost ms" in lines[2]
    assert len(lines) == 3 + 4


def test_unsupported_render_mode_raises_on_render(data_dir):
    env = DispatchEnv(render_mode="rgb_array", **short_kwargs("ml100k-4w-homo-v0", data_dir))
    env.reset(seed=0)
    with pytest.raises(ConfigError, match="'rgb_array' is not supported"):
        env.render()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_step_after_episode_end_needs_reset(env_id, data_dir):
    env = gym.make(env_id, **short_kwargs("ml100k-4w-homo-v0", data_dir)).unwrapped
    with pytest.raises(gym.error.ResetNeeded):
        env.step(env.action_space.sample())
    run_episode(env, seed=0)
    with pytest.raises(gym.error.ResetNeeded):
        env.step(env.action_space.sample())


def test_no_render_without_render_mode(data_dir):
    env = gym.make("esd_gym/Dispatch-v0", **short_kwargs("ml100k-4w-homo-v0", data_dir)).unwrapped
    env.reset(seed=0)
    assert env.render() is None

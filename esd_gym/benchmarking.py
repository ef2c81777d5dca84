"""Step rate of the per-sample environment beside Gymnasium's CartPole-v1, measured in one process.

``esd-gym bench env`` prints these figures. Both environments are created with ``gymnasium.make``, so both carry
Gymnasium's default wrappers, and are stepped with pre-drawn uniform random actions. The default
``invalid_action="penalize"`` redirects an action on a full worker, and episode resets count in the time. The
measurements are interleaved over several rounds and the best round of each counts, which damps the noise of other
processes on the machine.
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import numpy as np

__all__ = ["BENCH_SCENARIOS", "bench_env", "measure_step_rate"]

BENCH_SCENARIOS = ("ml100k-8w-hetero-v0", "criteo-synth-8w-hetero-v0")


def measure_step_rate(env: gym.Env, num_steps: int, seed: int = 0) -> float:
    """Steps per second of ``env`` over ``num_steps`` random actions, resets included."""
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, env.action_space.n, size=num_steps).tolist()
    step = env.step
    started = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = step(action)
        if terminated or truncated:
            env.reset()
    return num_steps / (time.perf_counter() - started)


def bench_env(quick: bool = False, scenarios: tuple[str, ...] = BENCH_SCENARIOS, data_dir: str | None = None) -> list[dict[str, Any]]:
    """Measure per-sample env steps/s for ``scenarios`` and CartPole-v1's; one row per environment.

    Each row has ``env``, ``steps_per_s`` and ``ratio_to_cartpole``. Scenario data is fetched or generated first
    when missing, outside the timed loops.
    """
    import esd_gym  # noqa: F401  (registers the environments)

    num_steps = 5_000 if quick else 50_000
    rounds = 2 if quick else 3
    envs = {"CartPole-v1": gym.make("CartPole-v1")}
    for name in scenarios:
        envs[name] = gym.make("esd_gym/Dispatch-v0", scenario=name, data_dir=data_dir)
    best = dict.fromkeys(envs, 0.0)
    for env in envs.values():
        env.reset(seed=0)
        measure_step_rate(env, num_steps // 10)  # warm-up: first-step checks, caches
    for round_index in range(rounds):
        for label, env in envs.items():
            best[label] = max(best[label], measure_step_rate(env, num_steps, seed=round_index))
    for env in envs.values():
        env.close()
    cartpole = best["CartPole-v1"]
    return [
        {"env": label if label == "CartPole-v1" else f"esd_gym/Dispatch-v0 {label}",
         "steps_per_s": rate, "ratio_to_cartpole": rate / cartpole}
        for label, rate in best.items()
    ]

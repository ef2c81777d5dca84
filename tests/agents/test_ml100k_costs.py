"""Episode costs on the scenario ml100k-8w-hetero-v0 (MovieLens-100K, 8 heterogeneous workers), 3 seeds.

Slow: about 5 s, most of it the locality baseline. Needs the ml-100k atomic files (a local copy, else a download),
and is skipped without them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agents import make_dispatcher
from agents.episode import run_scenario_episode
from esd_gym.errors import DataError
from esd_gym.scenarios import load_scenario
from esd_gym.workload.datasets import ML100K_SHA256, fetch_dataset

REPOSITORY = Path(__file__).resolve().parents[2]
LOCAL_COPIES = (REPOSITORY.parent / "shared" / "data" / "ml-100k", Path("/work/shared/data/ml-100k"))
SEEDS = (0, 1, 2)

# Every episode pays at least this much latency: 50 iterations × 8 workers × 2 messages (lookup, push) × 5 ms.
# All 8 workers get samples in every iteration because any 7 of them have 7 × 36 = 252 < 256 slots
# (capacity ceil(1.1 × 256 / 8) = 36 each).
LATENCY_FLOOR_S = 50 * 8 * 2 * 0.005


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("esd-gym-data")
    source = next((copy for copy in LOCAL_COPIES if all((copy / name).is_file() for name in ML100K_SHA256)), None)
    try:
        fetch_dataset("ml-100k", data_dir, source=source, timeout=1.0)
    except DataError as error:
        pytest.skip(f"no local copy of ml-100k and the download failed: {error}")
    return load_scenario("ml100k-8w-hetero-v0", data_dir=data_dir)


@pytest.fixture(scope="module")
def costs(scenario) -> dict[str, np.ndarray]:
    """Total episode cost (flush included) per dispatcher and seed, seconds."""
    totals = {}
    for name in ("random", "locality", "hybriddis-heuristic"):
        dispatcher = make_dispatcher(name)
        totals[name] = np.array([run_scenario_episode(dispatcher, scenario, seed).cost_s for seed in SEEDS])
    return totals


@pytest.mark.slow
def test_heuristic_below_random_and_locality(costs):
    heuristic = costs["hybriddis-heuristic"]
    assert (heuristic < costs["random"]).all()
    assert (heuristic < costs["locality"]).all()


@pytest.mark.slow
def test_latency_floor_binds_every_dispatcher(costs):
    for name, totals in costs.items():
        assert (totals >= LATENCY_FLOOR_S).all(), name


@pytest.mark.slow
def test_heuristic_ten_percent_below_random(costs):
    assert (costs["hybriddis-heuristic"] <= 0.9 * costs["random"]).all()

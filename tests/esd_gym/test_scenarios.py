"""Scenario specs: the shipped scenarios, overrides, trace sources, clusters and the scenarios command."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from esd_gym import scenarios
from esd_gym.errors import ConfigError, DataError
from esd_gym.scenarios import (
    get_scenario_spec,
    load_scenario,
    scenario_names,
    select_tables,
)
from esd_gym.workload.trace import Trace
from experiments.cli import main as cli_main
from tests.esd_gym.helpers import SMALL_SYNTHETIC, write_movielens_like

REQUIRED = (
    "ml100k-8w-hetero-v0",
    "ml100k-4w-homo-v0",
    "ml100k-8w-stale-v0",
    "criteo-synth-8w-hetero-v0",
    "criteo-synth-16w-dynamic-v0",
)


@pytest.fixture
def data_dir(tmp_path):
    write_movielens_like(tmp_path)
    return tmp_path


def test_required_scenarios_are_shipped():
    names = scenario_names()
    for name in REQUIRED:
        assert name in names


@pytest.mark.parametrize("name", scenario_names())
def test_spec_is_valid_and_named_after_file(name):
    spec = get_scenario_spec(name)
    assert spec.name == name
    assert spec.description
    assert spec.cost_scale_s > 0
    assert spec.batch_size * spec.episode_iterations > 0


def test_hetero_cluster_matches_description(data_dir):
    scenario = load_scenario("ml100k-8w-hetero-v0", data_dir=data_dir, episode_iterations=2)
    cluster = scenario.build_cluster()
    down_bits = cluster.down_bytes_per_s[:, 0] * 8
    assert scenario.spec.batch_size == 256
    assert cluster.num_workers == 8
    assert cluster.staleness_bound == 0
    np.testing.assert_allclose(down_bits, np.geomspace(10e6, 1e9, 8))
    np.testing.assert_allclose(cluster.up_bytes_per_s, cluster.down_bytes_per_s / 2)
    np.testing.assert_allclose(cluster.latency_s, 0.005)
    # The fake trace keeps users 0..99 and at most 400 items after table selection.
    distinct = len(np.unique(scenario.trace.ids))
    assert scenario.num_distinct_ids == distinct
    np.testing.assert_array_equal(cluster.cache_rows, round(0.1 * distinct))


def test_stale_scenario_has_positive_bound():
    assert get_scenario_spec("ml100k-8w-stale-v0").cluster.staleness_bound > 0


def test_homo_scenario_has_equal_links(data_dir):
    cluster = load_scenario("ml100k-4w-homo-v0", data_dir=data_dir, episode_iterations=2).build_cluster()
    assert cluster.num_workers == 4
    assert np.unique(cluster.down_bytes_per_s).size == 1


def test_table_selection_keeps_user_and_item(data_dir):
    scenario = load_scenario("ml100k-8w-hetero-v0", data_dir=data_dir, episode_iterations=2)
    lengths = np.diff(scenario.trace.offsets)
    assert np.all(lengths == 2)
    assert scenario.trace.ids.max() < 500


def test_select_tables_rejects_unknown_table():
    trace = Trace(offsets=np.array([0, 1], np.int64), ids=np.array([0], np.int64),
                  table_offsets=np.array([0, 5], np.int64), table_names=("a",))
    with pytest.raises(ConfigError, match="'b'"):
        select_tables(trace, ["b"])


def test_override_merges_nested_fields():
    spec = get_scenario_spec("ml100k-8w-hetero-v0", batch_size=32, cluster={"staleness_bound": 3})
    assert spec.batch_size == 32
    assert spec.cluster.staleness_bound == 3
    assert spec.cluster.num_workers == 8


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"bogus": 1}, "unknown key 'bogus'"),
        ({"cluster": {"num_workerz": 2}}, "unknown key 'cluster.num_workerz'"),
        ({"batch_size": 0}, "batch_size"),
        ({"cluster": {"downlink_mbps": [1.0, 2.0]}}, "downlink_mbps has 2 entries"),
        ({"cluster": {"cache_fraction": 1.5}}, "cache_fraction"),
    ],
)
def test_invalid_override_raises_config_error(overrides, fragment):
    with pytest.raises(ConfigError, match=fragment):
        get_scenario_spec("ml100k-8w-hetero-v0", **overrides)


def test_unknown_scenario_lists_known_ones():
    with pytest.raises(ConfigError, match="ml100k-8w-hetero-v0"):
        get_scenario_spec("no-such-scenario-v0")


def test_trace_too_short_for_episode(data_dir):
    with pytest.raises(ConfigError, match="episode needs"):
        load_scenario("ml100k-8w-hetero-v0", data_dir=data_dir, episode_iterations=1000)


def test_offline_missing_data_names_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("ESD_GYM_OFFLINE", "1")
    with pytest.raises(DataError, match="esd-gym data fetch ml-100k"):
        load_scenario("ml100k-8w-hetero-v0", data_dir=tmp_path / "empty")


def test_missing_data_is_fetched_and_logged(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv("ESD_GYM_OFFLINE", raising=False)
    fetched = []

    def fake_trace_path(name, data_dir):
        fetched.append(name)
        write_movielens_like(data_dir)
        return data_dir / "ml-100k.npz"

    monkeypatch.setattr(scenarios, "dataset_trace_path", fake_trace_path)
    target = tmp_path / "fresh"
    target.mkdir()
    with caplog.at_level(logging.INFO, logger="esd_gym.scenarios"):
        scenario = load_scenario("ml100k-4w-homo-v0", data_dir=target, batch_size=8, episode_iterations=2)
    assert fetched == ["ml-100k"]
    assert "fetching" in caplog.text
    assert scenario.trace.num_samples == 3000


def test_synthetic_trace_is_deterministic(tmp_path):
    first = load_scenario("criteo-synth-8w-hetero-v0", data_dir=tmp_path, trace=SMALL_SYNTHETIC, batch_size=16,
                          episode_iterations=2)
    second = load_scenario("criteo-synth-8w-hetero-v0", data_dir=tmp_path / "other", trace=SMALL_SYNTHETIC,
                           batch_size=16, episode_iterations=2)
    assert first.trace.num_samples == 2000
    np.testing.assert_array_equal(first.trace.ids, second.trace.ids)
    assert np.all(np.diff(first.trace.offsets) == 4)


def test_dynamic_bandwidth_is_seeded_and_bounded(tmp_path):
    scenario = load_scenario("criteo-synth-16w-dynamic-v0", data_dir=tmp_path, trace=SMALL_SYNTHETIC, batch_size=16,
                             episode_iterations=2)
    dynamics = scenario.spec.cluster.bandwidth_dynamics
    first = scenario.build_cluster(np.random.default_rng(7))
    again = scenario.build_cluster(np.random.default_rng(7))
    other = scenario.build_cluster(np.random.default_rng(8))
    factors = np.stack(first.trace_factors)
    np.testing.assert_array_equal(factors, np.stack(again.trace_factors))
    assert not np.array_equal(factors, np.stack(other.trace_factors))
    assert factors.min() >= dynamics.factor_min * (1 - 1e-12)
    assert factors.max() <= dynamics.factor_max * (1 + 1e-12)
    assert not np.allclose(first.bandwidth_factors(0.0), first.bandwidth_factors(50.0))


def test_dynamic_cluster_needs_generator(tmp_path):
    scenario = load_scenario("criteo-synth-16w-dynamic-v0", data_dir=tmp_path, trace=SMALL_SYNTHETIC, batch_size=16,
                             episode_iterations=2)
    with pytest.raises(ValueError, match="random generator"):
        scenario.build_cluster()


def test_random_dispatch_cost_is_positive(data_dir):
    scenario = load_scenario("ml100k-4w-homo-v0", data_dir=data_dir, batch_size=16, episode_iterations=3)
    assert scenarios.measure_random_dispatch_cost(scenario, seeds=(0,)) > 0


def test_scenarios_command_lists_descriptions(capsys):
    assert cli_main(["scenarios"]) == 0
    output = capsys.readouterr().out
    for name in REQUIRED:
        assert name in output
    assert "MovieLens-100K" in output


def test_scenarios_command_shows_one_spec(capsys):
    assert cli_main(["scenarios", "ml100k-8w-stale-v0"]) == 0
    output = capsys.readouterr().out
    assert "staleness_bound: 4" in output


def test_scenarios_command_rejects_unknown_name(capsys):
    assert cli_main(["scenarios", "nope-v0"]) == 2
    assert "unknown scenario 'nope-v0'" in capsys.readouterr().err

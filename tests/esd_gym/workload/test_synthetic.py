"""Synthetic Zipf workloads: determinism, the law of the ids, locality, labels and memory."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest

from esd_gym.errors import ConfigError
from esd_gym.workload.synthetic import (
    CRITEO_KAGGLE_CARDINALITIES,
    SyntheticConfig,
    generate_trace,
    sample_zipf,
    write_synthetic_trace,
)
from esd_gym.workload.trace import load_trace
from experiments.cli import main


def least_squares_exponent(ids, first_rank, last_rank):
    """Estimate s from the slope of log frequency against log rank, ranking ids by their observed frequency."""
    _, counts = np.unique(ids, return_counts=True)
    frequencies = np.sort(counts)[::-1][first_rank - 1 : last_rank]
    ranks = np.arange(first_rank, first_rank + len(frequencies))
    slope, _ = np.polyfit(np.log(ranks), np.log(frequencies), 1)
    return -slope


def test_same_seed_same_file_bytes(tmp_path):
    config = SyntheticConfig(cardinalities=(50, 7, 100_000), ids_per_table=(1, 2, 1), num_dense=3, labels=True,
                             locality=0.2, seed=11)
    # 70,000 samples span two generation chunks.
    write_synthetic_trace(tmp_path / "one.npz", 70_000, config)
    write_synthetic_trace(tmp_path / "two.npz", 70_000, config)
    write_synthetic_trace(tmp_path / "other.npz", 70_000, SyntheticConfig(**{**config.__dict__, "seed": 12}))
    assert (tmp_path / "one.npz").read_bytes() == (tmp_path / "two.npz").read_bytes()
    assert (tmp_path / "one.npz").read_bytes() != (tmp_path / "other.npz").read_bytes()


def test_file_matches_in_memory_trace(tmp_path):
    config = SyntheticConfig(cardinalities=(20, 30), num_dense=2, labels=True, seed=5)
    in_memory = generate_trace(1000, config)
    stored = load_trace(write_synthetic_trace(tmp_path / "trace.npz", 1000, config))
    assert np.array_equal(in_memory.ids, stored.ids)
    assert np.array_equal(in_memory.offsets, stored.offsets)
    assert np.array_equal(in_memory.dense, stored.dense)
    assert np.array_equal(in_memory.labels, stored.labels)
    assert stored.table_offsets.tolist() == [0, 20, 50]
    assert stored.table_names == ("table_0", "table_1")


@pytest.mark.parametrize("exponent", [0.8, 1.05, 1.4])
def test_zipf_exponent_of_large_table(exponent):
    # The largest Criteo Kaggle table, 10,131,227 rows; 1,000,000 draws leave about 100 at rank 1000 for s = 1.05.
    config = SyntheticConfig(cardinalities=(CRITEO_KAGGLE_CARDINALITIES[2],), zipf_exponents=exponent, seed=3)
    trace = generate_trace(1_000_000, config)
    assert abs(least_squares_exponent(trace.ids, 1, 1000) - exponent) <= 0.1


def test_zipf_sampler_matches_probabilities():
    rng = np.random.default_rng(0)
    draws = 400_000
    for rows, exponent in [(1, 1.05), (3, 0.5), (5, 1.05), (10, 2.0)]:
        ranks = sample_zipf(rng, rows, exponent, draws)
        weights = np.arange(1, rows + 1, dtype=float) ** -exponent
        expected = weights / weights.sum()
        observed = np.bincount(ranks, minlength=rows + 1)[1:] / draws
        # Four binomial standard deviations per rank (plus a floor for probability 1).
        tolerance = 4 * np.sqrt(expected * (1 - expected) / draws) + 1e-12
        assert ranks.min() >= 1
        assert ranks.max() <= rows
        assert np.all(np.abs(observed - expected) <= tolerance), (rows, exponent)


def test_hot_rows_are_spread_by_seed():
    hottest = set()
    for seed in range(6):
        trace = generate_trace(5000, SyntheticConfig(cardinalities=(1000,), zipf_exponents=2.0, seed=seed))
        hottest.add(int(np.bincount(trace.ids).argmax()))
    # Without the permutation rank 1 would always be row 0.
    assert len(hottest) >= 4


def test_locality_repeats_recent_ids():
    def repeat_share(locality):
        # A nearly uniform law over 2^30 rows, so that repeats come from the locality knob only.
        config = SyntheticConfig(cardinalities=(1 << 30,), zipf_exponents=0.01, locality=locality,
                                 locality_window=10, seed=1)
        ids = generate_trace(100_000, config).ids
        recent = np.zeros(len(ids), dtype=bool)
        for back in range(1, 11):
            recent[back:] |= ids[back:] == ids[:-back]
        return recent.mean()

    # Every copied id equals one of the 10 before it, so the share of repeats is about the locality.
    assert repeat_share(0.0) < 0.001
    assert abs(repeat_share(0.5) - 0.5) < 0.01


def test_labels_follow_positive_rate():
    config = SyntheticConfig(cardinalities=(100, 100), labels=True, label_signal=0.0, positive_rate=0.25, seed=2)
    labels = generate_trace(100_000, config).labels
    # Bernoulli(0.25) mean over 100,000 samples: standard deviation 0.00137.
    assert set(np.unique(labels).tolist()) == {0.0, 1.0}
    assert abs(labels.mean() - 0.25) < 4 * math.sqrt(0.25 * 0.75 / 100_000)


def test_labels_depend_on_ids():
    config = SyntheticConfig(cardinalities=(20,), zipf_exponents=0.5, labels=True, label_signal=3.0, seed=4)
    trace = generate_trace(50_000, config)
    rates = [trace.labels[trace.ids == row].mean() for row in range(20)]
    assert max(rates) - min(rates) > 0.3


def test_memory_independent_of_table_size():
    config = SyntheticConfig(cardinalities=((1 << 31) - 1,) * 4, seed=0)
    tracemalloc.start()
    trace = generate_trace(10_000, config)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # 10,000 samples of 4 int64 ids are 320 kB; a table-sized array would be 16 GB.
    assert peak < 20 * 2**20
    assert trace.ids.max() < trace.table_offsets[-1]


def test_default_config_is_criteo_kaggle():
    config = SyntheticConfig()
    assert len(config.cardinalities) == 26
    assert sum(config.cardinalities) == 33_762_577
    trace = generate_trace(100, config)
    assert trace.offsets[-1] == 2600
    for table in range(26):
        ids = trace.ids.reshape(100, 26)[:, table]
        assert np.all((ids >= config.table_offsets[table]) & (ids < config.table_offsets[table + 1]))


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"cardinalities": ()}, "at least one table"),
        ({"cardinalities": (0,)}, r"cardinalities\[0\] must be between"),
        ({"cardinalities": (5, 5), "zipf_exponents": (1.0,)}, "zipf_exponents has 1 entries for 2 tables"),
        ({"zipf_exponents": -1.0}, "must be a positive number"),
        ({"ids_per_table": 0}, "at least 1"),
        ({"locality": 1.5}, "locality must lie between 0 and 1"),
    ],
)
def test_config_rejects_invalid_values(settings, message):
    with pytest.raises(ConfigError, match=message):
        SyntheticConfig(**settings)


def test_synth_command_is_deterministic(tmp_path, capsys):
    for name in ("one.npz", "two.npz"):
        arguments = ["data", "synth", "-o", str(tmp_path / name), "-n", "3000", "--cardinalities", "100,2000",
                     "--zipf", "1.1,0.9", "--ids-per-table", "2", "--dense", "4", "--labels", "--seed", "9"]
        assert main(arguments) == 0
    assert (tmp_path / "one.npz").read_bytes() == (tmp_path / "two.npz").read_bytes()
    trace = load_trace(tmp_path / "one.npz")
    assert trace.num_samples == 3000
    assert trace.offsets[1] == 4
    assert trace.dense.shape == (3000, 4)
    assert "3,000 samples" in capsys.readouterr().out

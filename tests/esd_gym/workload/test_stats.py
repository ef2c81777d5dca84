"""Trace statistics on a hand-computed example, and the stats command."""

from __future__ import annotations

import numpy as np
import pytest

from esd_gym.workload.stats import compute_stats, plot_rank_frequency
from esd_gym.workload.trace import Trace, save_trace
from experiments.cli import main


@pytest.fixture
def small_trace():
    # Table a owns ids 0-1, table b ids 2-4. Lookups: id 0 twice, id 1 once, id 3 twice.
    return Trace(
        offsets=np.array([0, 2, 3, 5], dtype=np.int64),
        ids=np.array([0, 3, 0, 1, 3], dtype=np.int64),
        table_offsets=np.array([0, 2, 5], dtype=np.int64),
        table_names=("a", "b"),
    )


def test_stats_of_small_trace(small_trace):
    stats = compute_stats(small_trace)
    a, b = stats.tables
    assert stats.num_samples == 3
    assert stats.mean_ids_per_sample == pytest.approx(5 / 3)
    assert stats.min_ids_per_sample == 1
    assert stats.max_ids_per_sample == 2
    assert (a.rows, a.distinct_ids, a.lookups) == (2, 2, 3)
    assert (b.rows, b.distinct_ids, b.lookups) == (3, 1, 2)
    # The top 1 % of distinct ids is one id (rounded up): id 0 has 2 of table a's 3 lookups.
    assert a.top_share == pytest.approx(2 / 3)
    assert b.top_share == pytest.approx(1.0)
    assert stats.overall.distinct_ids == 3
    assert stats.overall.top_share == pytest.approx(2 / 5)
    assert stats.counts.tolist() == [2, 1, 0, 2, 0]


def test_top_share_of_uniform_ids():
    # 1,000 ids used once each: the top 1 % is 10 ids with 10 of 1,000 lookups.
    trace = Trace(offsets=np.arange(1001, dtype=np.int64), ids=np.arange(1000, dtype=np.int64))
    assert compute_stats(trace).overall.top_share == pytest.approx(0.01)


def test_rank_plot_is_png(small_trace, tmp_path):
    path = plot_rank_frequency(compute_stats(small_trace), tmp_path / "plot.png", small_trace.table_offsets)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_stats_command_output(small_trace, tmp_path, capsys):
    save_trace(tmp_path / "small.npz", small_trace)
    assert main(["data", "stats", str(tmp_path / "small.npz")]) == 0
    output = capsys.readouterr().out
    assert "3 samples, 2 tables, 5 ids" in output
    assert "the top 1 % of ids take 40.0 % of lookups" in output


def test_stats_command_missing_file(tmp_path, capsys):
    assert main(["data", "stats", str(tmp_path / "missing.npz")]) == 2
    error = capsys.readouterr().err
    assert "trace file not found" in error
    assert error.count("\n") == 1

"""Bad input on the command line: one line on stderr, exit status 2, and no output files left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from esd_gym.workload.trace import Trace, save_trace
from experiments.cli import EXIT_TERMINATED, main
from tests.esd_gym.dlrm.builders import make_trace

LINK = {"down_bytes_per_s": 1e6, "up_bytes_per_s": 5e5, "latency_s": 0.001}
CLUSTER = {
    "row_bytes": 64,
    "workers": [{"cache_rows": 10, "compute_samples_per_s": 100, "links": [LINK]} for _ in range(2)],
}


def expect_one_line_error(capsys, argv, *fragments) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture
def simulate_args(tmp_path) -> list[str]:
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(yaml.safe_dump(CLUSTER))
    trace = save_trace(tmp_path / "trace.npz", Trace(offsets=np.arange(0, 41, 2), ids=np.arange(40) % 7))
    return ["simulate", "--cluster", str(cluster), "--trace", str(trace), "--batch-size", "4"]


@pytest.mark.parametrize("iterations", ["0", "-3"])
def test_simulate_nonpositive_iterations(capsys, simulate_args, iterations):
    argv = [*simulate_args, "--iterations", iterations]
    expect_one_line_error(capsys, argv, f"--iterations must be positive (got {iterations})")


def test_simulate_negative_seed(capsys, simulate_args):
    argv = [*simulate_args, "--dispatcher", "random", "--seed", "-1"]
    expect_one_line_error(capsys, argv, "--seed must be non-negative (got -1)")


def test_simulate_one_worker_one_sample_batches(tmp_path, capsys, simulate_args):
    # A legal corner: one worker without a cache, one sample per batch; every id is pulled and pushed each time.
    cluster = {"row_bytes": 64, "workers": [{"cache_rows": 0, "compute_samples_per_s": 100, "links": [LINK]}]}
    (tmp_path / "cluster.yaml").write_text(yaml.safe_dump(cluster))
    args = [*simulate_args, "--json", "--iterations", "5"]
    args[args.index("--batch-size") + 1] = "1"
    assert main(args) == 0
    totals = json.loads(capsys.readouterr().out)
    assert totals["iterations"] == 5
    assert totals["lookups"] == 10
    assert totals["pulled_rows"] == 10
    assert totals["pushed_rows"] == 10
    # Per iteration: two latencies, 2 requests of 16 B up, 2 pulls of 80 B down and 2 pushes of 80 B up.
    per_iteration_s = 2 * 0.001 + 2 * 16 / 5e5 + 2 * 80 / 1e6 + 2 * 80 / 5e5
    assert totals["cost_s"] == pytest.approx(5 * per_iteration_s)


def test_stats_bad_plot_fails_before_output(tmp_path, capsys):
    trace = save_trace(tmp_path / "trace.npz", Trace(offsets=np.array([0, 1]), ids=np.array([3])))
    expect_one_line_error(capsys, ["data", "stats", str(trace), "--plot", str(tmp_path / "rank.txt")], "rank.txt")
    assert capsys.readouterr().out == ""


def test_synth_negative_seed(tmp_path, capsys):
    output = tmp_path / "out.npz"
    argv = ["data", "synth", "-o", str(output), "-n", "10", "--cardinalities", "5", "--seed", "-1"]
    expect_one_line_error(capsys, argv, "seed must not be negative")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("output", ["", "."])
def test_synth_output_directory(tmp_path, capsys, output, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["data", "synth", "-o", output, "-n", "10", "--cardinalities", "5"]
    expect_one_line_error(capsys, argv, "the output path is a directory")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def dlrm_trace(tmp_path) -> Path:
    return save_trace(tmp_path / "small.npz", make_trace(num_samples=200))


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"dispatcher": "nope"}, "dispatcher 'nope' is not known"),
        ({"dispatcher": "hash", "dispatcher_options": {"table": "a"}}, "option table"),
    ],
)
def test_train_dlrm_bad_dispatcher_writes_nothing(tmp_path, capsys, dlrm_trace, config, problem):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"scenario": "ml100k-8w-hetero-v0", "trace": str(dlrm_trace), **config}))
    runs = tmp_path / "runs"
    expect_one_line_error(capsys, ["train-dlrm", "--config", str(path), "--runs-dir", str(runs)], problem)
    assert not runs.exists()


def test_train_dlrm_compare_bad_arm_writes_nothing(tmp_path, capsys, dlrm_trace):
    path = tmp_path / "compare.yaml"
    arms = [{"name": "random"}, {"name": "hybriddis", "options": {"budget_s": "fast"}}]
    run = {"scenario": "ml100k-8w-hetero-v0", "trace": str(dlrm_trace), "iterations": 2, "batch_size": 16}
    path.write_text(yaml.safe_dump({"name": "bad", "run": run, "dispatchers": arms}))
    runs = tmp_path / "runs"
    expect_one_line_error(capsys, ["train-dlrm", "--compare", str(path), "--runs-dir", str(runs)], "budget_s")
    assert not runs.exists()


def test_bad_trace_exit_status_without_traceback(tmp_path):
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(yaml.safe_dump(CLUSTER))
    trace = tmp_path / "trace.npz"
    trace.write_bytes(b"")
    log = tmp_path / "log.csv"
    log.write_text("sample,worker\n0,0\n")
    argv = ["replay", "--cluster", str(cluster), "--trace", str(trace), "--assignments", str(log), "--batch-size", "1"]
    completed = subprocess.run([sys.executable, "-m", "experiments.cli", *argv], capture_output=True, text=True)
    assert completed.returncode == 2
    assert completed.stderr.count("\n") == 1
    assert "not a .npz archive" in completed.stderr


def test_sigterm_removes_partial_output(tmp_path):
    output = tmp_path / "big.npz"
    argv = ["data", "synth", "-o", str(output), "-n", "50000000", "--cardinalities", "100"]
    process = subprocess.Popen([sys.executable, "-m", "experiments.cli", *argv], stderr=subprocess.PIPE, text=True)
    try:
        # Wait for the spill directory, so that the signal arrives while the trace is being written.
        deadline = time.monotonic() + 30
        while not any(path.name.endswith(".parts") for path in tmp_path.iterdir()):
            assert time.monotonic() < deadline, "the writer never started"
            assert process.poll() is None, process.stderr.read()
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == EXIT_TERMINATED
    assert stderr.strip() == "esd-gym data: terminated"
    assert os.listdir(tmp_path) == []

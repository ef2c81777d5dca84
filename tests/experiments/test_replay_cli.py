"""``esd-gym replay``: a hand-computed log, and every kind of bad input ending in one line and exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from esd_gym.workload.trace import Trace, save_trace
from experiments.cli import main

# Two workers, one PS; 64-byte rows with 16 header bytes = 80-byte messages, 16-byte requests.
# Downlink 800 B/s -> pull 0.1 s; uplink 400 B/s -> push 0.2 s, request 0.04 s; latency 0.5 s per message.
CLUSTER = {
    "row_bytes": 64,
    "workers": [
        {
            "cache_rows": 4,
            "compute_samples_per_s": 10,
            "capacity": 2,
            "links": [{"down_bytes_per_s": 800, "up_bytes_per_s": 400, "latency_s": 0.5}],
        }
    ]
    * 2,
}


def write_case(tmp_path: Path, cluster=None, rows=None, trace=None) -> list[str]:
    cluster_path = tmp_path / "cluster.yaml"
    cluster_path.write_text(yaml.safe_dump(CLUSTER if cluster is None else cluster))
    trace_path = tmp_path / "trace.npz"
    if trace is None:
        # Samples: 0 -> {1, 2}, 1 -> {2}, 2 -> {3}, 3 -> {1}.
        trace = Trace(offsets=np.array([0, 2, 3, 4, 5]), ids=np.array([1, 2, 2, 3, 1]), table_offsets=np.array([0, 4]))
    save_trace(trace_path, trace)
    assignments_path = tmp_path / "assignments.csv"
    lines = ["sample,worker", "0,0", "1,0", "2,1", "3,1"] if rows is None else rows
    assignments_path.write_text("\n".join(lines) + "\n")
    return [
        "replay", "--cluster", str(cluster_path), "--trace", str(trace_path),
        "--assignments", str(assignments_path), "--batch-size", "4",
    ]


def test_replay_hand_computed(tmp_path, capsys):
    assert main(write_case(tmp_path)) == 0
    output = json.loads(capsys.readouterr().out)
    # Worker 0: samples 0, 1 -> rows {1, 2}: 2 lookups, 2 pulls, 2 pushes (s = 0), one lookup and one push
    # message: 2 × 0.5 + 2 × 0.04 + 2 × 0.1 + 2 × 0.2 = 1.68 s. Worker 1: rows {3, 1}: the same, 1.68 s.
    assert output["cost_s"] == pytest.approx(3.36)
    assert output["lookups"] == 4
    assert output["pulled_rows"] == 4
    assert output["pushed_rows"] == 4
    assert output["hits"] == 0
    assert output["bytes_down"] == 4 * 80
    assert output["bytes_up"] == 4 * 16 + 4 * 80
    assert output["iterations"] == 1
    # Iteration time: 2 samples / 10 per s + 1.68 s on either worker.
    assert output["time_s"] == pytest.approx(0.2 + 1.68)


def expect_one_line_error(capsys, argv, *fragments):
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_unknown_cluster_key(tmp_path, capsys):
    argv = write_case(tmp_path, cluster={**CLUSTER, "cache_polcy": "lru"})
    expect_one_line_error(capsys, argv, "cluster.yaml", "unknown key 'cache_polcy'")


@pytest.mark.parametrize("bandwidth", [-5, 0])
def test_nonpositive_bandwidth(tmp_path, capsys, bandwidth):
    worker = {**CLUSTER["workers"][0], "links": [{"down_bytes_per_s": bandwidth, "up_bytes_per_s": 1, "latency_s": 0}]}
    argv = write_case(tmp_path, cluster={**CLUSTER, "workers": [worker, worker]})
    expect_one_line_error(capsys, argv, "workers[0].links[0].down_bytes_per_s", f"got {bandwidth}")


def test_capacity_below_batch_size(tmp_path, capsys):
    worker = {**CLUSTER["workers"][0], "capacity": 1}
    argv = write_case(tmp_path, cluster={**CLUSTER, "workers": [worker, worker]})
    expect_one_line_error(capsys, argv, "capacity sums to 2, below the batch size 4")


def test_worker_out_of_range(tmp_path, capsys):
    argv = write_case(tmp_path, rows=["sample,worker", "0,0", "1,0", "2,7", "3,1"])
    expect_one_line_error(capsys, argv, "assignments.csv:4", "worker 7")


def test_sample_missing(tmp_path, capsys):
    argv = write_case(tmp_path, rows=["sample,worker", "0,0", "1,0", "3,1"])
    expect_one_line_error(capsys, argv, "sample 2 is missing")


def test_sample_placed_twice(tmp_path, capsys):
    argv = write_case(tmp_path, rows=["sample,worker", "0,0", "1,0", "1,1", "3,1"])
    expect_one_line_error(capsys, argv, "assignments.csv:4", "sample 1 is placed twice", "line 3")


def test_non_numeric_cell(tmp_path, capsys):
    argv = write_case(tmp_path, rows=["sample,worker", "0,0", "1,zero", "2,1", "3,1"])
    expect_one_line_error(capsys, argv, "assignments.csv:3:2", "'zero'")


def test_id_beyond_tables(tmp_path, capsys):
    argv = write_case(tmp_path)
    argv[argv.index("--trace") + 1] = str(tmp_path / "bad.npz")
    # Written with np.savez because save_trace would reject the id: the tables end at 4, the last id is 9.
    np.savez(tmp_path / "bad.npz", offsets=np.array([0, 1, 2, 3, 4]), ids=np.array([1, 2, 3, 9]), table_offsets=np.array([0, 4]))
    expect_one_line_error(capsys, argv, "bad.npz", "id 9 is beyond the tables")


def test_empty_trace(tmp_path, capsys):
    argv = write_case(tmp_path)
    np.savez(tmp_path / "empty.npz", offsets=np.array([0], dtype=np.int64), ids=np.array([], dtype=np.int64))
    argv[argv.index("--trace") + 1] = str(tmp_path / "empty.npz")
    expect_one_line_error(capsys, argv, "empty.npz", "empty")


def test_missing_cluster_file(tmp_path, capsys):
    argv = write_case(tmp_path)
    argv[argv.index("--cluster") + 1] = str(tmp_path / "nope.yaml")
    expect_one_line_error(capsys, argv, "nope.yaml", "not found")


def test_exit_status_from_console_script(tmp_path):
    argv = write_case(tmp_path, rows=["sample,worker", "0,0"])
    completed = subprocess.run(
        [sys.executable, "-m", "experiments.cli", *argv], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 2
    assert completed.stderr.count("\n") == 1
    assert "Traceback" not in completed.stderr

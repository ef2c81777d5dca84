"""TraceWriter: chunked, atomic writing of traces that load_trace memory-maps."""

from __future__ import annotations

import numpy as np
import pytest

from esd_gym.errors import TraceError
from esd_gym.workload.trace import Trace, TraceWriter, load_trace, save_trace


def test_writer_round_trip_with_local_ids(tmp_path):
    path = tmp_path / "trace.npz"
    with TraceWriter(path, num_dense=2, has_labels=True, local_ids=True) as writer:
        # Sample 0 uses row 0 of table 0 and row 1 of table 1; sample 1 uses row 2 of table 0.
        writer.append([2, 1], [0, 1, 2], tables=[0, 1, 0], dense=[[1, 2], [3, 4]], labels=[1, 0])
        writer.append([1], [1], tables=[1], dense=[[5, 6]], labels=[1])
        writer.close(table_offsets=[0, 3, 5], table_names=["a", "b"])

    trace = load_trace(path)
    # Global id = table offset + row: table 1 starts at 3, so row 1 of table 1 is id 4.
    assert trace.offsets.tolist() == [0, 2, 3, 4]
    assert trace.ids.tolist() == [0, 4, 2, 4]
    assert trace.table_offsets.tolist() == [0, 3, 5]
    assert trace.table_names == ("a", "b")
    assert trace.dense.tolist() == [[1, 2], [3, 4], [5, 6]]
    assert trace.labels.tolist() == [1, 0, 1]
    assert isinstance(trace.ids, np.memmap)
    assert isinstance(trace.offsets, np.memmap)
    assert [p.name for p in tmp_path.iterdir()] == ["trace.npz"]


def test_writer_matches_save_trace_content(tmp_path):
    trace = Trace(offsets=np.array([0, 1, 3], dtype=np.int64), ids=np.array([5, 1, 2], dtype=np.int64),
                  table_offsets=np.array([0, 6], dtype=np.int64))
    save_trace(tmp_path / "saved.npz", trace)
    with TraceWriter(tmp_path / "written.npz") as writer:
        writer.append([1, 2], [5, 1, 2])
        writer.close(table_offsets=[0, 6])
    saved, written = load_trace(tmp_path / "saved.npz"), load_trace(tmp_path / "written.npz")
    assert np.array_equal(saved.ids, written.ids)
    assert np.array_equal(saved.offsets, written.offsets)
    assert np.array_equal(saved.table_offsets, written.table_offsets)


def test_writer_bytes_are_deterministic(tmp_path):
    for name in ("one.npz", "two.npz"):
        with TraceWriter(tmp_path / name, has_labels=True) as writer:
            writer.append([1, 1], [3, 4], labels=[0, 1])
            writer.close(table_offsets=[0, 10])
    assert (tmp_path / "one.npz").read_bytes() == (tmp_path / "two.npz").read_bytes()


def test_writer_failure_leaves_no_file(tmp_path):
    path = tmp_path / "trace.npz"
    with pytest.raises(RuntimeError):
        with TraceWriter(path) as writer:
            writer.append([1], [0])
            raise RuntimeError("conversion failed")
    assert list(tmp_path.iterdir()) == []


def test_writer_rejects_id_outside_table(tmp_path):
    path = tmp_path / "trace.npz"
    with pytest.raises(TraceError, match="outside table 0 of 2 rows"):
        with TraceWriter(path, local_ids=True) as writer:
            writer.append([1], [2], tables=[0])
            writer.close(table_offsets=[0, 2])
    assert list(tmp_path.iterdir()) == []


def test_writer_rejects_empty_trace(tmp_path):
    with pytest.raises(TraceError, match="empty"):
        with TraceWriter(tmp_path / "trace.npz") as writer:
            writer.close()
    assert list(tmp_path.iterdir()) == []


def test_writer_rejects_inconsistent_chunk(tmp_path):
    with TraceWriter(tmp_path / "trace.npz") as writer:
        with pytest.raises(TraceError, match="sum to 3 but 2 ids"):
            writer.append([1, 2], [0, 1])
        with pytest.raises(TraceError, match="'labels' must be given"):
            writer.append([1], [0], labels=[1.0])
        writer.abort()
    assert list(tmp_path.iterdir()) == []

"""Damaged trace files, bad conversion input and bad generator settings: one project error, no partial output."""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from esd_gym.errors import ConfigError, TraceError
from esd_gym.workload.datasets import fetch_dataset
from esd_gym.workload.recbole import convert_recbole
from esd_gym.workload.stats import check_plot_path, compute_stats
from esd_gym.workload.synthetic import SyntheticConfig
from esd_gym.workload.tabular import convert_criteo
from esd_gym.workload.trace import Trace, TraceWriter, load_trace, save_trace

OFFSETS = np.array([0, 2, 4, 6], dtype=np.int64)
IDS = np.array([1, 2, 3, 4, 5, 6], dtype=np.int64)


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array)
    return buffer.getvalue()


def leftovers(directory: Path) -> list[str]:
    """Names of the hidden temporary files and directories that a failed write would leave."""
    return sorted(path.name for path in directory.iterdir() if path.name.startswith("."))


# -- load_trace --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [b"", b"hello world", npy_bytes(IDS)],
    ids=["empty file", "text", "plain .npy"],
)
def test_load_non_zip_file(tmp_path, content):
    path = tmp_path / "trace.npz"
    path.write_bytes(content)
    with pytest.raises(TraceError, match=r"trace\.npz: not a \.npz archive"):
        load_trace(path)


def test_load_truncated_archive(tmp_path):
    path = tmp_path / "trace.npz"
    np.savez(path, offsets=OFFSETS, ids=IDS)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(TraceError, match="not a .npz archive"):
        load_trace(path)


@pytest.mark.parametrize(
    ("member", "content", "problem"),
    [
        ("offsets", b"not an array", "magic string"),
        ("ids", npy_bytes(np.arange(1000, dtype=np.int64))[:200], "truncated"),
    ],
)
def test_load_damaged_member(tmp_path, member, content, problem):
    path = tmp_path / "trace.npz"
    members = {"offsets.npy": npy_bytes(OFFSETS), "ids.npy": npy_bytes(IDS), f"{member}.npy": content}
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(TraceError) as error:
        load_trace(path)
    message = str(error.value)
    assert f"member '{member}' is unreadable" in message
    assert problem in message


def test_load_object_array(tmp_path):
    path = tmp_path / "trace.npz"
    np.savez(path, offsets=np.array([0, 1, [2]], dtype=object), ids=IDS)
    with pytest.raises(TraceError, match="member 'offsets' is unreadable .*allow_pickle"):
        load_trace(path)


@pytest.mark.parametrize(
    ("table_offsets", "problem"),
    [
        (np.array([0.0, 3.5, 10.0]), "'table_offsets' must be an integer array, got float64"),
        (np.array(["a", "b"]), "'table_offsets' must be an integer array"),
        (np.array([[0, 10]]), "'table_offsets' must be 1-d, start at 0"),
        (np.zeros(0, dtype=np.int64), "'table_offsets' must be 1-d, start at 0"),
        (np.array([-5, 10]), "got [-5, 10]"),
        (np.array([0, 8, 4, 10]), "'table_offsets' decreases at table 1: 8 > 4"),
    ],
)
def test_load_bad_table_offsets(tmp_path, table_offsets, problem):
    path = tmp_path / "trace.npz"
    np.savez(path, offsets=OFFSETS, ids=IDS, table_offsets=table_offsets)
    with pytest.raises(TraceError) as error:
        load_trace(path)
    assert problem in str(error.value)


@pytest.mark.parametrize(
    ("members", "problem"),
    [
        ({"dense": np.zeros(3, np.float32)}, "'dense' must be a 2-d numeric array"),
        ({"dense": np.array([["a"]] * 3)}, "'dense' must be a 2-d numeric array"),
        ({"labels": np.zeros((3, 1), np.float32)}, "'labels' must be a 1-d numeric array"),
        ({"table_offsets": np.array([0, 10]), "table_names": np.array(["a", "b"])}, "2 names for 1 tables"),
        ({"table_names": np.array(["a"])}, "'table_names' is given without 'table_offsets'"),
    ],
)
def test_load_bad_optional_member(tmp_path, members, problem):
    path = tmp_path / "trace.npz"
    np.savez(path, offsets=OFFSETS, ids=IDS, **members)
    with pytest.raises(TraceError) as error:
        load_trace(path)
    assert problem in str(error.value)


def test_load_compressed_trace_still_works(tmp_path):
    path = tmp_path / "trace.npz"
    np.savez_compressed(path, offsets=OFFSETS, ids=IDS, table_offsets=np.array([0, 7]), table_names=np.array(["t"]))
    trace = load_trace(path)
    assert trace.ids.tolist() == IDS.tolist()
    assert trace.table_names == ("t",)


# -- writing traces ----------------------------------------------------------------------------------------------


def test_writer_output_is_directory(tmp_path):
    with pytest.raises(TraceError, match="the output path is a directory"):
        TraceWriter(tmp_path)
    assert leftovers(tmp_path) == []


def test_writer_parent_is_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError) as error:
        TraceWriter(tmp_path / "file" / "trace.npz")
    assert error.value.filename == str(tmp_path / "file" / "trace.npz")
    assert "a parent of it is a file" in error.value.strerror


def test_save_trace_output_is_directory(tmp_path):
    with pytest.raises(TraceError, match="the output path is a directory"):
        save_trace(tmp_path, Trace(offsets=OFFSETS, ids=IDS))


# -- conversion --------------------------------------------------------------------------------------------------


def criteo_lines(count: int) -> bytes:
    rng = np.random.default_rng(0)
    lines = []
    for _ in range(count):
        fields = [str(rng.integers(0, 2))] + [str(v) for v in rng.integers(0, 50, 13)]
        fields += [f"{v:08x}" for v in rng.integers(0, 2**32, 26)]
        lines.append("\t".join(fields))
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_convert_damaged_gzip(tmp_path, damage):
    compressed = bytearray(gzip.compress(criteo_lines(200)))
    if damage == "truncated":
        compressed = compressed[: len(compressed) // 2]
    else:
        middle = len(compressed) // 2
        compressed[middle : middle + 8] = b"\xff" * 8
    source = tmp_path / "day.txt.gz"
    source.write_bytes(bytes(compressed))
    output = tmp_path / "out" / "trace.npz"
    with pytest.raises(TraceError, match=r"day\.txt\.gz: the gzip data is truncated or corrupt"):
        convert_criteo(source, output)
    assert not output.exists()
    assert leftovers(output.parent) == []


@pytest.fixture
def inter_file(tmp_path) -> Path:
    path = tmp_path / "tiny.inter"
    rows = "".join(f"{u}\t{i}\t{r}\n" for u, i, r in [(1, 1, 5), (1, 2, 3), (2, 1, 4), (3, 3, 1)])
    path.write_text("user_id:token\titem_id:token\trating:float\n" + rows)
    return path


@pytest.mark.parametrize("threshold", [float("nan"), float("inf")])
def test_recbole_non_finite_threshold(tmp_path, inter_file, threshold):
    with pytest.raises(ConfigError, match="label threshold must be a finite number"):
        convert_recbole(inter_file, tmp_path / "out.npz", label_threshold=threshold)
    assert not (tmp_path / "out.npz").exists()


def test_recbole_every_token_column_excluded(tmp_path, inter_file):
    with pytest.raises(ConfigError, match=r"tiny\.inter: no token column is left .*excluded: item_id, user_id"):
        convert_recbole(inter_file, tmp_path / "out.npz", exclude_fields=("user_id", "item_id"))
    assert not (tmp_path / "out.npz").exists()


# -- generation, statistics, fetching ----------------------------------------------------------------------------


def test_synthetic_negative_seed():
    with pytest.raises(ConfigError, match="seed must not be negative, got -1"):
        SyntheticConfig(cardinalities=(10,), seed=-1)


def test_stats_huge_ids_without_tables():
    # Hashed 64-bit ids: a counter per row of the id space would need exabytes.
    trace = Trace(offsets=OFFSETS, ids=np.array([5, 3, 5, 2**62, 3, 5], dtype=np.int64))
    stats = compute_stats(trace)
    assert stats.overall.rows == 2**62 + 1
    assert stats.overall.distinct_ids == 3
    assert stats.overall.lookups == 6
    assert sorted(stats.counts.tolist()) == [1, 2, 3]
    assert stats.tables[0].distinct_ids == 3


def test_stats_dense_counts_unchanged():
    trace = Trace(offsets=OFFSETS, ids=np.array([5, 3, 5, 1, 3, 5], dtype=np.int64))
    assert compute_stats(trace).counts.tolist() == [0, 1, 0, 2, 0, 3]


@pytest.mark.parametrize(("name", "problem"), [("plot.txt", "suffix of an image format"), ("plot", "got ''")])
def test_plot_path_suffix(tmp_path, name, problem):
    with pytest.raises(ConfigError) as error:
        check_plot_path(tmp_path / name)
    assert problem in str(error.value)


def test_plot_path_directory(tmp_path):
    with pytest.raises(ConfigError, match="the plot path is a directory"):
        check_plot_path(tmp_path)


@pytest.mark.parametrize("timeout", [-1.0, 0.0, float("nan"), "5"])
def test_fetch_bad_timeout(tmp_path, timeout):
    # Checked before any download or copy, so the local source is never read.
    with pytest.raises(ConfigError, match="timeout must be a positive number of seconds"):
        fetch_dataset("ml-100k", tmp_path, source=tmp_path / "missing", timeout=timeout)

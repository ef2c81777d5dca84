"""RecBole atomic-file reader on small hand-written datasets."""

from __future__ import annotations

import numpy as np
import pytest

from esd_gym.errors import ConfigError, TraceError
from esd_gym.workload.convert import detect_format
from esd_gym.workload.recbole import convert_recbole
from esd_gym.workload.trace import load_trace


def write_dataset(directory, inter, user=None, item=None, name="toy"):
    directory.mkdir(exist_ok=True)
    for suffix, lines in (("inter", inter), ("user", user), ("item", item)):
        if lines is not None:
            (directory / f"{name}.{suffix}").write_text("\n".join(lines) + "\n")
    return directory


def sample_ids(trace, index):
    return trace.ids[trace.offsets[index] : trace.offsets[index + 1]].tolist()


def test_token_seq_is_multi_hot(tmp_path):
    source = write_dataset(tmp_path / "toy", [
        "user_id:token\titem_id:token\trating:float\ttags:token_seq",
        "u1\ti1\t5\ta b",
        "u2\ti1\t2\t",
        "u1\ti2\t4\tb c a",
    ])
    assert detect_format(source) == "recbole"
    report = convert_recbole(source, tmp_path / "out.npz")
    trace = load_trace(tmp_path / "out.npz")

    assert trace.table_names == ("user_id", "item_id", "tags")
    # tags: a, b, c and the empty value of line 2.
    assert report.table_sizes == [2, 2, 4]
    assert trace.offsets.tolist() == [0, 4, 7, 12]
    tags = trace.table_offsets[2]
    first, third = sample_ids(trace, 0), sample_ids(trace, 2)
    assert len(set(first[2:]) | set(third[2:])) == 3
    assert set(first[2:]) < set(third[2:])
    assert all(tags <= i < tags + 4 for i in first[2:] + third[2:])
    # Ratings 5, 2, 4 with the default threshold 4.
    assert trace.labels.tolist() == [1.0, 0.0, 1.0]
    assert trace.dense is None


def test_user_and_item_files_are_joined(tmp_path):
    source = write_dataset(
        tmp_path / "toy",
        inter=["user_id:token\titem_id:token\ttimestamp:float", "u1\ti1\t10", "u2\ti2\t20", "u1\ti2\t30"],
        user=["user_id:token\tage:token\theight:float", "u1\t20\t1.5", "u2\t30\t1.8"],
        item=["item_id:token\tgenre:token_seq", "i1\tDrama", "i2\tDrama Comedy"],
    )
    report = convert_recbole(source, tmp_path / "out.npz")
    trace = load_trace(tmp_path / "out.npz")

    assert trace.table_names == ("user_id", "item_id", "age", "genre")
    assert report.table_sizes == [2, 2, 2, 2]
    assert report.missing_join_keys == 0
    assert trace.labels is None
    offsets = trace.table_offsets
    # Sample 2 is (u1, i2): age of u1 and both genres of i2.
    ids = sample_ids(trace, 2)
    assert len(ids) == 5
    assert ids[2] == sample_ids(trace, 0)[2]
    assert ids[2] != sample_ids(trace, 1)[2]
    assert sorted(i - offsets[3] for i in ids[3:]) == [0, 1]
    # Dense: the .inter float first, then the .user float.
    assert trace.dense == pytest.approx(np.array([[10.0, 1.5], [20.0, 1.8], [30.0, 1.5]]))


def test_missing_join_key_gets_missing_ids(tmp_path):
    source = write_dataset(
        tmp_path / "toy",
        inter=["user_id:token\titem_id:token", "u1\ti1", "u9\ti1"],
        user=["user_id:token\tage:token\theight:float", "u1\t20\t1.5"],
    )
    report = convert_recbole(source, tmp_path / "out.npz")
    trace = load_trace(tmp_path / "out.npz")
    assert report.missing_join_keys == 1
    # age gains a row for "missing"; the unknown user's height reads 0.
    assert report.table_sizes == [2, 1, 2]
    assert sample_ids(trace, 0)[2] != sample_ids(trace, 1)[2]
    assert trace.dense.tolist() == [[1.5], [0.0]]


def test_missing_join_column_is_rejected(tmp_path):
    source = write_dataset(
        tmp_path / "toy",
        inter=["user_id:token\trating:float", "u1\t3"],
        item=["item_id:token\tgenre:token", "i1\tDrama"],
    )
    with pytest.raises(TraceError, match="no token column 'item_id' to join toy.item on"):
        convert_recbole(source, tmp_path / "out.npz")


def test_header_only_inter_file(tmp_path):
    source = write_dataset(tmp_path / "toy", ["user_id:token\titem_id:token"])
    with pytest.raises(TraceError, match="header but no interactions"):
        convert_recbole(source, tmp_path / "out.npz")
    assert not (tmp_path / "out.npz").exists()


def test_bad_lines_error_and_skip(tmp_path):
    source = write_dataset(tmp_path / "toy", [
        "user_id:token\titem_id:token\trating:float",
        "u1\ti1\t5",
        "u2\ti1\tfive",
        "u3\ti2",
        "u4\ti2\t1",
    ])
    inter = source / "toy.inter"
    with pytest.raises(TraceError, match=rf"{inter}:3:3: invalid number in field rating \(got 'five'\)"):
        convert_recbole(source, tmp_path / "out.npz")
    assert not (tmp_path / "out.npz").exists()

    report = convert_recbole(source, tmp_path / "out.npz", on_bad_line="skip")
    trace = load_trace(tmp_path / "out.npz")
    assert report.skipped_lines == 2
    assert report.num_samples == 2
    assert trace.labels.tolist() == [1.0, 0.0]
    # u2 and u3 were skipped before their values reached the vocabulary.
    assert report.table_sizes[0] == 2


def test_unknown_field_type(tmp_path):
    source = write_dataset(tmp_path / "toy", ["user_id:token\tscore:double", "u1\t1"])
    with pytest.raises(TraceError, match=r"toy\.inter:1:2: unknown field type 'double' of 'score'"):
        convert_recbole(source, tmp_path / "out.npz")


def test_label_options(tmp_path):
    source = write_dataset(tmp_path / "toy", ["user_id:token\tlabel:float\trating:float", "u1\t1\t2", "u2\t0\t5"])
    convert_recbole(source, tmp_path / "auto.npz", label_threshold=None)
    auto = load_trace(tmp_path / "auto.npz")
    # "auto" prefers the label column; rating then stays a dense feature.
    assert auto.labels.tolist() == [1.0, 0.0]
    assert auto.dense.tolist() == [[2.0], [5.0]]

    convert_recbole(source, tmp_path / "rating.npz", label_field="rating", label_threshold=3.0)
    assert load_trace(tmp_path / "rating.npz").labels.tolist() == [0.0, 1.0]

    convert_recbole(source, tmp_path / "none.npz", label_field=None, exclude_fields=("rating",))
    none = load_trace(tmp_path / "none.npz")
    assert none.labels is None
    assert none.dense.tolist() == [[1.0], [0.0]]

    with pytest.raises(ConfigError, match="label field 'click' is not a column"):
        convert_recbole(source, tmp_path / "bad.npz", label_field="click")


def test_duplicate_side_key(tmp_path):
    source = write_dataset(
        tmp_path / "toy",
        inter=["user_id:token", "u1"],
        user=["user_id:token\tage:token", "u1\t20", "u1\t30"],
    )
    with pytest.raises(TraceError, match=r"toy\.user:3:1: duplicate user_id \(got 'u1'\)"):
        convert_recbole(source, tmp_path / "out.npz")


def test_float_seq_width(tmp_path):
    source = write_dataset(tmp_path / "toy", ["user_id:token\temb:float_seq", "u1\t0.5 1.5", "u2\t2 3"])
    convert_recbole(source, tmp_path / "out.npz", label_field=None)
    assert load_trace(tmp_path / "out.npz").dense.tolist() == [[0.5, 1.5], [2.0, 3.0]]

    ragged = write_dataset(tmp_path / "ragged", ["user_id:token\temb:float_seq", "u1\t0.5 1.5", "u2\t2"], name="ragged")
    with pytest.raises(TraceError, match=r":3:2: emb has 1 values where the first line has 2"):
        convert_recbole(ragged, tmp_path / "out2.npz", label_field=None)

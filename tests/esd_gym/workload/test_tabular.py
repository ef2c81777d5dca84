"""Criteo and Avazu readers on small hand-written files."""

from __future__ import annotations

import gzip
import math

import numpy as np
import pytest

from esd_gym.errors import TraceError
from esd_gym.workload.convert import convert_dataset, detect_format
from esd_gym.workload.tabular import convert_avazu, convert_criteo
from esd_gym.workload.trace import load_trace

CATS = [f"c{i:07x}" for i in range(26)]


def criteo_line(label="1", ints=("1",) * 13, cats=tuple(CATS), separator="\t"):
    return separator.join([label, *ints, *cats])


def write(path, lines, end="\n"):
    path.write_text("".join(line + end for line in lines))
    return path


def table_rows(trace, table):
    """Row index inside ``table`` of that table's id in every sample (one id per table per sample)."""
    width = len(trace.table_offsets) - 1
    return (trace.ids.reshape(-1, width)[:, table] - trace.table_offsets[table]).tolist()


def test_criteo_empty_fields_and_trailing_tab(tmp_path):
    ints = ["5", "", "-3"] + ["0"] * 10
    # C1 is empty on line 1 and set on line 2; C26 is empty on line 1, so that line ends with a tab.
    line1 = criteo_line("1", ints, [""] + CATS[1:25] + [""])
    line2 = criteo_line("0", ["1"] * 13, CATS)
    source = write(tmp_path / "day.tsv", [line1, line2])
    assert line1.endswith("\t")

    report = convert_criteo(source, tmp_path / "out.npz")
    trace = load_trace(tmp_path / "out.npz")

    assert report.num_samples == 2
    assert trace.table_names == tuple(f"C{i}" for i in range(1, 27))
    assert trace.offsets.tolist() == [0, 26, 52]
    # "Missing" is a value of its own: C1 and C26 have two rows each (missing, and the value of line 2).
    assert report.table_sizes[0] == 2
    assert report.table_sizes[25] == 2
    assert report.table_sizes[1] == 1
    assert table_rows(trace, 0)[0] != table_rows(trace, 0)[1]
    assert table_rows(trace, 25)[0] != table_rows(trace, 25)[1]
    assert table_rows(trace, 1) == [0, 0]
    # Dense: log(1 + x) with empty read as 0 and negatives clipped to 0, as facebookresearch/dlrm does.
    assert trace.dense[0, :3] == pytest.approx([math.log(6), 0.0, 0.0])
    assert trace.dense[1, 0] == pytest.approx(math.log(2))
    assert trace.labels.tolist() == [1.0, 0.0]


def test_criteo_csv_with_header(tmp_path):
    header = ",".join(["label", *[f"I{i}" for i in range(1, 14)], *[f"C{i}" for i in range(1, 27)]])
    lines = [header, criteo_line("0", separator=","), criteo_line("1", cats=["x"] * 26, separator=",")]
    source = write(tmp_path / "train.csv", lines)
    assert detect_format(source) == "criteo"
    report = convert_dataset(source, tmp_path / "out.npz")
    trace = load_trace(tmp_path / "out.npz")
    assert report.num_samples == 2
    assert trace.table_names[0] == "C1"
    assert trace.labels.tolist() == [0.0, 1.0]
    assert report.table_sizes == [2] * 26


def test_criteo_header_only_csv_is_empty_trace(tmp_path):
    header = ",".join(["label", *[f"I{i}" for i in range(1, 14)], *[f"C{i}" for i in range(1, 27)]])
    source = write(tmp_path / "train.csv", [header])
    with pytest.raises(TraceError, match="empty"):
        convert_criteo(source, tmp_path / "out.npz")
    assert not (tmp_path / "out.npz").exists()


def test_criteo_empty_file(tmp_path):
    source = tmp_path / "empty.tsv"
    source.write_text("")
    with pytest.raises(TraceError, match="the file is empty"):
        convert_criteo(source, tmp_path / "out.npz")


def test_criteo_short_line_names_line_and_column(tmp_path):
    short = criteo_line()[: -len("\t" + CATS[-1])]  # 39 fields: C26 is missing, not empty
    source = write(tmp_path / "day.tsv", [criteo_line(), criteo_line(), short, criteo_line()])
    with pytest.raises(TraceError) as caught:
        convert_criteo(source, tmp_path / "out.npz")
    # Line 3 has 39 fields, so the first missing field is field 40.
    assert str(caught.value).startswith(f"{source}:3:40: expected 40 fields, found 39 (got 'c0000018')")
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "out.npz").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["day.tsv"]


def test_criteo_bad_integer_names_field(tmp_path):
    ints = ["1", "x7"] + ["0"] * 11
    source = write(tmp_path / "day.tsv", [criteo_line(), criteo_line(ints=ints)])
    # I2 is the third field of the line.
    with pytest.raises(TraceError, match=r"day\.tsv:2:3: invalid integer in field I2 \(got 'x7'\)"):
        convert_criteo(source, tmp_path / "out.npz")


def test_criteo_reports_earliest_bad_line(tmp_path):
    bad_label = criteo_line(label="7")
    bad_int = criteo_line(ints=["q"] * 13)
    source = write(tmp_path / "day.tsv", [criteo_line(), bad_label, bad_int])
    with pytest.raises(TraceError, match=r":2:1: label column 'label' must be 0 or 1 \(got '7'\)"):
        convert_criteo(source, tmp_path / "out.npz")


def test_criteo_skip_mode_counts_bad_lines(tmp_path):
    lines = [
        criteo_line("1"),
        criteo_line("0", ints=["bad"] + ["0"] * 12),
        criteo_line("0"),
        "too\tfew\tfields",
        criteo_line("1", cats=["z"] * 26),
    ]
    source = write(tmp_path / "day.tsv", lines)
    report = convert_criteo(source, tmp_path / "out.npz", on_bad_line="skip")
    trace = load_trace(tmp_path / "out.npz")
    assert report.skipped_lines == 2
    assert report.num_samples == 3
    assert trace.labels.tolist() == [1.0, 0.0, 1.0]
    # The skipped line with 'bad' added no value to any table: C1 contains CATS[0] and "z" only.
    assert report.table_sizes[0] == 2


def test_criteo_blocks_crlf_gzip_and_blank_lines_agree(tmp_path):
    lines = [criteo_line(str(i % 2), [str(i)] * 13, [f"{i % 3:x}"] * 26) for i in range(40)]
    plain = write(tmp_path / "plain.tsv", lines)
    convert_criteo(plain, tmp_path / "plain.npz")
    expected = load_trace(tmp_path / "plain.npz")

    crlf = write(tmp_path / "crlf.tsv", lines, end="\r\n")
    packed = tmp_path / "packed.tsv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    blank = write(tmp_path / "blank.tsv", lines[:20] + [""] + lines[20:])
    variants = [(crlf, {}), (packed, {}), (blank, {}), (plain, {"block_bytes": 100})]
    for index, (source, options) in enumerate(variants):
        out = tmp_path / f"variant{index}.npz"
        convert_criteo(source, out, **options)
        trace = load_trace(out)
        assert np.array_equal(trace.ids, expected.ids), source.name
        assert np.array_equal(trace.dense, expected.dense), source.name
        assert np.array_equal(trace.labels, expected.labels), source.name


def test_criteo_line_numbers_after_blank_line_and_blocks(tmp_path):
    lines = [criteo_line()] * 30 + [""] + [criteo_line()] * 5 + [criteo_line(label="x")]
    source = write(tmp_path / "day.tsv", lines)
    # The bad label is on line 37 (30 lines, a blank one, 5 more), whatever the block size.
    for block_bytes in (64, 1 << 20):
        with pytest.raises(TraceError, match=r"day\.tsv:37:1:"):
            convert_criteo(source, tmp_path / "out.npz", block_bytes=block_bytes)


def test_criteo_without_label_column(tmp_path):
    line = "\t".join(["3"] * 13 + CATS)
    source = write(tmp_path / "test.txt", [line, line])
    report = convert_criteo(source, tmp_path / "out.npz")
    trace = load_trace(tmp_path / "out.npz")
    assert report.num_samples == 2
    assert trace.labels is None
    assert trace.dense[0, 0] == pytest.approx(math.log(4))


def test_criteo_max_table_size_bounds_tables(tmp_path):
    lines = [criteo_line(cats=[f"{i:08x}"] * 26) for i in range(50)]
    source = write(tmp_path / "day.tsv", lines)
    report = convert_criteo(source, tmp_path / "out.npz", max_table_size=7)
    trace = load_trace(tmp_path / "out.npz")
    # 50 distinct values hashed into at most 7 buckets: each table has at most 7 rows, and with 50 values nearly
    # surely all 7 (the chance that a bucket stays empty is below 7 * (6/7)^50 < 0.1 %).
    assert report.table_sizes == [7] * 26
    assert trace.table_offsets[-1] == 7 * 26


def test_avazu_columns_and_labels(tmp_path):
    lines = [
        "id,click,hour,C1,site_id",
        "1000009418151094273,0,14102100,1005,1fbe01fe",
        "10000169349117863715,1,14102100,1005,",
        "10000371904215119486,0,14102101,1002,1fbe01fe",
    ]
    source = write(tmp_path / "train.csv", lines)
    assert detect_format(source) == "avazu"
    report = convert_dataset(source, tmp_path / "out.npz")
    trace = load_trace(tmp_path / "out.npz")
    assert trace.table_names == ("hour", "C1", "site_id")
    assert trace.labels.tolist() == [0.0, 1.0, 0.0]
    assert trace.dense is None
    # hour: 2 values, C1: 2 values, site_id: '1fbe01fe' and missing.
    assert report.table_sizes == [2, 2, 2]
    assert trace.offsets.tolist() == [0, 3, 6, 9]
    assert table_rows(trace, 0) == [0, 0, 1]
    assert table_rows(trace, 2)[0] == table_rows(trace, 2)[2]
    assert table_rows(trace, 2)[1] != table_rows(trace, 2)[0]


def test_avazu_test_file_without_click(tmp_path):
    source = write(tmp_path / "test.csv", ["id,hour,C1", "1,14103100,1005", "2,14103100,1010"])
    report = convert_avazu(source, tmp_path / "out.npz")
    trace = load_trace(tmp_path / "out.npz")
    assert trace.labels is None
    assert report.table_names == ["hour", "C1"]


def test_avazu_header_only_and_bad_click(tmp_path):
    header_only = write(tmp_path / "empty.csv", ["id,click,hour"])
    with pytest.raises(TraceError, match="empty"):
        convert_avazu(header_only, tmp_path / "out.npz")
    bad = write(tmp_path / "bad.csv", ["id,click,hour", "1,0,14102100", "2,yes,14102100"])
    with pytest.raises(TraceError, match=r"bad\.csv:3:2: label column 'click' must be 0 or 1 \(got 'yes'\)"):
        convert_avazu(bad, tmp_path / "out.npz")
    report = convert_avazu(bad, tmp_path / "out.npz", on_bad_line="skip")
    assert report.skipped_lines == 1
    assert report.num_samples == 1


def test_detect_format_rejects_unknown_file(tmp_path):
    source = write(tmp_path / "notes.txt", ["hello world"])
    with pytest.raises(TraceError, match="cannot detect the format"):
        detect_format(source)

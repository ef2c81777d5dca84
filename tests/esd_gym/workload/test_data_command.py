"""The esd-gym data convert command: summary, skip mode, one-line errors and no partial output."""

from __future__ import annotations

from esd_gym.workload.trace import load_trace
from experiments.cli import main

HEADER = "id,click,hour,site_id"


def write_avazu(path, rows):
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


def test_convert_prints_summary(tmp_path, capsys):
    source = write_avazu(tmp_path / "train.csv", ["1,0,14102100,a", "2,1,14102100,b", "3,0,14102101,a"])
    assert main(["data", "convert", str(source), "-o", str(tmp_path / "out.npz")]) == 0
    output = capsys.readouterr().out
    assert "3 samples, 6 ids, 2 tables (4 rows)" in output
    assert "format avazu" in output
    assert "rows/s" in output
    assert load_trace(tmp_path / "out.npz").num_samples == 3


def test_convert_skip_reports_count(tmp_path, capsys):
    source = write_avazu(tmp_path / "train.csv", ["1,0,14102100,a", "2,2,14102100,b", "3,0,14102101", "4,1,1,c"])
    arguments = ["data", "convert", str(source), "-o", str(tmp_path / "out.npz"), "--on-bad-line", "skip"]
    assert main(arguments) == 0
    assert "bad lines skipped: 2" in capsys.readouterr().out
    assert load_trace(tmp_path / "out.npz").num_samples == 2


def test_convert_error_is_one_line(tmp_path, capsys):
    source = write_avazu(tmp_path / "train.csv", ["1,0,14102100,a", "2,0,14102100"])
    assert main(["data", "convert", str(source), "-o", str(tmp_path / "out.npz"), "--format", "avazu"]) == 2
    error = capsys.readouterr().err
    # Line 3 of the file (after the header and one good line) has 3 of 4 fields: field 4 is missing.
    assert error == f"esd-gym data: error: {source}:3:4: expected 4 fields, found 3 (got '14102100'); " \
                    "pass --on-bad-line skip to skip such lines\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["train.csv"]

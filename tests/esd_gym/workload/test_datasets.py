"""Fetching, verifying and converting MovieLens-100K."""

from __future__ import annotations

import csv
import io
import logging
import shutil
import zipfile

import pytest

from esd_gym.errors import DataError
from esd_gym.workload import datasets
from esd_gym.workload.datasets import (
    ML100K_SHA256,
    dataset_is_present,
    dataset_trace_path,
    default_data_dir,
    fetch_dataset,
)
from esd_gym.workload.stats import compute_stats
from esd_gym.workload.trace import load_trace
from experiments.cli import main


def count_distinct(inter_path, column):
    """Count the distinct values of a column of a RecBole .inter file with the csv module (not the reader)."""
    with open(inter_path, newline="") as handle:
        rows = csv.reader(handle, delimiter="\t")
        header = next(rows)
        index = [name.split(":")[0] for name in header].index(column)
        return len({row[index] for row in rows})


def test_ml100k_fetch_convert_stats_cli(ml100k_files, tmp_path, capsys):
    data_dir = tmp_path / "cache"
    assert main(["data", "fetch", "ml-100k", "--data-dir", str(data_dir), "--source", str(ml100k_files)]) == 0
    assert main(["data", "fetch", "ml-100k", "--data-dir", str(data_dir)]) == 0
    assert "already present" in capsys.readouterr().out

    trace_path = tmp_path / "ml-100k.npz"
    assert main(["data", "convert", "ml-100k", "--data-dir", str(data_dir), "-o", str(trace_path)]) == 0
    assert main(["data", "stats", str(trace_path), "--plot", str(tmp_path / "rank.png")]) == 0
    output = capsys.readouterr().out

    # MovieLens-100K has 100,000 ratings by 943 users of 1,682 movies. The csv-module counts of the .inter file
    # below check the two cardinalities without the reader under test.
    trace = load_trace(trace_path)
    stats = compute_stats(trace)
    tables = {table.name: table for table in stats.tables}
    assert trace.num_samples == 100_000
    assert tables["user_id"].distinct_ids == 943
    assert tables["item_id"].distinct_ids == 1682
    assert count_distinct(data_dir / "ml-100k" / "ml-100k.inter", "user_id") == 943
    assert count_distinct(data_dir / "ml-100k" / "ml-100k.inter", "item_id") == 1682
    assert "100,000 samples" in output
    user_row = [line.split("│")[1:4] for line in output.splitlines() if "│ user_id" in line]
    assert [[cell.strip() for cell in row] for row in user_row] == [["user_id", "943", "943"]]
    assert (tmp_path / "rank.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fetch_is_noop_when_present(ml100k_files, tmp_path, caplog):
    target = fetch_dataset("ml-100k", tmp_path, source=ml100k_files)
    before = {path.name: path.stat().st_mtime_ns for path in target.iterdir()}
    with caplog.at_level(logging.INFO, logger="esd_gym.workload.datasets"):
        assert fetch_dataset("ml-100k", tmp_path) == target
    assert "already present" in caplog.text
    assert {path.name: path.stat().st_mtime_ns for path in target.iterdir()} == before
    assert dataset_is_present("ml-100k", tmp_path)


def test_fetch_rejects_modified_copy(ml100k_files, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(ml100k_files, copy)
    with open(copy / "ml-100k.user", "ab") as handle:
        handle.write(b"944\t30\tM\tother\t00000\n")
    with pytest.raises(DataError, match="checksum mismatch for ml-100k.user"):
        fetch_dataset("ml-100k", tmp_path / "cache", source=copy)
    assert not (tmp_path / "cache" / "ml-100k").exists()
    assert [path.name for path in (tmp_path / "cache").iterdir()] == []


def test_fetch_from_wheel_file(ml100k_files, tmp_path):
    wheel = tmp_path / "recbole-1.2.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as bundle:
        bundle.writestr("recbole/__init__.py", "")
        for name in ML100K_SHA256:
            bundle.write(ml100k_files / name, f"recbole/dataset_example/ml-100k/{name}")
    target = fetch_dataset("ml-100k", tmp_path / "cache", source=wheel)
    for name in ML100K_SHA256:
        assert (target / name).read_bytes() == (ml100k_files / name).read_bytes()
    assert (target / "SOURCE").read_text().strip() == "recbole"


def test_grouplens_archive_conversion(tmp_path):
    genres = ["0"] * 19
    genres[1] = genres[16] = "1"  # Action and Thriller in u.genre order
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("ml-100k/u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
        bundle.writestr("ml-100k/u.user", "196|49|M|writer|55105\n186|39|F|executive|00000\n")
        item = "|".join(["242", "Kolya (1996)", "24-Jan-1997", "", "http://x", *genres])
        bundle.writestr("ml-100k/u.item", item + "\n" + item.replace("242|Kolya", "302|L.A. Confidential") + "\n")
    datasets._atomic_from_grouplens(archive.getvalue(), tmp_path)

    assert (tmp_path / "ml-100k.inter").read_text().splitlines() == [
        "user_id:token\titem_id:token\trating:float\ttimestamp:float",
        "196\t242\t3\t881250949",
        "186\t302\t3\t891717742",
    ]
    assert (tmp_path / "ml-100k.user").read_text().splitlines()[1] == "196\t49\tM\twriter\t55105"
    assert (tmp_path / "ml-100k.item").read_text().splitlines()[1] == "242\tKolya\t1997\tAction Thriller"
    with pytest.raises(DataError, match="MD5 is not"):
        datasets._check_grouplens_md5(archive.getvalue(), "ml-100k.zip")


def test_dataset_trace_path_converts_once(ml100k_files, tmp_path):
    path = dataset_trace_path("ml-100k", tmp_path, source=ml100k_files)
    assert path == tmp_path / "ml-100k.npz"
    assert load_trace(path).num_samples == 100_000
    modified = path.stat().st_mtime_ns
    assert dataset_trace_path("ml-100k", tmp_path) == path
    assert path.stat().st_mtime_ns == modified


def test_data_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ESD_GYM_DATA_DIR", str(tmp_path))
    assert default_data_dir() == tmp_path
    monkeypatch.delenv("ESD_GYM_DATA_DIR")
    assert default_data_dir().parts[-2:] == (".cache", "esd-gym")
    with pytest.raises(DataError, match="unknown dataset 'ml-1b'; available: ml-100k"):
        fetch_dataset("ml-1b", tmp_path)


@pytest.mark.slow
def test_fetch_downloads_recbole_wheel(monkeypatch, tmp_path):
    # Point GroupLens at a closed local port, so that the fetch takes the PyPI path.
    monkeypatch.setattr(datasets, "GROUPLENS_ML100K_URL", "http://127.0.0.1:9/ml-100k.zip")
    try:
        target = fetch_dataset("ml-100k", tmp_path, timeout=1.0)
    except DataError as error:
        if "pip download" in str(error):
            pytest.skip(f"PyPI is not reachable from this machine: {error}")
        raise
    assert (target / "SOURCE").read_text().strip() == "recbole"
    assert dataset_is_present("ml-100k", tmp_path)

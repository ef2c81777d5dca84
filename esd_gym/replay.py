"""Replay an externally produced dispatch log through the simulator (``esd-gym replay``).

The log is a CSV with the header ``sample,worker`` and one row per sample in dispatch order. Consecutive
``batch_size`` rows form one iteration, and the last batch may be short. Every sample of the trace must appear
exactly once.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from esd_gym.batch import gather_batch
from esd_gym.cluster import Cluster
from esd_gym.errors import AssignmentError, ConfigError, TraceError
from esd_gym.report import EpisodeTotals, IterationReport
from esd_gym.simulator import Simulator
from esd_gym.workload.trace import Trace

__all__ = ["check_ids_in_range", "read_assignments", "replay", "static_hot_set"]


def read_assignments(path: str | os.PathLike[str], num_samples: int, num_workers: int) -> tuple[np.ndarray, np.ndarray]:
    """Read and check a dispatch log; return (samples, workers), int64 arrays in dispatch order.

    Raises :class:`AssignmentError` naming ``file:line`` (and column for a bad cell) for a malformed row, a worker
    outside ``0..num_workers-1``, a sample outside the trace or placed twice, and for a sample that is missing.
    """
    path = Path(path)
    if not path.is_file():
        raise AssignmentError(f"{path}: assignments file not found")
    raw = path.read_bytes()
    try:
        # utf-8-sig drops the byte-order mark that spreadsheet programs put before the header.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise AssignmentError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[error.start]:02x})") from None
    del raw
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        samples, workers = _read_rows(reader, path, num_samples, num_workers)
    except csv.Error as error:
        raise AssignmentError(f"{path}:{reader.line_num}: malformed CSV ({error})") from None
    if len(samples) < num_samples:
        placed = np.zeros(num_samples, dtype=bool)
        placed[samples] = True
        missing = np.flatnonzero(~placed)
        raise AssignmentError(
            f"{path}: sample {int(missing[0])} is missing ({len(missing)} of {num_samples} trace samples unplaced)"
        )
    return np.array(samples, dtype=np.int64), np.array(workers, dtype=np.int64)


# A decimal integer in ASCII digits. Python's int() would also take "1_000" and digits of other scripts.
_INTEGER = re.compile(r"[+-]?[0-9]+")
# Maximum characters of a cell or row shown in a message.
_SHOWN_CHARS = 60


def _shorten(text: str) -> str:
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def _read_rows(reader, path: Path, num_samples: int, num_workers: int) -> tuple[list[int], list[int]]:
    """Check the header and every row of a dispatch log; return its samples and workers in dispatch order."""
    header = next(reader, None)
    if header is None:
        raise AssignmentError(f"{path}: file is empty (expected the header 'sample,worker')")
    if [cell.strip() for cell in header] != ["sample", "worker"]:
        raise AssignmentError(f"{path}:1: header must be 'sample,worker' (got {_shorten(','.join(header))!r})")
    samples: list[int] = []
    workers: list[int] = []
    line_of_sample: dict[int, int] = {}
    for row in reader:
        line = reader.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != 2:
            raise AssignmentError(
                f"{path}:{line}: expected 2 cells 'sample,worker', got {len(row)}: {_shorten(repr(row))}"
            )
        sample = _parse_int(row[0], path, line, column=1, name="sample")
        worker = _parse_int(row[1], path, line, column=2, name="worker")
        if not 0 <= sample < num_samples:
            raise AssignmentError(f"{path}:{line}: sample {sample} is outside the trace (0..{num_samples - 1})")
        if not 0 <= worker < num_workers:
            raise AssignmentError(f"{path}:{line}: worker {worker} is outside 0..{num_workers - 1}")
        if sample in line_of_sample:
            raise AssignmentError(
                f"{path}:{line}: sample {sample} is placed twice (first at line {line_of_sample[sample]})"
            )
        line_of_sample[sample] = line
        samples.append(sample)
        workers.append(worker)
    return samples, workers


def _parse_int(cell: str, path: Path, line: int, column: int, name: str) -> int:
    text = cell.strip()
    if not _INTEGER.fullmatch(text):
        raise AssignmentError(f"{path}:{line}:{column}: {name} must be an integer (got {_shorten(cell)!r})")
    # int() refuses strings of more than 4300 digits; a number above 19 digits is beyond any trace or cluster.
    if len(text.lstrip("+-").lstrip("0")) > 19:
        raise AssignmentError(f"{path}:{line}:{column}: {name} {_shorten(text)} is too large")
    return int(text)


def check_ids_in_range(trace: Trace, cluster: Cluster) -> None:
    """Raise :class:`TraceError` when an id lies beyond the id space the cluster shards (range sharding)."""
    num_rows = cluster.config.num_rows
    if num_rows is not None and len(trace.ids):
        top = int(np.max(trace.ids))
        if top >= num_rows:
            raise TraceError(f"{trace.source}: id {top} is beyond the tables (cluster num_rows={num_rows})")


def iterate_batches(samples: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(samples), batch_size):
        yield samples[start : start + batch_size]


def replay(
    cluster: Cluster,
    trace: Trace,
    samples: np.ndarray,
    workers: np.ndarray,
    batch_size: int,
    flush: bool = True,
    check_capacity: bool = True,
) -> tuple[EpisodeTotals, list[IterationReport]]:
    """Run the logged dispatch through a fresh simulator; return the totals and every iteration's report.

    :param check_capacity: raise :class:`AssignmentError` when a batch gives a worker more than its capacity
        (``Cluster.capacities(batch_size)``).
    """
    if batch_size <= 0:
        raise ConfigError(f"batch_size must be positive (got {batch_size})")
    check_ids_in_range(trace, cluster)
    capacity = cluster.capacities(batch_size) if check_capacity else None
    simulator = Simulator(cluster, hot_ids=static_hot_set(cluster, trace))
    totals = EpisodeTotals()
    reports: list[IterationReport] = []
    for index, batch_samples in enumerate(iterate_batches(samples, batch_size)):
        start = index * batch_size
        batch = gather_batch(trace.offsets, trace.ids, batch_samples)
        try:
            report = simulator.step(batch, workers[start : start + len(batch_samples)], capacity)
        except AssignmentError as error:
            raise AssignmentError(f"batch {index} (rows {start + 2}..{start + len(batch_samples) + 1}): {error}") from None
        totals.add(report)
        reports.append(report)
    if flush:
        report = simulator.flush()
        totals.add(report)
        reports.append(report)
    return totals, reports


def static_hot_set(cluster: Cluster, trace: Trace) -> np.ndarray | None:
    """Return the static policy's hot set: the trace's most frequent ids, as many as the largest cache fits."""
    if cluster.config.cache_policy != "static":
        return None
    from esd_gym.cache import most_frequent_ids

    return most_frequent_ids(np.asarray(trace.ids), int(cluster.cache_rows.max()))

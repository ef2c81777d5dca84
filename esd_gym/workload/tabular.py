"""Streaming readers of flat CTR files: Criteo Kaggle / Terabyte (TSV, or CSV with a header) and Avazu (CSV).

Every categorical column becomes one embedding table with its own :class:`~esd_gym.workload.vocab.Vocabulary`. An
empty field is the value "missing", so it gets its own row in each table. Criteo's 13 integer columns become dense
features transformed as facebookresearch/dlrm does (negative values clipped to 0, then ``log(1 + x)``).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from esd_gym.errors import TraceError
from esd_gym.workload.reading import (
    DEFAULT_BLOCK_BYTES,
    BadLines,
    ConversionReport,
    FieldBlock,
    OnBadLine,
    ProgressCallback,
    iter_field_blocks,
    open_binary,
    parse_numbers,
    read_header,
)
from esd_gym.workload.trace import TraceWriter
from esd_gym.workload.vocab import Vocabulary

__all__ = ["CRITEO_CATEGORICAL", "CRITEO_INTEGER", "convert_avazu", "convert_criteo"]

logger = logging.getLogger(__name__)

CRITEO_INTEGER = 13
CRITEO_CATEGORICAL = 26
_INTEGER_PATTERN = re.compile(r"-?\d*")


@dataclass
class _Layout:
    """Roles of the columns of a flat CTR file, as 0-based column indices."""

    names: list[str]
    label: int | None
    dense: list[int]
    categorical: list[int]
    has_header: bool
    delimiter: str
    log_dense: bool


def _first_line(path: Path) -> str:
    stream, _, _ = open_binary(path)
    with stream:
        return read_header(stream, path)


def _criteo_layout(path: Path, delimiter: str | None) -> _Layout:
    line = _first_line(path)
    if delimiter is None:
        delimiter = "\t" if "\t" in line else ","
    fields = line.split(delimiter)
    has_header = _INTEGER_PATTERN.fullmatch(fields[0]) is None
    expected = 1 + CRITEO_INTEGER + CRITEO_CATEGORICAL
    if len(fields) not in (expected, expected - 1):
        raise TraceError(
            f"{path}:1:1: a Criteo line has {expected} fields (label, {CRITEO_INTEGER} integer, "
            f"{CRITEO_CATEGORICAL} categorical), or {expected - 1} without the label, but found {len(fields)} "
            f"(got {line[:60]!r})"
        )
    has_label = len(fields) == expected
    first = 1 if has_label else 0
    if has_header:
        names = [name.strip() for name in fields]
    else:
        names = (["label"] if has_label else []) + [f"I{i}" for i in range(1, CRITEO_INTEGER + 1)]
        names += [f"C{i}" for i in range(1, CRITEO_CATEGORICAL + 1)]
    return _Layout(
        names=names,
        label=0 if has_label else None,
        dense=list(range(first, first + CRITEO_INTEGER)),
        categorical=list(range(first + CRITEO_INTEGER, len(fields))),
        has_header=has_header,
        delimiter=delimiter,
        log_dense=True,
    )


def _avazu_layout(path: Path) -> _Layout:
    names = [name.strip() for name in _first_line(path).split(",")]
    if "id" not in names:
        raise TraceError(f"{path}:1:1: an Avazu file starts with a header that has an 'id' column (got {names[:5]!r})")
    label = names.index("click") if "click" in names else None
    categorical = [i for i, name in enumerate(names) if name not in ("id", "click")]
    if not categorical:
        raise TraceError(f"{path}:1:1: the Avazu header names no categorical column besides 'id' and 'click'")
    return _Layout(names, label, [], categorical, has_header=True, delimiter=",", log_dense=False)


def convert_criteo(
    source: str | Path,
    output: str | Path,
    *,
    delimiter: str | None = None,
    on_bad_line: OnBadLine = "error",
    max_table_size: int | None = None,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    progress: ProgressCallback | None = None,
) -> ConversionReport:
    """Convert a Criteo Kaggle or Terabyte file to a trace at ``output``.

    The input is the raw TSV (label, 13 integers, 26 hexadecimal categorical values, no header), the same without the
    label column (Kaggle's test file), or a CSV with a header row in the same column order. Gzip input is
    decompressed on the fly. The delimiter is detected from the first line when not given.

    :param max_table_size: hash every table down to at most this many rows (see :class:`Vocabulary`).
    :raises TraceError: on a bad line when ``on_bad_line="error"``. No output file is left behind then.
    """
    source = Path(source)
    layout = _criteo_layout(source, delimiter)
    return _convert_flat(source, Path(output), "criteo", layout, on_bad_line, max_table_size, block_bytes, progress)


def convert_avazu(
    source: str | Path,
    output: str | Path,
    *,
    on_bad_line: OnBadLine = "error",
    max_table_size: int | None = None,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    progress: ProgressCallback | None = None,
) -> ConversionReport:
    """Convert an Avazu CSV (header row; ``id`` is dropped, ``click`` is the label, every other column a table)."""
    source = Path(source)
    layout = _avazu_layout(source)
    return _convert_flat(source, Path(output), "avazu", layout, on_bad_line, max_table_size, block_bytes, progress)


def _convert_flat(
    source: Path,
    output: Path,
    format_name: str,
    layout: _Layout,
    on_bad_line: OnBadLine,
    max_table_size: int | None,
    block_bytes: int,
    progress: ProgressCallback | None,
) -> ConversionReport:
    started = time.perf_counter()
    table_names = [layout.names[i] for i in layout.categorical]
    vocabularies = [Vocabulary(name, max_table_size) for name in table_names]
    num_tables = len(table_names)
    bad = BadLines(source, on_bad_line)
    num_dense = len(layout.dense) or None
    table_pattern = np.arange(num_tables, dtype=np.uint16)
    has_labels = layout.label is not None

    stream, bytes_read, _ = open_binary(source)
    with stream, TraceWriter(output, num_dense=num_dense, has_labels=has_labels, local_ids=True) as writer:
        if layout.has_header:
            read_header(stream, source)
        first_line = 2 if layout.has_header else 1
        delimiter = layout.delimiter.encode()
        for block in iter_field_blocks(stream, source, delimiter, len(layout.names), first_line, bad, block_bytes):
            labels = None if layout.label is None else _parse_labels(block, layout, bad)
            dense = None
            if layout.dense:
                dense = _parse_dense(block, layout, bad)
            skip = bad.finish_block()
            if skip.size:
                keep = ~np.isin(block.lines, skip)
                block = block.select(keep)
                dense = None if dense is None else dense[keep]
                labels = None if labels is None else labels[keep]
            count = len(block)
            if count == 0:
                continue
            ids = np.empty((count, num_tables), dtype=np.int64)
            keys = block.key_columns(layout.categorical)
            for t in range(num_tables):
                ids[:, t] = vocabularies[t].lookup_keys(keys[:, t])
            writer.append(
                np.full(count, num_tables, dtype=np.int64),
                ids.reshape(-1),
                tables=np.tile(table_pattern, count),
                dense=dense,
                labels=labels,
            )
            if progress is not None:
                progress(bytes_read(), writer.num_samples)
        if bad.skipped:
            logger.warning("%s: bad lines skipped: %d", source, bad.skipped)
        sizes = [len(vocabulary) for vocabulary in vocabularies]
        table_offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        writer.close(table_offsets, table_names)

    return ConversionReport(
        output=output,
        source=source,
        format=format_name,
        num_samples=writer.num_samples,
        num_ids=writer.num_ids,
        table_names=table_names,
        table_sizes=sizes,
        num_dense=len(layout.dense),
        has_labels=has_labels,
        skipped_lines=bad.skipped,
        seconds=time.perf_counter() - started,
    )


def _parse_labels(block: FieldBlock, layout: _Layout, bad: BadLines) -> np.ndarray:
    column = layout.label
    values = block.strings(column)
    is_one = values == b"1"
    invalid = ~(is_one | (values == b"0"))
    for i in np.flatnonzero(invalid).tolist():
        bad.add(int(block.lines[i]), column + 1, f"label column '{layout.names[column]}' must be 0 or 1", block.text(i, column))
    return is_one.astype(np.float32)


def _parse_dense(block: FieldBlock, layout: _Layout, bad: BadLines) -> np.ndarray:
    """Parse the integer columns of a block at once; empty fields read 0, bad ones are reported to ``bad``."""
    values = block.string_columns(layout.dense)
    try:
        integers = np.where(values == b"", b"0", values).astype(np.int64)
    except (ValueError, OverflowError):
        # Some field is not an integer: parse column by column to report each bad field with its line.
        integers = np.column_stack(
            [parse_numbers(block, column, layout.names[column], np.int64, bad) for column in layout.dense]
        )
    if layout.log_dense:
        return np.log1p(np.maximum(integers, 0)).astype(np.float32)
    return integers.astype(np.float32)

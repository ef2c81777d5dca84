"""Streaming reader of RecBole atomic files: an ``.inter`` file plus optional ``.user`` and ``.item`` files.

Each file starts with a typed header, ``name:type`` per tab-separated column, where the type is ``token`` (one
categorical value), ``token_seq`` (space-separated categorical values, so a multi-hot feature), ``float`` or
``float_seq``. Every token column of every file becomes one embedding table; float columns become dense features.
The ``.user`` and ``.item`` files are read whole, because they have one line per user or item, and joined to every
interaction on the user and item id columns. The ``.inter`` file is streamed block by block.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from esd_gym.errors import ConfigError, TraceError
from esd_gym.workload.reading import (
    DEFAULT_BLOCK_BYTES,
    BadLines,
    ConversionReport,
    FieldBlock,
    OnBadLine,
    ProgressCallback,
    gather_segments,
    interleave_fields,
    iter_field_blocks,
    open_binary,
    parse_numbers,
    read_header,
)
from esd_gym.workload.trace import TraceWriter
from esd_gym.workload.vocab import Vocabulary

__all__ = ["FIELD_TYPES", "convert_recbole", "find_atomic_files"]

logger = logging.getLogger(__name__)

FIELD_TYPES = ("token", "token_seq", "float", "float_seq")
_SPACE = ord(" ")


@dataclass
class _Column:
    index: int
    name: str
    kind: str
    table: int | None = None
    width: int = 1


def find_atomic_files(source: str | Path) -> tuple[Path, Path | None, Path | None]:
    """Locate the ``.inter`` file of a dataset and its optional ``.user`` and ``.item`` files.

    :param source: a directory holding ``NAME.inter`` (``NAME`` is the directory name, or the only ``.inter`` file
        there), or the ``.inter`` file itself.
    """
    source = Path(source)
    if source.is_dir():
        preferred = source / f"{source.name}.inter"
        candidates = [preferred] if preferred.is_file() else sorted(source.glob("*.inter"))
        if len(candidates) != 1:
            found = ", ".join(path.name for path in candidates) or "none"
            raise TraceError(f"{source}: expected one .inter file in the directory, found {found}")
        inter = candidates[0]
    elif source.is_file():
        inter = source
    else:
        raise TraceError(f"{source}: file or directory not found")
    user = inter.with_suffix(".user")
    item = inter.with_suffix(".item")
    return inter, (user if user.is_file() else None), (item if item.is_file() else None)


def _parse_header(path: Path, text: str) -> list[_Column]:
    columns = []
    for index, entry in enumerate(text.split("\t")):
        name, colon, kind = entry.strip().rpartition(":")
        if not colon or not name:
            raise TraceError(f"{path}:1:{index + 1}: a RecBole header entry has the form name:type (got {entry!r})")
        if kind not in FIELD_TYPES:
            raise TraceError(
                f"{path}:1:{index + 1}: unknown field type {kind!r} of {name!r}; "
                f"expected one of {', '.join(FIELD_TYPES)}"
            )
        columns.append(_Column(index, name, kind))
    names = [column.name for column in columns]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise TraceError(f"{path}:1:1: the header names {duplicates[0]!r} twice")
    return columns


class _FeatureSet:
    """Tables, vocabularies and dense columns shared by the three files of a dataset."""

    def __init__(self, max_table_size: int | None) -> None:
        self.max_table_size = max_table_size
        self.table_names: list[str] = []
        self.vocabularies: list[Vocabulary] = []
        self.num_dense = 0

    def assign(self, columns: list[_Column], skip: set[str]) -> list[_Column]:
        """Give each used column its table or dense position; return the used columns."""
        used = []
        for column in columns:
            if column.name in skip:
                continue
            if column.kind.startswith("token"):
                column.table = len(self.table_names)
                self.table_names.append(column.name)
                self.vocabularies.append(Vocabulary(column.name, self.max_table_size))
            used.append(column)
        return used

    def place_dense(self, column: _Column, width: int) -> None:
        column.width = width
        self.num_dense += width


def _token_ids(block: FieldBlock, column: _Column, vocabulary: Vocabulary) -> tuple[np.ndarray, np.ndarray]:
    """Return (ids per row, ids) of a token or token_seq column."""
    if column.kind == "token":
        return np.ones(len(block), dtype=np.int64), vocabulary.lookup_keys(block.key_columns([column.index]))
    counts, tokens = block.tokens(column.index, _SPACE)
    return counts, vocabulary.lookup(tokens)


def _float_values(block: FieldBlock, column: _Column, bad: BadLines) -> tuple[np.ndarray, np.ndarray]:
    """Return (values per row, values) of a float or float_seq column."""
    if column.kind == "float":
        return np.ones(len(block), dtype=np.int64), parse_numbers(block, column.index, column.name, np.float64, bad)
    counts, tokens = block.tokens(column.index, _SPACE)
    row_of_token = np.repeat(np.arange(len(block)), counts)
    token_block = FieldBlock(
        block.buffer, block.starts[row_of_token], block.ends[row_of_token], block.lines[row_of_token]
    )
    values = parse_numbers(token_block, column.index, column.name, np.float64, bad, values=tokens)
    empty = tokens == b""
    if empty.any():
        # An empty float_seq field has no values; a lone empty token means exactly that.
        counts = counts - np.bincount(row_of_token[empty], minlength=len(block))
        values = values[~empty]
    return counts, values


@dataclass
class _SideTable:
    """The features of every user (or item), in CSR form per token column, keyed by the join column."""

    path: Path
    key: str
    columns: list[_Column]
    rows: dict[bytes, int] = field(default_factory=dict)
    token_offsets: dict[int, np.ndarray] = field(default_factory=dict)
    token_ids: dict[int, np.ndarray] = field(default_factory=dict)
    dense: np.ndarray | None = None
    missing_row: int | None = None


def _load_side(path: Path, key: str, features: _FeatureSet, exclude: set[str], bad: BadLines) -> _SideTable:
    stream, _, _ = open_binary(path)
    with stream:
        columns = _parse_header(path, read_header(stream, path))
        by_name = {column.name: column for column in columns}
        if key not in by_name:
            raise TraceError(f"{path}:1:1: the header has no join column {key!r} (found {', '.join(by_name)})")
        if by_name[key].kind != "token":
            raise TraceError(f"{path}:1:{by_name[key].index + 1}: join column {key!r} must be of type token")
        used = features.assign(columns, exclude | {key})
        side = _SideTable(path, key, used)
        keys: list[bytes] = []
        lengths: dict[int, list[np.ndarray]] = {c.index: [] for c in used}
        values: dict[int, list[np.ndarray]] = {c.index: [] for c in used}
        key_index = by_name[key].index
        for block in iter_field_blocks(stream, path, b"\t", len(columns), 2, bad):
            block_keys = block.strings(key_index).tolist()
            seen: set[bytes] = set()
            for i, value in enumerate(block_keys):
                if value in side.rows or value in seen:
                    bad.add(int(block.lines[i]), key_index + 1, f"duplicate {key}", block.text(i, key_index))
                seen.add(value)
            parsed = {column.index: _float_values(block, column, bad) for column in used if column.table is None}
            keep = ~np.isin(block.lines, bad.finish_block())
            for index, (counts, floats) in parsed.items():
                parsed[index] = (counts[keep], floats[np.repeat(keep, counts)])
            # Tokens are looked up only now, so that skipped lines add nothing to the vocabularies.
            kept_block = block.select(keep)
            for column in used:
                if column.table is not None:
                    parsed[column.index] = _token_ids(kept_block, column, features.vocabularies[column.table])
            for index, (counts, flat) in parsed.items():
                lengths[index].append(counts)
                values[index].append(flat)
            for value, kept in zip(block_keys, keep.tolist()):
                if kept:
                    side.rows[value] = len(keys)
                    keys.append(value)

    count = len(keys)
    dense_parts = []
    for column in used:
        counts = np.concatenate(lengths[column.index]) if lengths[column.index] else np.zeros(0, dtype=np.int64)
        flat = np.concatenate(values[column.index]) if values[column.index] else np.zeros(0)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        if column.table is not None:
            side.token_offsets[column.index] = offsets
            side.token_ids[column.index] = flat.astype(np.int64)
            continue
        # A float_seq column is padded with zeros to its longest value, so every user or item has the same width.
        width = int(counts.max(initial=1)) if column.kind == "float_seq" else 1
        matrix = np.zeros((count, width), dtype=np.float32)
        matrix[np.repeat(np.arange(count), counts), np.arange(len(flat)) - np.repeat(offsets[:-1], counts)] = flat
        features.place_dense(column, width)
        dense_parts.append(matrix)
    side.dense = np.concatenate(dense_parts, axis=1) if dense_parts else None
    logger.info("%s: read %d rows keyed by %s", path, count, key)
    return side


def _join(side: _SideTable, keys: np.ndarray, features: _FeatureSet) -> tuple[np.ndarray, int]:
    """Return the side row of every key (a row of 'missing' values for unknown keys) and the number unknown."""
    unique, inverse = np.unique(keys, return_inverse=True)
    found = np.fromiter((side.rows.get(value, -1) for value in unique.tolist()), dtype=np.int64, count=len(unique))
    rows = found[inverse.reshape(-1)]
    missing = rows < 0
    if missing.any():
        if side.missing_row is None:
            _add_missing_row(side, features)
        rows[missing] = side.missing_row
    return rows, int(missing.sum())


def _add_missing_row(side: _SideTable, features: _FeatureSet) -> None:
    """Append a row whose token columns hold each table's 'missing' value (empty token) and whose floats are 0."""
    side.missing_row = len(side.rows)
    for column in side.columns:
        if column.table is None:
            continue
        missing_id = features.vocabularies[column.table].lookup(np.array([b""]))
        offsets = side.token_offsets[column.index]
        side.token_offsets[column.index] = np.append(offsets, offsets[-1] + 1)
        side.token_ids[column.index] = np.append(side.token_ids[column.index], missing_id)
    if side.dense is not None:
        side.dense = np.vstack([side.dense, np.zeros((1, side.dense.shape[1]), dtype=np.float32)])


def convert_recbole(
    source: str | Path,
    output: str | Path,
    *,
    on_bad_line: OnBadLine = "error",
    max_table_size: int | None = None,
    label_field: str | None = "auto",
    label_threshold: float | None = 4.0,
    exclude_fields: tuple[str, ...] = (),
    user_id_field: str = "user_id",
    item_id_field: str = "item_id",
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    progress: ProgressCallback | None = None,
) -> ConversionReport:
    """Convert a RecBole atomic dataset to a trace at ``output``.

    Tables come in this order: the token columns of the ``.inter`` file, then those of the ``.user`` file, then those
    of the ``.item`` file (each in header order, join columns once). Dense features follow the same order, and a
    ``float_seq`` column of the ``.inter`` file has as many values as on its first line. An empty token, and the
    features of a user or item missing from its side file, map to each table's row for the empty value ("missing").

    :param source: see :func:`find_atomic_files`.
    :param label_field: float column of the ``.inter`` file that gives the label; ``"auto"`` picks ``label`` when
        present, else ``rating``; None keeps no labels. The label column is not a dense feature.
    :param label_threshold: label = 1.0 when the value is at least this, else 0.0 (MovieLens ratings 4 and 5 count
        as positive); None keeps the value as it is.
    :param exclude_fields: columns to ignore in every file.
    :raises TraceError: on a malformed header, or on a bad line when ``on_bad_line="error"``; no output is left then.
    """
    started = time.perf_counter()
    if label_threshold is not None and not math.isfinite(label_threshold):
        # Every comparison with NaN is false, so every label would be 0.
        raise ConfigError(f"label threshold must be a finite number, got {label_threshold}")
    inter_path, user_path, item_path = find_atomic_files(source)
    exclude = set(exclude_fields)
    bad = BadLines(inter_path, on_bad_line)
    features = _FeatureSet(max_table_size)

    stream, bytes_read, _ = open_binary(inter_path)
    with stream:
        columns = _parse_header(inter_path, read_header(stream, inter_path))
        by_name = {column.name: column for column in columns}
        label = _choose_label(inter_path, by_name, label_field)
        used = features.assign(columns, exclude | ({label.name} if label else set()))

        sides: list[tuple[_Column, _SideTable]] = []
        for path, key in ((user_path, user_id_field), (item_path, item_id_field)):
            if path is None or key in exclude:
                continue
            if key not in by_name or by_name[key].kind != "token":
                raise TraceError(f"{inter_path}:1:1: no token column {key!r} to join {path.name} on")
            side_bad = BadLines(path, on_bad_line)
            sides.append((by_name[key], _load_side(path, key, features, exclude, side_bad)))
            bad.skipped += side_bad.skipped
        if not features.table_names:
            raise ConfigError(
                f"{inter_path}: no token column is left to make an embedding table "
                f"(excluded: {', '.join(sorted(exclude)) or 'none'})"
            )

        report = _stream_interactions(
            stream, inter_path, columns, used, label, label_threshold, sides, features, bad, output, block_bytes,
            bytes_read, progress,
        )
    report.seconds = time.perf_counter() - started
    return report


def _choose_label(path: Path, by_name: dict[str, _Column], label_field: str | None) -> _Column | None:
    if label_field == "auto":
        if "label" in by_name:
            label_field = "label"
        elif "rating" in by_name:
            label_field = "rating"
        else:
            label_field = None
    if label_field is None:
        return None
    if label_field not in by_name:
        raise ConfigError(f"label field {label_field!r} is not a column of {path} (found {', '.join(by_name)})")
    column = by_name[label_field]
    if column.kind != "float":
        raise ConfigError(f"label field {label_field!r} of {path} must be of type float, not {column.kind}")
    return column


def _stream_interactions(
    stream,
    inter_path: Path,
    columns: list[_Column],
    used: list[_Column],
    label: _Column | None,
    label_threshold: float | None,
    sides: list[tuple[_Column, _SideTable]],
    features: _FeatureSet,
    bad: BadLines,
    output: Path,
    block_bytes: int,
    bytes_read,
    progress: ProgressCallback | None,
) -> ConversionReport:
    """Convert the interactions block by block, joining the side tables, and write the trace."""
    inter_floats = [column for column in used if column.table is None]
    missing_keys = 0
    writer: TraceWriter | None = None
    try:
        for block in iter_field_blocks(stream, inter_path, b"\t", len(columns), 2, bad, block_bytes):
            if writer is None:
                # The width of a float_seq column of the .inter file is fixed by its first line.
                probe_bad = BadLines(inter_path, "skip")
                for column in inter_floats:
                    width = int(_float_values(block.select(slice(0, 1)), column, probe_bad)[0][0]) if len(block) else 1
                    features.place_dense(column, width)
                writer = TraceWriter(output, num_dense=features.num_dense or None, has_labels=label is not None,
                                     local_ids=True)
            dense_parts = []
            for column in inter_floats:
                counts, values = _float_values(block, column, bad)
                wrong = np.flatnonzero(counts != column.width)
                for i in wrong.tolist():
                    bad.add(int(block.lines[i]), column.index + 1,
                            f"{column.name} has {int(counts[i])} values where the first line has {column.width}",
                            block.text(i, column.index))
                dense_parts.append((counts, values, column.width))
            labels = None
            if label is not None:
                raw = parse_numbers(block, label.index, label.name, np.float64, bad)
                labels = (raw >= label_threshold if label_threshold is not None else raw).astype(np.float32)
            keep = ~np.isin(block.lines, bad.finish_block())
            count = int(keep.sum())
            if count == 0:
                continue
            # Tokens are looked up only now, so that skipped lines add nothing to the vocabularies.
            block = block.select(keep)
            fields = [
                (*_token_ids(block, column, features.vocabularies[column.table]), column.table)
                for column in used
                if column.table is not None
            ]
            dense = np.zeros((count, features.num_dense), dtype=np.float32)
            position = 0
            for counts, values, width in dense_parts:
                dense[:, position : position + width] = values[np.repeat(keep, counts)].reshape(count, width)
                position += width
            for key_column, side in sides:
                rows, unknown = _join(side, block.strings(key_column.index), features)
                missing_keys += unknown
                for column in side.columns:
                    if column.table is not None:
                        offsets, side_ids = side.token_offsets[column.index], side.token_ids[column.index]
                        counts, ids = gather_segments(offsets, side_ids, rows)
                        fields.append((counts, ids, column.table))
                if side.dense is not None:
                    dense[:, position : position + side.dense.shape[1]] = side.dense[rows]
                    position += side.dense.shape[1]
            lengths, ids, tables = interleave_fields(fields, count)
            writer.append(lengths, ids, tables=tables, dense=dense if features.num_dense else None,
                          labels=None if labels is None else labels[keep])
            if progress is not None:
                progress(bytes_read(), writer.num_samples)
        if writer is None:
            raise TraceError(f"{inter_path}: the file has a header but no interactions")
        if missing_keys:
            logger.warning(
                "%s: %d interactions have a user or item missing from its side file", inter_path, missing_keys
            )
        if bad.skipped:
            logger.warning("%s: bad lines skipped: %d", inter_path, bad.skipped)
        sizes = [len(vocabulary) for vocabulary in features.vocabularies]
        table_offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        writer.close(table_offsets, features.table_names)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    return ConversionReport(
        output=Path(output), source=inter_path, format="recbole", num_samples=writer.num_samples,
        num_ids=writer.num_ids, table_names=list(features.table_names), table_sizes=sizes,
        num_dense=features.num_dense, has_labels=label is not None, skipped_lines=bad.skipped,
        missing_join_keys=missing_keys,
    )

"""Shared machinery of the streaming readers: block-wise field splitting, bad-line handling, value parsing.

The readers never parse a file row by row in Python. :func:`iter_field_blocks` reads about a megabyte of whole lines
at a time and finds every line end and field delimiter with NumPy. Values are then cut out of the block as
fixed-width byte strings (NumPy ``S`` arrays) and parsed or looked up column by column. Quoting is not interpreted,
so a ``"`` is an ordinary character, as in the Criteo, Avazu and RecBole files.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np

from esd_gym.errors import ConfigError, TraceError
from esd_gym.workload.vocab import value_keys

__all__ = [
    "BadLines",
    "ConversionReport",
    "DEFAULT_BLOCK_BYTES",
    "FieldBlock",
    "OnBadLine",
    "ProgressCallback",
    "gather_segments",
    "interleave_fields",
    "iter_field_blocks",
    "open_binary",
    "parse_numbers",
    "read_header",
]

logger = logging.getLogger(__name__)

OnBadLine = Literal["error", "skip"]
# Called after every block with (bytes of the input file consumed so far, samples written so far).
ProgressCallback = Callable[[int, int], None]

# Bytes of input split per block: about 4,000 Criteo lines. Transient memory is a small multiple of this.
DEFAULT_BLOCK_BYTES = 1 << 20
# Values longer than this are replaced by a 16-byte digest before they become vocabulary keys, so that one very long
# field cannot widen the fixed-width arrays of a whole block.
MAX_KEY_BYTES = 64
_DIGEST_PREFIX = b"\x00#"
# _LOW_BYTES_MASK[n] keeps the low n bytes of a 64-bit word.
_LOW_BYTES_MASK = np.array([(1 << (8 * n)) - 1 for n in range(9)], dtype=np.uint64)


@dataclass
class ConversionReport:
    """Summary of one conversion, returned by every reader."""

    output: Path
    source: Path
    format: str
    num_samples: int = 0
    num_ids: int = 0
    table_names: list[str] = field(default_factory=list)
    table_sizes: list[int] = field(default_factory=list)
    num_dense: int = 0
    has_labels: bool = False
    skipped_lines: int = 0
    missing_join_keys: int = 0
    seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return self.num_samples / self.seconds if self.seconds > 0 else float("inf")


class BadLines:
    """Collect the bad lines of a block, then raise on the earliest one or count them (``on_bad_line``)."""

    def __init__(self, path: Path, on_bad_line: OnBadLine) -> None:
        if on_bad_line not in ("error", "skip"):
            raise ConfigError(f"on_bad_line must be 'error' or 'skip', got {on_bad_line!r}")
        self.path = path
        self.on_bad_line = on_bad_line
        self.skipped = 0
        self._block: list[tuple[int, int, str, str]] = []

    def add(self, line: int, column: int, message: str, value: str) -> None:
        """Record a problem at ``line`` (1-based) and ``column`` (1-based field number)."""
        self._block.append((line, column, message, value))

    def finish_block(self) -> np.ndarray:
        """Raise :class:`TraceError` for the earliest problem of the block, or return the sorted bad line numbers."""
        problems, self._block = self._block, []
        if not problems:
            return np.zeros(0, dtype=np.int64)
        line, column, message, value = min(problems)
        excerpt = value if len(value) <= 60 else value[:57] + "..."
        if self.on_bad_line == "error":
            raise TraceError(
                f"{self.path}:{line}:{column}: {message} (got {excerpt!r}); pass --on-bad-line skip to skip such lines"
            )
        bad = np.unique(np.fromiter((problem[0] for problem in problems), dtype=np.int64, count=len(problems)))
        if self.skipped == 0:
            # Only the first bad line is logged, so a file of bad lines cannot flood the log; the count is reported.
            logger.warning("%s:%d:%d: skipping bad line: %s (got %r)", self.path, line, column, message, excerpt)
        self.skipped += len(bad)
        return bad


def open_binary(path: Path) -> tuple[BinaryIO, Callable[[], int], int]:
    """Open ``path`` for reading, decompressing gzip transparently.

    Returns the stream, a function giving the bytes of the file on disk consumed so far, and the size on disk.
    """
    size = path.stat().st_size
    with open(path, "rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        compressed = gzip.open(path, "rb")
        # Progress counts compressed bytes, so that it reaches the size on disk.
        return compressed, compressed.fileobj.tell, size  # type: ignore[return-value]
    raw = open(path, "rb")
    return raw, raw.tell, size


# Exceptions that reading a truncated or damaged gzip file raises.
_GZIP_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error)


def _read_checked(read: Callable[[], bytes], path: Path) -> bytes:
    """Call ``read``; raise :class:`TraceError` naming ``path`` when its gzip data is truncated or corrupt."""
    try:
        return read()
    except _GZIP_ERRORS as error:
        raise TraceError(f"{path}: the gzip data is truncated or corrupt ({error})") from None


def read_header(stream: BinaryIO, path: Path) -> str:
    """Read the first line of ``stream`` as text without its line end; raise when the file is empty."""
    line = _read_checked(stream.readline, path)
    if not line:
        raise TraceError(f"{path}: the file is empty")
    # A byte-order mark, which some editors write, is not part of the first column's name.
    return line.rstrip(b"\r\n").decode("utf-8", errors="replace").removeprefix("\ufeff")


@dataclass
class FieldBlock:
    """The well-formed lines of one block, split into fields.

    Field ``c`` of row ``i`` is ``buffer[starts[i, c]:ends[i, c]]``.
    """

    buffer: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    lines: np.ndarray
    _words: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.lines)

    def text(self, row: int, column: int) -> str:
        """Return one field decoded as text, for messages."""
        start, end = int(self.starts[row, column]), int(self.ends[row, column])
        return self.buffer[start:end].tobytes().decode("utf-8", errors="replace")

    def strings(self, column: int) -> np.ndarray:
        """Return field ``column`` of every row as a NumPy ``S`` array.

        A value longer than 64 bytes is replaced by a 16-byte digest with a NUL prefix, which no text value has.
        """
        return _cut(self.buffer, self.starts[:, column], self.ends[:, column])

    def string_columns(self, columns: list[int]) -> np.ndarray:
        """Return several fields at once as an ``S`` array of shape (rows, len(columns)); see :meth:`strings`."""
        return _cut(self.buffer, self.starts[:, columns], self.ends[:, columns])

    def key_columns(self, columns: list[int]) -> np.ndarray:
        """Return the vocabulary keys (see :func:`~esd_gym.workload.vocab.value_keys`) of several fields at once.

        A field of at most 8 bytes is read as one unaligned little-endian word and masked to its length. That word is
        its key, so no byte strings are built. Longer fields go through :func:`value_keys`.
        """
        starts, ends = self.starts[:, columns], self.ends[:, columns]
        lengths = ends - starts
        words = self._shifted_words()
        keys = words[starts & 7, starts >> 3]
        keys &= _LOW_BYTES_MASK[np.minimum(lengths, 8)]
        long_fields = lengths > 8
        if long_fields.any():
            keys[long_fields] = value_keys(_cut(self.buffer, starts[long_fields], ends[long_fields]))
        return keys

    def _shifted_words(self) -> np.ndarray:
        """Return ``words`` with ``words[k, j]`` = the 8 bytes of the buffer from ``8·j + k`` as a little-endian word."""
        if self._words is None:
            count = len(self.buffer) // 8 + 1
            padded = np.zeros(8 * count + 8, dtype=np.uint8)
            padded[: len(self.buffer)] = self.buffer
            self._words = np.stack([padded[k : k + 8 * count].view("<u8") for k in range(8)])
        return self._words

    def tokens(self, column: int, separator: int) -> tuple[np.ndarray, np.ndarray]:
        """Split field ``column`` of every row at the byte ``separator``.

        Returns (tokens per row, tokens as an ``S`` array in row order). An empty field is one empty token.
        """
        starts, ends = self.starts[:, column], self.ends[:, column]
        positions = np.flatnonzero(self.buffer == separator)
        # Rows are in buffer order, so each separator belongs to the last field starting at or before it.
        owner = np.searchsorted(starts, positions, side="right") - 1
        inside = owner >= 0
        inside[inside] = positions[inside] < ends[owner[inside]]
        positions, owner = positions[inside], owner[inside]
        counts = np.bincount(owner, minlength=len(starts)) + 1
        # Token k of a row starts after separator k-1 (or at the field start) and ends at separator k (or the end).
        token_starts = np.empty(int(counts.sum()), dtype=np.int64)
        token_ends = np.empty_like(token_starts)
        first = np.cumsum(counts) - counts
        last = first + counts - 1
        is_first = np.zeros(len(token_starts), dtype=bool)
        is_first[first] = True
        token_starts[first] = starts
        token_starts[~is_first] = positions + 1
        is_last = np.zeros(len(token_starts), dtype=bool)
        is_last[last] = True
        token_ends[last] = ends
        token_ends[~is_last] = positions
        return counts, _cut(self.buffer, token_starts, token_ends)

    def select(self, keep: np.ndarray) -> "FieldBlock":
        """Return the rows where ``keep`` is true."""
        return FieldBlock(self.buffer, self.starts[keep], self.ends[keep], self.lines[keep], self._words)


def _cut(buffer: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Return ``buffer[starts:ends]`` for every pair as an ``S`` array of the shape of ``starts``."""
    lengths = ends - starts
    width = int(min(lengths.max(initial=0), MAX_KEY_BYTES)) or 1
    steps = np.arange(width, dtype=np.intp)
    index = starts[..., None] + steps
    np.minimum(index, len(buffer) - 1, out=index)
    gathered = np.take(buffer, index)
    # Bytes past the end of a value become NUL, which S arrays drop.
    gathered *= steps < lengths[..., None]
    values = gathered.view(f"S{width}").reshape(starts.shape)
    long_values = np.argwhere(lengths > MAX_KEY_BYTES)
    if long_values.size:
        values = values.astype(f"S{max(width, len(_DIGEST_PREFIX) + 16)}")
        for position in map(tuple, long_values):
            raw = buffer[int(starts[position]) : int(ends[position])].tobytes()
            values[position] = _DIGEST_PREFIX + hashlib.blake2b(raw, digest_size=16).digest()
    return values


def iter_field_blocks(
    stream: BinaryIO,
    path: Path,
    delimiter: bytes,
    num_fields: int,
    first_line: int,
    bad: BadLines,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
) -> Iterator[FieldBlock]:
    """Yield the lines of ``stream`` split into ``num_fields`` fields, a block of whole lines at a time.

    Blank lines are left out. A line with another number of fields is reported to ``bad`` and left out. The caller
    adds its own problems and then calls :meth:`BadLines.finish_block` once per block.
    """
    if block_bytes < 1:
        raise ConfigError(f"block size must be at least 1 byte, got {block_bytes}")
    line = first_line
    carry = b""
    while True:
        data = _read_checked(lambda: stream.read(block_bytes), path)
        if data:
            data = carry + data
            cut = data.rfind(b"\n")
            if cut < 0:
                carry = data
                continue
            block, carry = data[: cut + 1], data[cut + 1 :]
        elif carry:
            block, carry = carry + b"\n", b""
        else:
            return
        split, count = _split_block(block, path, delimiter[0], num_fields, line, bad)
        line += count
        yield split


def _split_block(
    block: bytes, path: Path, delimiter: int, num_fields: int, first_line: int, bad: BadLines
) -> tuple[FieldBlock, int]:
    buffer = np.frombuffer(block, dtype=np.uint8)
    line_ends = np.flatnonzero(buffer == 10)
    count = len(line_ends)
    line_starts = np.empty(count, dtype=np.int64)
    line_starts[0] = 0
    line_starts[1:] = line_ends[:-1] + 1
    carriage = (line_ends > line_starts) & (buffer[np.maximum(line_ends - 1, 0)] == 13)
    content_ends = line_ends - carriage
    lines = np.arange(first_line, first_line + count, dtype=np.int64)
    blank = content_ends == line_starts

    delimiters = np.flatnonzero(buffer == delimiter)
    owner = np.searchsorted(line_ends, delimiters)
    found = np.bincount(owner, minlength=count) + 1
    wrong = (found != num_fields) & ~blank
    for i in np.flatnonzero(wrong).tolist():
        fields = block[line_starts[i] : content_ends[i]].decode("utf-8", errors="replace").split(chr(delimiter))
        # Point at the first missing field (showing the last one present) or at the first extra field.
        if len(fields) < num_fields:
            column, value = len(fields) + 1, fields[-1]
        else:
            column, value = num_fields + 1, fields[num_fields]
        bad.add(int(lines[i]), column, f"expected {num_fields} fields, found {len(fields)}", value)

    good = ~(wrong | blank)
    inner = delimiters[good[owner]].reshape(-1, num_fields - 1)
    starts = np.empty((int(good.sum()), num_fields), dtype=np.int64)
    ends = np.empty_like(starts)
    starts[:, 0] = line_starts[good]
    starts[:, 1:] = inner + 1
    ends[:, :-1] = inner
    ends[:, -1] = content_ends[good]
    return FieldBlock(buffer, starts, ends, lines[good]), count


def parse_numbers(
    block: FieldBlock, column: int, name: str, dtype: type, bad: BadLines, values: np.ndarray | None = None
) -> np.ndarray:
    """Parse field ``column`` (or the given ``S`` values) as ``dtype`` (int64 or float64); empty means 0.

    Unparsable values are reported to ``bad`` with their line and read as 0.
    """
    if values is None:
        values = block.strings(column)
    filled = np.where(values == b"", b"0", values)
    kind = "integer" if dtype is np.int64 else "number"
    try:
        result = filled.astype(dtype)
    except (ValueError, OverflowError):
        result = np.zeros(len(filled), dtype=dtype)
        for i, value in enumerate(filled.tolist()):
            try:
                result[i] = dtype(value)
            except (ValueError, OverflowError):
                bad.add(int(block.lines[i]), column + 1, f"invalid {kind} in field {name}", block.text(i, column))
    if dtype is np.float64:
        for i in np.flatnonzero(~np.isfinite(result)).tolist():
            bad.add(int(block.lines[i]), column + 1, f"non-finite number in field {name}", block.text(i, column))
            result[i] = 0.0
    return result


def gather_segments(offsets: np.ndarray, values: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate the CSR segments ``values[offsets[r]:offsets[r+1]]`` of ``rows``; return (lengths, values)."""
    starts = offsets[rows]
    lengths = offsets[rows + 1] - starts
    total = int(lengths.sum())
    segment_starts = np.cumsum(lengths) - lengths
    positions = np.repeat(starts - segment_starts, lengths) + np.arange(total, dtype=np.int64)
    return lengths, values[positions]


def interleave_fields(
    fields: list[tuple[np.ndarray, np.ndarray, int]], num_samples: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge per-field CSR id lists into one sample-major list in field order.

    :param fields: per field, (lengths [n], ids in sample order, table index).
    :return: (lengths [n], ids, table index of every id).
    """
    lengths = np.zeros(num_samples, dtype=np.int64)
    for field_lengths, _, _ in fields:
        lengths += field_lengths
    total = int(lengths.sum())
    ids = np.empty(total, dtype=np.int64)
    tables = np.empty(total, dtype=np.uint16)
    # cursor[i] is where the next field's ids of sample i go.
    cursor = np.cumsum(lengths) - lengths
    for field_lengths, field_ids, table in fields:
        segment_starts = np.cumsum(field_lengths) - field_lengths
        positions = np.repeat(cursor - segment_starts, field_lengths) + np.arange(len(field_ids), dtype=np.int64)
        ids[positions] = field_ids
        tables[positions] = table
        cursor += field_lengths
    return lengths, ids, tables

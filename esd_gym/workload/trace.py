"""The compact binary trace: a CSR list of embedding ids per sample, stored as an ``.npz`` file.

Layout (every array is a member of the ``.npz``):

============== ============ ===============================================================================
member         dtype/shape  meaning
============== ============ ===============================================================================
``offsets``    int64 [N+1]  sample ``i`` uses ``ids[offsets[i]:offsets[i+1]]``; ``offsets[0] == 0``
``ids``        int64 [M]    global embedding-row ids (table offset + row index), in feature order
``table_offsets`` int64 [T+1] optional; table ``t`` owns global ids ``[table_offsets[t], table_offsets[t+1])``
``dense``      float32 [N,D] optional dense features (needed by the DLRM mode)
``labels``     float32 [N]  optional labels (needed by the DLRM mode)
``table_names`` str [T]     optional names of the tables, in table order
============== ============ ===============================================================================

Files written by :func:`save_trace` or :class:`TraceWriter` store members uncompressed, so :func:`load_trace`
memory-maps ``ids`` and ``offsets`` instead of reading them: a trace larger than memory can still be replayed chunk by
chunk. :class:`TraceWriter` builds such a file from chunks of samples without holding the id arrays in memory.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from esd_gym.errors import TraceError

__all__ = ["Trace", "TraceWriter", "load_trace", "save_trace"]


@dataclass(frozen=True)
class Trace:
    """A workload: embedding ids per sample in CSR form, plus optional dense features and labels.

    :param offsets: int64 [N+1], monotone, starting at 0 and ending at ``len(ids)``.
    :param ids: int64 [M], non-negative global row ids.
    :param table_offsets: int64 [T+1] or None; when given, every id lies below ``table_offsets[-1]``.
    :param dense: float32 [N, D] or None.
    :param labels: float32 [N] or None.
    :param table_names: names of the T tables, or None.
    :param source: where the trace came from, used in error messages.
    """

    offsets: np.ndarray
    ids: np.ndarray
    table_offsets: np.ndarray | None = None
    dense: np.ndarray | None = None
    labels: np.ndarray | None = None
    table_names: tuple[str, ...] | None = None
    source: str = "<memory>"

    def __post_init__(self) -> None:
        self.validate()

    @property
    def num_samples(self) -> int:
        return int(len(self.offsets) - 1)

    @property
    def num_rows(self) -> int | None:
        """Size of the global id space, when the table offsets are known."""
        return None if self.table_offsets is None else int(self.table_offsets[-1])

    def sample_ids(self, index: int) -> np.ndarray:
        return self.ids[self.offsets[index] : self.offsets[index + 1]]

    def slice(self, start: int, stop: int) -> "Trace":
        """Return samples ``[start, stop)`` as a trace whose offsets start at 0 (ids are copied into memory)."""
        if not 0 <= start <= stop <= self.num_samples:
            raise TraceError(f"{self.source}: sample range [{start}, {stop}) is outside [0, {self.num_samples}]")
        lo, hi = int(self.offsets[start]), int(self.offsets[stop])
        return Trace(
            offsets=np.asarray(self.offsets[start : stop + 1], dtype=np.int64) - lo,
            ids=np.array(self.ids[lo:hi], dtype=np.int64),
            table_offsets=self.table_offsets,
            dense=None if self.dense is None else np.asarray(self.dense[start:stop]),
            labels=None if self.labels is None else np.asarray(self.labels[start:stop]),
            table_names=self.table_names,
            source=self.source,
        )

    def validate(self) -> None:
        """Raise :class:`TraceError` naming the member and the bad value when the arrays are inconsistent."""
        offsets, ids = self.offsets, self.ids
        if offsets.ndim != 1 or offsets.dtype != np.int64:
            raise TraceError(f"{self.source}: 'offsets' must be a 1-d int64 array, got {offsets.dtype}{offsets.shape}")
        if ids.ndim != 1 or ids.dtype != np.int64:
            raise TraceError(f"{self.source}: 'ids' must be a 1-d int64 array, got {ids.dtype}{ids.shape}")
        if len(offsets) < 2:
            raise TraceError(f"{self.source}: the trace is empty (no samples)")
        if offsets[0] != 0 or offsets[-1] != len(ids):
            raise TraceError(
                f"{self.source}: 'offsets' must start at 0 and end at len(ids)={len(ids)}, "
                f"got {int(offsets[0])} and {int(offsets[-1])}"
            )
        steps = np.diff(offsets)
        if steps.size and steps.min() < 0:
            bad = int(np.argmin(steps))
            raise TraceError(f"{self.source}: 'offsets' decreases at sample {bad}: {int(offsets[bad])} > {int(offsets[bad + 1])}")
        if ids.size and ids.min() < 0:
            bad = int(np.argmin(ids))
            raise TraceError(f"{self.source}: id at position {bad} is negative: {int(ids[bad])}")
        if self.table_offsets is not None:
            self._validate_tables()
        elif self.table_names is not None:
            raise TraceError(f"{self.source}: 'table_names' is given without 'table_offsets'")

        if self.table_offsets is not None and ids.size:
            limit = int(self.table_offsets[-1])
            top = int(ids.max())
            if top >= limit:
                raise TraceError(f"{self.source}: id {top} is beyond the tables (table_offsets ends at {limit})")

        if self.dense is not None:
            if self.dense.ndim != 2 or self.dense.dtype.kind not in "fiu":
                raise TraceError(
                    f"{self.source}: 'dense' must be a 2-d numeric array [samples, features], "
                    f"got {self.dense.dtype}{self.dense.shape}"
                )
            if len(self.dense) != self.num_samples:
                raise TraceError(f"{self.source}: 'dense' has {len(self.dense)} rows for {self.num_samples} samples")

        if self.labels is not None:
            if self.labels.ndim != 1 or self.labels.dtype.kind not in "fiub":
                raise TraceError(
                    f"{self.source}: 'labels' must be a 1-d numeric array, got {self.labels.dtype}{self.labels.shape}"
                )
            if len(self.labels) != self.num_samples:
                raise TraceError(
                    f"{self.source}: 'labels' has {len(self.labels)} entries for {self.num_samples} samples"
                )

    def _validate_tables(self) -> None:
        table_offsets = self.table_offsets
        if table_offsets.ndim != 1 or len(table_offsets) < 2 or table_offsets[0] != 0:
            raise TraceError(
                f"{self.source}: 'table_offsets' must be 1-d, start at 0 and name at least one table, "
                f"got {np.asarray(table_offsets).tolist()}"
            )
        steps = np.diff(table_offsets)
        if steps.min() < 0:
            bad = int(np.argmin(steps))
            raise TraceError(
                f"{self.source}: 'table_offsets' decreases at table {bad}: "
                f"{int(table_offsets[bad])} > {int(table_offsets[bad + 1])}"
            )
        tables = len(table_offsets) - 1
        if self.table_names is not None and len(self.table_names) != tables:
            raise TraceError(f"{self.source}: 'table_names' has {len(self.table_names)} names for {tables} tables")


def save_trace(path: str | os.PathLike[str], trace: Trace) -> Path:
    """Write ``trace`` to ``path`` atomically: a failed write leaves no file behind.

    Members are stored uncompressed so that :func:`load_trace` can memory-map them.
    """
    path = Path(path)
    members: dict[str, np.ndarray] = {"offsets": trace.offsets, "ids": trace.ids}
    if trace.table_offsets is not None:
        members["table_offsets"] = np.asarray(trace.table_offsets, dtype=np.int64)
    if trace.dense is not None:
        members["dense"] = np.asarray(trace.dense, dtype=np.float32)
    if trace.labels is not None:
        members["labels"] = np.asarray(trace.labels, dtype=np.float32)
    if trace.table_names is not None:
        members["table_names"] = np.asarray(trace.table_names, dtype=str)

    _check_output_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise _output_error(path, error) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **members)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def _check_output_path(path: Path) -> None:
    """Raise :class:`TraceError` before any work when ``path`` is a directory (as ``""`` or ``.`` are)."""
    if path.is_dir():
        raise TraceError(f"{path}: the output path is a directory; name a .npz file")


def _output_error(path: Path, error: OSError) -> OSError:
    """Build the error of a failed write next to ``path``, naming ``path`` instead of a temporary file."""
    reason = "a parent of it is a file, not a directory" if isinstance(error, FileExistsError) else error.strerror
    return OSError(error.errno, f"cannot write the trace there ({reason})", str(path))


def _memmap_member(path: Path, archive: zipfile.ZipFile, name: str) -> np.ndarray | None:
    """Memory-map an uncompressed ``.npy`` member of an ``.npz``; None when the member is compressed."""
    info = archive.getinfo(name)
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    with open(path, "rb") as raw:
        raw.seek(info.header_offset)
        local_header = raw.read(30)
        name_length = int.from_bytes(local_header[26:28], "little")
        extra_length = int.from_bytes(local_header[28:30], "little")
        data_start = info.header_offset + 30 + name_length + extra_length
        raw.seek(data_start)
        version = np.lib.format.read_magic(raw)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(raw)
        elif version == (2, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(raw)
        else:
            return None
        array_start = raw.tell()
    if fortran_order or dtype.hasobject:
        return None
    array_bytes = math.prod(shape) * dtype.itemsize
    if array_start - data_start + array_bytes > info.file_size:
        # np.memmap would map the bytes of the next member, or fail only when the file ends.
        raise ValueError(f"truncated: {info.file_size} bytes are too few for the shape {shape} in its header")
    return np.memmap(path, dtype=dtype, mode="r", offset=array_start, shape=shape)


# Exceptions that reading a damaged member raises: ValueError for a bad .npy header or object data, EOFError for a
# short member, BadZipFile for a CRC mismatch or a broken zip entry, zlib.error for a broken compressed stream.
_MEMBER_ERRORS = (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error)


def _read_member(path: Path, arrays, archive: zipfile.ZipFile, name: str, mmap: bool) -> np.ndarray:
    """Return member ``name`` of the ``.npz``, memory-mapped when asked and possible.

    :raises TraceError: when the member is damaged or truncated.
    """
    try:
        mapped = _memmap_member(path, archive, f"{name}.npy") if mmap else None
        return mapped if mapped is not None else arrays[name]
    except _MEMBER_ERRORS as error:
        raise TraceError(f"{path}: member '{name}' is unreadable ({error})") from None


def load_trace(path: str | os.PathLike[str], mmap: bool = True) -> Trace:
    """Read a trace written by :func:`save_trace` (or any ``.npz`` with the members above).

    :param mmap: memory-map ``ids`` and ``offsets`` when they are stored uncompressed, so that memory does not grow
        with the trace length.
    """
    path = Path(path)
    if not path.is_file():
        raise TraceError(f"{path}: trace file not found")
    # np.load would read a non-zip file as a single .npy array or as a pickle.
    if not zipfile.is_zipfile(path):
        raise TraceError(f"{path}: not a .npz archive (no zip directory found: another format, or a truncated file)")
    try:
        archive_arrays = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise TraceError(f"{path}: not a readable .npz trace ({error})") from None

    with archive_arrays, zipfile.ZipFile(path) as archive:
        names = set(archive_arrays.files)
        for required in ("offsets", "ids"):
            if required not in names:
                raise TraceError(f"{path}: member '{required}' is missing (found {sorted(names)})")
        arrays: dict[str, np.ndarray | None] = {}
        for name in ("offsets", "ids", "table_offsets", "dense", "labels", "table_names"):
            if name in names:
                arrays[name] = _read_member(path, archive_arrays, archive, name, mmap and name in ("offsets", "ids"))
            else:
                arrays[name] = None

    offsets, ids = arrays["offsets"], arrays["ids"]
    if offsets.dtype != np.int64 or ids.dtype != np.int64:
        raise TraceError(f"{path}: 'offsets' and 'ids' must be int64, got {offsets.dtype} and {ids.dtype}")
    table_offsets = arrays["table_offsets"]
    if table_offsets is not None and table_offsets.dtype.kind not in "iu":
        raise TraceError(f"{path}: 'table_offsets' must be an integer array, got {table_offsets.dtype}")
    table_names = arrays["table_names"]
    if table_names is not None and table_names.ndim != 1:
        raise TraceError(f"{path}: 'table_names' must be a 1-d array of names, got shape {table_names.shape}")
    return Trace(
        offsets=offsets,
        ids=ids,
        table_offsets=None if table_offsets is None else np.asarray(table_offsets, dtype=np.int64),
        dense=arrays["dense"],
        labels=arrays["labels"],
        table_names=None if table_names is None else tuple(str(name) for name in table_names),
        source=str(path),
    )


# Fixed timestamp of every member written by TraceWriter, so that equal traces give byte-identical files.
_ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)
# Bytes copied per step when the spill files are assembled into the .npz.
_COPY_BLOCK = 1 << 22


class TraceWriter:
    """Write a trace chunk by chunk to an uncompressed ``.npz``, with memory that does not grow with the trace.

    Chunks are appended to raw spill files in a temporary directory next to ``path``; :meth:`close` assembles them into
    the ``.npz`` and moves it into place with :func:`os.replace`. When the writer is used as a context manager and the
    block raises, or when :meth:`abort` is called, the spill files are removed and ``path`` is left untouched.

    With ``local_ids=True`` every id is a row index inside its table and :meth:`append` also takes the table of every
    id; :meth:`close` then adds the table offsets, which are often known only once the whole input has been read.

    :param path: the ``.npz`` to write.
    :param num_dense: number of dense features per sample, or None for a trace without dense features.
    :param has_labels: whether every chunk carries labels.
    :param local_ids: whether ids are table-local (see above) rather than global.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        num_dense: int | None = None,
        has_labels: bool = False,
        local_ids: bool = False,
    ) -> None:
        self.path = Path(path)
        self.num_dense = num_dense
        self.has_labels = has_labels
        self.local_ids = local_ids
        self.num_samples = 0
        self.num_ids = 0
        self._max_id = -1
        self._closed = False
        _check_output_path(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._spill_dir = Path(
                tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".parts", dir=self.path.parent)
            )
        except OSError as error:
            raise _output_error(self.path, error) from None
        self._files = {name: open(self._spill_dir / f"{name}.bin", "wb") for name in self._spill_names()}

    def _spill_names(self) -> list[str]:
        names = ["lengths", "ids"]
        if self.local_ids:
            names.append("tables")
        if self.num_dense is not None:
            names.append("dense")
        if self.has_labels:
            names.append("labels")
        return names

    def __enter__(self) -> "TraceWriter":
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is not None:
            self.abort()
        elif not self._closed:
            self.abort()
            raise TraceError(f"{self.path}: TraceWriter left without close(); no file was written")

    def append(
        self,
        lengths: np.ndarray,
        ids: np.ndarray,
        *,
        tables: np.ndarray | None = None,
        dense: np.ndarray | None = None,
        labels: np.ndarray | None = None,
    ) -> None:
        """Append a chunk of samples: sample ``i`` of the chunk owns the next ``lengths[i]`` entries of ``ids``.

        :param tables: the table index of every id; required exactly when the writer was opened with ``local_ids``.
        :param dense: float32 [n, num_dense]; required exactly when ``num_dense`` is not None.
        :param labels: float32 [n]; required exactly when ``has_labels``.
        """
        if self._closed:
            raise TraceError(f"{self.path}: append() after close()")
        lengths = np.asarray(lengths, dtype=np.int64)
        ids = np.asarray(ids, dtype=np.int64)
        count = len(lengths)
        if int(lengths.sum()) != len(ids):
            raise TraceError(f"{self.path}: chunk lengths sum to {int(lengths.sum())} but {len(ids)} ids were given")
        if ids.size and int(ids.min()) < 0:
            raise TraceError(f"{self.path}: chunk contains the negative id {int(ids.min())}")
        if (tables is not None) != self.local_ids:
            raise TraceError(f"{self.path}: 'tables' must be given exactly when the writer has local_ids=True")
        if (dense is not None) != (self.num_dense is not None):
            raise TraceError(f"{self.path}: 'dense' must be given exactly when the writer has num_dense set")
        if (labels is not None) != self.has_labels:
            raise TraceError(f"{self.path}: 'labels' must be given exactly when the writer has has_labels=True")

        self._files["lengths"].write(lengths.tobytes())
        self._files["ids"].write(ids.tobytes())
        if tables is not None:
            tables = np.asarray(tables, dtype=np.uint16)
            if len(tables) != len(ids):
                raise TraceError(f"{self.path}: {len(tables)} table indices for {len(ids)} ids")
            self._files["tables"].write(tables.tobytes())
        if dense is not None:
            dense = np.asarray(dense, dtype=np.float32)
            if dense.shape != (count, self.num_dense):
                expected = (count, self.num_dense)
                raise TraceError(f"{self.path}: dense chunk has shape {dense.shape}, expected {expected}")
            self._files["dense"].write(np.ascontiguousarray(dense).tobytes())
        if labels is not None:
            labels = np.asarray(labels, dtype=np.float32)
            if labels.shape != (count,):
                raise TraceError(f"{self.path}: labels chunk has shape {labels.shape}, expected ({count},)")
            self._files["labels"].write(labels.tobytes())
        if ids.size:
            self._max_id = max(self._max_id, int(ids.max()))
        self.num_samples += count
        self.num_ids += len(ids)

    def close(
        self,
        table_offsets: Sequence[int] | np.ndarray | None = None,
        table_names: Sequence[str] | None = None,
    ) -> Path:
        """Assemble the ``.npz`` and move it to ``path`` atomically; return ``path``.

        :param table_offsets: int64 [T+1]; required with ``local_ids``, where id ``k`` of table ``t`` becomes
            ``table_offsets[t] + k``.
        :raises TraceError: when the trace is empty or an id lies outside its table; no file is written then.
        """
        if self._closed:
            raise TraceError(f"{self.path}: close() called twice")
        try:
            for handle in self._files.values():
                handle.close()
            result = self._assemble(table_offsets, table_names)
        except BaseException:
            self.abort()
            raise
        self._closed = True
        shutil.rmtree(self._spill_dir, ignore_errors=True)
        return result

    def abort(self) -> None:
        """Drop everything written so far; ``path`` is not touched."""
        self._closed = True
        for handle in self._files.values():
            handle.close()
        shutil.rmtree(self._spill_dir, ignore_errors=True)

    def _assemble(self, table_offsets, table_names) -> Path:
        if self.num_samples == 0:
            raise TraceError(f"{self.path}: the trace is empty (no samples)")
        offsets_table = None if table_offsets is None else np.asarray(table_offsets, dtype=np.int64)
        if self.local_ids and offsets_table is None:
            raise TraceError(f"{self.path}: table_offsets are required to place table-local ids")
        if offsets_table is not None:
            if offsets_table.ndim != 1 or len(offsets_table) < 2 or offsets_table[0] != 0:
                raise TraceError(f"{self.path}: table_offsets must be 1-d, start at 0 and name at least one table")
            if np.any(np.diff(offsets_table) < 0):
                raise TraceError(f"{self.path}: table_offsets must not decrease, got {offsets_table.tolist()}")
            if table_names is not None and len(table_names) != len(offsets_table) - 1:
                raise TraceError(
                    f"{self.path}: {len(table_names)} table names for {len(offsets_table) - 1} tables"
                )
            if not self.local_ids and self._max_id >= int(offsets_table[-1]):
                limit = int(offsets_table[-1])
                raise TraceError(f"{self.path}: id {self._max_id} is beyond the tables (table_offsets ends at {limit})")

        tmp_path = self._spill_dir / "trace.npz"
        with zipfile.ZipFile(tmp_path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
            self._write_member(archive, "offsets", np.dtype(np.int64), (self.num_samples + 1,), self._offset_blocks())
            self._write_member(archive, "ids", np.dtype(np.int64), (self.num_ids,), self._id_blocks(offsets_table))
            if offsets_table is not None:
                self._write_small(archive, "table_offsets", offsets_table)
            if self.num_dense is not None:
                shape = (self.num_samples, self.num_dense)
                self._write_member(archive, "dense", np.dtype(np.float32), shape, self._raw_blocks("dense"))
            if self.has_labels:
                shape = (self.num_samples,)
                self._write_member(archive, "labels", np.dtype(np.float32), shape, self._raw_blocks("labels"))
            if table_names is not None:
                self._write_small(archive, "table_names", np.asarray(list(table_names), dtype=str))
        os.replace(tmp_path, self.path)
        return self.path

    def _raw_blocks(self, name: str):
        with open(self._spill_dir / f"{name}.bin", "rb") as handle:
            while block := handle.read(_COPY_BLOCK):
                yield block

    def _offset_blocks(self):
        yield np.zeros(1, dtype=np.int64).tobytes()
        total = 0
        for block in self._raw_blocks("lengths"):
            ends = np.cumsum(np.frombuffer(block, dtype=np.int64)) + total
            total = int(ends[-1])
            yield ends.tobytes()

    def _id_blocks(self, table_offsets: np.ndarray | None):
        if not self.local_ids:
            yield from self._raw_blocks("ids")
            return
        # Read ids (8 bytes) and their tables (2 bytes) in step, one block of ids at a time.
        ids_per_block = _COPY_BLOCK // 8
        id_path, table_path = self._spill_dir / "ids.bin", self._spill_dir / "tables.bin"
        with open(id_path, "rb") as id_file, open(table_path, "rb") as table_file:
            while block := id_file.read(ids_per_block * 8):
                local = np.frombuffer(block, dtype=np.int64)
                tables = np.frombuffer(table_file.read(len(local) * 2), dtype=np.uint16)
                if tables.size and int(tables.max()) >= len(table_offsets) - 1:
                    raise TraceError(f"{self.path}: table index {int(tables.max())} has no entry in table_offsets")
                sizes = np.diff(table_offsets)[tables]
                outside = local >= sizes
                if outside.any():
                    first = int(np.argmax(outside))
                    raise TraceError(
                        f"{self.path}: id {int(local[first])} is outside table {int(tables[first])} "
                        f"of {int(sizes[first])} rows"
                    )
                yield (local + table_offsets[tables]).tobytes()

    @staticmethod
    def _member_info(name: str) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE_TIME)
        info.compress_type = zipfile.ZIP_STORED
        info.external_attr = 0o644 << 16
        return info

    def _write_member(
        self, archive: zipfile.ZipFile, name: str, dtype: np.dtype, shape: tuple[int, ...], blocks
    ) -> None:
        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
        expected = int(np.prod(shape)) * dtype.itemsize
        written = 0
        with archive.open(self._member_info(name), "w", force_zip64=True) as member:
            np.lib.format.write_array_header_2_0(member, header)
            for block in blocks:
                member.write(block)
                written += len(block)
        if written != expected:
            raise TraceError(f"{self.path}: member '{name}' has {written} bytes, expected {expected}")

    def _write_small(self, archive: zipfile.ZipFile, name: str, array: np.ndarray) -> None:
        with archive.open(self._member_info(name), "w", force_zip64=True) as member:
            np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)

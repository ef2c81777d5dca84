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

Files written by :func:`save_trace` store members uncompressed, so :func:`load_trace` memory-maps ``ids`` and
``offsets`` instead of reading them: a trace larger than memory can still be replayed chunk by chunk.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from esd_gym.errors import TraceError

__all__ = ["Trace", "load_trace", "save_trace"]


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
        if self.table_offsets is not None and ids.size:
            limit = int(self.table_offsets[-1])
            top = int(ids.max())
            if top >= limit:
                raise TraceError(f"{self.source}: id {top} is beyond the tables (table_offsets ends at {limit})")
        if self.dense is not None and len(self.dense) != self.num_samples:
            raise TraceError(f"{self.source}: 'dense' has {len(self.dense)} rows for {self.num_samples} samples")
        if self.labels is not None and len(self.labels) != self.num_samples:
            raise TraceError(f"{self.source}: 'labels' has {len(self.labels)} entries for {self.num_samples} samples")


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

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **members)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


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
    return np.memmap(path, dtype=dtype, mode="r", offset=array_start, shape=shape)


def load_trace(path: str | os.PathLike[str], mmap: bool = True) -> Trace:
    """Read a trace written by :func:`save_trace` (or any ``.npz`` with the members above).

    :param mmap: memory-map ``ids`` and ``offsets`` when they are stored uncompressed, so that memory does not grow
        with the trace length.
    """
    path = Path(path)
    if not path.is_file():
        raise TraceError(f"{path}: trace file not found")
    try:
        archive_arrays = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise TraceError(f"{path}: not a readable .npz trace ({error})") from None

    with archive_arrays:
        names = set(archive_arrays.files)
        for required in ("offsets", "ids"):
            if required not in names:
                raise TraceError(f"{path}: member '{required}' is missing (found {sorted(names)})")
        arrays: dict[str, np.ndarray | None] = {}
        with zipfile.ZipFile(path) as archive:
            for name in ("offsets", "ids"):
                mapped = _memmap_member(path, archive, f"{name}.npy") if mmap else None
                arrays[name] = mapped if mapped is not None else archive_arrays[name]
        for name in ("table_offsets", "dense", "labels"):
            arrays[name] = archive_arrays[name] if name in names else None
        table_names = tuple(str(x) for x in archive_arrays["table_names"]) if "table_names" in names else None

    offsets, ids = arrays["offsets"], arrays["ids"]
    if offsets.dtype != np.int64 or ids.dtype != np.int64:
        raise TraceError(f"{path}: 'offsets' and 'ids' must be int64, got {offsets.dtype} and {ids.dtype}")
    return Trace(
        offsets=offsets,
        ids=ids,
        table_offsets=None if arrays["table_offsets"] is None else np.asarray(arrays["table_offsets"], dtype=np.int64),
        dense=arrays["dense"],
        labels=arrays["labels"],
        table_names=table_names,
        source=str(path),
    )

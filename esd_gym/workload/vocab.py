"""Per-table vocabularies that map categorical values to dense row indices, chunk by chunk."""

from __future__ import annotations

import hashlib

import numpy as np

from esd_gym.errors import ConfigError

__all__ = ["Vocabulary", "stable_hash"]


def stable_hash(value: str | bytes) -> int:
    """Return a 64-bit hash of ``value`` that is the same in every process (unlike the salted built-in ``hash``)."""
    raw = value.encode("utf-8") if isinstance(value, str) else value
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "little")


class Vocabulary:
    """Assign row indices 0, 1, 2, … to the distinct values of one categorical feature as they are first met.

    Values first met in the same chunk get their rows in sorted order, so the mapping depends on the input and the
    chunk size only, never on the process.

    Values within one chunk are first made unique with :func:`numpy.unique`, so the Python dictionary is consulted
    once per distinct value per chunk, not once per row. Memory grows with the number of distinct values (or, with
    ``max_size``, with at most ``max_size`` entries), never with the number of rows.

    :param name: the feature, used in messages.
    :param max_size: when given, a value is first hashed to one of ``max_size`` buckets and the buckets get the row
        indices, so the table never exceeds ``max_size`` rows and distinct values may share a row. This plays the role
        of ``--max-ind-range`` in facebookresearch/dlrm, which maps a categorical value to ``value mod max-ind-range``.
    """

    def __init__(self, name: str, max_size: int | None = None) -> None:
        if max_size is not None and max_size < 1:
            raise ConfigError(f"max table size for '{name}' must be at least 1, got {max_size}")
        self.name = name
        self.max_size = max_size
        self._index: dict[object, int] = {}

    def __len__(self) -> int:
        """Number of rows assigned so far: the table size."""
        return len(self._index)

    def lookup(self, values: np.ndarray | list[str]) -> np.ndarray:
        """Return the int64 row index of every value, adding values not seen before.

        Callers pass one kind of value per vocabulary: text (``str``, ``U`` arrays) or bytes (``S`` arrays), because
        ``"a"`` and ``b"a"`` are different keys.
        """
        values = np.asarray(values)
        if values.size == 0:
            return np.zeros(0, dtype=np.int64)
        if values.dtype.kind == "S" and values.dtype.itemsize <= 8:
            # Short byte strings sort much faster as the integers that their 8 bytes spell.
            padded = np.ascontiguousarray(values, dtype="S8")
            unique_words, inverse = np.unique(padded.view("<u8"), return_inverse=True)
            unique = unique_words.view("S8")
        else:
            unique, inverse = np.unique(values, return_inverse=True)
        index = self._index
        if self.max_size is None:
            keys = unique.tolist()
        else:
            keys = [stable_hash(value) % self.max_size for value in unique.tolist()]
        found = list(map(index.get, keys))
        if None in found:
            for i, row in enumerate(found):
                if row is None:
                    # setdefault evaluates len(index) before inserting, so a new key gets the next free row; with
                    # hashing, two values of this chunk may share a bucket, and the second finds the first's row.
                    found[i] = index.setdefault(keys[i], len(index))
        rows = np.array(found, dtype=np.int64)
        return rows[inverse.reshape(-1)]

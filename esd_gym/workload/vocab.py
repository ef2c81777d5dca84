"""Per-table vocabularies that map categorical values to dense row indices, chunk by chunk.

A vocabulary is an open-addressing hash table in two NumPy arrays (64-bit keys, int32 rows) with linear probing and
a load factor of at most 1/2. A whole chunk of values is looked up and inserted with vectorised probing rounds, so no
Python code runs per value, and the memory is about 24 bytes per distinct value (a Python dict of bytes keys takes
over 100).
"""

from __future__ import annotations

import numpy as np

from esd_gym.errors import ConfigError

__all__ = ["Vocabulary", "splitmix64", "value_keys"]

_MAX_ROWS = 2**31 - 1
_INITIAL_CAPACITY = 1024


def splitmix64(values: np.ndarray) -> np.ndarray:
    """Mix 64-bit integers into well-spread 64-bit hashes (the finaliser of Steele et al.'s SplitMix64)."""
    z = values.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def value_keys(values: np.ndarray | list) -> np.ndarray:
    """Map byte strings (or text, encoded as UTF-8) to 64-bit keys that do not depend on the array's width.

    A value of at most 8 bytes is its own key, namely its bytes read as a little-endian integer, so the key is exact.
    A longer value is hashed. NOTE: two values of which one is longer than 8 bytes may share a key, with probability
    about 2^-64 per pair.
    """
    values = np.asarray(values)
    if values.dtype.kind == "U":
        values = np.char.encode(values, "utf-8")
    if values.dtype.kind != "S":
        values = np.char.encode(values.astype(str), "utf-8")
    width = values.dtype.itemsize
    if width <= 8:
        return np.ascontiguousarray(values, dtype="S8").view("<u8").reshape(-1)

    words_per_value = -(-width // 8)
    padded = np.ascontiguousarray(values, dtype=f"S{8 * words_per_value}")
    data = padded.view(np.uint8).reshape(len(values), 8 * words_per_value)
    words = padded.view("<u8").reshape(len(values), words_per_value)
    # S arrays drop trailing NUL bytes, so a value ends at its last non-zero byte.
    nonzero = data != 0
    lengths = np.where(nonzero.any(axis=1), 8 * words_per_value - np.argmax(nonzero[:, ::-1], axis=1), 0)
    used_words = -(-lengths // 8)
    hashed = splitmix64(lengths.astype(np.uint64) ^ np.uint64(0x5EED))
    for word in range(words_per_value):
        mixed = splitmix64(hashed ^ words[:, word])
        hashed = np.where(word < used_words, mixed, hashed)
    return np.where(lengths <= 8, words[:, 0], hashed)


class Vocabulary:
    """Assign row indices 0, 1, 2, … to the distinct values of one categorical feature in order of first appearance.

    The mapping therefore depends on the sequence of values only, not on how it is split into chunks.

    :param name: the feature, used in messages.
    :param max_size: when given, the key of a value is first hashed to one of ``max_size`` buckets and the buckets get
        the row indices, so the table never exceeds ``max_size`` rows and distinct values may share a row. This plays
        the role of ``--max-ind-range`` in facebookresearch/dlrm, which maps a value to ``value mod max-ind-range``.
    """

    def __init__(self, name: str, max_size: int | None = None) -> None:
        if max_size is not None and not 1 <= max_size <= _MAX_ROWS:
            raise ConfigError(f"max table size for '{name}' must be between 1 and {_MAX_ROWS}, got {max_size}")
        self.name = name
        self.max_size = max_size
        self._size = 0
        self._keys = np.zeros(_INITIAL_CAPACITY, dtype=np.uint64)
        self._rows = np.full(_INITIAL_CAPACITY, -1, dtype=np.int32)

    def __len__(self) -> int:
        """Number of rows assigned so far: the table size."""
        return self._size

    @property
    def nbytes(self) -> int:
        """Memory of the hash table in bytes."""
        return self._keys.nbytes + self._rows.nbytes

    def lookup(self, values: np.ndarray | list) -> np.ndarray:
        """Return the int64 row index of every value, adding values not seen before.

        Values are byte strings (``S`` arrays) or text; text is encoded as UTF-8, so ``"a"`` and ``b"a"`` are the
        same value.
        """
        return self.lookup_keys(value_keys(values))

    def lookup_keys(self, keys: np.ndarray) -> np.ndarray:
        """Return the int64 row index of every key computed by :func:`value_keys`, adding keys not seen before."""
        keys = np.asarray(keys, dtype=np.uint64).reshape(-1)
        if keys.size == 0:
            return np.zeros(0, dtype=np.int64)
        if self.max_size is not None:
            keys = splitmix64(keys) % np.uint64(self.max_size)
        self._reserve(len(keys))
        rows = self._find_or_insert(keys)
        if self._size > _MAX_ROWS:
            raise ConfigError(f"table '{self.name}' has more than {_MAX_ROWS} distinct values; set a max table size")
        return rows

    def _reserve(self, incoming: int) -> None:
        """Grow the table so that it stays at most half full even if every incoming key is new."""
        needed = 2 * (self._size + incoming)
        capacity = len(self._keys)
        if needed <= capacity:
            return
        while capacity < needed:
            capacity *= 2
        occupied = self._rows >= 0
        old_keys, old_rows = self._keys[occupied], self._rows[occupied]
        self._keys = np.zeros(capacity, dtype=np.uint64)
        self._rows = np.full(capacity, -1, dtype=np.int32)
        # Old keys are distinct, so placing them needs no matching, only free slots.
        slots = self._home_slots(old_keys)
        pending = np.arange(len(old_keys))
        while pending.size:
            candidate = slots[pending]
            free = self._rows[candidate] < 0
            _, first = np.unique(candidate, return_index=True)
            placed = np.zeros(len(pending), dtype=bool)
            placed[first] = True
            placed &= free
            self._keys[candidate[placed]] = old_keys[pending[placed]]
            self._rows[candidate[placed]] = old_rows[pending[placed]]
            pending = pending[~placed]
            slots[pending] = (slots[pending] + 1) & (capacity - 1)

    def _home_slots(self, keys: np.ndarray) -> np.ndarray:
        return (splitmix64(keys) & np.uint64(len(self._keys) - 1)).astype(np.int64)

    def _find_or_insert(self, keys: np.ndarray) -> np.ndarray:
        mask = len(self._keys) - 1
        slots = self._home_slots(keys)
        result = np.empty(len(keys), dtype=np.int64)
        pending = np.arange(len(keys))
        first_size = self._size
        claimed: list[np.ndarray] = []
        first_positions: list[np.ndarray] = []
        while pending.size:
            candidate = slots[pending]
            stored_rows = self._rows[candidate]
            empty = stored_rows < 0
            found = ~empty & (self._keys[candidate] == keys[pending])
            result[pending[found]] = stored_rows[found]

            # Each empty slot takes the first key that reaches it. The other keys that reached it (repeats of that key,
            # or other keys) look at the same slot again in the next round.
            claimants = np.flatnonzero(empty)
            if claimants.size:
                claimed_slots, first = np.unique(candidate[claimants], return_index=True)
                winners = pending[claimants[first]]
                new_rows = np.arange(self._size, self._size + len(winners))
                self._keys[claimed_slots] = keys[winners]
                self._rows[claimed_slots] = new_rows
                result[winners] = new_rows
                self._size += len(winners)
                claimed.append(claimed_slots)
                first_positions.append(winners)
                settled = found.copy()
                settled[claimants[first]] = True
            else:
                settled = found

            # Keys that met another key move on to the next slot.
            collided = ~settled & ~empty
            slots[pending[collided]] = (candidate[collided] + 1) & mask
            pending = pending[~settled]

        if claimed:
            # Renumber this chunk's new rows in order of first appearance. The winner of a slot is the first
            # occurrence of its key, because equal keys probe the same slots together.
            positions = np.concatenate(first_positions)
            rank = np.empty(len(positions), dtype=np.int64)
            rank[np.argsort(positions, kind="stable")] = np.arange(len(positions))
            self._rows[np.concatenate(claimed)] = first_size + rank
            is_new = result >= first_size
            result[is_new] = first_size + rank[result[is_new] - first_size]
        return result

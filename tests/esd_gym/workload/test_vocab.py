"""Vocabulary: the vectorised hash table against a plain dict, hashing, and value keys."""

from __future__ import annotations

import numpy as np
import pytest

from esd_gym.errors import ConfigError
from esd_gym.workload.vocab import Vocabulary, value_keys


def first_appearance_rows(values):
    """Reference mapping: a dict that numbers values in order of first appearance."""
    rows: dict[bytes, int] = {}
    return np.array([rows.setdefault(value, len(rows)) for value in values], dtype=np.int64)


@pytest.mark.parametrize("chunk", [1, 7, 1000, 60_000])
def test_lookup_matches_dict_for_any_chunking(chunk):
    rng = np.random.default_rng(0)
    # Short values (one 8-byte key) and long ones (hashed keys), with many repeats.
    short = np.char.mod("%x", rng.zipf(1.1, 30_000) % 20_000)
    long = np.char.add("a-much-longer-categorical-value-", short[:20_000])
    values = np.concatenate([short, long]).astype("S")
    rng.shuffle(values)

    vocabulary = Vocabulary("feature")
    rows = np.concatenate([vocabulary.lookup(values[i : i + chunk]) for i in range(0, len(values), chunk)])
    expected = first_appearance_rows(values.tolist())
    assert np.array_equal(rows, expected)
    assert len(vocabulary) == expected.max() + 1


def test_empty_value_and_text():
    vocabulary = Vocabulary("feature")
    assert vocabulary.lookup(np.array([b"", b"x", b""])).tolist() == [0, 1, 0]
    # Text is encoded as UTF-8, so it meets the same rows as bytes.
    assert vocabulary.lookup(["x", "", "ü"]).tolist() == [1, 0, 2]
    assert vocabulary.lookup(np.array(["ü".encode()])).tolist() == [2]
    assert vocabulary.lookup(np.array([], dtype="S1")).tolist() == []


def test_max_size_bounds_rows():
    vocabulary = Vocabulary("feature", max_size=5)
    rows = vocabulary.lookup(np.array([b"%d" % i for i in range(1000)]))
    assert len(vocabulary) == 5
    assert set(rows.tolist()) == set(range(5))
    # Hashing is deterministic: the same value always lands in the same row.
    assert np.array_equal(vocabulary.lookup(np.array([b"%d" % i for i in range(1000)])), rows)


def test_max_size_must_be_positive():
    with pytest.raises(ConfigError, match="max table size for 'feature' must be between 1"):
        Vocabulary("feature", max_size=0)


def test_value_keys_ignore_array_width():
    narrow = value_keys(np.array([b"abc", b"0123456789"]))
    wide = value_keys(np.array([b"abc", b"0123456789", b"x" * 40]))
    assert narrow.tolist() == wide[:2].tolist()
    assert len(set(wide.tolist())) == 3
    # A value of at most 8 bytes is its own key: b"abc" read as a little-endian integer.
    assert narrow[0] == int.from_bytes(b"abc", "little")

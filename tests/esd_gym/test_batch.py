"""Batch construction: repeats within a sample, local numbering, gathering samples from a trace."""

from __future__ import annotations

import numpy as np
import pytest

from esd_gym.batch import Batch, gather_batch


@pytest.mark.parametrize("base", [0, 2**61])  # 2**61 forces the lexsort path (the pair key would overflow)
def test_repeats_within_sample_dropped_in_order(base):
    batch = Batch.from_csr(np.array([0, 3, 5, 5]), base + np.array([4, 4, 2, 2, 2]))
    # Sample 0 lists 4, 4, 2 -> 4, 2; sample 1 lists 2, 2 -> 2; sample 2 is empty.
    assert (batch.ids - base).tolist() == [4, 2, 2]
    assert batch.offsets.tolist() == [0, 2, 3, 3]
    assert batch.sample_of.tolist() == [0, 0, 1]
    assert (batch.unique_ids - base).tolist() == [2, 4]
    assert batch.local_ids.tolist() == [1, 0, 0]


def test_offsets_rebased():
    batch = Batch.from_csr(np.array([2, 4]), np.array([9, 9, 7, 8, 9]))
    assert batch.ids.tolist() == [7, 8]
    assert batch.offsets.tolist() == [0, 2]


def test_gather_batch_in_given_order():
    offsets = np.array([0, 2, 3, 6])
    ids = np.array([10, 11, 12, 13, 14, 15])
    batch = gather_batch(offsets, ids, np.array([2, 0]))
    assert batch.ids.tolist() == [13, 14, 15, 10, 11]
    assert batch.offsets.tolist() == [0, 3, 5]

"""Small traces and clusters for the DLRM tests, built in memory so that no test needs downloaded data."""

from __future__ import annotations

import numpy as np

from esd_gym.workload.trace import Trace

# Rows of the user, item and genre tables of make_trace.
TABLE_SIZES = (40, 30, 6)


def make_trace(num_samples: int = 600, seed: int = 0, dense: bool = True, labels: bool = True) -> Trace:
    """A learnable trace: a user id, an item id, one to three genre ids (multi-hot) and two dense features per
    sample; the label is drawn from a logistic model of user and item biases and the first dense feature."""
    rng = np.random.default_rng(seed)
    table_offsets = np.concatenate(([0], np.cumsum(TABLE_SIZES))).astype(np.int64)
    users = rng.integers(0, TABLE_SIZES[0], num_samples)
    # Skewed item popularity, so that some rows are shared by many samples of a batch.
    items = np.minimum(rng.zipf(1.5, num_samples) - 1, TABLE_SIZES[1] - 1)
    genre_counts = rng.integers(1, 4, num_samples)
    ids, lengths = [], []
    for sample in range(num_samples):
        genres = rng.integers(0, TABLE_SIZES[2], genre_counts[sample])
        row = [users[sample] + table_offsets[0], items[sample] + table_offsets[1], *(genres + table_offsets[2])]
        ids.extend(row)
        lengths.append(len(row))
    features = rng.normal(size=(num_samples, 2)).astype(np.float32)
    user_bias, item_bias = rng.normal(size=TABLE_SIZES[0]) * 1.5, rng.normal(size=TABLE_SIZES[1]) * 1.5
    logits = user_bias[users] + item_bias[items] + features[:, 0]
    drawn = (rng.random(num_samples) < 1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
    return Trace(
        offsets=np.concatenate(([0], np.cumsum(lengths))).astype(np.int64),
        ids=np.asarray(ids, dtype=np.int64),
        table_offsets=table_offsets,
        dense=features if dense else None,
        labels=drawn if labels else None,
        table_names=("user", "item", "genre"),
        source="test-trace",
    )

"""Small builders shared by the simulator tests."""

from __future__ import annotations

import numpy as np

from esd_gym.batch import Batch
from esd_gym.cluster import Cluster, ClusterConfig
from esd_gym.workload.trace import Trace, save_trace

# A small synthetic trace for the Criteo-like scenarios (override of their trace spec).
SMALL_SYNTHETIC = {"num_samples": 2000, "cardinalities": [40, 300, 2000, 10000]}


def make_cluster(
    cache_rows: list[int],
    down: float = 1000.0,
    up: float = 500.0,
    latency: float = 0.0,
    rate: float = 100.0,
    **options,
) -> Cluster:
    """Workers with identical links (one per PS) and the given cache sizes; ``options`` are ClusterConfig fields."""
    num_ps = options.get("num_ps", 1)
    options.setdefault("row_bytes", 64)
    link = {"down_bytes_per_s": down, "up_bytes_per_s": up, "latency_s": latency}
    workers = [
        {"cache_rows": rows, "compute_samples_per_s": rate, "links": [link] * num_ps} for rows in cache_rows
    ]
    return Cluster.from_config(ClusterConfig.model_validate({**options, "workers": workers}))


def make_batch(samples: list[list[int]]) -> Batch:
    lengths = [len(sample) for sample in samples]
    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    ids = np.array([i for sample in samples for i in sample], dtype=np.int64)
    return Batch.from_csr(offsets, ids)


def write_movielens_like(data_dir, num_samples: int = 3000, seed: int = 0) -> None:
    """Write ``data_dir/ml-100k.npz``: user, item and a multi-hot genre table, like the converted MovieLens."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, 100, num_samples)
    items = 100 + rng.zipf(1.3, num_samples) % 400
    genre_counts = rng.integers(1, 3, num_samples)
    rows = [np.concatenate(([u, i], 500 + rng.choice(5, g, replace=False))) for u, i, g in zip(users, items, genre_counts)]
    offsets = np.concatenate(([0], np.cumsum([len(r) for r in rows]))).astype(np.int64)
    trace = Trace(
        offsets=offsets,
        ids=np.concatenate(rows).astype(np.int64),
        table_offsets=np.array([0, 100, 500, 505], dtype=np.int64),
        table_names=("user_id", "item_id", "class"),
    )
    save_trace(data_dir / "ml-100k.npz", trace)

"""Small builders shared by the simulator tests."""

from __future__ import annotations

import numpy as np

from esd_gym.batch import Batch
from esd_gym.cluster import Cluster, ClusterConfig


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

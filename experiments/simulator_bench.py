"""Speed and memory of the simulator on a synthetic Criteo-sized workload (``esd-gym bench simulator``)."""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator

import numpy as np

from esd_gym.batch import Batch
from esd_gym.cluster import Cluster, ClusterConfig
from esd_gym.simulator import Simulator

# Criteo Kaggle per-table cardinalities (the 26 categorical features as used by facebookresearch/dlrm).
CRITEO_CARDINALITIES = (
    1460, 583, 10131227, 2202608, 305, 24, 12517, 633, 3, 93145, 5683, 8351593, 3194,
    27, 14992, 5461306, 10, 5652, 2173, 4, 7046547, 18, 15, 286181, 105, 142572,
)


def synthetic_batches(
    num_batches: int, batch_size: int, seed: int, zipf_exponent: float = 1.05
) -> Iterator[Batch]:
    """Batches of one id per Criteo table, drawn from a bounded Zipf law per table (rank r has weight r^-a).

    Batches are generated one at a time, so memory does not grow with ``num_batches``.
    """
    rng = np.random.default_rng(seed)
    cardinalities = np.array(CRITEO_CARDINALITIES, dtype=np.int64)
    table_offsets = np.concatenate(([0], np.cumsum(cardinalities)))[:-1]
    num_tables = len(cardinalities)
    for _ in range(num_batches):
        # Inverse CDF of the continuous bounded power law on [1, n + 1): no array of table length is needed.
        u = rng.random((batch_size, num_tables))
        top = (cardinalities + 1.0) ** (1.0 - zipf_exponent)
        ranks = np.floor((1.0 + u * (top - 1.0)) ** (1.0 / (1.0 - zipf_exponent))).astype(np.int64) - 1
        ranks = np.minimum(ranks, cardinalities - 1)
        ids = (ranks + table_offsets).reshape(-1)
        yield Batch.from_csr(np.arange(0, ids.size + 1, num_tables, dtype=np.int64), ids)


def bench_cluster(num_workers: int, cache_rows: int, num_ps: int) -> Cluster:
    links = [{"down_bytes_per_s": 12.5e6, "up_bytes_per_s": 6.25e6, "latency_s": 0.005}] * num_ps
    config = ClusterConfig.model_validate(
        {
            "embedding_dim": 16,
            "num_ps": num_ps,
            "workers": [
                {"cache_rows": cache_rows, "compute_samples_per_s": 2000.0, "links": links}
                for _ in range(num_workers)
            ],
        }
    )
    return Cluster.from_config(config)


def bench_simulator(
    batch_size: int = 4096, num_workers: int = 8, iterations: int = 30, cache_rows: int = 200_000, num_ps: int = 2
) -> dict[str, float | int]:
    """Time ``iterations`` simulator steps under round-robin dispatch; return rates and peak RSS.

    Only :meth:`Simulator.step` is timed; generating the synthetic batches is not.
    """
    simulator = Simulator(bench_cluster(num_workers, cache_rows, num_ps))
    assignment = np.arange(batch_size, dtype=np.int64) % num_workers
    elapsed_s = 0.0
    for index, batch in enumerate(synthetic_batches(iterations, batch_size, seed=0)):
        start = time.perf_counter()
        report = simulator.step(batch, assignment)
        if index > 0:  # the first step is a warm-up (first-touch allocations)
            elapsed_s += time.perf_counter() - start
    timed = iterations - 1
    return {
        "batch_size": batch_size,
        "workers": num_workers,
        "ids_per_sample": len(CRITEO_CARDINALITIES),
        "cache_rows_per_worker": cache_rows,
        "iterations": timed,
        "iterations_per_s": timed / elapsed_s,
        "samples_per_s": timed * batch_size / elapsed_s,
        "last_hit_rate": report.totals()["hit_rate"],
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }

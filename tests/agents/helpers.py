"""Builders of small clusters, batches and dispatch contexts with hand-chosen prices."""

from __future__ import annotations

import numpy as np

from esd_gym.batch import Batch
from esd_gym.cluster import Cluster, ClusterConfig
from esd_gym.cost import BatchCosts, LinkPrices
from esd_gym.dispatch import DispatchContext, _distinct_per_sample
from esd_gym.simulator import Simulator


def make_cluster(
    down_bytes_per_s: list[float],
    capacity: list[int] | None = None,
    cache_rows: int = 4,
    num_ps: int = 1,
    latency_s: float = 0.001,
    embedding_dim: int = 4,
    bandwidth_trace: list[list[dict]] | None = None,
) -> Cluster:
    """Cluster with one worker per entry of ``down_bytes_per_s`` (uplink half of it, same on every PS link)."""
    workers = []
    for index, down in enumerate(down_bytes_per_s):
        worker = {
            "cache_rows": cache_rows,
            "compute_samples_per_s": 100.0,
            "links": [{"down_bytes_per_s": down, "up_bytes_per_s": down / 2, "latency_s": latency_s}] * num_ps,
        }
        if capacity is not None:
            worker["capacity"] = capacity[index]
        if bandwidth_trace is not None:
            worker["bandwidth_trace"] = bandwidth_trace[index]
        workers.append(worker)
    config = ClusterConfig.model_validate({"embedding_dim": embedding_dim, "num_ps": num_ps, "workers": workers})
    return Cluster.from_config(config)


def batch_of(samples: list[list[int]]) -> Batch:
    """Batch from a list of id lists."""
    lengths = [len(ids) for ids in samples]
    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    ids = np.array([i for ids in samples for i in ids], dtype=np.int64)
    return Batch.from_csr(offsets, ids)


def priced_context(
    batch: Batch,
    pull_s: list[float],
    fresh: np.ndarray,
    capacity: list[int],
    cluster: Cluster | None = None,
    latency_s: float = 0.0,
    table_offsets: np.ndarray | None = None,
) -> DispatchContext:
    """Context on 1 PS priced by a pull per worker, no requests or pushes, and latency only when given.

    ``fresh`` is bool [W, U] over the batch's sorted distinct ids. A row then costs ``pull_s[w]`` on worker w unless
    it is fresh there, where it costs nothing.
    """
    num_workers = len(pull_s)
    zeros = np.zeros((num_workers, 1))
    prices = LinkPrices(
        latency_s=zeros + latency_s,
        request_s=zeros.copy(),
        pull_s=np.array(pull_s, dtype=np.float64)[:, None],
        push_s=zeros.copy(),
    )
    costs = BatchCosts(
        prices=prices,
        ps_of_local=np.zeros(batch.num_unique, dtype=np.int64),
        fresh=np.asarray(fresh, dtype=bool),
        cacheable=None,
        staleness_bound=0,
    )
    if cluster is None:
        cluster = make_cluster([1e6] * num_workers)
    ps_offsets, sample_ps = _distinct_per_sample(batch.offsets, np.zeros(len(batch.ids), dtype=np.int64), 1)
    return DispatchContext(
        batch=batch,
        costs=costs,
        capacity=np.array(capacity, dtype=np.int64),
        cached=np.asarray(fresh, dtype=bool),
        cache_fill=np.zeros(num_workers),
        sample_ps_offsets=ps_offsets,
        sample_ps=sample_ps,
        cluster=cluster,
        time_s=0.0,
        table_offsets=table_offsets,
    )


def random_batch(rng: np.random.Generator, num_samples: int, num_ids: int, max_ids_per_sample: int) -> Batch:
    """Batch of ``num_samples`` samples with 1..max distinct ids each, drawn from ``0..num_ids-1``."""
    samples = []
    for _ in range(num_samples):
        count = int(rng.integers(1, max_ids_per_sample + 1))
        samples.append(sorted(rng.choice(num_ids, size=min(count, num_ids), replace=False).tolist()))
    return batch_of(samples)


def random_tiny_instance(seed: int) -> tuple[Simulator, Batch, np.ndarray]:
    """A warmed simulator on 2–3 heterogeneous workers, a batch of 3–6 samples sharing ids, and capacities.

    The caches are warmed by two random batches, so some rows are fresh on some workers; staleness bound 0.
    """
    rng = np.random.default_rng(seed)
    num_workers = int(rng.integers(2, 4))
    num_samples = int(rng.integers(3, 7))
    capacity = rng.integers(1, num_samples + 1, size=num_workers)
    while capacity.sum() < num_samples:
        capacity[rng.integers(num_workers)] += 1
    cluster = make_cluster(
        down_bytes_per_s=(10 ** rng.uniform(4, 6, size=num_workers)).tolist(),
        capacity=capacity.tolist(),
        cache_rows=int(rng.integers(2, 5)),
        num_ps=int(rng.integers(1, 3)),
        latency_s=float(rng.choice([0.0, 1e-4, 1e-3])),
    )
    simulator = Simulator(cluster)
    num_ids = 7
    for _ in range(2):
        warm = random_batch(rng, num_samples, num_ids, 3)
        simulator.step(warm, rng.integers(0, num_workers, size=num_samples))
    batch = random_batch(rng, num_samples, num_ids, 3)
    return simulator, batch, cluster.capacities(num_samples)

"""Property tests: the vectorised simulator against the literal per-id reference, on random small cases."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from esd_gym.cluster import Cluster, ClusterConfig
from esd_gym.simulator import Simulator
from tests.esd_gym.helpers import make_batch
from tests.esd_gym.reference_simulator import Link, ReferenceSimulator, ReferenceWorker


@st.composite
def cases(draw):
    num_workers = draw(st.integers(1, 3))
    num_ps = draw(st.integers(1, 2))
    policy = draw(st.sampled_from(["lru", "lfu", "static"]))
    bound = draw(st.integers(0, 3))
    overlap = draw(st.booleans())
    workers = []
    for _ in range(num_workers):
        links = [
            {
                "down_bytes_per_s": draw(st.sampled_from([100.0, 1000.0, 4000.0])),
                "up_bytes_per_s": draw(st.sampled_from([50.0, 500.0, 2000.0])),
                "latency_s": draw(st.sampled_from([0.0, 0.01, 0.2])),
            }
            for _ in range(num_ps)
        ]
        workers.append(
            {
                "cache_rows": draw(st.integers(0, 5)),
                "compute_samples_per_s": draw(st.sampled_from([10.0, 100.0])),
                "links": links,
            }
        )
    config = ClusterConfig.model_validate(
        {
            "row_bytes": 32,
            "num_ps": num_ps,
            "staleness_bound": bound,
            "cache_policy": policy,
            "overlap_compute": overlap,
            "workers": workers,
        }
    )
    batch_size = draw(st.integers(1, 6))
    num_batches = draw(st.integers(1, 5))
    batches, assignments = [], []
    for _ in range(num_batches):
        samples = [draw(st.lists(st.integers(0, 9), min_size=0, max_size=4)) for _ in range(batch_size)]
        batches.append(samples)
        assignments.append([draw(st.integers(0, num_workers - 1)) for _ in range(batch_size)])
    hot = draw(st.lists(st.integers(0, 9), min_size=0, max_size=6, unique=True))
    return config, batches, assignments, hot


def reference_for(config: ClusterConfig, hot: list[int]) -> ReferenceSimulator:
    """The reference twin of ``config``; a static cache keeps the first ``cache_rows`` ids of the ranked hot list."""
    workers = [
        ReferenceWorker(
            capacity_rows=w.cache_rows,
            rate=w.compute_samples_per_s,
            links=[Link(l.down_bytes_per_s, l.up_bytes_per_s, l.latency_s) for l in w.links],
            hot=set(hot[: w.cache_rows]),
        )
        for w in config.workers
    ]
    return ReferenceSimulator(
        workers,
        row_bytes=config.row_bytes,
        staleness_bound=config.staleness_bound,
        num_ps=config.num_ps,
        policy=config.cache_policy,
        overlap=config.overlap_compute,
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_matches_reference(case):
    config, batches, assignments, hot = case
    simulator = Simulator(Cluster.from_config(config), hot_ids=np.array(hot, dtype=np.int64))
    reference = reference_for(config, hot)
    for samples, assignment in zip(batches, assignments):
        report = simulator.step(make_batch(samples), np.array(assignment))
        expected = reference.step(samples, assignment)
        totals = report.totals()
        for key in ("lookups", "hits", "pulls", "pushes", "write_backs", "transient"):
            assert totals[key] == expected[key], key
        assert totals["cost_s"] == pytest.approx(expected["cost"], rel=1e-12, abs=1e-12)
        assert report.iteration_time_s == pytest.approx(expected["time"], rel=1e-12, abs=1e-12)
    flush = simulator.flush()
    expected_flush = reference.flush()
    assert int(flush.pushes.sum()) == expected_flush["pushes"]
    assert flush.total_cost_s == pytest.approx(expected_flush["cost"], rel=1e-12, abs=1e-12)
    assert simulator.time_s == pytest.approx(reference.time_s, rel=1e-12, abs=1e-12)


@settings(max_examples=150, deadline=None)
@given(cases())
def test_report_invariants(case):
    config, batches, assignments, hot = case
    cluster = Cluster.from_config(config)
    simulator = Simulator(cluster, hot_ids=np.array(hot, dtype=np.int64))
    twin = copy.deepcopy(simulator)
    row_message = 32 + 16
    for samples, assignment in zip(batches, assignments):
        batch = make_batch(samples)
        report = simulator.step(batch, np.array(assignment))
        again = twin.step(batch, np.array(assignment))
        assert (report.hits + report.pulls == report.lookups).all()
        assert (report.bytes_down == report.pulls * row_message).all()
        assert (report.bytes_up == report.lookups * 16 + report.pushes * row_message).all()
        assert (report.cost_s >= 0).all()
        assert report.iteration_time_s >= 0
        assert (np.array([c.size for c in simulator.caches]) <= cluster.cache_rows).all()
        assert report.to_dict() == again.to_dict()

"""Distributed DLRM training against single-process training, and the tensor side against the simulator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from esd_gym.dispatch import greedy_dispatch
from esd_gym.dlrm.config import ModelConfig, OptimizerConfig
from esd_gym.dlrm.data import DlrmData
from esd_gym.dlrm.training import DistributedTrainer, ReferenceTrainer
from esd_gym.report import EpisodeTotals
from tests.esd_gym.dlrm.builders import make_trace
from tests.esd_gym.helpers import make_cluster

BATCH_SIZE = 32
ITERATIONS = 12
MODEL = ModelConfig(bottom_mlp=[8], top_mlp=[16])
SGD = OptimizerConfig(embedding_lr=2.0, dense="sgd", dense_lr=0.1)


def _data() -> DlrmData:
    return DlrmData.from_trace(make_trace(), holdout_fraction=0.2, seed=0)


def _random_dispatch(seed: int, num_workers: int):
    """Shuffle a balanced assignment, so that no worker exceeds its capacity."""
    rng = np.random.default_rng(seed)
    return lambda context: rng.permutation(np.arange(context.batch.size) % num_workers)


def _train(data, cluster, dispatch, optimizer=SGD, iterations=ITERATIONS, flush=True):
    trainer = DistributedTrainer(data, cluster, MODEL, optimizer, seed=3)
    totals = EpisodeTotals()
    for samples in data.training_stream(0, iterations, BATCH_SIZE):
        report, _ = trainer.dispatch_and_step(samples, dispatch)
        totals.add(report)
    if flush:
        totals.add(trainer.flush())
    return trainer, totals


def _reference(data, optimizer=SGD, iterations=ITERATIONS):
    reference = ReferenceTrainer(data, 16, MODEL, optimizer, seed=3)
    for samples in data.training_stream(0, iterations, BATCH_SIZE):
        reference.step(samples)
    return reference


def _max_difference(first, second) -> float:
    rows = (first.master_rows - second.master_rows).abs().max().item()
    dense = max((a - b).abs().max().item() for a, b in zip(first.model.parameters(), second.model.parameters()))
    return max(rows, dense)


@pytest.mark.parametrize("policy", ["lru", "static"])
def test_zero_staleness_equals_reference(policy):
    data = _data()
    # Small caches force evictions, write-backs and transient rows; the static policy caches only 10 hot rows.
    cluster = make_cluster([12, 12, 12], staleness_bound=0, cache_policy=policy)
    hot_ids = np.arange(10) if policy == "static" else None
    reference = _reference(data)

    for dispatch in (_random_dispatch(1, 3), greedy_dispatch):
        trainer = DistributedTrainer(data, cluster, MODEL, SGD, seed=3, hot_ids=hot_ids)
        for samples in data.training_stream(0, ITERATIONS, BATCH_SIZE):
            trainer.dispatch_and_step(samples, dispatch)
        trainer.flush()
        assert _max_difference(trainer, reference) < 1e-5
        assert trainer.traffic.stale_reads == 0


def test_zero_staleness_dispatches_agree_under_adam():
    data = _data()
    cluster = make_cluster([12, 12, 12], staleness_bound=0)
    adam = OptimizerConfig(embedding_lr=2.0, dense="adam", dense_lr=0.01)
    first, _ = _train(data, cluster, _random_dispatch(1, 3), adam)
    second, _ = _train(data, cluster, greedy_dispatch, adam)
    reference = _reference(data, adam)
    assert _max_difference(first, reference) < 1e-4
    assert _max_difference(second, reference) < 1e-4


def test_reference_training_moves_parameters():
    data = _data()
    untrained = ReferenceTrainer(data, 16, MODEL, SGD, seed=3)
    trained = _reference(data)
    assert _max_difference(untrained, trained) > 1e-3


def test_positive_staleness_reads_stale_copies():
    data = _data()
    fresh, _ = _train(data, make_cluster([40, 40, 40], staleness_bound=0), _random_dispatch(1, 3))
    stale, _ = _train(data, make_cluster([40, 40, 40], staleness_bound=3), _random_dispatch(1, 3))
    assert fresh.traffic.stale_reads == 0
    assert stale.traffic.stale_reads > 0
    assert _max_difference(fresh, stale) > 1e-4


def test_tensor_traffic_equals_simulator_counts():
    data = _data()
    trainer, totals = _train(data, make_cluster([12, 12, 12], staleness_bound=2), _random_dispatch(2, 3))
    assert trainer.traffic.pulled_rows == totals.counts["pulls"]
    assert trainer.traffic.pushed_rows == totals.counts["pushes"]
    assert trainer.traffic.pulled_rows > 0
    # The flush pushed every pending gradient.
    assert trainer.store.pending.abs().max().item() == 0.0


def test_pending_gradients_follow_pending_counts():
    data = _data()
    bound = 3
    trainer, _ = _train(data, make_cluster([40, 40, 40], staleness_bound=bound), _random_dispatch(4, 3), flush=False)
    store = trainer.store
    for worker, cache in enumerate(trainer.simulator.caches):
        has_gradient = store.pending[worker].abs().amax(dim=1).numpy() > 0
        ids, lag, pending = cache.rows()
        pending_ids = ids[pending > 0]
        # A row has an accumulated gradient exactly when the simulator counts pending updates for it.
        assert set(np.flatnonzero(has_gradient).tolist()) <= set(pending_ids.tolist())
        assert int(pending.max(initial=0)) <= bound
        # A copy that no other worker has updated since its refresh is the master row plus its own pending steps.
        current = ids[lag == 0]
        index = torch.from_numpy(current)
        expected = store.master[index] - store.lr * store.pending[worker, index]
        assert torch.allclose(store.copies[worker, index], expected, atol=1e-5)


def test_workers_without_samples_are_skipped():
    data = _data()
    trainer = DistributedTrainer(data, make_cluster([12, 12, 12, 12], staleness_bound=0), MODEL, SGD, seed=3)
    for samples in data.training_stream(0, ITERATIONS, BATCH_SIZE):
        # Only workers 0 and 2 get samples; no capacity is enforced.
        trainer.step(trainer.make_batch(samples), samples, np.arange(BATCH_SIZE) % 2 * 2)
    reference = _reference(data)
    assert _max_difference(trainer, reference) < 1e-5


def test_model_dim_must_match_cluster_rows():
    from esd_gym.errors import ConfigError

    data = _data()
    with pytest.raises(ConfigError, match="embedding_dim"):
        DistributedTrainer(data, make_cluster([4]), ModelConfig(embedding_dim=8), SGD)

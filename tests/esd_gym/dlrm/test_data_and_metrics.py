"""Trace checks, the held-out split, the AUC and log-loss formulas, and the network's shapes."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import torch

from esd_gym.dlrm.config import ModelConfig
from esd_gym.dlrm.data import DlrmData, bag_layout, check_trace
from esd_gym.dlrm.metrics import log_loss, roc_auc
from esd_gym.dlrm.model import DLRM, pool_rows
from esd_gym.errors import TraceError
from tests.esd_gym.dlrm.builders import make_trace


def _pairwise_auc(labels, scores):
    positives, negatives = scores[labels == 1], scores[labels == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(positives, negatives))
    return wins / (len(positives) * len(negatives))


def test_trace_without_labels_is_rejected():
    with pytest.raises(TraceError) as error:
        check_trace(make_trace(labels=False))
    message = str(error.value)
    assert "no labels" in message
    assert "'labels'" in message
    assert "\n" not in message


def test_trace_without_dense_is_rejected():
    with pytest.raises(TraceError, match="no dense features \\(member 'dense' missing\\)"):
        check_trace(make_trace(dense=False))


def test_trace_without_both_names_both():
    with pytest.raises(TraceError, match="no dense features and no labels"):
        check_trace(make_trace(dense=False, labels=False))


def test_labels_must_be_binary():
    trace = make_trace()
    labels = trace.labels.copy()
    labels[5] = 3.0
    with pytest.raises(TraceError, match="got 3.0 at sample 5"):
        check_trace(dataclasses.replace(trace, labels=labels))


def test_zero_dense_columns_drop_bottom_mlp():
    trace = make_trace()
    data = DlrmData.from_trace(dataclasses.replace(trace, dense=np.zeros((trace.num_samples, 0), np.float32)))
    model = DLRM(data.num_dense, data.num_tables, 4, ModelConfig(top_mlp=[8]))
    assert model.bottom is None
    logits = model(torch.zeros(5, 0), torch.randn(5, data.num_tables, 4))
    assert logits.shape == (5,)
    # Three tables interact in three pairs.
    assert model.top[0].in_features == 3


def test_split_is_seeded_and_disjoint():
    trace = make_trace()
    first = DlrmData.from_trace(trace, holdout_fraction=0.25, seed=7)
    again = DlrmData.from_trace(trace, holdout_fraction=0.25, seed=7)
    other = DlrmData.from_trace(trace, holdout_fraction=0.25, seed=8)
    assert np.array_equal(first.holdout_samples, again.holdout_samples)
    assert not np.array_equal(first.holdout_samples, other.holdout_samples)
    assert not set(first.holdout_samples.tolist()) & set(first.train_samples.tolist())
    assert len(first.holdout_samples) + len(first.train_samples) == trace.num_samples


def test_dense_standardised_by_training_split():
    data = DlrmData.from_trace(make_trace(), holdout_fraction=0.2, seed=0)
    train = data.dense[data.train_samples]
    assert np.allclose(train.mean(axis=0), 0.0, atol=1e-5)
    assert np.allclose(train.std(axis=0), 1.0, atol=1e-4)


def test_training_stream_wraps_around():
    data = DlrmData.from_trace(make_trace(num_samples=50), holdout_fraction=0.2, seed=0)
    stream = data.training_stream(0, 5, 16)
    flat = stream.reshape(-1)
    count = len(data.train_samples)
    assert np.array_equal(flat[:count], data.train_samples)
    assert np.array_equal(flat[count : 2 * count], data.train_samples[: len(flat) - count])


def test_auc_matches_pairwise_count_with_ties():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    scores = rng.integers(0, 10, 200).astype(float)
    assert roc_auc(labels, scores) == pytest.approx(_pairwise_auc(labels, scores))


def test_auc_extremes():
    labels = np.array([0, 0, 1, 1])
    assert roc_auc(labels, np.array([0.1, 0.2, 0.3, 0.4])) == 1.0
    assert roc_auc(labels, np.array([0.4, 0.3, 0.2, 0.1])) == 0.0
    assert np.isnan(roc_auc(np.ones(4), np.arange(4.0)))


def test_log_loss_matches_torch():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 50).astype(np.float32)
    logits = rng.normal(scale=30.0, size=50)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.from_numpy(logits), torch.from_numpy(labels).double()
    )
    assert log_loss(labels, logits) == pytest.approx(expected.item(), rel=1e-9)


def test_pooling_sums_multi_hot_bags():
    # Two samples over tables [0, 2) and [2, 5): sample 0 uses rows 1, 2, 4; sample 1 uses row 0 only.
    table_offsets = np.array([0, 2, 5])
    ids = np.array([1, 2, 4, 0])
    sample_of_entry = np.array([0, 0, 0, 1])
    rows = torch.arange(10.0).reshape(5, 2)
    layout = bag_layout(sample_of_entry, ids, 2, table_offsets)
    pooled = pool_rows(rows, ids, layout, 2, 2, "sum")
    assert pooled.tolist() == [[[2.0, 3.0], [12.0, 14.0]], [[0.0, 1.0], [0.0, 0.0]]]

"""One training iteration of the DLRM: distributed over the simulated workers, or in a single process for reference.

:class:`DistributedTrainer` runs the simulator's iteration for a dispatch and then, per worker, the forward and
backward pass of that worker's samples with that worker's copies of the rows (see :mod:`esd_gym.dlrm.embeddings`).
Both trainers minimise the mean binary cross-entropy of the global batch: worker w's loss is the sum over its
samples divided by the batch size S, and the dense gradients of the workers are summed, which is the all-reduce of
those per-worker gradients. The sum is the gradient of the batch mean whatever the dispatch, so with s = 0 the
distributed run and :class:`ReferenceTrainer` follow the same trajectory up to float rounding. One optimiser then
steps the dense parameters once per iteration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional

from esd_gym.batch import Batch, gather_batch
from esd_gym.cluster import Cluster
from esd_gym.dispatch import DispatchContext
from esd_gym.dlrm.config import ModelConfig, OptimizerConfig
from esd_gym.dlrm.data import DlrmData, bag_layout
from esd_gym.dlrm.embeddings import EmbeddingStore, RecordingSimulator, TensorTraffic
from esd_gym.dlrm.metrics import log_loss, roc_auc
from esd_gym.dlrm.model import DLRM, initial_rows, pool_rows
from esd_gym.errors import ConfigError
from esd_gym.report import IterationReport

__all__ = [
    "DistributedTrainer",
    "Evaluation",
    "ReferenceTrainer",
    "build_model",
    "evaluate",
    "make_dense_optimizer",
    "resolve_dim",
]

# Samples scored per forward pass during evaluation.
EVAL_CHUNK = 8192


def resolve_dim(config: ModelConfig, cluster: Cluster | None) -> int:
    """Embedding width d: the configured one, which must match the cluster's row size, else the cluster's."""
    cluster_dim = None if cluster is None else cluster.row_bytes // 4
    if config.embedding_dim is None:
        if cluster_dim is None:
            raise ConfigError("model.embedding_dim is required without a cluster")
        return cluster_dim
    if cluster_dim is not None and config.embedding_dim * 4 != cluster.row_bytes:
        raise ConfigError(
            f"model.embedding_dim: {config.embedding_dim} disagrees with the cluster's rows of {cluster.row_bytes} "
            f"bytes (dim {cluster.row_bytes / 4:g}); leave it null to take the cluster's"
        )
    return config.embedding_dim


def build_model(data: DlrmData, dim: int, config: ModelConfig, seed: int) -> tuple[DLRM, torch.Tensor]:
    """Build the dense network and the initial embedding rows, both drawn from ``seed`` alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DLRM(data.num_dense, data.num_tables, dim, config)
    generator = torch.Generator().manual_seed(seed + 1)
    rows = initial_rows(data.table_sizes(), dim, config.init_scale, generator)
    return model, rows


def make_dense_optimizer(model: DLRM, config: OptimizerConfig) -> torch.optim.Optimizer:
    parameters = list(model.parameters())
    if config.dense == "sgd":
        return torch.optim.SGD(parameters, lr=config.dense_lr)
    if config.dense == "adagrad":
        return torch.optim.Adagrad(parameters, lr=config.dense_lr)
    return torch.optim.Adam(parameters, lr=config.dense_lr)


def _group_loss(
    model: DLRM,
    data: DlrmData,
    rows: torch.Tensor,
    sorted_keys: np.ndarray,
    sample_of_entry: np.ndarray,
    entry_ids: np.ndarray,
    trace_samples: np.ndarray,
    pooling: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (summed BCE loss, logits) of a group of samples whose rows are ``rows`` in ``sorted_keys`` order."""
    num_samples = len(trace_samples)
    layout = bag_layout(sample_of_entry, entry_ids, num_samples, data.table_offsets)
    row_of_entry = np.searchsorted(sorted_keys, entry_ids)
    pooled = pool_rows(rows, row_of_entry, layout, num_samples, data.num_tables, pooling)
    dense = torch.from_numpy(data.dense[trace_samples])
    labels = torch.from_numpy(data.labels[trace_samples])
    logits = model(dense, pooled)
    loss = functional.binary_cross_entropy_with_logits(logits, labels, reduction="sum")
    return loss, logits


@dataclass(frozen=True)
class Evaluation:
    """Held-out scores: ROC AUC and mean log loss (nats) over ``samples`` samples."""

    auc: float
    logloss: float
    samples: int


def evaluate(model: DLRM, rows: torch.Tensor, data: DlrmData, samples: np.ndarray, pooling: str) -> Evaluation:
    """Score ``samples`` (trace indices) with the dense network and the embedding ``rows`` [num_rows, d]."""
    trace = data.trace
    logits = []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for start in range(0, len(samples), EVAL_CHUNK):
            chunk = samples[start : start + EVAL_CHUNK]
            # The batch drops an id repeated within a sample, as in training.
            batch = gather_batch(trace.offsets, trace.ids, chunk)
            layout = bag_layout(batch.sample_of, batch.ids, len(chunk), data.table_offsets)
            pooled = pool_rows(rows, batch.ids, layout, len(chunk), data.num_tables, pooling)
            logits.append(model(torch.from_numpy(data.dense[chunk]), pooled).numpy())
    model.train(was_training)
    scores = np.concatenate(logits) if logits else np.zeros(0)
    labels = data.labels[samples]
    return Evaluation(auc=roc_auc(labels, scores), logloss=log_loss(labels, scores), samples=len(samples))


class DistributedTrainer:
    """Train the DLRM on the simulated cluster: the simulator decides every pull and push, tensors follow.

    :param data: the checked trace and its split.
    :param cluster: the simulated cluster; its staleness bound is the one training runs under.
    :param model_config, optimizer_config: network sizes and learning rates.
    :param seed: initialisation seed of the network and of the embedding rows.
    :param hot_ids: hot set of the ``static`` cache policy (see :class:`esd_gym.simulator.Simulator`).
    """

    def __init__(
        self,
        data: DlrmData,
        cluster: Cluster,
        model_config: ModelConfig,
        optimizer_config: OptimizerConfig,
        seed: int = 0,
        hot_ids: np.ndarray | None = None,
    ) -> None:
        self.data = data
        self.cluster = cluster
        self.pooling = model_config.pooling
        dim = resolve_dim(model_config, cluster)
        EmbeddingStore.check_memory(data.num_rows, dim, cluster.num_workers)
        self.model, master = build_model(data, dim, model_config, seed)
        self.store = EmbeddingStore(master, cluster.num_workers, optimizer_config.embedding_lr)
        self.optimizer = make_dense_optimizer(self.model, optimizer_config)
        self.simulator = RecordingSimulator(cluster, hot_ids)
        self.traffic = TensorTraffic()
        self.last_traffic = TensorTraffic()
        self.last_loss = float("nan")

    @property
    def master_rows(self) -> torch.Tensor:
        return self.store.master

    def make_batch(self, samples: np.ndarray) -> Batch:
        """Build the simulator's batch of trace samples ``samples`` (in that order)."""
        return gather_batch(self.data.trace.offsets, self.data.trace.ids, samples)

    def dispatch_and_step(
        self, samples: np.ndarray, dispatch: Callable[[DispatchContext], np.ndarray]
    ) -> tuple[IterationReport, np.ndarray]:
        """Build the batch, ask ``dispatch`` for the assignment, train; return the report and the assignment."""
        batch = self.make_batch(samples)
        capacity = self.cluster.capacities(batch.size)
        context = DispatchContext.build(self.simulator, batch, capacity, self.data.table_offsets)
        assignment = np.asarray(dispatch(context))
        return self.step(batch, samples, assignment, capacity), assignment

    def step(
        self, batch: Batch, samples: np.ndarray, assignment: np.ndarray, capacity: np.ndarray | None = None
    ) -> IterationReport:
        """Train one iteration: sample ``i`` of ``batch`` (trace sample ``samples[i]``) on worker ``assignment[i]``."""
        report = self.simulator.step(batch, assignment, capacity)
        assignment = np.asarray(assignment, dtype=np.int64)
        traffic = TensorTraffic()
        self.optimizer.zero_grad(set_to_none=False)
        entry_worker = assignment[batch.sample_of]
        total_loss = 0.0
        for worker, cache in enumerate(self.simulator.caches):
            result, lag = cache.last_iteration, cache.last_lag
            worker_samples = np.flatnonzero(assignment == worker)
            if len(worker_samples) == 0:
                # A worker without samples looks nothing up, inserts nothing and so pushes nothing.
                continue
            entries = entry_worker == worker
            entry_ids = batch.ids[entries]
            rows, sorted_keys, read_traffic = self.store.read(worker, result, lag)
            if not np.array_equal(sorted_keys, np.unique(entry_ids)):
                raise RuntimeError(f"worker {worker}: the simulator's keys differ from the ids of its samples")
            rows.requires_grad_(True)
            sample_of_entry = np.searchsorted(worker_samples, batch.sample_of[entries])
            loss, _ = _group_loss(
                self.model, self.data, rows, sorted_keys, sample_of_entry, entry_ids, samples[worker_samples],
                self.pooling,
            )
            (loss / batch.size).backward()
            total_loss += float(loss.detach())
            traffic.add(read_traffic)
            traffic.add(self.store.update(worker, sorted_keys, rows.grad, result))
        self.store.apply_pushes()
        self.optimizer.step()
        self._check_traffic(report, traffic)
        self.traffic.add(traffic)
        self.last_traffic = traffic
        self.last_loss = total_loss / batch.size
        return report

    def flush(self) -> IterationReport:
        """Push every pending gradient to the PS (the end of training), as the simulator flushes dirty rows."""
        report = self.simulator.flush()
        traffic = TensorTraffic()
        for worker, cache in enumerate(self.simulator.caches):
            ids, _ = cache.last_flush
            traffic.add(self.store.queue_pushes(worker, ids))
        self.store.apply_pushes()
        self._check_traffic(report, traffic)
        self.traffic.add(traffic)
        return report

    def evaluate(self, samples: np.ndarray | None = None) -> Evaluation:
        """Score the held-out samples (or ``samples``) with the PS's master rows, which lack unpushed updates."""
        samples = self.data.holdout_samples if samples is None else samples
        return evaluate(self.model, self.store.master, self.data, samples, self.pooling)

    @staticmethod
    def _check_traffic(report: IterationReport, traffic: TensorTraffic) -> None:
        pulls, pushes = int(report.pulls.sum()), int(report.pushes.sum())
        if traffic.pulled_rows != pulls or traffic.pushed_rows != pushes:
            raise RuntimeError(
                f"tensor traffic ({traffic.pulled_rows} rows pulled, {traffic.pushed_rows} pushed) disagrees with "
                f"the simulator ({pulls} pulled, {pushes} pushed) in iteration {report.iteration}"
            )


class ReferenceTrainer:
    """Plain single-process training: the whole batch in one pass on the master rows, SGD on the rows it used.

    Built from the same seed, it starts from the same parameters as :class:`DistributedTrainer`; it is the
    reference that distributed training at s = 0 must reproduce.
    """

    def __init__(
        self, data: DlrmData, dim: int, model_config: ModelConfig, optimizer_config: OptimizerConfig, seed: int = 0
    ) -> None:
        self.data = data
        self.pooling = model_config.pooling
        self.lr = optimizer_config.embedding_lr
        self.model, self.master_rows = build_model(data, dim, model_config, seed)
        self.optimizer = make_dense_optimizer(self.model, optimizer_config)

    def step(self, samples: np.ndarray) -> float:
        """Train one iteration on trace samples ``samples``; return the batch's mean training loss."""
        batch = gather_batch(self.data.trace.offsets, self.data.trace.ids, samples)
        self.optimizer.zero_grad(set_to_none=False)
        keys = batch.unique_ids
        index = torch.from_numpy(keys)
        rows = self.master_rows[index].requires_grad_(True)
        loss, _ = _group_loss(self.model, self.data, rows, keys, batch.sample_of, batch.ids, samples, self.pooling)
        (loss / batch.size).backward()
        self.master_rows.index_add_(0, index, rows.grad, alpha=-self.lr)
        self.optimizer.step()
        return float(loss.detach()) / batch.size

    def evaluate(self, samples: np.ndarray | None = None) -> Evaluation:
        samples = self.data.holdout_samples if samples is None else samples
        return evaluate(self.model, self.master_rows, self.data, samples, self.pooling)

"""Embedding rows as tensors at the parameter servers and in the workers' caches, moved by the simulator's decisions.

:class:`RecordingSimulator` is the simulator with caches that keep what their last iteration did (which keys were
pulled or transient, what was pushed, how far each copy lagged). :class:`EmbeddingStore` applies exactly those
decisions to tensors, so the rows that move as tensors are the rows that the simulator counts:

* *Master rows* (the PS): float32 [num_rows, d]. Every lookup of an iteration reads the master rows as they were at
  the iteration's start, because pushes are applied only at its end (:meth:`EmbeddingStore.apply_pushes`).
* *Copies* (worker w): a pulled key gets ``master − lr · G_w(k)``: the PS's current row plus w's own pending
  updates, which a refreshed copy keeps. A key that is not pulled is read from the copy as it is, up to ``s``
  updates of other workers behind the PS.
* *Pending gradient* G_w(k): the sum of the embedding gradients of the u_w(k) sample uses that the simulator counts
  as pending for k on w. After each backward pass, w adds its gradient to G_w(k) and applies its own SGD step to
  its copy (HET keeps local updates in the cache); a push sends G_w(k) to the PS, which applies
  ``master −= lr · G_w(k)``, and clears it, just as the simulator adds u_w(k) to V(k) and clears u_w(k).

With s = 0 every copy that is read equals the master row, so training matches single-process SGD on the whole
batch. Embeddings use plain SGD: a per-row optimiser state (Adagrad, Adam) would have to live at the PS and on every
worker at once.

NOTE: copies and pending gradients are dense tensors over the whole id space, so memory is
``(2·W + 1) · num_rows · d · 4`` bytes: fine for MovieLens-scale tables, too much for tens of millions of rows
(those need a store keyed by the cached ids). :meth:`EmbeddingStore.check_memory` raises before allocating more
than a set limit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from esd_gym.cache import WorkerCache, WorkerIteration
from esd_gym.cluster import Cluster
from esd_gym.errors import ConfigError
from esd_gym.simulator import Simulator

__all__ = ["EmbeddingStore", "RecordingSimulator", "RecordingWorkerCache", "TensorTraffic"]

# Largest store that EmbeddingStore allocates without complaint (see the module NOTE).
DEFAULT_MEMORY_LIMIT_BYTES = 4 << 30


class RecordingWorkerCache(WorkerCache):
    """A :class:`WorkerCache` that keeps its last iteration's result and the lag of every key at lookup time."""

    def clear(self) -> None:
        super().clear()
        self.last_iteration: WorkerIteration | None = None
        self.last_lag: np.ndarray = np.zeros(0, dtype=np.int64)
        self.last_flush: tuple[np.ndarray, np.ndarray] | None = None

    def run_iteration(
        self, keys: np.ndarray, use_counts: np.ndarray, staleness_bound: int, stamp: int
    ) -> WorkerIteration:
        position, cached = self.locate(keys)
        # -1 marks keys without a copy; the others lag the PS by this many updates of other workers.
        lag = np.full(len(keys), -1, dtype=np.int64)
        lag[cached] = self.lag[position[cached]]
        result = super().run_iteration(keys, use_counts, staleness_bound, stamp)
        self.last_iteration, self.last_lag = result, lag
        return result

    def flush(self) -> tuple[np.ndarray, np.ndarray]:
        self.last_flush = super().flush()
        return self.last_flush


class RecordingSimulator(Simulator):
    """The simulator with :class:`RecordingWorkerCache` caches; behaves exactly like :class:`Simulator`."""

    def __init__(self, cluster: Cluster, hot_ids: np.ndarray | None = None) -> None:
        super().__init__(cluster, hot_ids)
        policy = cluster.config.cache_policy
        self.caches = [RecordingWorkerCache(int(rows), policy, hot_ids) for rows in cluster.cache_rows]
        self.reset()


@dataclass
class TensorTraffic:
    """Rows moved as tensors: copies refreshed from the master rows, and gradients applied at the PS."""

    pulled_rows: int = 0
    pushed_rows: int = 0
    stale_reads: int = 0

    def add(self, other: "TensorTraffic") -> None:
        self.pulled_rows += other.pulled_rows
        self.pushed_rows += other.pushed_rows
        self.stale_reads += other.stale_reads


class EmbeddingStore:
    """Master rows, every worker's copies and pending gradients, updated by plain SGD with step ``lr``.

    :param master: float32 [num_rows, d], the initial rows (taken over, not copied).
    """

    def __init__(self, master: torch.Tensor, num_workers: int, lr: float) -> None:
        self.master = master
        self.lr = float(lr)
        self.copies = torch.zeros((num_workers, *master.shape), dtype=master.dtype)
        self.pending = torch.zeros_like(self.copies)
        self._push_ids: list[np.ndarray] = []
        self._push_gradients: list[torch.Tensor] = []

    @staticmethod
    def check_memory(num_rows: int, dim: int, num_workers: int, limit_bytes: int = DEFAULT_MEMORY_LIMIT_BYTES) -> None:
        """Raise :class:`ConfigError` when the dense store would exceed ``limit_bytes``."""
        needed = (2 * num_workers + 1) * num_rows * dim * 4
        if needed > limit_bytes:
            raise ConfigError(
                f"the DLRM embedding store needs {needed / 2**30:.1f} GiB for {num_rows} rows x {dim} x "
                f"(2 x {num_workers} workers + 1), above {limit_bytes / 2**30:.1f} GiB; use fewer rows or workers"
            )

    @property
    def num_workers(self) -> int:
        return self.copies.shape[0]

    def read(self, worker: int, result: WorkerIteration, lag: np.ndarray) -> tuple[torch.Tensor, np.ndarray, TensorTraffic]:
        """Refresh the pulled keys of ``worker`` from the master rows; return its rows of the iteration.

        :param result: the worker's iteration as the simulator ran it.
        :param lag: int64 [K], each key's lag at lookup (−1 for keys without a copy).
        :return: (rows float32 [K, d] in sorted-key order, the sorted keys, the traffic).
        """
        keys = result.keys
        pulled = keys[result.pulled]
        if len(pulled):
            index = torch.from_numpy(pulled)
            self.copies[worker, index] = self.master[index] - self.lr * self.pending[worker, index]
        sorted_keys = np.sort(keys)
        rows = self.copies[worker, torch.from_numpy(sorted_keys)]
        traffic = TensorTraffic(
            pulled_rows=len(pulled),
            stale_reads=int(np.count_nonzero(~result.pulled & (lag > 0))),
        )
        return rows, sorted_keys, traffic

    def update(self, worker: int, sorted_keys: np.ndarray, gradient: torch.Tensor, result: WorkerIteration) -> TensorTraffic:
        """Accumulate ``worker``'s gradient, step its copies, and queue the pushes that the simulator decided.

        :param gradient: float32 [K, d], the gradient of the iteration's loss with respect to the rows in
            ``sorted_keys`` order.
        """
        index = torch.from_numpy(sorted_keys)
        self.pending[worker, index] += gradient
        self.copies[worker, index] -= self.lr * gradient
        return self.queue_pushes(worker, result.push_ids)

    def queue_pushes(self, worker: int, push_ids: np.ndarray) -> TensorTraffic:
        """Take the pending gradients of ``push_ids`` off ``worker`` and queue them for :meth:`apply_pushes`."""
        if len(push_ids) == 0:
            return TensorTraffic()
        index = torch.from_numpy(np.asarray(push_ids, dtype=np.int64))
        self._push_ids.append(np.asarray(push_ids, dtype=np.int64))
        self._push_gradients.append(self.pending[worker, index].clone())
        self.pending[worker, index] = 0.0
        return TensorTraffic(pushed_rows=len(push_ids))

    def apply_pushes(self) -> None:
        """Apply every queued gradient at the PS (the end of an iteration): ``master −= lr · gradient``."""
        if not self._push_ids:
            return
        index = torch.from_numpy(np.concatenate(self._push_ids))
        gradients = torch.cat(self._push_gradients)
        self.master.index_add_(0, index, gradients, alpha=-self.lr)
        self._push_ids, self._push_gradients = [], []

"""Cluster configuration: workers, their caches and links, parameter-server shards and the staleness bound.

:class:`ClusterConfig` is the validated YAML schema (documented with an example in README.md); :class:`Cluster` is
its NumPy form that the simulator and the cost model read. Units: bytes, bytes per second, seconds, samples.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pydantic
from pydantic import Field

from esd_gym.config import StrictModel, load_yaml, validate_config
from esd_gym.errors import ConfigError

__all__ = ["BandwidthStep", "Cluster", "ClusterConfig", "LinkConfig", "WorkerConfig", "load_cluster"]

# Row counts, capacities and versions are stored as int64.
_MAX_INT64 = 2**63 - 1
# Largest byte size of a row, a row header or a request. A message is then at most 2^32 bytes, so the int64 byte
# count of an iteration cannot overflow (and turn negative) below 2^31 transfers per worker.
_MAX_BYTES = 2**31


class LinkConfig(StrictModel):
    """The link between one worker and one parameter server."""

    down_bytes_per_s: float = Field(gt=0, allow_inf_nan=False, description="PS → worker bandwidth, bytes/s")
    up_bytes_per_s: float = Field(gt=0, allow_inf_nan=False, description="worker → PS bandwidth, bytes/s")
    latency_s: float = Field(ge=0, allow_inf_nan=False, description="paid once per message, seconds")


class BandwidthStep(StrictModel):
    """From simulated time ``start_s`` on, every link of the worker runs at ``factor`` × its configured bandwidth."""

    start_s: float = Field(ge=0, allow_inf_nan=False)
    factor: float = Field(gt=0, allow_inf_nan=False)


class WorkerConfig(StrictModel):
    cache_rows: int = Field(ge=0, le=_MAX_INT64, description="cache capacity C_w, rows")
    compute_samples_per_s: float = Field(gt=0, allow_inf_nan=False, description="training speed r_w, samples/s")
    capacity: int | None = Field(
        default=None, ge=0, le=_MAX_INT64, description="maximum samples per iteration; default from r_w"
    )
    links: list[LinkConfig] = Field(min_length=1, description="one link per parameter server, in PS order")
    bandwidth_trace: list[BandwidthStep] = Field(default_factory=list)

    @pydantic.field_validator("bandwidth_trace")
    @classmethod
    def _trace_sorted(cls, steps: list[BandwidthStep]) -> list[BandwidthStep]:
        starts = [step.start_s for step in steps]
        if starts != sorted(starts):
            raise ValueError("steps must be sorted by start_s")
        return steps


class ClusterConfig(StrictModel):
    """The simulated system; every field is documented in README.md."""

    row_bytes: int | None = Field(default=None, gt=0, le=_MAX_BYTES, description="bytes of one embedding row")
    embedding_dim: int | None = Field(
        default=None, gt=0, le=_MAX_BYTES // 4, description="row = 4 bytes × dim (float32)"
    )
    num_ps: int = Field(default=1, ge=1)
    sharding: Literal["mod", "range"] = "mod"
    num_rows: int | None = Field(
        default=None, gt=0, le=_MAX_INT64, description="size of the id space; needed by range sharding"
    )
    staleness_bound: int = Field(default=0, ge=0, le=_MAX_INT64)
    request_bytes_per_id: int = Field(default=16, ge=0, le=_MAX_BYTES)
    row_header_bytes: int = Field(default=16, ge=0, le=_MAX_BYTES, description="key and version sent with each row")
    cache_policy: Literal["lru", "lfu", "static"] = "lru"
    overlap_compute: bool = False
    dense_bytes: int = Field(default=0, ge=0, description="dense parameters all-reduced per iteration, bytes")
    workers: list[WorkerConfig] = Field(min_length=1)

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> "ClusterConfig":
        if self.row_bytes is not None and self.embedding_dim is not None:
            if self.row_bytes != 4 * self.embedding_dim:
                raise ValueError(
                    f"row_bytes={self.row_bytes} disagrees with embedding_dim={self.embedding_dim} "
                    "(row = 4 bytes × dim); give only one"
                )
        for index, worker in enumerate(self.workers):
            if len(worker.links) != self.num_ps:
                raise ValueError(f"workers[{index}].links has {len(worker.links)} entries for num_ps={self.num_ps}")
        if self.sharding == "range" and self.num_rows is None:
            raise ValueError("sharding 'range' needs num_rows")
        return self


@dataclass(frozen=True)
class Cluster:
    """NumPy view of a validated :class:`ClusterConfig`. Arrays are indexed ``[worker]`` or ``[worker, ps]``."""

    config: ClusterConfig
    row_bytes: int
    cache_rows: np.ndarray  # int64 [W]
    compute_samples_per_s: np.ndarray  # float64 [W]
    configured_capacity: np.ndarray  # int64 [W], -1 where derived from the batch size
    down_bytes_per_s: np.ndarray  # float64 [W, P], before bandwidth traces
    up_bytes_per_s: np.ndarray  # float64 [W, P]
    latency_s: np.ndarray  # float64 [W, P]
    trace_starts_s: tuple[np.ndarray, ...]  # per worker, float64 [K]
    trace_factors: tuple[np.ndarray, ...]  # per worker, float64 [K]

    @classmethod
    def from_config(cls, config: ClusterConfig) -> "Cluster":
        if config.row_bytes is not None:
            row_bytes = config.row_bytes
        else:
            row_bytes = 4 * (config.embedding_dim if config.embedding_dim is not None else 16)
        workers = config.workers
        return cls(
            config=config,
            row_bytes=row_bytes,
            cache_rows=np.array([w.cache_rows for w in workers], dtype=np.int64),
            compute_samples_per_s=np.array([w.compute_samples_per_s for w in workers], dtype=np.float64),
            configured_capacity=np.array([-1 if w.capacity is None else w.capacity for w in workers], dtype=np.int64),
            down_bytes_per_s=np.array([[l.down_bytes_per_s for l in w.links] for w in workers], dtype=np.float64),
            up_bytes_per_s=np.array([[l.up_bytes_per_s for l in w.links] for w in workers], dtype=np.float64),
            latency_s=np.array([[l.latency_s for l in w.links] for w in workers], dtype=np.float64),
            trace_starts_s=tuple(np.array([s.start_s for s in w.bandwidth_trace], dtype=np.float64) for w in workers),
            trace_factors=tuple(np.array([s.factor for s in w.bandwidth_trace], dtype=np.float64) for w in workers),
        )

    @property
    def num_workers(self) -> int:
        return len(self.cache_rows)

    @property
    def num_ps(self) -> int:
        return self.config.num_ps

    @property
    def staleness_bound(self) -> int:
        return self.config.staleness_bound

    def capacities(self, batch_size: int) -> np.ndarray:
        """Per-iteration capacity cap_w for a global batch of ``batch_size`` samples, int64 [W].

        A worker without a configured capacity gets ``ceil(1.1 × S × r_w / Σ r)``: its share of the batch by
        compute speed with 10 % slack. Raises :class:`ConfigError` when Σ cap_w < S.
        """
        if batch_size <= 0:
            raise ConfigError(f"batch_size must be positive (got {batch_size})")
        rates = self.compute_samples_per_s
        derived = np.ceil(1.1 * batch_size * rates / rates.sum() - 1e-9).astype(np.int64)
        capacity = np.where(self.configured_capacity >= 0, self.configured_capacity, derived)
        if int(capacity.sum()) < batch_size:
            raise ConfigError(
                f"workers[*].capacity sums to {int(capacity.sum())}, below the batch size {batch_size}"
            )
        return capacity

    def bandwidth_factors(self, time_s: float) -> np.ndarray:
        """Bandwidth multiplier of each worker's links in force at simulated time ``time_s``, float64 [W]."""
        factors = np.ones(self.num_workers, dtype=np.float64)
        for worker, (starts, values) in enumerate(zip(self.trace_starts_s, self.trace_factors)):
            if starts.size:
                step = int(np.searchsorted(starts, time_s, side="right")) - 1
                if step >= 0:
                    factors[worker] = values[step]
        return factors

    def ps_of(self, ids: np.ndarray) -> np.ndarray:
        """Parameter server holding each global row id, int64 with the shape of ``ids``."""
        num_ps = self.config.num_ps
        if num_ps == 1:
            return np.zeros(np.shape(ids), dtype=np.int64)
        if self.config.sharding == "mod":
            return np.asarray(ids, dtype=np.int64) % num_ps
        num_rows = int(self.config.num_rows)  # validated: range sharding has num_rows
        shard_rows = math.ceil(num_rows / num_ps)
        return np.minimum(np.asarray(ids, dtype=np.int64) // shard_rows, num_ps - 1)

    def allreduce_s(self) -> float:
        """Estimated ring all-reduce time of the dense parameters, seconds per iteration.

        Each worker sends 2 (W − 1) / W × ``dense_bytes``; the slowest uplink sets the pace. This figure does not
        depend on the dispatch, so it is reported beside the embedding figures and kept out of them.
        """
        workers = self.num_workers
        if self.config.dense_bytes == 0 or workers == 1:
            return 0.0
        return 2.0 * (workers - 1) / workers * self.config.dense_bytes / float(self.up_bytes_per_s.min())


def load_cluster(path: str | os.PathLike[str]) -> Cluster:
    """Read and validate a cluster YAML file (schema: :class:`ClusterConfig`)."""
    return Cluster.from_config(validate_config(ClusterConfig, load_yaml(path), str(path)))

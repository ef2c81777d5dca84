"""Seeded synthetic workloads with Zipf-distributed ids, calibrated by default to the Criteo Kaggle tables.

For every table, a sample draws ``ids_per_table`` ranks from a bounded Zipf law, P(rank k) ∝ k^-s for k in
1..n, with the exact rejection-inversion sampler of Hörmann and Derflinger (1996, "Rejection-inversion to generate
variates from monotone discrete distributions"). A seeded affine bijection of 0..n-1, row = (a·(k-1) + b) mod n with
gcd(a, n) = 1, spreads the hot ranks over the table. Neither step allocates anything of table size, so memory does not
depend on the cardinalities.

Temporal locality: with probability ``locality`` an id is replaced by a copy of one of the ``locality_window`` ids
drawn just before it in the same table, uniformly chosen.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from esd_gym.errors import ConfigError
from esd_gym.workload.trace import Trace, TraceWriter
from esd_gym.workload.vocab import splitmix64

__all__ = [
    "CRITEO_KAGGLE_CARDINALITIES",
    "SyntheticConfig",
    "generate_trace",
    "iter_synthetic_chunks",
    "sample_zipf",
    "write_synthetic_trace",
]

# Rows of the 26 categorical tables of the Criteo Kaggle (Display Advertising Challenge) data set, as used by
# facebookresearch/dlrm.
CRITEO_KAGGLE_CARDINALITIES = (
    1460, 583, 10131227, 2202608, 305, 24, 12517, 633, 3, 93145, 5683, 8351593, 3194, 27, 14992, 5461306, 10, 5652,
    2173, 4, 7046547, 18, 15, 286181, 105, 142572,
)
# Samples generated per step; part of the definition of a seed's output, so changing it changes every trace.
CHUNK_SAMPLES = 65_536
_MAX_CARDINALITY = 1 << 31


@dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of a synthetic workload.

    :param cardinalities: rows of each table.
    :param zipf_exponents: Zipf exponent s of each table, or one value for all (s > 0).
    :param ids_per_table: ids each sample draws from each table, or one value for all (at least 1).
    :param num_dense: dense features per sample (0 for none). Each is log(1 + x) of an exponential variate with mean
        10, which is the transform that facebookresearch/dlrm applies to Criteo's count features.
    :param labels: whether samples carry click labels.
    :param positive_rate: approximate share of label 1 (Criteo Kaggle has about 0.26).
    :param label_signal: scale of the per-row effects in the label's logit; 0 makes labels independent of the ids.
    :param locality: probability that an id is a copy of a recent id of its table (0 to 1).
    :param locality_window: number of recent ids of a table that a copy is drawn from.
    :param seed: non-negative seed of every random choice; the same config always gives the same trace.
    """

    cardinalities: tuple[int, ...] = CRITEO_KAGGLE_CARDINALITIES
    zipf_exponents: float | tuple[float, ...] = 1.05
    ids_per_table: int | tuple[int, ...] = 1
    num_dense: int = 0
    labels: bool = False
    positive_rate: float = 0.25
    label_signal: float = 1.0
    locality: float = 0.0
    locality_window: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "cardinalities", tuple(int(n) for n in self.cardinalities))
        tables = len(self.cardinalities)
        if tables == 0:
            raise ConfigError("cardinalities must name at least one table")
        for index, rows in enumerate(self.cardinalities):
            if not 1 <= rows < _MAX_CARDINALITY:
                raise ConfigError(f"cardinalities[{index}] must be between 1 and 2^31 - 1, got {rows}")
        object.__setattr__(self, "zipf_exponents", self._per_table("zipf_exponents", self.zipf_exponents, float))
        object.__setattr__(self, "ids_per_table", self._per_table("ids_per_table", self.ids_per_table, int))
        for index, exponent in enumerate(self.zipf_exponents):
            if not exponent > 0 or not math.isfinite(exponent):
                raise ConfigError(f"zipf_exponents[{index}] must be a positive number, got {exponent}")
        for index, count in enumerate(self.ids_per_table):
            if count < 1:
                raise ConfigError(f"ids_per_table[{index}] must be at least 1, got {count}")
        if self.num_dense < 0:
            raise ConfigError(f"num_dense must not be negative, got {self.num_dense}")
        if not 0.0 < self.positive_rate < 1.0:
            raise ConfigError(f"positive_rate must lie strictly between 0 and 1, got {self.positive_rate}")
        if not 0.0 <= self.locality <= 1.0:
            raise ConfigError(f"locality must lie between 0 and 1, got {self.locality}")
        if self.locality_window < 1:
            raise ConfigError(f"locality_window must be at least 1, got {self.locality_window}")
        if self.seed < 0:
            raise ConfigError(f"seed must not be negative, got {self.seed}")

    def _per_table(self, name: str, value, kind) -> tuple:
        if isinstance(value, (int, float)):
            return (kind(value),) * len(self.cardinalities)
        values = tuple(kind(item) for item in value)
        if len(values) != len(self.cardinalities):
            raise ConfigError(f"{name} has {len(values)} entries for {len(self.cardinalities)} tables")
        return values

    @property
    def table_offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.cardinalities)]).astype(np.int64)

    @property
    def table_names(self) -> tuple[str, ...]:
        return tuple(f"table_{t}" for t in range(len(self.cardinalities)))


def _expm1_ratio(x: np.ndarray) -> np.ndarray:
    """(e^x - 1) / x, continuous at 0."""
    x = np.asarray(x, dtype=np.float64)
    small = np.abs(x) <= 1e-8
    safe = np.where(small, 1.0, x)
    return np.where(small, 1.0 + x * 0.5 * (1.0 + x / 3.0 * (1.0 + 0.25 * x)), np.expm1(safe) / safe)


def _log1p_ratio(x: np.ndarray) -> np.ndarray:
    """log(1 + x) / x, continuous at 0."""
    x = np.asarray(x, dtype=np.float64)
    small = np.abs(x) <= 1e-8
    safe = np.where(small, 1.0, x)
    return np.where(small, 1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x)), np.log1p(safe) / safe)


def _h_integral(x, exponent: float) -> np.ndarray:
    """Antiderivative of x^-s, (x^(1-s) - 1) / (1-s), in a form that is stable near s = 1."""
    log_x = np.log(x)
    return _expm1_ratio((1.0 - exponent) * log_x) * log_x


def _h_integral_inverse(y: np.ndarray, exponent: float) -> np.ndarray:
    t = np.maximum(y * (1.0 - exponent), -1.0)
    return np.exp(_log1p_ratio(t) * y)


def sample_zipf(rng: np.random.Generator, num_rows: int, exponent: float, size: int) -> np.ndarray:
    """Draw ``size`` ranks in 1..``num_rows`` with P(k) ∝ k^-exponent exactly (rejection-inversion)."""
    upper = float(_h_integral(num_rows + 0.5, exponent))
    lower = float(_h_integral(1.5, exponent)) - 1.0
    squeeze = 2.0 - float(_h_integral_inverse(_h_integral(2.5, exponent) - 2.0 ** -exponent, exponent))
    result = np.empty(size, dtype=np.int64)
    pending = np.arange(size)
    while pending.size:
        u = upper + rng.random(pending.size) * (lower - upper)
        x = _h_integral_inverse(u, exponent)
        k = np.clip(np.floor(x + 0.5), 1, num_rows)
        accept = (k - x <= squeeze) | (u >= _h_integral(k + 0.5, exponent) - np.exp(-exponent * np.log(k)))
        result[pending[accept]] = k[accept].astype(np.int64)
        pending = pending[~accept]
    return result


def _bijection(rng: np.random.Generator, num_rows: int) -> tuple[int, int]:
    """Draw (a, b) with gcd(a, n) = 1, so that k -> (a·k + b) mod n permutes 0..n-1."""
    if num_rows == 1:
        return 1, 0
    while True:
        multiplier = int(rng.integers(1, num_rows))
        if math.gcd(multiplier, num_rows) == 1:
            return multiplier, int(rng.integers(0, num_rows))


def _apply_locality(ids: np.ndarray, history: np.ndarray, rng: np.random.Generator, config: SyntheticConfig):
    """Replace a ``locality`` share of ``ids`` by copies of ids drawn within the window before them."""
    window = config.locality_window
    combined = np.concatenate([history, ids])
    start = len(history)
    source = np.arange(len(combined))
    copied = np.flatnonzero(rng.random(len(ids)) < config.locality) + start
    back = rng.integers(1, window + 1, size=len(copied))
    valid = copied - back >= 0
    source[copied[valid]] = copied[valid] - back[valid]
    # A copy of a copy must end at the original: follow the links by pointer jumping until nothing changes.
    while True:
        jumped = source[source]
        if np.array_equal(jumped, source):
            break
        source = jumped
    resolved = combined[source]
    return resolved[start:], resolved[-window:]


def iter_synthetic_chunks(
    num_samples: int, config: SyntheticConfig
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]]:
    """Yield the workload in chunks of (lengths, global ids, dense or None, labels or None)."""
    if num_samples < 1:
        raise ConfigError(f"number of samples must be at least 1, got {num_samples}")
    tables = len(config.cardinalities)
    seeds = np.random.SeedSequence(config.seed).spawn(tables + 3)
    table_rngs = [np.random.default_rng(seed) for seed in seeds[:tables]]
    layout_rng, dense_rng, label_rng = (np.random.default_rng(seed) for seed in seeds[tables:])
    bijections = [_bijection(layout_rng, rows) for rows in config.cardinalities]
    label_salt = np.uint64(int(layout_rng.integers(0, 2**63)))
    offsets = config.table_offsets
    histories = [np.zeros(0, dtype=np.int64) for _ in range(tables)]
    per_sample = sum(config.ids_per_table)
    bias = math.log(config.positive_rate / (1.0 - config.positive_rate))

    for first in range(0, num_samples, CHUNK_SAMPLES):
        count = min(CHUNK_SAMPLES, num_samples - first)
        blocks = []
        for t in range(tables):
            rows, exponent, width = config.cardinalities[t], config.zipf_exponents[t], config.ids_per_table[t]
            ranks = sample_zipf(table_rngs[t], rows, exponent, count * width) - 1
            multiplier, shift = bijections[t]
            local = (ranks * multiplier + shift) % rows
            if config.locality > 0:
                local, histories[t] = _apply_locality(local, histories[t], table_rngs[t], config)
            blocks.append(local.reshape(count, width) + offsets[t])
        ids = np.concatenate(blocks, axis=1)
        dense = None
        if config.num_dense:
            dense = np.log1p(dense_rng.exponential(10.0, size=(count, config.num_dense))).astype(np.float32)
        labels = None
        if config.labels:
            # Each row has a fixed effect in [-label_signal, label_signal] derived from its id, so a model can learn
            # the labels from the embeddings.
            unit = (splitmix64(ids.astype(np.uint64) ^ label_salt) >> np.uint64(11)).astype(np.float64) / 2.0**53
            logit = bias + config.label_signal * (2.0 * unit - 1.0).sum(axis=1) / math.sqrt(ids.shape[1])
            labels = (label_rng.random(count) < 1.0 / (1.0 + np.exp(-logit))).astype(np.float32)
        yield np.full(count, per_sample, dtype=np.int64), ids.reshape(-1), dense, labels


def generate_trace(num_samples: int, config: SyntheticConfig | None = None) -> Trace:
    """Generate ``num_samples`` samples of the synthetic workload in memory."""
    config = config or SyntheticConfig()
    lengths, ids, dense, labels = [], [], [], []
    for chunk_lengths, chunk_ids, chunk_dense, chunk_labels in iter_synthetic_chunks(num_samples, config):
        lengths.append(chunk_lengths)
        ids.append(chunk_ids)
        dense.append(chunk_dense)
        labels.append(chunk_labels)
    return Trace(
        offsets=np.concatenate([[0], np.cumsum(np.concatenate(lengths))]).astype(np.int64),
        ids=np.concatenate(ids),
        table_offsets=config.table_offsets,
        dense=np.concatenate(dense) if config.num_dense else None,
        labels=np.concatenate(labels) if config.labels else None,
        table_names=config.table_names,
        source=f"<synthetic seed={config.seed}>",
    )


def write_synthetic_trace(
    path: str | os.PathLike[str], num_samples: int, config: SyntheticConfig | None = None, progress=None
) -> Path:
    """Write ``num_samples`` samples of the synthetic workload to ``path`` chunk by chunk; same config, same bytes.

    :param progress: called after every chunk with the number of samples written so far.
    """
    config = config or SyntheticConfig()
    with TraceWriter(path, num_dense=config.num_dense or None, has_labels=config.labels) as writer:
        for lengths, ids, dense, labels in iter_synthetic_chunks(num_samples, config):
            writer.append(lengths, ids, dense=dense, labels=labels)
            if progress is not None:
                progress(writer.num_samples)
        return writer.close(config.table_offsets, config.table_names)

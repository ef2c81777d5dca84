"""Configuration of the end-to-end DLRM mode: model sizes, optimisers, evaluation and the run itself.

Every model is a :class:`esd_gym.config.StrictModel`, so unknown keys and out-of-range values raise
:class:`esd_gym.errors.ConfigError` naming the field. The YAML files under ``configs/dlrm/`` follow
:class:`DlrmRunConfig` (one training run) and :class:`DlrmCompareConfig` (several dispatchers on the same run).
"""

from __future__ import annotations

import os
from typing import Any, Literal

import pydantic
from pydantic import Field

from esd_gym.config import StrictModel, load_yaml, validate_config

__all__ = [
    "DispatcherEntry",
    "DlrmCompareConfig",
    "DlrmRunConfig",
    "EvalConfig",
    "ModelConfig",
    "OptimizerConfig",
    "load_compare_config",
    "load_run_config",
]


class ModelConfig(StrictModel):
    """Sizes of the DLRM: one embedding bag per table, a bottom MLP over the dense features, a top MLP."""

    embedding_dim: int | None = Field(
        default=None, gt=0, description="row dimension d; null takes the cluster's (row_bytes / 4)"
    )
    bottom_mlp: list[int] = Field(
        default_factory=lambda: [32], description="hidden widths of the bottom MLP; a final layer of width d follows"
    )
    top_mlp: list[int] = Field(
        default_factory=lambda: [64, 32], description="hidden widths of the top MLP; a final layer of width 1 follows"
    )
    pooling: Literal["sum", "mean"] = Field(default="sum", description="how a multi-hot bag combines its rows")
    init_scale: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="rows start uniform in ±init_scale; null uses DLRM's ±sqrt(1 / rows of the table)",
    )

    @pydantic.field_validator("bottom_mlp", "top_mlp")
    @classmethod
    def _positive_widths(cls, widths: list[int]) -> list[int]:
        if any(width <= 0 for width in widths):
            raise ValueError(f"every layer width must be positive (got {widths})")
        return widths


class OptimizerConfig(StrictModel):
    """Learning rates: embeddings take plain SGD at the parameter servers, dense parameters one torch optimiser."""

    embedding_lr: float = Field(default=3.0, gt=0, allow_inf_nan=False, description="SGD step of the embedding rows")
    dense: Literal["sgd", "adam", "adagrad"] = Field(default="adam", description="optimiser of the MLP parameters")
    dense_lr: float = Field(default=0.003, gt=0, allow_inf_nan=False)


class EvalConfig(StrictModel):
    """Held-out evaluation: which samples are held out and how often the model is scored on them."""

    every: int = Field(default=50, ge=1, description="iterations between evaluations")
    holdout_fraction: float = Field(default=0.1, gt=0, lt=1, description="share of the trace held out, drawn by seed")
    max_samples: int | None = Field(default=10000, gt=0, description="cap on the held-out samples scored")


class DlrmRunConfig(StrictModel):
    """One DLRM training run under one dispatcher."""

    name: str | None = Field(default=None, description="run directory under runs/; null derives one")
    scenario: str = Field(description="scenario id: cluster, trace and batch size")
    trace: str | None = Field(
        default=None, description="dataset name (ml-100k) or .npz path replacing the scenario's trace; null keeps it"
    )
    dispatcher: str = Field(default="random", description="registry name of the dispatcher")
    dispatcher_options: dict[str, Any] = Field(default_factory=dict)
    iterations: int = Field(default=300, ge=1)
    seed: int = Field(default=0, ge=0, description="model initialisation, held-out split and dispatcher seed")
    batch_size: int | None = Field(default=None, gt=0, description="samples per iteration; null takes the scenario's")
    staleness_bound: int | None = Field(default=None, ge=0, description="overrides the scenario's bound s")
    standardize_dense: bool = Field(default=True, description="scale dense features by training-split mean and std")
    model: ModelConfig = Field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)


class DispatcherEntry(StrictModel):
    """One arm of a comparison: a registered dispatcher and its options."""

    name: str
    options: dict[str, Any] = Field(default_factory=dict)
    label: str | None = Field(default=None, description="name in tables and plots; null uses the dispatcher name")

    @property
    def display_name(self) -> str:
        return self.label or self.name


class DlrmCompareConfig(StrictModel):
    """The same run (model, data, seeds) under several dispatchers."""

    name: str = Field(description="output directory under runs/")
    run: DlrmRunConfig = Field(description="the training run; its dispatcher fields are replaced per arm")
    dispatchers: list[DispatcherEntry] = Field(min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    target_auc: float = Field(default=0.7, gt=0, lt=1, description="held-out AUC whose simulated time is compared")
    baseline: str = Field(default="random", description="label of the arm that speed-ups are relative to")

    @pydantic.model_validator(mode="after")
    def _baseline_is_an_arm(self) -> "DlrmCompareConfig":
        labels = [entry.display_name for entry in self.dispatchers]
        if len(set(labels)) != len(labels):
            raise ValueError(f"dispatcher labels must be distinct (got {labels}); set label to tell arms apart")
        if self.baseline not in labels:
            raise ValueError(f"baseline {self.baseline!r} is not one of the dispatchers {labels}")
        return self


def load_run_config(path: str | os.PathLike[str], **overrides: Any) -> DlrmRunConfig:
    """Read a run YAML file; ``overrides`` (None values ignored) replace top-level keys before validation."""
    data = load_yaml(path)
    if data is None:
        data = {}
    if isinstance(data, dict):
        data.update({key: value for key, value in overrides.items() if value is not None})
    return validate_config(DlrmRunConfig, data, str(path))


def load_compare_config(path: str | os.PathLike[str]) -> DlrmCompareConfig:
    """Read a comparison YAML file (schema: :class:`DlrmCompareConfig`)."""
    return validate_config(DlrmCompareConfig, load_yaml(path), str(path))

"""Turn a :class:`DlrmRunConfig` into what a run needs: the scenario's cluster, a trace with dense features and
labels, its split, and the static policy's hot set.

The scenario supplies the cluster, the batch size and, by default, the trace. ``trace`` in the run config replaces
the scenario's trace, for example with the full MovieLens-100K conversion (all nine tables) when the scenario's
own trace keeps only the user and item ids. Cache sizes then follow the scenario's
``cache_fraction`` of the new trace's distinct ids.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from esd_gym.cluster import Cluster
from esd_gym.dlrm.config import DlrmRunConfig
from esd_gym.dlrm.data import DlrmData

__all__ = ["RunInputs", "load_run_inputs", "resolve_trace_path"]


@dataclass(frozen=True)
class RunInputs:
    """Cluster, data and batch size of one run."""

    scenario_name: str
    cluster: Cluster
    data: DlrmData
    batch_size: int
    hot_ids: np.ndarray | None


def resolve_trace_path(trace: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the ``.npz`` of ``trace``: a dataset name (fetched and converted on first use) or a file path."""
    from esd_gym.workload.datasets import DATASETS, dataset_trace_path

    if trace in DATASETS:
        return dataset_trace_path(trace, data_dir)
    return Path(trace).expanduser()


def load_run_inputs(
    config: DlrmRunConfig, trace: str | None = None, data_dir: str | os.PathLike[str] | None = None
) -> RunInputs:
    """Load the scenario of ``config`` with its overrides, and split the trace for training.

    :param trace: dataset name or ``.npz`` path that replaces the scenario's trace; None keeps ``config.trace``.
    :raises ConfigError: unknown scenario or invalid override.
    :raises TraceError: the trace lacks dense features or labels, or is invalid.
    :raises DataError: the dataset is missing and cannot be fetched.
    """
    from esd_gym.scenarios import load_scenario

    # Training cycles through the trace for as many iterations as configured, so the scenario's episode length (and
    # its check that an episode fits in the trace) does not apply.
    overrides: dict[str, Any] = {"episode_iterations": 1}
    trace = trace if trace is not None else config.trace
    if trace is not None:
        overrides["trace"] = {"source": "file", "path": str(resolve_trace_path(trace, data_dir))}
    if config.staleness_bound is not None:
        overrides["cluster"] = {"staleness_bound": config.staleness_bound}
    if config.batch_size is not None:
        overrides["batch_size"] = config.batch_size
    scenario = load_scenario(config.scenario, data_dir=data_dir, **overrides)
    data = DlrmData.from_trace(
        scenario.trace,
        holdout_fraction=config.eval.holdout_fraction,
        seed=config.seed,
        standardize=config.standardize_dense,
        max_holdout=config.eval.max_samples,
    )
    # A scenario with random bandwidth draws it from the run's seed, so every dispatcher of a seed sees the same links.
    cluster = scenario.build_cluster(np.random.default_rng(config.seed))
    return RunInputs(
        scenario_name=scenario.name,
        cluster=cluster,
        data=data,
        batch_size=scenario.spec.batch_size,
        hot_ids=scenario.hot_ids(),
    )

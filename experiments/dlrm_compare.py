"""DLRM training runs under reference dispatchers, and their comparison: the same model, data and seeds under
several dispatchers, reported as a table of final AUC, log loss, embedding cost and simulated time to a target AUC,
and as a plot of held-out AUC against simulated time.

Output layout under ``runs/<name>/``: ``config.yaml`` (the resolved configuration), ``metrics.csv`` (every
evaluation of every arm and seed), ``results.csv`` (one row per arm and seed), ``results.md`` (the table, averaged
over seeds), ``auc_vs_time.png``, and one TensorBoard event directory per arm and seed (``<label>-seed<seed>``), so
that ``tensorboard --logdir runs/<name>`` overlays the arms. A single ``esd-gym train-dlrm`` run uses the same layout
with one arm.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from esd_gym.dlrm.config import DispatcherEntry, DlrmCompareConfig, DlrmRunConfig

__all__ = [
    "ArmSummary",
    "Comparison",
    "run_arm",
    "run_comparison",
    "summarise_arms",
    "write_results_table",
]

logger = logging.getLogger(__name__)

# Called with (arm label, seed, iterations done, iterations in the run).
ProgressCallback = Callable[[str, int, int, int], None]


def check_dispatchers(entries: list[DispatcherEntry]) -> None:
    """Build every arm's dispatcher once, so that an unknown name or a bad option raises :class:`ConfigError` early."""
    from agents.base import make_dispatcher

    for entry in entries:
        make_dispatcher(entry.name, **entry.options)


def run_arm(
    config: DlrmRunConfig,
    entry: DispatcherEntry,
    inputs: Any,
    run_dir: Path,
    progress: ProgressCallback | None = None,
) -> Any:
    """Train the DLRM of ``config`` under one dispatcher; return its :class:`esd_gym.dlrm.run.DlrmRunResult`.

    :param inputs: the :class:`esd_gym.dlrm.inputs.RunInputs` of ``config`` (shared by every arm of a seed).
    """
    import torch

    from agents.base import make_dispatcher
    from esd_gym.dlrm.run import train_dlrm
    from esd_gym.dlrm.training import DistributedTrainer

    torch.set_num_threads(1)
    dispatcher = make_dispatcher(entry.name, **entry.options)
    trainer = DistributedTrainer(
        inputs.data, inputs.cluster, config.model, config.optimizer, seed=config.seed, hot_ids=inputs.hot_ids
    )
    label = entry.display_name

    def report(done: int, _point: Any) -> None:
        if progress is not None:
            progress(label, config.seed, done, config.iterations)

    return train_dlrm(
        trainer,
        dispatcher,
        iterations=config.iterations,
        batch_size=inputs.batch_size,
        eval_every=config.eval.every,
        seed=config.seed,
        label=label,
        log_dir=run_dir / f"{label}-seed{config.seed}",
        progress=report,
    )


@dataclass(frozen=True)
class ArmSummary:
    """One arm's figures, averaged over seeds. ``time_to_target_s`` is None unless every seed reached the target."""

    label: str
    auc: float
    logloss: float
    cost_s: float
    time_s: float
    time_to_target_s: float | None
    speedup: float | None
    stale_reads: float
    seeds: int


@dataclass
class Comparison:
    """Every run of a comparison and where its outputs were written."""

    config: DlrmCompareConfig
    results: list[Any]
    summaries: list[ArmSummary]
    run_dir: Path


def summarise_arms(results: list[Any], target_auc: float, baseline: str) -> list[ArmSummary]:
    """Average each arm over its seeds; speed-up = the baseline's time to ``target_auc`` / the arm's."""
    labels = list(dict.fromkeys(result.label for result in results))
    rows = []
    for label in labels:
        runs = [result for result in results if result.label == label]
        summaries = [run.summary() for run in runs]
        times = [run.time_to_auc(target_auc) for run in runs]
        reached = all(time is not None for time in times)
        rows.append(
            {
                "label": label,
                "auc": float(np.mean([s["auc"] for s in summaries])),
                "logloss": float(np.mean([s["logloss"] for s in summaries])),
                "cost_s": float(np.mean([s["cost_s"] for s in summaries])),
                "time_s": float(np.mean([s["time_s"] for s in summaries])),
                "time_to_target_s": float(np.mean(times)) if reached else None,
                "stale_reads": float(np.mean([s["stale_reads"] for s in summaries])),
                "seeds": len(runs),
            }
        )
    base = next((row["time_to_target_s"] for row in rows if row["label"] == baseline), None)
    arms = []
    for row in rows:
        own = row["time_to_target_s"]
        speedup = base / own if base is not None and own is not None and own > 0 else None
        arms.append(ArmSummary(speedup=speedup, **row))
    return arms


def _format(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def write_results_table(path: Path, summaries: list[ArmSummary], target_auc: float, baseline: str) -> str:
    """Write the markdown table of ``summaries`` to ``path`` and return it."""
    header = (
        f"| dispatcher | final AUC | log loss | embedding cost (s) | simulated time (s) "
        f"| time to AUC {target_auc:g} (s) | speed-up vs {baseline} | stale reads |"
    )
    lines = [header, "|---|---|---|---|---|---|---|---|"]
    for arm in summaries:
        speedup = "n/a" if arm.speedup is None else f"{arm.speedup:.2f}x"
        time_to_target = "not reached" if arm.time_to_target_s is None else _format(arm.time_to_target_s, 2)
        lines.append(
            f"| {arm.label} | {_format(arm.auc, 4)} | {_format(arm.logloss, 4)} | {_format(arm.cost_s, 2)} "
            f"| {_format(arm.time_s, 2)} | {time_to_target} | {speedup} | {arm.stale_reads:.0f} |"
        )
    table = "\n".join(lines) + "\n"
    path.write_text(table, encoding="utf-8")
    return table


def _write_results_csv(path: Path, results: list[Any], target_auc: float) -> None:
    rows = [{**result.summary(), "time_to_target_s": result.time_to_auc(target_auc)} for result in results]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def plot_auc_vs_time(path: Path, results: list[Any], target_auc: float) -> None:
    """Save a PNG of held-out AUC against simulated time, one colour per arm (one line per seed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    colours: dict[str, Any] = {}
    for result in results:
        times = [point.time_s for point in result.points]
        aucs = [point.auc for point in result.points]
        colour = colours.get(result.label)
        line = axes.plot(times, aucs, marker="o", markersize=3, color=colour,
                         label=result.label if colour is None else None)[0]
        colours.setdefault(result.label, line.get_color())
    axes.axhline(target_auc, color="grey", linestyle="--", linewidth=1, label=f"target AUC {target_auc:g}")
    axes.set_xlabel("simulated training time (s)")
    axes.set_ylabel("held-out AUC")
    axes.grid(True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def save_config(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def run_comparison(
    config: DlrmCompareConfig,
    runs_dir: str | Path = "runs",
    progress: ProgressCallback | None = None,
    trace: str | None = None,
    data_dir: str | Path | None = None,
) -> Comparison:
    """Train every arm for every seed of ``config`` and write the outputs under ``runs_dir/<name>/``."""
    from esd_gym.dlrm.inputs import load_run_inputs
    from esd_gym.dlrm.run import write_points_csv

    run_dir = Path(runs_dir) / config.name
    # Bad dispatcher options or data fail here, before the run directory exists and before any arm trains.
    check_dispatchers(config.dispatchers)
    first_seed = config.run.model_copy(update={"seed": config.seeds[0]})
    inputs_by_seed = {config.seeds[0]: load_run_inputs(first_seed, trace=trace, data_dir=data_dir)}
    save_config(run_dir / "config.yaml", config.model_dump(mode="json"))
    results = []
    for seed in config.seeds:
        seeded = config.run.model_copy(update={"seed": seed})
        inputs = inputs_by_seed.pop(seed, None) or load_run_inputs(seeded, trace=trace, data_dir=data_dir)
        for entry in config.dispatchers:
            logger.info("training under %s, seed %d", entry.display_name, seed)
            results.append(run_arm(seeded, entry, inputs, run_dir, progress))
    write_points_csv(run_dir / "metrics.csv", results)
    _write_results_csv(run_dir / "results.csv", results, config.target_auc)
    summaries = summarise_arms(results, config.target_auc, config.baseline)
    write_results_table(run_dir / "results.md", summaries, config.target_auc, config.baseline)
    plot_auc_vs_time(run_dir / "auc_vs_time.png", results, config.target_auc)
    return Comparison(config=config, results=results, summaries=summaries, run_dir=run_dir)

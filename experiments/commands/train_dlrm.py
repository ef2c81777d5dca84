"""``esd-gym train-dlrm``: train a PyTorch DLRM under a dispatch on the simulated cluster, or compare dispatchers."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

# Run settings that command-line options may set; each overrides the same key of --config.
_RUN_OPTIONS = ("scenario", "dispatcher", "iterations", "seed", "trace", "batch_size", "staleness_bound", "name")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train-dlrm",
        help="train a DLRM under a dispatcher and measure time-to-accuracy",
        description=(
            "Train a PyTorch DLRM on the simulated cluster: the simulator decides which embedding rows each worker "
            "pulls and pushes, and the model trains on exactly those copies. Writes TensorBoard events and CSV "
            "under RUNS_DIR/NAME/. With --compare, trains the same run under several dispatchers and writes a "
            "results table and an AUC-vs-simulated-time plot."
        ),
    )
    parser.add_argument("--config", type=Path, help="run YAML (schema in docs/dlrm.md); options below override it")
    parser.add_argument("--compare", type=Path, metavar="YAML", help="comparison YAML, e.g. configs/dlrm/compare.yaml")
    parser.add_argument("--scenario", help="scenario id, e.g. ml100k-8w-hetero-v0 (see esd-gym scenarios)")
    parser.add_argument("--dispatcher", help="dispatcher name, e.g. random, locality, hybriddis (default: random)")
    parser.add_argument("--iterations", type=int, help="training iterations (default: 300)")
    parser.add_argument("--seed", type=int, help="seed of the model, the held-out split and the dispatcher (default 0)")
    parser.add_argument("--eval-every", type=int, metavar="K", help="iterations between held-out evaluations (default 50)")
    parser.add_argument("--staleness", dest="staleness_bound", type=int, metavar="S",
                        help="staleness bound s, overriding the scenario's")
    parser.add_argument("--batch-size", type=int, help="samples per iteration, overriding the scenario's")
    parser.add_argument("--trace", help="dataset name (ml-100k) or .npz trace replacing the scenario's trace")
    parser.add_argument("--data-dir", type=Path, help="dataset directory (default: $ESD_GYM_DATA_DIR, else ~/.cache/esd-gym)")
    parser.add_argument("--name", help="run directory name under --runs-dir (default derived from the run)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where run directories go (default runs)")
    parser.add_argument("--json", action="store_true", help="end the output with one JSON object of the results")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from esd_gym.errors import ConfigError

    if args.compare is not None:
        # --trace applies to every arm of a comparison; the other run options belong in its YAML file.
        run_options = [name for name in (*_RUN_OPTIONS, "config", "eval_every") if name != "trace"]
        ignored = [name for name in run_options if getattr(args, name) is not None]
        if ignored:
            option = "--" + ignored[0].replace("_", "-").replace("staleness-bound", "staleness")
            raise ConfigError(f"{option} cannot be combined with --compare; set it in the comparison YAML instead")
        return _run_compare(args)
    return _run_single(args)


def _progress_bar():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from experiments.cli import error_console

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=error_console, transient=True,
        # Off when stderr is redirected: a bar there only adds a blank line before any error message.
        disable=not error_console.is_terminal,
    )


def _run_config(args: argparse.Namespace):
    from esd_gym.config import validate_config
    from esd_gym.dlrm.config import DlrmRunConfig, load_run_config
    from esd_gym.errors import ConfigError

    overrides = {name: getattr(args, name) for name in _RUN_OPTIONS}
    if args.config is not None:
        config = load_run_config(args.config, **overrides)
    else:
        if args.scenario is None:
            raise ConfigError("--scenario is required without --config or --compare")
        config = validate_config(
            DlrmRunConfig, {key: value for key, value in overrides.items() if value is not None}, "command line"
        )
    if args.eval_every is not None:
        config = validate_config(
            DlrmRunConfig,
            {**config.model_dump(), "eval": {**config.eval.model_dump(), "every": args.eval_every}},
            "--eval-every",
        )
    return config


def _run_single(args: argparse.Namespace) -> int:
    from esd_gym.dlrm.config import DispatcherEntry
    from esd_gym.dlrm.inputs import load_run_inputs
    from esd_gym.dlrm.run import write_points_csv
    from experiments.cli import console
    from experiments.dlrm_compare import check_dispatchers, run_arm, save_config

    config = _run_config(args)
    name = config.name or f"dlrm-{config.scenario}-{config.dispatcher}-seed{config.seed}"
    run_dir = args.runs_dir / name
    entry = DispatcherEntry(name=config.dispatcher, options=config.dispatcher_options)
    # Every input is checked before the run directory is created, so that bad input leaves nothing behind.
    check_dispatchers([entry])
    inputs = load_run_inputs(config, data_dir=args.data_dir)
    save_config(run_dir / "config.yaml", config.model_dump(mode="json"))

    with _progress_bar() as bar:
        task = bar.add_task(f"train-dlrm {entry.display_name}", total=config.iterations)
        result = run_arm(config, entry, inputs, run_dir, lambda _label, _seed, done, _total: bar.update(task, completed=done))
    write_points_csv(run_dir / "metrics.csv", [result])

    summary = {"scenario": inputs.scenario_name, "dispatcher": config.dispatcher, **result.summary()}
    summary["run_dir"] = str(run_dir)
    if args.json:
        console.print(json.dumps(_json_ready(summary)), markup=False)
    else:
        _print_points(console, result)
        console.print(
            f"final held-out AUC {summary['auc']:.4f}, log loss {summary['logloss']:.4f}, embedding cost "
            f"{summary['cost_s']:.2f} s, simulated time {summary['time_s']:.2f} s; outputs in {run_dir}",
            markup=False,
        )
    return 0


def _run_compare(args: argparse.Namespace) -> int:
    from esd_gym.dlrm.config import load_compare_config
    from experiments.cli import console
    from experiments.dlrm_compare import run_comparison

    config = load_compare_config(args.compare)
    total = len(config.seeds) * len(config.dispatchers) * config.run.iterations
    finished: dict[tuple[str, int], int] = {}
    with _progress_bar() as bar:
        task = bar.add_task("train-dlrm --compare", total=total)

        def progress(label: str, seed: int, done: int, _iterations: int) -> None:
            finished[(label, seed)] = done
            bar.update(task, completed=sum(finished.values()), description=f"train-dlrm {label} seed {seed}")

        comparison = run_comparison(config, args.runs_dir, progress, trace=args.trace, data_dir=args.data_dir)

    table = (comparison.run_dir / "results.md").read_text(encoding="utf-8")
    if args.json:
        payload = {
            "run_dir": str(comparison.run_dir),
            "target_auc": config.target_auc,
            "arms": [_json_ready(vars(arm)) for arm in comparison.summaries],
        }
        console.print(json.dumps(payload), markup=False)
    else:
        console.print(table, markup=False)
        console.print(f"outputs in {comparison.run_dir}", markup=False)
    return 0


def _print_points(console: Any, result: Any) -> None:
    console.print(f"{'iteration':>9} {'time_s':>9} {'cost_s':>9} {'auc':>7} {'logloss':>8} {'stale':>7}", markup=False)
    for point in result.points:
        console.print(
            f"{point.iteration:>9} {point.time_s:>9.2f} {point.cost_s:>9.2f} {point.auc:>7.4f} "
            f"{point.logloss:>8.4f} {point.stale_reads:>7}",
            markup=False,
        )


def _json_ready(values: dict[str, Any]) -> dict[str, Any]:
    """Replace NaN by None so that the output is strict JSON."""
    return {key: (None if isinstance(value, float) and value != value else value) for key, value in values.items()}

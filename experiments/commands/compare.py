"""``esd-gym compare``: train and evaluate every agent of a comparison config and write tables, plots and logs."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="compare reference and learned agents on the same episodes (tables, plots, TensorBoard)",
        description=(
            "Train the learned agents of a comparison config, evaluate every agent on the same seeded episodes of "
            "each scenario and write runs/<name>/: results.csv, results.md, plots/ and tensorboard/."
        ),
    )
    parser.add_argument("--config", required=True, help="comparison config, e.g. configs/compare/main.yaml")
    parser.add_argument("--output-dir", default=None, help="parent of the run directory (default: the config's)")
    parser.add_argument("--no-progress", action="store_true", help="do not draw progress bars")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from experiments.cli import console
    from experiments.compare import load_compare_config, run_compare

    resolved = load_compare_config(args.config, output_dir=args.output_dir)
    result = run_compare(resolved, console=console, progress=not args.no_progress)
    console.print(result.results_md.read_text(encoding="utf-8"), markup=False)
    console.print(f"finished in {result.wall_time_s:.0f} s", markup=False)
    console.print(f"table:   {result.results_md} (per episode: {result.results_csv})", markup=False)
    if result.plots:
        console.print(f"plots:   {result.plots[0].parent.parent}/<scenario>/*.png", markup=False)
    if result.tensorboard_dir is not None:
        console.print(f"logs:    {result.tensorboard_dir}", markup=False)
    console.print(f"view the logs with: tensorboard --logdir {result.run_dir}", markup=False)
    return 0

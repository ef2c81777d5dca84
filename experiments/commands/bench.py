"""``esd-gym bench``: speed and memory measurements of the simulator, the dispatchers and the environment."""

from __future__ import annotations

import argparse
import json

TARGETS = ("simulator", "dispatch", "env")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="measure simulator, dispatcher and environment speed",
        description="Measure speed and memory; figures are printed, never asserted.",
    )
    parser.add_argument("target", choices=TARGETS, help="what to measure")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a fast look")
    parser.add_argument("--json", action="store_true", help="print one JSON object per measurement")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from experiments.cli import console

    if args.target == "simulator":
        from experiments.simulator_bench import bench_simulator

        rows = [bench_simulator(iterations=10 if args.quick else 30)]
    elif args.target == "dispatch":
        from agents.bench import bench_dispatch

        rows = bench_dispatch(quick=args.quick)
    else:
        from esd_gym.benchmarking import bench_env

        rows = bench_env(quick=args.quick)

    if args.json:
        for row in rows:
            console.print(json.dumps(row), markup=False)
    else:
        console.print(format_table(rows), markup=False)
    return 0


def format_table(rows: list[dict]) -> str:
    """Plain-text table with one column per key of the first row."""
    if not rows:
        return "(no measurements)"
    keys = list(rows[0])
    cells = [[_format(row.get(key)) for key in keys] for row in rows]
    widths = [max(len(key), *(len(line[i]) for line in cells)) for i, key in enumerate(keys)]
    lines = ["  ".join(key.rjust(width) for key, width in zip(keys, widths))]
    lines += ["  ".join(cell.rjust(width) for cell, width in zip(line, widths)) for line in cells]
    return "\n".join(lines)


def _format(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)

"""``esd-gym scenarios``: list the named environment scenarios, or print one scenario's spec."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "scenarios",
        help="list the environment's named scenarios with their descriptions",
        description="List the scenarios that gymnasium.make('esd_gym/Dispatch-v0', scenario=NAME) accepts, "
        "or print the full spec of one of them.",
    )
    parser.add_argument("name", nargs="?", help="print this scenario's spec as YAML instead of the list")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(handler=run)


def _summary(spec) -> str:
    cluster = spec.cluster
    return (
        f"{cluster.num_workers} workers, S={spec.batch_size}, {spec.episode_iterations} iterations per episode, "
        f"s={cluster.staleness_bound}, trace {spec.trace.source}, cost_scale_s={spec.cost_scale_s:g}"
    )


def run(args: argparse.Namespace) -> int:
    import textwrap

    import yaml

    from esd_gym.scenarios import get_scenario_spec, scenario_names
    from experiments.cli import console

    if args.name is not None:
        spec = get_scenario_spec(args.name).model_dump(mode="json")
        text = json.dumps(spec) if args.json else yaml.safe_dump(spec, sort_keys=False, width=110)
        console.print(text, markup=False)
        return 0

    specs = [get_scenario_spec(name) for name in scenario_names()]
    if args.json:
        for spec in specs:
            row = {"name": spec.name, "description": spec.description, "summary": _summary(spec)}
            console.print(json.dumps(row), markup=False)
        return 0
    for spec in specs:
        console.print(spec.name, markup=False)
        console.print(textwrap.fill(spec.description, width=100, initial_indent="    ", subsequent_indent="    "),
                      markup=False)
        console.print(f"    ({_summary(spec)})", markup=False)
    return 0

"""``esd-gym evaluate``: play a reference dispatcher or a saved model on a scenario's seeded episodes."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate a reference dispatcher or a saved SB3 model on a scenario",
        description=(
            "Play N episodes of a scenario; episode j uses seed K + j, so every agent evaluated with the same "
            "scenario, overrides and seed sees the same episodes."
        ),
    )
    parser.add_argument(
        "--agent", required=True, help="reference dispatcher name (e.g. random, hybriddis) or a saved model .zip"
    )
    parser.add_argument("--scenario", required=True, help="scenario name (see esd-gym scenarios)")
    parser.add_argument("--episodes", type=int, default=3, help="episodes to play (default: 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode (default: 0)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per episode instead of a table")
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="dispatcher option, value in YAML (e.g. budget_s=0.2); repeatable",
    )
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="scenario override or environment argument, value in YAML (e.g. episode_iterations=10); repeatable",
    )
    parser.set_defaults(handler=run)


def parse_assignments(items: list[str], option: str) -> dict[str, Any]:
    """Turn ``KEY=VALUE`` strings into a dictionary, each value read as YAML (``0.5`` is a float)."""
    import yaml

    from esd_gym.errors import ConfigError

    parsed: dict[str, Any] = {}
    for item in items:
        key, separator, text = item.partition("=")
        if not separator or not key:
            raise ConfigError(f"{option}: expected KEY=VALUE (got {item!r})")
        try:
            parsed[key] = yaml.safe_load(text)
        except yaml.YAMLError:
            raise ConfigError(f"{option} {key}: invalid YAML value {text!r}") from None
    return parsed


def run(args: argparse.Namespace) -> int:
    from rich.table import Table

    from esd_gym.errors import ConfigError
    from esd_gym.scenarios import scenario_names
    from experiments.cli import console
    from experiments.evaluate import build_agent, evaluate_agent
    from experiments.reports import summarise

    if args.episodes < 1:
        raise ConfigError(f"--episodes must be at least 1 (got {args.episodes})")
    if args.seed < 0:
        raise ConfigError(f"--seed must be non-negative (got {args.seed})")
    known = scenario_names()
    if args.scenario not in known:
        raise ConfigError(f"--scenario: unknown scenario '{args.scenario}' (known: {', '.join(known)})")
    options = parse_assignments(args.option, "--option")
    overrides = parse_assignments(args.override, "--override")
    agent = build_agent(args.agent, options)
    seeds = list(range(args.seed, args.seed + args.episodes))

    if args.json:
        def emit(result: Any) -> None:
            console.print(result.to_json(), markup=False, soft_wrap=True)

        evaluate_agent(agent, args.scenario, seeds, overrides, on_episode=emit)
        return 0

    results = evaluate_agent(agent, args.scenario, seeds, overrides)
    table = Table(title=f"{agent.name} on {args.scenario}")
    for column in ("seed", "cost (s)", "simulated time (s)", "hit rate", "MB down", "MB up", "decision (s)"):
        table.add_column(column, justify="right")
    for result in results:
        table.add_row(
            str(result.seed),
            f"{result.cost_s:.4f}",
            f"{result.time_s:.3f}",
            f"{result.hit_rate:.3f}",
            f"{result.bytes_down / 1e6:.2f}",
            f"{result.bytes_up / 1e6:.2f}",
            f"{result.decision_time_s:.2f}",
        )
    console.print(table)
    row = summarise(results)[args.scenario][agent.name]
    console.print(
        f"mean cost {row['cost_s']:.4f} ± {row['cost_std_s']:.4f} s over {len(results)} episode(s)", markup=False
    )
    return 0

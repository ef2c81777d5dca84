"""``esd-gym simulate``: run one reference dispatcher over a trace on a cluster and print the cost report."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="run a reference dispatcher over a trace and print the cost report",
        description="Dispatch consecutive batches of a trace with a reference dispatcher and report the totals.",
    )
    parser.add_argument("--cluster", required=True, help="cluster YAML (schema in README.md)")
    parser.add_argument("--trace", required=True, help="trace .npz")
    parser.add_argument("--dispatcher", default="round-robin", help="reference dispatcher name (default: round-robin)")
    parser.add_argument("--batch-size", type=int, required=True, help="samples per iteration")
    parser.add_argument("--iterations", type=int, default=None, help="maximum number of iterations (default: the whole trace)")
    parser.add_argument("--start", type=int, default=0, help="index of the first sample (default: 0)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the dispatcher (default: 0)")
    parser.add_argument("--json", action="store_true", help="print the totals as one JSON object")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from agents import make_dispatcher
    from agents.episode import run_episode
    from esd_gym.batch import gather_batch
    from esd_gym.cluster import load_cluster
    from esd_gym.errors import ConfigError
    from esd_gym.replay import check_ids_in_range, static_hot_set
    from esd_gym.simulator import Simulator
    from esd_gym.workload.trace import load_trace
    from experiments.cli import console

    cluster = load_cluster(args.cluster)
    trace = load_trace(args.trace)
    check_ids_in_range(trace, cluster)
    dispatcher = make_dispatcher(args.dispatcher)
    if args.batch_size <= 0:
        raise ConfigError(f"--batch-size must be positive (got {args.batch_size})")
    if args.iterations is not None and args.iterations <= 0:
        raise ConfigError(f"--iterations must be positive (got {args.iterations})")
    if args.seed < 0:
        raise ConfigError(f"--seed must be non-negative (got {args.seed})")
    if not 0 <= args.start < trace.num_samples:
        raise ConfigError(f"--start must lie in 0..{trace.num_samples - 1} (got {args.start})")

    available = (trace.num_samples - args.start) // args.batch_size
    iterations = available if args.iterations is None else min(args.iterations, available)
    if iterations <= 0:
        raise ConfigError(
            f"the trace has {trace.num_samples - args.start} samples after --start, fewer than one batch of "
            f"{args.batch_size}"
        )
    batches = (
        gather_batch(trace.offsets, trace.ids, np.arange(start, start + args.batch_size))
        for start in range(args.start, args.start + iterations * args.batch_size, args.batch_size)
    )
    simulator = Simulator(cluster, hot_ids=static_hot_set(cluster, trace))
    result = run_episode(dispatcher, simulator, batches, table_offsets=trace.table_offsets, seed=args.seed)

    totals = {"dispatcher": args.dispatcher, "batch_size": args.batch_size, **result.totals.to_dict()}
    if args.json:
        console.print(json.dumps(totals), markup=False)
        return 0
    console.print(
        f"{args.dispatcher}: {totals['iterations']} iterations of {args.batch_size} samples on "
        f"{cluster.num_workers} workers",
        markup=False,
    )
    for key in ("cost_s", "lookup_cost_s", "push_cost_s", "flush_cost_s", "time_s", "hit_rate"):
        console.print(f"  {key:<14} {totals[key]:.6g}", markup=False)
    for key in ("bytes_down", "bytes_up", "pulled_rows", "pushed_rows", "lookups", "hits"):
        console.print(f"  {key:<14} {totals[key]:,}", markup=False)
    return 0

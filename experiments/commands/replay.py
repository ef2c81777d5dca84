"""``esd-gym replay``: price an externally produced dispatch log with the simulator."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="evaluate a dispatch log (CSV sample,worker) on a cluster and trace",
        description="Replay a dispatch log through the simulator and print one JSON object with the totals.",
    )
    parser.add_argument("--cluster", required=True, help="cluster YAML (schema in README.md)")
    parser.add_argument("--trace", required=True, help="trace .npz (see esd-gym data convert)")
    parser.add_argument("--assignments", required=True, help="CSV with header 'sample,worker', dispatch order")
    parser.add_argument("--batch-size", type=int, required=True, help="samples per iteration (last may be short)")
    parser.add_argument("--no-flush", action="store_true", help="do not push dirty rows at the end")
    parser.add_argument(
        "--ignore-capacity", action="store_true", help="accept batches that exceed a worker's capacity"
    )
    parser.add_argument("--per-iteration", action="store_true", help="also list every iteration's report")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from esd_gym.cluster import load_cluster
    from esd_gym.replay import read_assignments, replay
    from esd_gym.workload.trace import load_trace
    from experiments.cli import console

    cluster = load_cluster(args.cluster)
    trace = load_trace(args.trace)
    samples, workers = read_assignments(args.assignments, trace.num_samples, cluster.num_workers)
    totals, reports = replay(
        cluster,
        trace,
        samples,
        workers,
        batch_size=args.batch_size,
        flush=not args.no_flush,
        check_capacity=not args.ignore_capacity,
    )
    output = totals.to_dict()
    if args.per_iteration:
        output["per_iteration"] = [report.to_dict() for report in reports]
    console.print(json.dumps(output), markup=False, soft_wrap=True)
    return 0

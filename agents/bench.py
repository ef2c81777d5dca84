"""Dispatcher measurements: heuristic speed, ILP solve time and gap, and episode costs on a scenario.

``esd-gym bench dispatch`` prints :func:`bench_dispatch`; ``python -m agents.bench costs`` prints the episode cost
table of :func:`bench_scenario_costs`. Figures are printed, never asserted: they depend on the machine.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from agents.base import make_dispatcher, plan_cost_s
from agents.highs_process import shared_process
from agents.ilp import batch_problem, solve_highs
from esd_gym.batch import Batch
from esd_gym.cluster import Cluster, ClusterConfig
from esd_gym.dispatch import DispatchContext, greedy_dispatch
from esd_gym.simulator import Simulator

__all__ = ["bench_dispatch", "bench_scenario_costs", "format_dispatch_table", "synthetic_context"]

IDS_PER_SAMPLE = 26
ROWS_PER_TABLE = 2000
ZIPF_EXPONENT = 1.1


def synthetic_cluster(num_workers: int) -> Cluster:
    """Workers with downlinks log-spaced 10 Mbit/s .. 1 Gbit/s, uplink half, 1 ms latency, 1 PS, 10 % caches."""
    down = np.logspace(np.log10(10e6), np.log10(1e9), num_workers) / 8.0
    cache_rows = int(0.1 * IDS_PER_SAMPLE * ROWS_PER_TABLE)
    workers = [
        {
            "cache_rows": cache_rows,
            "compute_samples_per_s": 2000.0,
            "links": [{"down_bytes_per_s": float(d), "up_bytes_per_s": float(d) / 2, "latency_s": 0.001}],
        }
        for d in down
    ]
    return Cluster.from_config(ClusterConfig.model_validate({"embedding_dim": 16, "workers": workers}))


def synthetic_batch(rng: np.random.Generator, num_samples: int) -> Batch:
    """Criteo-like batch: one id per table in 26 tables of 2000 rows, Zipf-distributed (exponent 1.1)."""
    rows = np.minimum(rng.zipf(ZIPF_EXPONENT, size=(num_samples, IDS_PER_SAMPLE)), ROWS_PER_TABLE) - 1
    ids = (rows + np.arange(IDS_PER_SAMPLE) * ROWS_PER_TABLE).ravel()
    return Batch.from_csr(np.arange(num_samples + 1) * IDS_PER_SAMPLE, ids)


def synthetic_context(num_samples: int, num_workers: int, seed: int = 0, warm_batches: int = 3) -> DispatchContext:
    """Context of a synthetic batch after ``warm_batches`` heuristic-dispatched batches warmed the caches."""
    rng = np.random.default_rng(seed)
    cluster = synthetic_cluster(num_workers)
    simulator = Simulator(cluster)
    capacity = cluster.capacities(num_samples)
    for _ in range(warm_batches):
        batch = synthetic_batch(rng, num_samples)
        context = DispatchContext.build(simulator, batch, capacity)
        simulator.step(batch, greedy_dispatch(context), capacity)
    return DispatchContext.build(simulator, synthetic_batch(rng, num_samples), capacity)


def _row(case: str, context: DispatchContext, **values: Any) -> dict[str, Any]:
    row = {
        "case": case,
        "S": context.batch.size,
        "W": context.num_workers,
        "distinct_ids": context.batch.num_unique,
        "samples_per_s": None,
        "solve_time_s": None,
        "status": None,
        "gap": None,
        "ilp_saving": None,
    }
    row.update(values)
    return row


def bench_heuristic(num_samples: int, num_workers: int = 8, repeats: int = 5) -> list[dict[str, Any]]:
    """Samples per second of greedy_dispatch in regret and batch order (best of ``repeats``)."""
    context = synthetic_context(num_samples, num_workers)
    rows = []
    for order in ("regret", "batch"):
        best_s = np.inf
        for _ in range(repeats):
            start = time.perf_counter()
            greedy_dispatch(context, order=order)
            best_s = min(best_s, time.perf_counter() - start)
        rows.append(_row(f"heuristic ({order} order)", context, samples_per_s=num_samples / best_s))
    return rows


def bench_ilp(num_samples: int, num_workers: int, time_limit_s: float) -> dict[str, Any]:
    """Solve one synthetic batch with HiGHS, warm-started from the heuristic; return time, status, gap and saving."""
    context = synthetic_context(num_samples, num_workers)
    heuristic = greedy_dispatch(context, order="regret")
    heuristic_s = plan_cost_s(context, heuristic)
    # Exclude the solver process's start-up (after a killed solve) from the solve time.
    shared_process().warm_up()
    result = solve_highs(batch_problem(context), time_limit_s, warm_start=heuristic)
    best_s = min(heuristic_s, result.objective_s) if result.has_plan else heuristic_s
    gap = None
    if result.bound_s is not None and best_s > 0:
        gap = max(0.0, (best_s - result.bound_s) / best_s)
    return _row(
        "ilp (HiGHS)",
        context,
        solve_time_s=result.solve_time_s,
        status=result.status,
        gap=gap,
        ilp_saving=(heuristic_s - best_s) / heuristic_s,
    )


def bench_dispatch(quick: bool = False) -> list[dict[str, Any]]:
    """Heuristic samples/s (26 ids per sample, 8 workers) and the ILP grid.

    Full: S = 4096 for the heuristic; ILP for S ∈ {32, 64, 128, 256} × W ∈ {4, 8, 16} with a 10 s limit per solve
    (about 2 minutes). Quick: S = 1024; S ∈ {32, 64} × W ∈ {4, 8} with a 2 s limit.
    """
    rows = bench_heuristic(1024 if quick else 4096)
    sizes, workers, limit_s = ((32, 64), (4, 8), 2.0) if quick else ((32, 64, 128, 256), (4, 8, 16), 10.0)
    for num_samples in sizes:
        for num_workers in workers:
            rows.append(bench_ilp(num_samples, num_workers, limit_s))
    return rows


def bench_scenario_costs(
    scenario_name: str = "ml100k-8w-hetero-v0",
    dispatchers: tuple[tuple[str, dict[str, Any]], ...] = (
        ("random", {}),
        ("round-robin", {}),
        ("hash", {}),
        ("least-loaded", {}),
        ("locality", {}),
        ("bandwidth", {}),
        ("hot-cold", {}),
        ("hybriddis-heuristic", {}),
        ("hybriddis", {"budget_s": 0.1}),
        ("hybriddis", {"budget_s": 0.5}),
    ),
    seeds: tuple[int, ...] = (0, 1, 2),
    data_dir: str | None = None,
) -> list[dict[str, Any]]:
    """Total episode cost (flush included) of each dispatcher on each seed of a scenario, and the mean."""
    from agents.episode import run_scenario_episode
    from esd_gym.scenarios import load_scenario

    scenario = load_scenario(scenario_name, data_dir=data_dir)
    rows = []
    for name, options in dispatchers:
        dispatcher = make_dispatcher(name, **options)
        start = time.perf_counter()
        costs = [run_scenario_episode(dispatcher, scenario, seed).cost_s for seed in seeds]
        label = name + "".join(f" {key}={value}" for key, value in options.items())
        row: dict[str, Any] = {"dispatcher": label}
        row.update({f"seed {seed} cost_s": cost for seed, cost in zip(seeds, costs)})
        row["mean cost_s"] = float(np.mean(costs))
        row["wall_s"] = time.perf_counter() - start
        rows.append(row)
    random_mean = next((row["mean cost_s"] for row in rows if row["dispatcher"] == "random"), None)
    for row in rows:
        row["vs random"] = None if random_mean is None else row["mean cost_s"] / random_mean - 1.0
    return rows


def format_dispatch_table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of benchmark rows, one column per key of the first row."""
    if not rows:
        return "(no measurements)"
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        lines.append("| " + " | ".join(_format(key, row.get(key)) for key in keys) + " |")
    return "\n".join(lines)


def _format(key: str, value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if key in ("gap", "ilp_saving", "vs random"):
            return f"{100 * value:+.1f} %" if key == "vs random" else f"{100 * value:.1f} %"
        if key == "samples_per_s":
            return f"{value:,.0f}"
        return f"{value:.3f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description="Print dispatcher benchmark tables (Markdown).")
    parser.add_argument("what", choices=("dispatch", "costs"), help="speed and ILP grid, or scenario costs")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (dispatch only)")
    parser.add_argument("--data-dir", default=None, help="dataset cache directory (costs only)")
    args = parser.parse_args()
    if args.what == "dispatch":
        print(format_dispatch_table(bench_dispatch(quick=args.quick)))
    else:
        print(format_dispatch_table(bench_scenario_costs(data_dir=args.data_dir)))


if __name__ == "__main__":
    main()

"""Result files of a comparison: ``results.csv``, the ``results.md`` table and PNG plots (matplotlib, Agg).

``results.csv`` has one row per agent, scenario and seed (columns :data:`experiments.evaluate.RESULT_COLUMNS`).
Floats are written with Python's ``repr``, which round-trips exactly, so two runs that computed the same numbers
write the same bytes. ``decision_time_s`` is wall time and differs between runs. Every other column depends only
on the config and the seeds, except for solver-based dispatchers: they stop at a wall-time limit, so their plans,
and hence their costs, can vary with machine load.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from experiments.evaluate import RESULT_COLUMNS, EpisodeResult

__all__ = ["PLOT_NAMES", "results_markdown", "summarise", "write_plots", "write_results_csv"]

# File names of the plots written for each scenario.
PLOT_NAMES = ("cost_per_batch.png", "cumulative_cost.png", "hit_rate.png", "worker_traffic.png")

REFERENCE_AGENT = "random"


def write_results_csv(path: Path, results: Sequence[EpisodeResult]) -> None:
    """Write one row per episode, in the order given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(RESULT_COLUMNS)
        for result in results:
            writer.writerow([_csv_value(value) for value in result.row().values()])


def _csv_value(value: object) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1; 0 for a single value)."""
    array = np.asarray(values, dtype=np.float64)
    std = float(array.std(ddof=1)) if len(array) > 1 else 0.0
    return float(array.mean()), std


def _group(results: Sequence[EpisodeResult]) -> dict[str, dict[str, list[EpisodeResult]]]:
    """scenario -> agent -> episodes, in first-appearance order."""
    groups: dict[str, dict[str, list[EpisodeResult]]] = {}
    for result in results:
        groups.setdefault(result.scenario, {}).setdefault(result.agent, []).append(result)
    return groups


def summarise(results: Sequence[EpisodeResult]) -> dict[str, dict[str, dict[str, float]]]:
    """Per scenario and agent: mean and std of cost, time and hit rate, mean bytes and decision time per batch,
    and the ratios to the ``random`` agent (NaN when the comparison has no ``random`` agent)."""
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for scenario, agents in _group(results).items():
        rows: dict[str, dict[str, float]] = {}
        for agent, episodes in agents.items():
            cost_mean, cost_std = _mean_std([episode.cost_s for episode in episodes])
            time_mean, time_std = _mean_std([episode.time_s for episode in episodes])
            hit_mean, hit_std = _mean_std([episode.hit_rate for episode in episodes])
            batches = sum(len(episode.batches) for episode in episodes)
            rows[agent] = {
                "episodes": len(episodes),
                "cost_s": cost_mean,
                "cost_std_s": cost_std,
                "time_s": time_mean,
                "time_std_s": time_std,
                "hit_rate": hit_mean,
                "hit_rate_std": hit_std,
                "bytes_down": float(np.mean([episode.bytes_down for episode in episodes])),
                "bytes_up": float(np.mean([episode.bytes_up for episode in episodes])),
                "decision_ms_per_batch": 1000 * sum(e.decision_time_s for e in episodes) / max(batches, 1),
                "penalty": float(np.mean([episode.penalty for episode in episodes])),
            }
        reference = rows.get(REFERENCE_AGENT)
        for row in rows.values():
            if reference is None:
                row["cost_vs_random"] = math.nan
                row["speedup_vs_random"] = math.nan
            else:
                row["cost_vs_random"] = row["cost_s"] / reference["cost_s"] if reference["cost_s"] else math.nan
                row["speedup_vs_random"] = reference["time_s"] / row["time_s"] if row["time_s"] else math.nan
        summary[scenario] = rows
    return summary


def _ratio(value: float, digits: int = 3) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def results_markdown(
    results: Sequence[EpisodeResult], title: str, seeds: Sequence[int], notes: Sequence[str] = ()
) -> str:
    """Build the ``results.md`` text: per scenario, one line per agent sorted by mean cost."""
    lines = [f"# {title}", ""]
    lines.append(
        f"Every agent played the same {len(seeds)} episode(s) per scenario (seeds {', '.join(map(str, seeds))}). "
        "Cost is the embedding transmission cost of an episode (link-seconds of lookups, pulls and pushes, flush "
        "included), as mean ± standard deviation over the episodes. *Cost vs random* is the mean cost divided by "
        "random dispatch's (lower is better); *speed-up* is random's simulated training time divided by the agent's "
        "(higher is better). Decision time is wall time on the machine that ran the comparison."
    )
    lines.append("")
    for note in notes:
        lines.append(f"- {note}")
    if notes:
        lines.append("")
    for scenario, rows in summarise(results).items():
        first = next(result for result in results if result.scenario == scenario)
        lines.append(f"## {scenario}")
        lines.append("")
        lines.append(f"{len(first.batches)} batches per episode.")
        lines.append("")
        lines.append(
            "| agent | cost (s) | cost vs random | speed-up | simulated time (s) | hit rate | MB down | MB up "
            "| decision (ms/batch) |"
        )
        lines.append("|---|---|---|---|---|---|---|---|---|")
        for agent, row in sorted(rows.items(), key=lambda item: item[1]["cost_s"]):
            lines.append(
                f"| {agent} | {row['cost_s']:.4f} ± {row['cost_std_s']:.4f} | {_ratio(row['cost_vs_random'])} "
                f"| {_ratio(row['speedup_vs_random'])} | {row['time_s']:.3f} ± {row['time_std_s']:.3f} "
                f"| {row['hit_rate']:.3f} | {row['bytes_down'] / 1e6:.2f} | {row['bytes_up'] / 1e6:.2f} "
                f"| {row['decision_ms_per_batch']:.2f} |"
            )
        lines.append("")
        penalised = [agent for agent, row in rows.items() if row["penalty"] > 0]
        for agent in penalised:
            lines.append(
                f"{agent} chose full workers: the environment redirected those actions to the cheapest worker with "
                f"room and charged a mean penalty of {rows[agent]['penalty']:.2f} per episode (not part of the cost)."
            )
        if penalised:
            lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------------------------------------------


def _per_iteration_mean(episodes: Sequence[EpisodeResult], attribute: str) -> np.ndarray:
    """Mean over episodes of a batch attribute at each iteration index (episodes may differ in length)."""
    length = max(len(episode.batches) for episode in episodes)
    sums, counts = np.zeros(length), np.zeros(length)
    for episode in episodes:
        values = [getattr(batch, attribute) for batch in episode.batches]
        sums[: len(values)] += values
        counts[: len(values)] += 1
    return sums / np.maximum(counts, 1)


def _colours(count: int) -> list:
    from matplotlib import colormaps

    palette = colormaps["tab10" if count <= 10 else "tab20"]
    return [palette(index % palette.N) for index in range(count)]


def _line_plot(path: Path, agents: dict[str, list[EpisodeResult]], attribute: str, ylabel: str, title: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(9.5, 4.8), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for index, (colour, (agent, episodes)) in enumerate(zip(_colours(len(agents)), agents.items())):
        values = _per_iteration_mean(episodes, attribute)
        # tab20 pairs a dark and a light shade of each hue; dashing every second line tells the pair apart.
        style = "--" if len(agents) > 10 and index % 2 else "-"
        axes.plot(np.arange(len(values)), values, label=agent, color=colour, linewidth=1.4, linestyle=style)
    axes.set_xlabel("iteration within the episode")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    figure.legend(loc="outside right upper", fontsize="small")
    figure.savefig(path, dpi=110)


def _traffic_plot(path: Path, agents: dict[str, list[EpisodeResult]], scenario: str) -> None:
    """Grouped bars: per worker, the mean megabytes pulled (top) and sent up (bottom) per episode, per agent."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11.5, 6.4), layout="constrained")
    FigureCanvasAgg(figure)
    axes_down, axes_up = figure.subplots(2, 1, sharex=True)
    names = list(agents)
    width = 0.8 / max(len(names), 1)
    for index, (colour, agent) in enumerate(zip(_colours(len(names)), names)):
        episodes = agents[agent]
        down = np.mean([np.sum([batch.worker_bytes_down for batch in e.batches], axis=0) for e in episodes], axis=0)
        up = np.mean([np.sum([batch.worker_bytes_up for batch in e.batches], axis=0) for e in episodes], axis=0)
        positions = np.arange(len(down)) - 0.4 + (index + 0.5) * width
        axes_down.bar(positions, down / 1e6, width, label=agent, color=colour)
        axes_up.bar(positions, up / 1e6, width, color=colour)
    axes_down.set_ylabel("MB pulled per episode")
    axes_up.set_ylabel("MB sent up per episode")
    axes_up.set_xlabel("worker (ordered as in the scenario)")
    axes_up.set_xticks(np.arange(len(down)))
    axes_down.set_title(f"{scenario}: per-worker traffic of the iterations (flush excluded)")
    for axes in (axes_down, axes_up):
        axes.grid(True, axis="y", alpha=0.3)
    figure.legend(loc="outside right upper", fontsize="small")
    figure.savefig(path, dpi=110)


def write_plots(directory: Path, results: Sequence[EpisodeResult]) -> list[Path]:
    """Write the :data:`PLOT_NAMES` of every scenario under ``directory/<scenario>/``; return their paths."""
    written = []
    for scenario, agents in _group(results).items():
        target = directory / scenario.replace("/", "_")
        target.mkdir(parents=True, exist_ok=True)
        paths = [target / name for name in PLOT_NAMES]
        _line_plot(paths[0], agents, "cost_s", "batch cost (link-seconds)", f"{scenario}: cost per batch")
        _line_plot(
            paths[1], agents, "cumulative_cost_s", "cumulative cost (link-seconds)", f"{scenario}: cumulative cost"
        )
        _line_plot(paths[2], agents, "hit_rate", "hit rate (fresh lookups / lookups)", f"{scenario}: hit rate")
        _traffic_plot(paths[3], agents, scenario)
        written.extend(paths)
    return written

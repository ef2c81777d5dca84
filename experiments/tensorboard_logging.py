"""TensorBoard logs of a comparison: every agent writes the same scalar tags against the same x-axis.

Each agent gets its own run directory, ``<logdir>/<scenario>/<agent>/``, so TensorBoard draws the agents as
overlaid curves of one chart per tag. The x-axis (the step) is the global iteration index: episode j of an
evaluation (seed K + j) occupies steps ``j × I … j × I + I − 1``, with I iterations per episode, so equal steps are
the same batch of the same episode for every agent.

Tags, one value per batch unless stated:

* ``cost/batch_cost_s``: embedding transmission cost of the batch, link-seconds;
* ``cost/cumulative_cost_s``: cost since the episode's start (restarts at every episode);
* ``cost/episode_cost_s``: the episode's total, flush included (at the episode's last step only);
* ``cache/hit_rate``: fresh lookups / lookups of the batch;
* ``time/simulated_time_s``: simulated training time since the episode's start, after the batch;
* ``traffic/bytes_down``, ``traffic/bytes_up``: bytes pulled and sent up in the batch;
* ``decision/decision_time_s``: wall time the agent took to choose the batch's actions (not reproducible).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from experiments.evaluate import EpisodeResult

__all__ = ["COMPARE_TAGS", "agent_log_dir", "read_scalars", "write_agent_scalars"]

COMPARE_TAGS = (
    "cost/batch_cost_s",
    "cost/cumulative_cost_s",
    "cost/episode_cost_s",
    "cache/hit_rate",
    "time/simulated_time_s",
    "traffic/bytes_down",
    "traffic/bytes_up",
    "decision/decision_time_s",
)


def agent_log_dir(logdir: Path, scenario: str, agent: str) -> Path:
    """``<logdir>/<scenario>/<agent>``, with path separators in names replaced."""
    return Path(logdir) / scenario.replace("/", "_") / agent.replace("/", "_")


def write_agent_scalars(logdir: Path, scenario: str, agent: str, episodes: Sequence[EpisodeResult]) -> Path:
    """Write one agent's episodes (in seed order) as TensorBoard scalars; replace what an earlier run left there.

    :returns: the agent's run directory.
    """
    from torch.utils.tensorboard import SummaryWriter

    directory = agent_log_dir(logdir, scenario, agent)
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    writer = SummaryWriter(log_dir=str(directory))
    try:
        step = 0
        for episode in episodes:
            for batch in episode.batches:
                writer.add_scalar("cost/batch_cost_s", batch.cost_s, step)
                writer.add_scalar("cost/cumulative_cost_s", batch.cumulative_cost_s, step)
                writer.add_scalar("cache/hit_rate", batch.hit_rate, step)
                writer.add_scalar("time/simulated_time_s", batch.simulated_time_s, step)
                writer.add_scalar("traffic/bytes_down", batch.bytes_down, step)
                writer.add_scalar("traffic/bytes_up", batch.bytes_up, step)
                writer.add_scalar("decision/decision_time_s", batch.decision_time_s, step)
                step += 1
            writer.add_scalar("cost/episode_cost_s", episode.cost_s, step - 1)
    finally:
        writer.close()
    return directory


def read_scalars(directory: Path) -> dict[str, list[tuple[int, float]]]:
    """Read back every scalar of one run directory: tag -> [(step, value)], with tensorboard's EventAccumulator."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(directory), size_guidance={"scalars": 0})
    accumulator.Reload()
    return {
        tag: [(event.step, event.value) for event in accumulator.Scalars(tag)]
        for tag in accumulator.Tags()["scalars"]
    }

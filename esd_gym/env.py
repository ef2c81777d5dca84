"""Gymnasium environments of sample dispatch: one step per sample (:class:`DispatchEnv`) or per batch
(:class:`DispatchBatchEnv`), over the exact simulator of :mod:`esd_gym.simulator` and a named scenario.

Both environments price placements with :class:`esd_gym.cost.BatchCosts`, the cost model that the simulator and
the reference dispatchers share. Rewards are the simulator's realised costs, so an episode's undiscounted return is
exactly minus its embedding transmission cost divided by the scenario's ``cost_scale_s``.
"""

from __future__ import annotations

from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.error import ResetNeeded

from esd_gym.batch import Batch
from esd_gym.dispatch import DispatchContext, greedy_dispatch
from esd_gym.errors import AssignmentError, ConfigError
from esd_gym.report import EpisodeTotals, IterationReport
from esd_gym.scenarios import Scenario, load_scenario
from esd_gym.simulator import Simulator

__all__ = ["DispatchBatchEnv", "DispatchEnv", "EPISODE_INFO_KEYS"]

# Keys of ``info`` at the last step of an episode, for ``Monitor(info_keywords=EPISODE_INFO_KEYS)``.
EPISODE_INFO_KEYS = (
    "episode_cost_s",
    "episode_lookup_cost_s",
    "episode_push_cost_s",
    "episode_flush_cost_s",
    "episode_time_s",
    "episode_hit_rate",
    "episode_bytes_down",
    "episode_bytes_up",
    "episode_pulled_rows",
    "episode_pushed_rows",
    "episode_penalty",
)
# Per-worker arrays of the iteration report copied into ``info`` at the last step of a batch, as ``worker_<name>``.
_WORKER_FIELDS = ("samples", "hits", "pulls", "pushes", "bytes_down", "bytes_up", "cost_s")


def _segment_sums(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Sum ``values`` [M, ...] over the CSR segments ``offsets`` [S+1]. An empty segment sums to 0."""
    lengths = np.diff(offsets)
    result = np.zeros((len(lengths),) + values.shape[1:], dtype=np.float64)
    nonempty = lengths > 0
    if nonempty.any():
        result[nonempty] = np.add.reduceat(values, offsets[:-1][nonempty], axis=0)
    return result


def _is_real(value: Any) -> bool:
    """Return whether ``value`` is a real number (int, float or a NumPy scalar of them) and not a boolean."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _squash(x: np.ndarray | float) -> np.ndarray | float:
    """Map [0, inf) onto [0, 1): x / (1 + x)."""
    return x / (1.0 + x)


class _ScenarioEnv(gym.Env):
    """Episode machinery shared by both modes: scenario, seeded start offset, simulator, batch reports."""

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        scenario: str,
        render_mode: str | None,
        data_dir: str | None,
        overrides: dict[str, Any],
    ) -> None:
        # An unsupported render mode is accepted here and rejected by render(): SB3's make_vec_env passes
        # render_mode="rgb_array" to every environment it creates.
        self.render_mode = render_mode
        self.scenario: Scenario = load_scenario(scenario, data_dir=data_dir, **overrides)
        spec = self.scenario.spec
        self.batch_size = spec.batch_size
        self.episode_iterations = spec.episode_iterations
        self.cost_scale_s = spec.cost_scale_s
        self.num_workers = spec.cluster.num_workers
        self._trace = self.scenario.trace
        self._table_offsets = self._trace.table_offsets
        self._hot_ids = self.scenario.hot_ids()
        self._cluster = self.scenario.build_cluster(np.random.default_rng(0) if self.scenario.dynamic else None)
        self._simulator = Simulator(self._cluster, self._hot_ids)
        self.capacity = self._cluster.capacities(self.batch_size)

        # Bandwidth feature: mean downlink over the PS links, divided by the fastest configured worker's.
        base_down = self._cluster.down_bytes_per_s.mean(axis=1)
        self._down_unit = base_down / base_down.max()
        self._bandwidth_bound = float(self._down_unit.max() * self.scenario.max_bandwidth_factor())

        self._start_sample = 0
        self._iteration = 0
        self._totals = EpisodeTotals()
        self._penalty_total = 0.0
        self._last_report: IterationReport | None = None
        self._context: DispatchContext | None = None
        self._needs_reset = True

    @property
    def dispatch_context(self) -> DispatchContext | None:
        """The snapshot of the batch being placed (costs, capacities, caches), or None before the first reset."""
        return self._context

    # -- episode ---------------------------------------------------------------------------------------------

    def _reset_episode(self, seed: int | None, options: dict[str, Any] | None) -> None:
        if options is not None and not isinstance(options, dict):
            raise ConfigError(f"options: must be a dict such as {{'start': 0}} or None (got {options!r})")
        super().reset(seed=seed)
        needed = self.batch_size * self.episode_iterations
        last_start = self._trace.num_samples - needed
        start = (options or {}).get("start")
        if start is None:
            start = int(self.np_random.integers(0, last_start + 1))
        elif not (isinstance(start, (int, np.integer)) and not isinstance(start, bool) and 0 <= start <= last_start):
            raise ConfigError(f"options['start']: must be an integer sample index in 0..{last_start} (got {start!r})")
        self._start_sample = int(start)
        if self.scenario.dynamic:
            self._cluster = self.scenario.build_cluster(self.np_random)
            self._simulator = Simulator(self._cluster, self._hot_ids)
        else:
            self._simulator.reset()
        self._iteration = 0
        self._totals = EpisodeTotals()
        self._penalty_total = 0.0
        self._last_report = None
        self._needs_reset = False
        self._start_batch()

    def _start_batch(self) -> None:
        """Cut the next batch from the trace and snapshot the simulator at its start."""
        first = self._start_sample + self._iteration * self.batch_size
        offsets = np.asarray(self._trace.offsets[first : first + self.batch_size + 1])
        batch = Batch.from_csr(offsets, self._trace.ids)
        self._context = DispatchContext.build(self._simulator, batch, self.capacity, self._table_offsets)
        factors = self._cluster.bandwidth_factors(self._simulator.time_s)
        self._bandwidth = self._down_unit * factors

    def _finish_batch(self, assignment: np.ndarray, info: dict[str, Any]) -> tuple[float, bool]:
        """Execute the batch and fill ``info``. Return the link-seconds not yet rewarded and whether the episode ended."""
        report = self._simulator.step(self._context.batch, assignment, self.capacity)
        self._totals.add(report)
        self._last_report = report
        self._add_report_info(report, info)
        unrewarded_s = float(report.push_cost_s.sum())
        self._iteration += 1
        if self._iteration < self.episode_iterations:
            return unrewarded_s, False
        flush = self._simulator.flush()
        self._totals.add(flush)
        self._needs_reset = True
        unrewarded_s += flush.total_cost_s
        self._add_episode_info(info)
        return unrewarded_s, True

    def _add_report_info(self, report: IterationReport, info: dict[str, Any]) -> None:
        info["iteration"] = report.iteration
        for name, value in report.totals().items():
            key = name if name == "iteration_time_s" else f"iteration_{name}"
            info[key] = value
        for name in _WORKER_FIELDS:
            info[f"worker_{name}"] = getattr(report, name) if name != "cost_s" else report.cost_s
        info["total_cost_s"] = self._totals.cost_s
        info["simulated_time_s"] = self._simulator.time_s

    def _add_episode_info(self, info: dict[str, Any]) -> None:
        totals = self._totals.to_dict()
        for name in ("cost_s", "lookup_cost_s", "push_cost_s", "flush_cost_s", "time_s", "hit_rate", "bytes_down",
                     "bytes_up", "pulled_rows", "pushed_rows"):
            info[f"episode_{name}"] = totals[name]
        info["episode_penalty"] = self._penalty_total
        info["total_cost_s"] = self._totals.cost_s
        info["simulated_time_s"] = self._simulator.time_s

    # -- rendering ------------------------------------------------------------------------------------------

    def render(self) -> str | None:
        """Return the per-worker table of the last batch (``render_mode="ansi"``), or None without a render mode."""
        if self.render_mode is None:
            return None
        if self.render_mode != "ansi":
            raise ConfigError(f"render_mode {self.render_mode!r} is not supported; use 'ansi' or None")
        lines = [f"{self.scenario.name}: iteration {self._iteration}/{self.episode_iterations}, "
                 f"episode cost so far {self._totals.cost_s:.4f} s"]
        report = self._last_report
        if report is None:
            lines.append("no batch executed yet")
            return "\n".join(lines) + "\n"
        lines.append(f"last batch (iteration {report.iteration}): cost {report.total_cost_s:.4f} s, "
                     f"hit rate {report.totals()['hit_rate']:.3f}, time {report.iteration_time_s:.4f} s")
        header = f"{'worker':>6} {'down Mb/s':>10} {'load':>5} {'cap':>5} {'hits':>6} {'pulls':>6} {'pushes':>6} {'cost ms':>9}"
        lines.append(header)
        down_mbps = self._cluster.down_bytes_per_s.mean(axis=1) * self._cluster.bandwidth_factors(report.start_time_s) * 8e-6
        for w in range(self.num_workers):
            lines.append(
                f"{w:>6} {down_mbps[w]:>10.1f} {int(report.samples[w]):>5} {int(self.capacity[w]):>5} "
                f"{int(report.hits[w]):>6} {int(report.pulls[w]):>6} {int(report.pushes[w]):>6} "
                f"{1000 * report.cost_s[w]:>9.3f}"
            )
        return "\n".join(lines) + "\n"


class DispatchEnv(_ScenarioEnv):
    """Place the samples of each training batch, one by one, on edge workers with embedding caches.

    ## Description

    Edge workers train a recommendation model (DLRM) together. Parameter servers hold the embedding tables; each
    worker caches rows. A sample trained on a worker whose cache lacks a fresh copy of one of its rows pulls that
    row over the worker's link, and row gradients are pushed back. This environment places every sample of a batch
    of ``S`` samples on one of ``W`` workers. When the batch is complete, the simulator executes the iteration
    (lookups, pulls, training, pushes) and prices every transfer in link-seconds. The aim is the lowest embedding
    transmission cost. Links, caches and the staleness bound come from a named scenario (``esd-gym scenarios``).

    ## Action Space

    ``Discrete(W)``: the worker for the current sample. A worker holds at most ``capacity[w]`` samples per batch;
    :meth:`action_masks` and ``info["action_mask"]`` give the workers with room (sb3-contrib's ``MaskablePPO``
    reads the former). An action on a full worker raises :class:`AssignmentError` (``invalid_action="raise"``) or
    is redirected to the worker with room and the smallest marginal cost, with ``invalid_action_penalty``
    subtracted from the reward (``"penalize"``, the default). A non-integer action or one outside ``0..W-1``
    raises :class:`AssignmentError` in both modes.

    ## Observation Space

    ``Box(low=0, high=..., shape=(6W + 3,), dtype=float32)``, every entry finite:

    | index        | feature                                                                          | range       |
    |--------------|----------------------------------------------------------------------------------|-------------|
    | 0 .. W-1     | marginal cost of the current sample on worker w, divided by its largest          | [0, 1]      |
    |              | plan-free cost over the workers (0 for a sample without ids)                     |             |
    | W .. 2W-1    | fraction of the sample's ids fresh in w's cache at the batch's start             | [0, 1]      |
    | 2W .. 3W-1   | samples placed on w in this batch / S                                            | [0, 1]      |
    | 3W .. 4W-1   | capacity left on w / S (capped at 1)                                             | [0, 1]      |
    | 4W .. 5W-1   | w's current downlink bandwidth / the fastest worker's configured downlink        | [0, b_max]  |
    | 5W .. 6W-1   | fraction of w's cache in use                                                     | [0, 1]      |
    | 6W           | batch progress: samples placed / S                                               | [0, 1]      |
    | 6W + 1       | episode progress: iterations done / episode length                               | [0, 1]      |
    | 6W + 2       | sample size: x / (1 + x), x = largest plan-free cost of the sample × S / scale    | [0, 1)      |

    The marginal cost is :meth:`esd_gym.cost.BatchCosts.marginal_cost_s`: requests, pulls of rows not fresh and
    not yet planned on w, expected pushes, and message latencies of parameter servers w does not talk to yet.
    ``b_max`` is the largest bandwidth factor of the scenario (1 unless its bandwidth changes over time).

    ## Rewards

    Link-seconds divided by the scenario's ``cost_scale_s`` (about the cost of one batch under random dispatch).
    Every step: minus the lookup cost (requests, pulls, lookup latencies) that the placement adds, which is exact.
    The last step of a batch also subtracts the batch's realised push cost (including write-backs), and the last
    step of the episode the cost of flushing every dirty row. So the undiscounted return of an episode equals minus
    its total embedding transmission cost / ``cost_scale_s``, less ``invalid_action_penalty`` per redirected action
    (``info["penalty"]``).

    ## Starting State

    Empty caches at simulated time 0; the episode starts at a sample index drawn uniformly from the trace (or
    ``options={"start": index}``). In a scenario with changing bandwidth, each reset draws new bandwidth traces.

    ## Episode End

    The episode is truncated after ``episode_iterations`` batches (``truncated=True``); it never terminates.

    ## Arguments

    ```python
    gymnasium.make("esd_gym/Dispatch-v0", scenario="ml100k-8w-hetero-v0", invalid_action="penalize",
                   invalid_action_penalty=0.1, render_mode=None, data_dir=None, **overrides)
    ```

    ``overrides`` replace fields of the scenario spec (``batch_size=32``, ``episode_iterations=5``,
    ``cluster={"staleness_bound": 2}``, ...); an unknown field raises :class:`ConfigError`. ``data_dir`` is where
    datasets are cached (default ``ESD_GYM_DATA_DIR`` or ``~/.cache/esd-gym``).

    ## Information

    Every step: ``action_mask`` (bool [W]), ``worker`` (where the sample went), ``penalty``. The last step of a
    batch adds the iteration report: ``iteration``, ``iteration_cost_s``, ``iteration_lookup_cost_s``,
    ``iteration_push_cost_s``, ``iteration_hit_rate``, ``iteration_time_s``, the counts ``iteration_<lookups,
    hits, pulls, pushes, write_backs, transient, evictions, bytes_down, bytes_up, samples>``, per-worker arrays
    ``worker_<samples, hits, pulls, pushes, bytes_down, bytes_up, cost_s>``, and the running ``total_cost_s`` and
    ``simulated_time_s``. The last step of the episode adds :data:`EPISODE_INFO_KEYS`.

    ## Version History

    * v0: initial version.
    """

    def __init__(
        self,
        scenario: str = "ml100k-8w-hetero-v0",
        invalid_action: Literal["penalize", "raise"] = "penalize",
        invalid_action_penalty: float = 0.1,
        render_mode: str | None = None,
        data_dir: str | None = None,
        **overrides: Any,
    ) -> None:
        if invalid_action not in ("penalize", "raise"):
            raise ConfigError(f"invalid_action: must be 'penalize' or 'raise' (got {invalid_action!r})")
        penalty_valid = _is_real(invalid_action_penalty) and np.isfinite(invalid_action_penalty)
        if not (penalty_valid and invalid_action_penalty >= 0):
            raise ConfigError(
                f"invalid_action_penalty: must be a finite, non-negative number (got {invalid_action_penalty!r})"
            )
        super().__init__(scenario, render_mode, data_dir, overrides)
        self.invalid_action = invalid_action
        self.invalid_action_penalty = float(invalid_action_penalty)

        workers = self.num_workers
        self.action_space = spaces.Discrete(workers)
        high = np.ones(6 * workers + 3, dtype=np.float32)
        high[4 * workers : 5 * workers] = self._bandwidth_bound
        self.observation_space = spaces.Box(low=np.zeros_like(high), high=high, dtype=np.float32)

        self._capacity_list = self.capacity.tolist()
        self._inv_batch = 1.0 / self.batch_size
        self._inv_scale = 1.0 / self.cost_scale_s
        self._obs = np.zeros(6 * workers + 3, dtype=np.float32)
        self._load = [0] * workers
        self._room = self.capacity > 0
        self._sample = 0
        self._matmul = np.matmul

    # -- Gymnasium API ---------------------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._reset_episode(seed, options)
        return self._obs.copy(), {"action_mask": self._room.copy()}

    @property
    def sample_index(self) -> int:
        """Index, within the current batch, of the sample that the next step places."""
        return self._sample

    def action_masks(self) -> np.ndarray:
        """bool [W]: the workers with room for the current sample (never all False)."""
        return self._room.copy()

    def marginal_costs_s(self) -> tuple[np.ndarray, np.ndarray]:
        """Return (full, lookup-only) marginal cost of the current sample on each worker, float64 [W], seconds.

        The full cost adds the cost model's expected push of the rows that the placement adds. The lookup-only part
        is what the next step's reward charges (times ``-1 / cost_scale_s``). Full workers are included.
        """
        return self._marginal[0].copy(), self._marginal[1].copy()

    def step(self, action):
        if self._needs_reset:
            raise ResetNeeded("call reset() before step(): no episode is running")
        worker = self._check_action(action)
        penalty = 0.0
        if not self._room[worker]:
            if self.invalid_action == "raise":
                raise AssignmentError(
                    f"action {worker}: worker {worker} is full ({self._load[worker]} of {self._capacity_list[worker]} "
                    "samples); choose a worker from action_masks()"
                )
            worker = self._cheapest_with_room()
            penalty = self.invalid_action_penalty
            self._penalty_total += penalty

        sample = self._sample
        cost_s = float(self._marginal[1, worker])
        self._place(sample, worker)
        reward = -cost_s * self._inv_scale - penalty
        info: dict[str, Any] = {"worker": worker, "penalty": penalty}

        truncated = False
        if sample + 1 == self.batch_size:
            unrewarded_s, truncated = self._finish_batch(self._assignment, info)
            reward -= unrewarded_s * self._inv_scale
            if truncated:
                self._obs[6 * self.num_workers + 1] = 1.0
                self._room[:] = self.capacity > 0
            else:
                self._start_batch()
        else:
            self._sample = sample + 1
            self._observe_sample()
        info["action_mask"] = self._room.copy()
        return self._obs.copy(), reward, False, truncated, info

    # -- per-sample mechanics --------------------------------------------------------------------------------

    def _check_action(self, action: Any) -> int:
        if type(action) is int:
            worker = action
        elif isinstance(action, np.integer):
            worker = int(action)
        elif isinstance(action, np.ndarray) and action.size == 1 and action.dtype.kind in "iu":
            worker = int(action.reshape(()))
        else:
            raise AssignmentError(
                f"action must be an integer worker index in 0..{self.num_workers - 1} "
                f"(got {action!r} of type {type(action).__name__})"
            )
        if not 0 <= worker < self.num_workers:
            raise AssignmentError(f"action {worker} is outside Discrete({self.num_workers}): workers are 0..{self.num_workers - 1}")
        return worker

    def _cheapest_with_room(self) -> int:
        """Return the worker with room and the smallest marginal cost (ties: less loaded, then lower index)."""
        cost = np.where(self._room, self._marginal[0], np.inf)
        best = np.flatnonzero(cost == cost.min())
        loads = np.asarray(self._load)[best]
        return int(best[np.argmin(loads)])

    def _start_batch(self) -> None:
        super()._start_batch()
        context = self._context
        batch, costs = context.batch, context.costs
        workers = self.num_workers

        # A sample's *rows* are its local ids and, numbered after them, the parameter servers it talks to. Row r
        # costs [full, lookup-only] × W the first time it is planned on a worker: the unit costs of an id, or the
        # message latencies of a PS. With these costs laid out per (sample, row) entry as [2, W, E] and a 0/1
        # "not yet planned" table [W, rows], a step prices its sample with one take and one batched dot product.
        entry_sample = np.concatenate((batch.sample_of, np.repeat(np.arange(batch.size), np.diff(context.sample_ps_offsets))))
        order = np.argsort(entry_sample, kind="stable")
        self._rows = np.concatenate((batch.local_ids, batch.num_unique + context.sample_ps))[order]
        unit = np.stack((costs.unit_s, costs.unit_lookup_s))
        fixed = np.stack((costs.fixed_s, costs.lookup_latency_s))
        entry_unit = np.concatenate((unit[:, :, batch.local_ids], fixed[:, :, context.sample_ps]), axis=2)
        self._entry_unit = np.ascontiguousarray(entry_unit[:, :, order])
        self._entry_offsets = (batch.offsets + context.sample_ps_offsets).tolist()
        self._unplanned = np.ones((workers, batch.num_unique + self._cluster.num_ps))

        # Plan-free cost of each sample on each worker; its maximum over workers bounds every marginal cost.
        standalone = _segment_sums(self._entry_unit[0].T, np.asarray(self._entry_offsets))
        largest = standalone.max(axis=1)
        self._cost_normaliser = np.divide(1.0, largest, out=np.zeros_like(largest), where=largest > 0)
        self._sample_size = _squash(largest * self.batch_size * self._inv_scale).tolist()

        lengths = np.diff(batch.offsets)
        fresh_counts = _segment_sums(costs.fresh.T[batch.local_ids].astype(np.float64), batch.offsets)
        self._fresh_fraction = (fresh_counts / np.maximum(lengths, 1)[:, None]).astype(np.float32)

        self._assignment = np.empty(batch.size, dtype=np.int64)
        self._load = [0] * workers
        self._room[:] = self.capacity > 0
        obs = self._obs
        obs[2 * workers : 3 * workers] = 0.0
        obs[3 * workers : 4 * workers] = np.minimum(self.capacity, self.batch_size) * self._inv_batch
        obs[4 * workers : 5 * workers] = self._bandwidth
        obs[5 * workers : 6 * workers] = context.cache_fill
        obs[6 * workers + 1] = self._iteration / self.episode_iterations
        self._sample = 0
        self._observe_sample()

    def _observe_sample(self) -> None:
        """Price the current sample on every worker and write its features into the observation buffer.

        ``_marginal`` [2, W] contains the full and the lookup-only marginal cost, the same sums as
        :meth:`BatchCosts.marginal_cost_s` restricted to rows and parameter servers not yet planned on each worker.
        """
        sample = self._sample
        start, stop = self._entry_offsets[sample], self._entry_offsets[sample + 1]
        self._sample_rows = rows = self._rows[start:stop]
        not_planned = self._unplanned.take(rows, axis=1)
        marginal = self._matmul(self._entry_unit[:, :, None, start:stop], not_planned[:, :, None])[:, :, 0, 0]
        self._marginal = marginal
        workers = self.num_workers
        obs = self._obs
        np.multiply(marginal[0], self._cost_normaliser[sample], out=obs[:workers], casting="same_kind")
        obs[workers : 2 * workers] = self._fresh_fraction[sample]
        obs[6 * workers] = sample * self._inv_batch
        obs[6 * workers + 2] = self._sample_size[sample]

    def _place(self, sample: int, worker: int) -> None:
        self._unplanned[worker][self._sample_rows] = 0.0
        self._assignment[sample] = worker
        load = self._load[worker] + 1
        self._load[worker] = load
        capacity = self._capacity_list[worker]
        if load >= capacity:
            self._room[worker] = False
        workers = self.num_workers
        self._obs[2 * workers + worker] = load * self._inv_batch
        self._obs[3 * workers + worker] = min(capacity - load, self.batch_size) * self._inv_batch


class DispatchBatchEnv(_ScenarioEnv):
    """Steer the greedy dispatcher batch by batch with per-worker score adjustments.

    ## Description

    The same system as :class:`DispatchEnv`, one step per training batch. The greedy placement of
    HybridDis-Heuristic (:func:`esd_gym.dispatch.greedy_dispatch`, regret order) places the batch, after adding
    the action's adjustment to every marginal cost of each worker. A policy can so learn, for example, to keep
    samples away from a link that is about to slow down or to spread rows across caches.

    ## Action Space

    ``Box(-1, 1, shape=(W,), float32)``: worker w's marginal costs are raised by ``action[w] × adjust_scale ×
    cost_scale_s / S`` seconds (``cost_scale_s / S`` is about the mean cost of a sample). A wrong shape,
    non-finite or out-of-range action raises :class:`AssignmentError`.

    ## Observation Space

    ``Box(low=0, high=..., shape=(5W + 2,), dtype=float32)``:

    | index        | feature                                                                        | range      |
    |--------------|--------------------------------------------------------------------------------|------------|
    | 0 .. W-1     | mean over the batch of each sample's plan-free cost on w / its largest one     | [0, 1]     |
    | W .. 2W-1    | fraction of the batch's distinct ids fresh in w's cache                        | [0, 1]     |
    | 2W .. 3W-1   | capacity of w / S (capped at 1)                                                | [0, 1]     |
    | 3W .. 4W-1   | w's current downlink bandwidth / the fastest worker's configured downlink      | [0, b_max] |
    | 4W .. 5W-1   | fraction of w's cache in use                                                   | [0, 1]     |
    | 5W           | episode progress: iterations done / episode length                             | [0, 1]     |
    | 5W + 1       | batch size in cost: x / (1 + x), x = Σ largest plan-free sample costs / scale  | [0, 1)     |

    ## Rewards

    Minus the batch's realised embedding transmission cost divided by ``cost_scale_s``. The last step also
    subtracts the flush cost, so the return is minus the episode's cost / ``cost_scale_s``.

    ## Starting State, Episode End

    As :class:`DispatchEnv`: empty caches, a seeded start offset, truncation after ``episode_iterations`` steps.

    ## Arguments

    ```python
    gymnasium.make("esd_gym/DispatchBatch-v0", scenario="ml100k-8w-hetero-v0", adjust_scale=1.0,
                   render_mode=None, data_dir=None, **overrides)
    ```

    ## Information

    Every step: ``assignment`` (int64 [S]) and the batch keys of :class:`DispatchEnv`; the last step adds
    :data:`EPISODE_INFO_KEYS` (``episode_penalty`` is always 0).

    ## Version History

    * v0: initial version.
    """

    def __init__(
        self,
        scenario: str = "ml100k-8w-hetero-v0",
        adjust_scale: float = 1.0,
        render_mode: str | None = None,
        data_dir: str | None = None,
        **overrides: Any,
    ) -> None:
        if not (_is_real(adjust_scale) and np.isfinite(adjust_scale) and adjust_scale >= 0):
            raise ConfigError(f"adjust_scale: must be a finite, non-negative number (got {adjust_scale!r})")
        super().__init__(scenario, render_mode, data_dir, overrides)
        workers = self.num_workers
        self.adjust_s_per_unit = float(adjust_scale) * self.cost_scale_s / self.batch_size
        self.action_space = spaces.Box(-1.0, 1.0, shape=(workers,), dtype=np.float32)
        high = np.ones(5 * workers + 2, dtype=np.float32)
        high[3 * workers : 4 * workers] = self._bandwidth_bound
        self.observation_space = spaces.Box(low=np.zeros_like(high), high=high, dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._reset_episode(seed, options)
        return self._observe_batch(), {}

    def step(self, action):
        if self._needs_reset:
            raise ResetNeeded("call reset() before step(): no episode is running")
        action = np.asarray(action)
        if action.shape != (self.num_workers,) or action.dtype.kind not in "fiu":
            raise AssignmentError(
                f"action must be a float array of shape ({self.num_workers},) (got {action.dtype} {action.shape})"
            )
        if not np.all(np.isfinite(action)) or np.any(np.abs(action) > 1.0):
            raise AssignmentError(f"action entries must be finite and within [-1, 1] (got {action.tolist()})")
        adjust_s = action.astype(np.float64) * self.adjust_s_per_unit
        assignment = greedy_dispatch(self._context, order="regret", adjust_s=adjust_s)
        info: dict[str, Any] = {"assignment": assignment}
        unrewarded_s, truncated = self._finish_batch(assignment, info)
        reward = -unrewarded_s / self.cost_scale_s - float(self._last_report.lookup_cost_s.sum()) / self.cost_scale_s
        if not truncated:
            self._start_batch()
        return self._observe_batch(), reward, False, truncated, info

    def _observe_batch(self) -> np.ndarray:
        context, workers = self._context, self.num_workers
        batch, costs = context.batch, context.costs
        standalone = _segment_sums(costs.unit_s.T[batch.local_ids], batch.offsets)
        standalone += _segment_sums(costs.fixed_s.T[context.sample_ps], context.sample_ps_offsets)
        largest = standalone.max(axis=1)
        ratio = np.divide(standalone, largest[:, None], out=np.zeros_like(standalone), where=largest[:, None] > 0)
        obs = np.empty(5 * workers + 2, dtype=np.float32)
        obs[:workers] = ratio.mean(axis=0)
        obs[workers : 2 * workers] = costs.fresh.mean(axis=1) if batch.num_unique else 0.0
        obs[2 * workers : 3 * workers] = np.minimum(self.capacity, self.batch_size) / self.batch_size
        obs[3 * workers : 4 * workers] = self._bandwidth
        obs[4 * workers : 5 * workers] = context.cache_fill
        obs[5 * workers] = min(self._iteration, self.episode_iterations) / self.episode_iterations
        obs[5 * workers + 1] = _squash(float(largest.sum()) / self.cost_scale_s)
        return np.minimum(obs, self.observation_space.high)

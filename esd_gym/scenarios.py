"""Named, versioned scenarios: a trace, a cluster, a batch size, an episode length and a reward scale.

Each scenario is a YAML file in ``esd_gym/scenario_specs/`` validated by :class:`ScenarioSpec`. A name ends in a
version (``-v0``); any change to a scenario's semantics or numbers gets a new version, so results stay comparable.

Loading a scenario (:func:`load_scenario`) reads or generates its trace once per process:

* ``source: ml-100k``: MovieLens-100K from the data directory. When it is not on disk it is fetched on first use
  (and that is logged); with ``ESD_GYM_OFFLINE=1`` a :class:`DataError` names ``esd-gym data fetch ml-100k``.
* ``source: synthetic``: a seeded Criteo-like trace from :mod:`esd_gym.workload.synthetic`, generated in memory.
* ``source: file``: any ``.npz`` trace (see :mod:`esd_gym.workload.trace`).

The data directory is ``ESD_GYM_DATA_DIR`` when set, else ``~/.cache/esd-gym``.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import logging
import os
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import numpy as np
import pydantic
from pydantic import Field

from esd_gym.cache import most_frequent_ids
from esd_gym.cluster import Cluster, ClusterConfig, LinkConfig, WorkerConfig
from esd_gym.config import StrictModel, format_validation_error, load_yaml, validate_config
from esd_gym.errors import ConfigError, DataError
from esd_gym.workload.datasets import dataset_is_present, dataset_trace_path, default_data_dir
from esd_gym.workload.synthetic import SyntheticConfig, generate_trace
from esd_gym.workload.trace import Trace, load_trace

__all__ = [
    "BandwidthDynamics",
    "ClusterSpec",
    "Scenario",
    "ScenarioSpec",
    "default_data_dir",
    "get_scenario_spec",
    "load_scenario",
    "measure_random_dispatch_cost",
    "scenario_names",
]

logger = logging.getLogger(__name__)

SPEC_DIRECTORY = "scenario_specs"
MEGABIT_BYTES = 1e6 / 8


# ---------------------------------------------------------------------------------------------------------------
# Spec schema
# ---------------------------------------------------------------------------------------------------------------


class MovieLensTraceSpec(StrictModel):
    """MovieLens-100K ratings as samples, in file order."""

    source: Literal["ml-100k"]
    tables: list[str] | None = Field(default=None, description="keep only these tables; null keeps all")


class SyntheticTraceSpec(StrictModel):
    """A seeded Criteo-like trace from :func:`esd_gym.workload.generate_trace` (see its ``SyntheticConfig``)."""

    source: Literal["synthetic"]
    num_samples: int = Field(gt=0)
    cardinalities: list[Annotated[int, Field(gt=0)]] | None = Field(
        default=None, description="rows per table; null takes the 26 Criteo Kaggle tables"
    )
    zipf_exponents: float | list[float] = 1.05
    ids_per_table: int | list[int] = 1
    locality: float = Field(default=0.0, ge=0, le=1, description="probability that an id repeats a recent one")
    locality_window: int = Field(default=1000, ge=1)
    seed: int = Field(default=0, ge=0, description="generator seed; part of the scenario, not of the episode")
    tables: list[str] | None = None


class FileTraceSpec(StrictModel):
    """An ``.npz`` trace file."""

    source: Literal["file"]
    path: str
    tables: list[str] | None = None


TraceSpec = Annotated[
    Union[MovieLensTraceSpec, SyntheticTraceSpec, FileTraceSpec], Field(discriminator="source")
]


class BandwidthRange(StrictModel):
    """Per-worker values spaced from ``min`` (worker 0) to ``max`` (worker W-1)."""

    min: float = Field(gt=0, allow_inf_nan=False)
    max: float = Field(gt=0, allow_inf_nan=False)
    spacing: Literal["log", "linear"] = "log"


class BandwidthDynamics(StrictModel):
    """Random bandwidth over simulated time, drawn anew at every ``reset`` from the episode's seed.

    Every ``interval_s`` seconds, the log10 of each worker's bandwidth factor moves by a normal step of standard
    deviation ``volatility``, reflected into ``[log10 factor_min, log10 factor_max]``. The first factor is drawn
    log-uniformly in that range. The factor multiplies every link of the worker (down and up). Changes stop at
    ``horizon_s``, and the last factor stays in force after it.
    """

    interval_s: float = Field(gt=0, allow_inf_nan=False)
    factor_min: float = Field(gt=0, allow_inf_nan=False)
    factor_max: float = Field(gt=0, allow_inf_nan=False)
    volatility: float = Field(default=0.2, ge=0, allow_inf_nan=False)
    horizon_s: float = Field(gt=0, allow_inf_nan=False)

    @pydantic.model_validator(mode="after")
    def _ordered(self) -> "BandwidthDynamics":
        if self.factor_max < self.factor_min:
            raise ValueError(f"factor_max={self.factor_max} is below factor_min={self.factor_min}")
        return self


class ClusterSpec(StrictModel):
    """A compact cluster description that :meth:`Scenario.build_cluster` turns into a :class:`ClusterConfig`."""

    num_workers: int = Field(ge=1)
    num_ps: int = Field(default=1, ge=1)
    downlink_mbps: float | list[float] | BandwidthRange = Field(
        description="megabits/s: one value for all workers, one per worker, or a range spaced over the workers"
    )
    uplink_ratio: float = Field(default=0.5, gt=0, allow_inf_nan=False, description="uplink = ratio × downlink")
    latency_ms: float = Field(default=5.0, ge=0, allow_inf_nan=False)
    cache_fraction: float = Field(ge=0, le=1, description="cache rows per worker, as a fraction of the trace's ids")
    compute_samples_per_s: float | list[float] = 2000.0
    capacities: list[Annotated[int, Field(ge=0)]] | None = Field(
        default=None, description="samples per worker per iteration; null derives them from compute speed"
    )
    embedding_dim: int = Field(default=16, gt=0)
    staleness_bound: int = Field(default=0, ge=0)
    cache_policy: Literal["lru", "lfu", "static"] = "lru"
    overlap_compute: bool = False
    request_bytes_per_id: int = Field(default=16, ge=0)
    row_header_bytes: int = Field(default=16, ge=0)
    bandwidth_dynamics: BandwidthDynamics | None = None

    @pydantic.model_validator(mode="after")
    def _per_worker_lengths(self) -> "ClusterSpec":
        for name in ("downlink_mbps", "compute_samples_per_s", "capacities"):
            value = getattr(self, name)
            if isinstance(value, list) and len(value) != self.num_workers:
                raise ValueError(f"{name} has {len(value)} entries for num_workers={self.num_workers}")
        for name in ("downlink_mbps", "compute_samples_per_s"):
            value = getattr(self, name)
            if isinstance(value, BandwidthRange):
                continue
            values = value if isinstance(value, list) else [value]
            if any(not np.isfinite(v) or v <= 0 for v in values):
                raise ValueError(f"{name} must be positive and finite (got {value})")
        return self


class ScenarioSpec(StrictModel):
    """One named scenario; every field can be overridden through ``gymnasium.make`` keyword arguments."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*-v[0-9]+$")
    description: str
    trace: TraceSpec
    cluster: ClusterSpec
    batch_size: int = Field(gt=0, description="S, samples per iteration")
    episode_iterations: int = Field(gt=0, description="iterations per episode")
    cost_scale_s: float = Field(
        gt=0, allow_inf_nan=False, description="reward normaliser: rewards are link-seconds divided by this"
    )


# ---------------------------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _spec_files() -> dict[str, Any]:
    files = {}
    for entry in (resources.files("esd_gym") / SPEC_DIRECTORY).iterdir():
        if entry.name.endswith(".yaml"):
            files[entry.name[: -len(".yaml")]] = entry
    return dict(sorted(files.items()))


def scenario_names() -> list[str]:
    """Names of the shipped scenarios, sorted."""
    return list(_spec_files())


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and "source" not in value:
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def get_scenario_spec(name: str, /, **overrides: Any) -> ScenarioSpec:
    """Return the validated spec of scenario ``name`` with ``overrides`` merged in.

    Nested fields merge key by key (``cluster={"num_workers": 4}`` keeps the other cluster fields); a ``trace``
    override that names a ``source`` replaces the whole trace entry.

    :raises ConfigError: unknown scenario, unknown key or invalid value.
    """
    files = _spec_files()
    if name not in files:
        raise ConfigError(f"scenario: unknown scenario '{name}' (known: {', '.join(files)})")
    source = f"scenario {name}"
    with resources.as_file(files[name]) as path:
        data = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the spec file must contain a mapping")
    if "name" in overrides and overrides["name"] != name:
        raise ConfigError(f"{source}: the override name={overrides['name']!r} differs from the scenario name")
    if overrides:
        data = _merge(data, overrides)
        source = f"scenario {name} with overrides {sorted(overrides)}"
    return validate_config(ScenarioSpec, data, source)


# ---------------------------------------------------------------------------------------------------------------
# Traces
# ---------------------------------------------------------------------------------------------------------------


def _offline() -> bool:
    return os.environ.get("ESD_GYM_OFFLINE", "").strip() not in ("", "0", "false", "no")


def _movielens_trace_path(data_dir: Path) -> Path:
    """Return the converted MovieLens-100K trace, fetching and converting the dataset on first use."""
    trace_path = data_dir / "ml-100k.npz"
    if trace_path.is_file():
        return trace_path
    if not dataset_is_present("ml-100k", data_dir):
        if _offline():
            raise DataError(
                f"MovieLens-100K is not in {data_dir} and ESD_GYM_OFFLINE=1 forbids fetching it; "
                f"run `esd-gym data fetch ml-100k --data-dir {data_dir}` first"
            )
        logger.info("MovieLens-100K is not in %s; fetching it (first use)", data_dir)
    return dataset_trace_path("ml-100k", data_dir)


def _synthetic_config(spec: SyntheticTraceSpec) -> SyntheticConfig:
    options: dict[str, Any] = {
        "zipf_exponents": tuple(spec.zipf_exponents) if isinstance(spec.zipf_exponents, list) else spec.zipf_exponents,
        "ids_per_table": tuple(spec.ids_per_table) if isinstance(spec.ids_per_table, list) else spec.ids_per_table,
        "locality": spec.locality,
        "locality_window": spec.locality_window,
        "seed": spec.seed,
    }
    if spec.cardinalities is not None:
        options["cardinalities"] = tuple(spec.cardinalities)
    return SyntheticConfig(**options)


def select_tables(trace: Trace, names: list[str] | None) -> Trace:
    """Keep only the ids of the tables ``names`` (all tables when None); ids keep their global numbering."""
    if names is None:
        return trace
    if trace.table_names is None or trace.table_offsets is None:
        raise ConfigError(f"trace.tables: {trace.source} has no table names to select {names} from")
    unknown = [name for name in names if name not in trace.table_names]
    if unknown:
        raise ConfigError(f"trace.tables: {unknown} not in {trace.source} (tables: {list(trace.table_names)})")
    ids = np.asarray(trace.ids)
    keep = np.zeros(len(ids), dtype=bool)
    for name in names:
        table = trace.table_names.index(name)
        keep |= (ids >= trace.table_offsets[table]) & (ids < trace.table_offsets[table + 1])
    kept_before = np.concatenate(([0], np.cumsum(keep))).astype(np.int64)
    return dataclasses.replace(trace, offsets=kept_before[np.asarray(trace.offsets)], ids=ids[keep])


@functools.lru_cache(maxsize=8)
def _load_trace_cached(trace_json: str, data_dir: str) -> tuple[Trace, int]:
    """Return the trace of a trace spec (given as JSON, so it can be a cache key) and its number of distinct ids."""
    spec = pydantic.TypeAdapter(TraceSpec).validate_json(trace_json)
    trace = select_tables(_load_scenario_trace(spec, Path(data_dir)), spec.tables)
    return trace, int(len(np.unique(np.asarray(trace.ids))))


def _load_scenario_trace(spec: Any, data_dir: Path) -> Trace:
    """Read, fetch or generate the full trace of a trace spec (before table selection)."""
    if spec.source == "ml-100k":
        return load_trace(_movielens_trace_path(data_dir))
    if spec.source == "synthetic":
        return generate_trace(spec.num_samples, _synthetic_config(spec))
    return load_trace(Path(spec.path).expanduser())


# ---------------------------------------------------------------------------------------------------------------
# Scenario: spec + trace + cluster
# ---------------------------------------------------------------------------------------------------------------


def _per_worker(value: float | list[float] | BandwidthRange, num_workers: int) -> np.ndarray:
    if isinstance(value, BandwidthRange):
        if value.spacing == "log":
            return np.geomspace(value.min, value.max, num_workers)
        return np.linspace(value.min, value.max, num_workers)
    return np.broadcast_to(np.asarray(value, dtype=np.float64), (num_workers,)).copy()


@dataclasses.dataclass(frozen=True)
class Scenario:
    """A loaded scenario: its spec, its trace (tables selected) and what the cluster needs from the trace."""

    spec: ScenarioSpec
    trace: Trace
    num_distinct_ids: int

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def dynamic(self) -> bool:
        return self.spec.cluster.bandwidth_dynamics is not None

    def cache_rows(self) -> int:
        """Cache rows of every worker: ``cache_fraction`` × distinct ids of the trace, rounded."""
        return int(round(self.spec.cluster.cache_fraction * self.num_distinct_ids))

    def hot_ids(self) -> np.ndarray | None:
        """Return the static policy's hot set (the trace's most frequent ids), or None under the other policies."""
        if self.spec.cluster.cache_policy != "static":
            return None
        return most_frequent_ids(np.asarray(self.trace.ids), self.cache_rows())

    def max_bandwidth_factor(self) -> float:
        """Return the largest bandwidth factor that any reset may draw (1 for a static scenario)."""
        dynamics = self.spec.cluster.bandwidth_dynamics
        return 1.0 if dynamics is None else max(1.0, dynamics.factor_max)

    def build_cluster(self, rng: np.random.Generator | None = None) -> Cluster:
        """Build the cluster; a dynamic scenario draws its bandwidth traces from ``rng`` (required then).

        NOTE: the drawn traces are set on the returned :class:`Cluster` only, and its ``config`` keeps empty
        ``bandwidth_trace`` lists. Validating thousands of steps per reset would dominate ``reset``.
        """
        cluster = self._static_cluster()
        if self.spec.cluster.bandwidth_dynamics is None:
            return cluster
        if rng is None:
            raise ValueError(f"scenario {self.name} has random bandwidth and needs a random generator")
        starts, factors = self._bandwidth_traces(rng)
        return dataclasses.replace(
            cluster, trace_starts_s=tuple(starts for _ in factors), trace_factors=tuple(factors)
        )

    @functools.cached_property
    def _static_cluster_config(self) -> ClusterConfig:
        spec = self.spec.cluster
        workers = spec.num_workers
        down = _per_worker(spec.downlink_mbps, workers) * MEGABIT_BYTES
        rates = _per_worker(spec.compute_samples_per_s, workers)
        try:
            return self._cluster_config_from(spec, down, rates)
        except pydantic.ValidationError as error:
            # A valid spec can still derive an invalid value, e.g. a downlink so large that bytes/s overflow.
            raise ConfigError(format_validation_error(error, f"scenario {self.name}: derived cluster")) from None

    def _cluster_config_from(self, spec: ClusterSpec, down: np.ndarray, rates: np.ndarray) -> ClusterConfig:
        workers = spec.num_workers
        return ClusterConfig(
            embedding_dim=spec.embedding_dim,
            num_ps=spec.num_ps,
            staleness_bound=spec.staleness_bound,
            request_bytes_per_id=spec.request_bytes_per_id,
            row_header_bytes=spec.row_header_bytes,
            cache_policy=spec.cache_policy,
            overlap_compute=spec.overlap_compute,
            num_rows=self.trace.num_rows,
            workers=[
                WorkerConfig(
                    cache_rows=self.cache_rows(),
                    compute_samples_per_s=float(rates[w]),
                    capacity=None if spec.capacities is None else spec.capacities[w],
                    links=[
                        LinkConfig(
                            down_bytes_per_s=float(down[w]),
                            up_bytes_per_s=float(down[w] * spec.uplink_ratio),
                            latency_s=spec.latency_ms / 1000.0,
                        )
                    ]
                    * spec.num_ps,
                )
                for w in range(workers)
            ],
        )

    def _static_cluster(self) -> Cluster:
        return Cluster.from_config(self._static_cluster_config)

    def _bandwidth_traces(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Draw (starts_s [K], factors [W, K]) of the random bandwidth model of :class:`BandwidthDynamics`."""
        dynamics = self.spec.cluster.bandwidth_dynamics
        workers = self.spec.cluster.num_workers
        steps = int(np.ceil(dynamics.horizon_s / dynamics.interval_s))
        low, high = np.log10(dynamics.factor_min), np.log10(dynamics.factor_max)
        log_factor = np.empty((workers, steps))
        log_factor[:, 0] = rng.uniform(low, high, size=workers)
        moves = rng.normal(0.0, dynamics.volatility, size=(workers, steps - 1))
        for step in range(1, steps):
            value = log_factor[:, step - 1] + moves[:, step - 1]
            # Reflect into [low, high] once, then clip what a step longer than the range width still leaves out.
            value = np.where(value > high, 2 * high - value, value)
            value = np.where(value < low, 2 * low - value, value)
            log_factor[:, step] = np.clip(value, low, high)
        return np.arange(steps) * dynamics.interval_s, 10.0**log_factor


def load_scenario(name: str, /, data_dir: str | os.PathLike[str] | None = None, **overrides: Any) -> Scenario:
    """Load scenario ``name`` with ``overrides``: validate the spec, then read, fetch or generate its trace.

    The trace is cached per process, so environments of one process share it.

    :raises ConfigError: invalid spec or overrides, or a trace too short for one episode.
    :raises DataError: the data is missing and cannot be fetched.
    """
    spec = get_scenario_spec(name, **overrides)
    directory = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    trace, num_distinct_ids = _load_trace_cached(json.dumps(spec.trace.model_dump()), str(directory))
    needed = spec.batch_size * spec.episode_iterations
    if trace.num_samples < needed:
        raise ConfigError(
            f"scenario {name}: an episode needs batch_size × episode_iterations = {needed} samples "
            f"but the trace {trace.source} has {trace.num_samples}"
        )
    return Scenario(spec=spec, trace=trace, num_distinct_ids=num_distinct_ids)


def measure_random_dispatch_cost(scenario: Scenario, seeds: tuple[int, ...] = (0, 1, 2)) -> float:
    """Mean embedding transmission cost of one iteration under random dispatch, seconds, flush included.

    Every episode starts at a seeded offset with empty caches, like an environment episode, and each batch is a
    uniformly random assignment of its samples to the workers' capacity slots. The scenarios' ``cost_scale_s`` is
    this figure rounded to three significant digits, so a return of −k per iteration means k times the cost of
    random dispatch.
    """
    from esd_gym.batch import Batch
    from esd_gym.simulator import Simulator

    spec = scenario.spec
    trace, size, iterations = scenario.trace, spec.batch_size, spec.episode_iterations
    total_s = 0.0
    for seed in seeds:
        rng = np.random.default_rng(seed)
        start = int(rng.integers(0, trace.num_samples - size * iterations + 1))
        cluster = scenario.build_cluster(rng if scenario.dynamic else None)
        simulator = Simulator(cluster, scenario.hot_ids())
        capacity = cluster.capacities(size)
        slots = np.repeat(np.arange(cluster.num_workers), capacity)
        for iteration in range(iterations):
            first = start + iteration * size
            batch = Batch.from_csr(np.asarray(trace.offsets[first : first + size + 1]), trace.ids)
            total_s += simulator.step(batch, rng.permutation(slots)[:size], capacity).total_cost_s
        total_s += simulator.flush().total_cost_s
    return total_s / (len(seeds) * iterations)

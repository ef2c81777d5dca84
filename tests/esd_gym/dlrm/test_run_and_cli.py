"""Whole runs: evaluation points, TensorBoard and CSV output, the comparison, the command line, and MovieLens-100K."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from esd_gym.dlrm.config import DispatcherEntry, DlrmCompareConfig, DlrmRunConfig, ModelConfig, OptimizerConfig
from esd_gym.dlrm.data import DlrmData
from esd_gym.dlrm.run import EvalPoint, train_dlrm, write_points_csv
from esd_gym.dlrm.training import DistributedTrainer
from esd_gym.errors import DataError
from esd_gym.workload.trace import save_trace
from experiments.cli import main
from tests.esd_gym.dlrm.builders import make_trace
from tests.esd_gym.helpers import make_cluster

SHARED_ML100K = Path("/work/shared/data/ml-100k")


class RoundRobin:
    """A minimal dispatcher: sample i goes to worker i mod W."""

    def dispatch(self, context):
        return np.arange(context.batch.size) % context.num_workers


def _trainer(staleness_bound: int = 0) -> DistributedTrainer:
    data = DlrmData.from_trace(make_trace(), holdout_fraction=0.2, seed=0)
    cluster = make_cluster([12, 12, 12], staleness_bound=staleness_bound)
    optimizer = OptimizerConfig(embedding_lr=2.0, dense="adam", dense_lr=0.01)
    return DistributedTrainer(data, cluster, ModelConfig(bottom_mlp=[8], top_mlp=[16]), optimizer)


def test_run_evaluates_every_k_iterations(tmp_path):
    result = train_dlrm(_trainer(), RoundRobin(), iterations=25, batch_size=24, eval_every=10, log_dir=tmp_path / "tb")
    assert [point.iteration for point in result.points] == [0, 10, 20, 25]
    times = [point.time_s for point in result.points]
    assert times == sorted(times)
    assert times[0] == 0.0
    assert result.points[-1].cost_s == pytest.approx(result.totals.cost_s)
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))


def test_run_learns_the_test_trace():
    result = train_dlrm(_trainer(), RoundRobin(), iterations=60, batch_size=24, eval_every=20)
    assert result.final.auc > 0.65


def test_time_to_auc_reads_first_point_reaching_target():
    result = train_dlrm(_trainer(), RoundRobin(), iterations=20, batch_size=24, eval_every=5)
    aucs = [point.auc for point in result.points]
    target = max(aucs)
    first = aucs.index(target)
    assert result.time_to_auc(target) == result.points[first].time_s
    assert result.time_to_auc(1.01) is None


def test_points_csv_has_one_row_per_evaluation(tmp_path):
    result = train_dlrm(_trainer(2), RoundRobin(), iterations=10, batch_size=24, eval_every=5)
    path = write_points_csv(tmp_path / "metrics.csv", [result])
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3
    assert set(rows[0]) == {"label", "seed", *EvalPoint.__dataclass_fields__}
    assert int(rows[-1]["stale_reads"]) == result.traffic.stale_reads


@pytest.fixture
def small_trace_file(tmp_path) -> Path:
    return save_trace(tmp_path / "small.npz", make_trace(num_samples=600))


def _cli_args(trace: Path, runs_dir: Path, *extra: str) -> list[str]:
    return [
        "train-dlrm", "--scenario", "ml100k-8w-hetero-v0", "--trace", str(trace), "--batch-size", "16",
        "--iterations", "12", "--eval-every", "4", "--runs-dir", str(runs_dir), *extra,
    ]


def test_cli_json_ends_with_results(small_trace_file, tmp_path, capsys):
    status = main(_cli_args(small_trace_file, tmp_path / "runs", "--dispatcher", "hybriddis-heuristic", "--json"))
    assert status == 0
    last_line = capsys.readouterr().out.strip().splitlines()[-1]
    results = json.loads(last_line)
    for key in ("auc", "logloss", "cost_s", "time_s"):
        assert isinstance(results[key], float), key
    run_dir = Path(results["run_dir"])
    assert (run_dir / "metrics.csv").is_file()
    assert (run_dir / "config.yaml").is_file()
    assert list(run_dir.glob("hybriddis-heuristic-seed0/events.out.tfevents.*"))


def test_cli_rejects_trace_without_labels(tmp_path, capsys):
    trace = save_trace(tmp_path / "unlabelled.npz", make_trace(num_samples=600, labels=False))
    status = main(_cli_args(trace, tmp_path / "runs"))
    assert status == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert "no labels" in error


def test_compare_writes_table_and_plot(small_trace_file, tmp_path):
    from experiments.dlrm_compare import run_comparison

    run = DlrmRunConfig(
        scenario="ml100k-8w-hetero-v0",
        trace=str(small_trace_file),
        batch_size=16,
        iterations=12,
        model=ModelConfig(bottom_mlp=[8], top_mlp=[16]),
        eval={"every": 4},
    )
    config = DlrmCompareConfig(
        name="tiny",
        run=run,
        dispatchers=[DispatcherEntry(name="random"), DispatcherEntry(name="hybriddis-heuristic")],
        target_auc=0.51,
    )
    comparison = run_comparison(config, tmp_path)
    table = (comparison.run_dir / "results.md").read_text()
    assert "| random |" in table
    assert "| hybriddis-heuristic |" in table
    assert (comparison.run_dir / "auc_vs_time.png").stat().st_size > 0
    baseline = next(arm for arm in comparison.summaries if arm.label == "random")
    assert baseline.speedup in (1.0, None)
    # At s = 0 the dispatch changes where samples train, not what the model learns.
    first, second = comparison.results
    assert first.final.auc == pytest.approx(second.final.auc, abs=1e-4)


def _movielens_trace_path(tmp_path) -> Path:
    from esd_gym.workload.datasets import dataset_trace_path

    source = SHARED_ML100K if SHARED_ML100K.is_dir() else None
    data_dir = tmp_path / "data" if source is not None else None
    try:
        return dataset_trace_path("ml-100k", data_dir, source=source)
    except DataError as error:
        pytest.skip(f"MovieLens-100K is unavailable: {error}")


@pytest.mark.slow
def test_movielens_short_run_beats_chance(tmp_path):
    from esd_gym.dlrm.inputs import load_run_inputs
    from experiments.dlrm_compare import run_arm

    path = _movielens_trace_path(tmp_path)
    config = DlrmRunConfig(scenario="ml100k-8w-hetero-v0", trace=str(path), iterations=120, eval={"every": 60})
    inputs = load_run_inputs(config)
    result = run_arm(config, DispatcherEntry(name="random"), inputs, tmp_path / "runs")
    assert inputs.data.num_dense == 1
    assert result.final.auc > 0.65


def test_cli_compare_rejects_run_options(tmp_path, capsys):
    status = main(["train-dlrm", "--compare", "configs/dlrm/compare.yaml", "--seed", "3", "--runs-dir", str(tmp_path)])
    assert status == 2
    assert "--seed cannot be combined with --compare" in capsys.readouterr().err

"""Bad input to the configuration loader, the cluster schema, the dispatch-log reader and the environment.

Each case must end in the project's error type for its kind, with a message that names the field or
``file:line`` and the bad value, instead of a traceback from a library or a silently wrong result.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import yaml

import esd_gym  # noqa: F401  (registers the environments)
from esd_gym.cluster import ClusterConfig, load_cluster
from esd_gym.config import load_yaml
from esd_gym.errors import AssignmentError, ConfigError
from esd_gym.replay import read_assignments
from esd_gym.scenarios import get_scenario_spec

LINK = {"down_bytes_per_s": 1e6, "up_bytes_per_s": 5e5, "latency_s": 0.001}
CLUSTER = {
    "row_bytes": 64,
    "workers": [
        {"cache_rows": 10, "compute_samples_per_s": 100, "capacity": 4, "links": [dict(LINK)]} for _ in range(2)
    ],
}
SYNTHETIC = "criteo-synth-8w-hetero-v0"
# A small episode of the synthetic scenario, which needs no download.
SMALL_EPISODE = {"batch_size": 8, "episode_iterations": 2}


def write_cluster(tmp_path, text: str):
    path = tmp_path / "cluster.yaml"
    path.write_text(text)
    return path


# -- YAML files ------------------------------------------------------------------------------------------------


def test_yaml_duplicate_key_names_both_lines(tmp_path):
    text = yaml.safe_dump(CLUSTER) + "row_bytes: 128\n"
    path = write_cluster(tmp_path, text)
    duplicate_line = text.count("\n")
    with pytest.raises(ConfigError) as error:
        load_yaml(path)
    message = str(error.value)
    assert f"cluster.yaml:{duplicate_line}:1" in message
    assert "duplicate key 'row_bytes'" in message
    assert "first given on line 1" in message


def test_yaml_duplicate_nested_key(tmp_path):
    path = write_cluster(tmp_path, "workers:\n  - cache_rows: 1\n    cache_rows: 2\n")
    with pytest.raises(ConfigError, match=r"cluster\.yaml:3:5: .*duplicate key 'cache_rows'"):
        load_yaml(path)


def test_yaml_merge_key_still_allowed(tmp_path):
    path = write_cluster(tmp_path, "base: &base {a: 1}\nderived:\n  <<: *base\n  a: 2\n")
    assert load_yaml(path) == {"base": {"a": 1}, "derived": {"a": 2}}


def test_yaml_not_utf8(tmp_path):
    path = tmp_path / "cluster.yaml"
    path.write_bytes(b"row_bytes: 64\n# caf\xe9\n")
    with pytest.raises(ConfigError, match=r"cluster\.yaml:2: not UTF-8 text \(byte 0xe9\)"):
        load_yaml(path)


# -- cluster schema ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda c: c.update(row_bytes=True), "row_bytes"),
        (lambda c: c.update(staleness_bound=False), "staleness_bound"),
        (lambda c: c["workers"][1].update(capacity=True), "workers[1].capacity"),
        (lambda c: c["workers"][0].update(compute_samples_per_s=True), "workers[0].compute_samples_per_s"),
        (lambda c: c["workers"][0]["links"][0].update(latency_s=True), "workers[0].links[0].latency_s"),
    ],
)
def test_cluster_boolean_for_number(tmp_path, change, field):
    cluster = yaml.safe_load(yaml.safe_dump(CLUSTER))
    change(cluster)
    path = write_cluster(tmp_path, yaml.safe_dump(cluster))
    with pytest.raises(ConfigError) as error:
        load_cluster(path)
    message = str(error.value)
    assert f"{field}: expected a number, not a boolean" in message
    assert "(got True)" in message or "(got False)" in message


def test_cluster_boolean_field_takes_boolean():
    config = ClusterConfig.model_validate({**CLUSTER, "overlap_compute": True})
    assert config.overlap_compute is True


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("row_bytes", 10**18),
        ("embedding_dim", 10**18),
        ("request_bytes_per_id", 2**40),
        ("row_header_bytes", 2**40),
        ("staleness_bound", 10**20),
    ],
)
def test_cluster_number_beyond_int64_range(tmp_path, field, value):
    cluster = {**CLUSTER, field: value}
    if field == "embedding_dim":
        del cluster["row_bytes"]
    path = write_cluster(tmp_path, yaml.safe_dump(cluster))
    with pytest.raises(ConfigError, match=rf"{field}: Input should be less than or equal to .*\(got {value}\)"):
        load_cluster(path)


def test_cluster_cache_rows_beyond_int64(tmp_path):
    worker = {**CLUSTER["workers"][0], "cache_rows": 10**20}
    path = write_cluster(tmp_path, yaml.safe_dump({**CLUSTER, "workers": [worker]}))
    with pytest.raises(ConfigError, match=r"workers\[0\]\.cache_rows: .*\(got 100000000000000000000\)"):
        load_cluster(path)


def test_cluster_largest_row_bytes_counts_correctly(tmp_path):
    # The largest accepted sizes must still give non-negative int64 byte counts.
    from esd_gym.simulator import Simulator
    from tests.esd_gym.helpers import make_batch

    path = write_cluster(tmp_path, yaml.safe_dump({**CLUSTER, "row_bytes": 2**31, "row_header_bytes": 2**31}))
    simulator = Simulator(load_cluster(path))
    report = simulator.step(make_batch([[1, 2], [3]]), np.array([0, 1]))
    assert int(report.bytes_down.sum()) == 3 * 2**32


# -- dispatch log ------------------------------------------------------------------------------------------------


def write_log(tmp_path, data: bytes):
    path = tmp_path / "log.csv"
    path.write_bytes(data)
    return path


def test_log_with_byte_order_mark(tmp_path):
    path = write_log(tmp_path, "\ufeffsample,worker\r\n0,1\r\n1,0\r\n".encode("utf-8"))
    samples, workers = read_assignments(path, num_samples=2, num_workers=2)
    assert samples.tolist() == [0, 1]
    assert workers.tolist() == [1, 0]


def test_log_not_utf8_names_line(tmp_path):
    path = write_log(tmp_path, b"sample,worker\n0,0\n1,\xe9\n")
    with pytest.raises(AssignmentError, match=r"log\.csv:3: not UTF-8 text \(byte 0xe9\)"):
        read_assignments(path, num_samples=2, num_workers=2)


def test_log_utf16(tmp_path):
    path = write_log(tmp_path, "sample,worker\n0,0\n".encode("utf-16"))
    with pytest.raises(AssignmentError, match=r"log\.csv:1: not UTF-8 text"):
        read_assignments(path, num_samples=1, num_workers=1)


def test_log_oversized_field(tmp_path):
    path = write_log(tmp_path, b"sample,worker\n" + b"7" * 200_000 + b"\n")
    with pytest.raises(AssignmentError, match=r"log\.csv:2: malformed CSV"):
        read_assignments(path, num_samples=1, num_workers=1)


@pytest.mark.parametrize("cell", ["0_1", "\u0661", "1.0", "0x1", " "])
def test_log_integer_syntax(tmp_path, cell):
    path = write_log(tmp_path, f"sample,worker\n0,0\n1,{cell}\n".encode("utf-8"))
    with pytest.raises(AssignmentError) as error:
        read_assignments(path, num_samples=2, num_workers=2)
    assert "log.csv:3:2: worker must be an integer" in str(error.value)


def test_log_huge_number_is_short_error(tmp_path):
    path = write_log(tmp_path, b"sample,worker\n" + b"9" * 5000 + b",0\n")
    with pytest.raises(AssignmentError) as error:
        read_assignments(path, num_samples=1, num_workers=1)
    message = str(error.value)
    assert "log.csv:2:1: sample 999" in message
    assert "is too large" in message
    assert len(message) < 200


def test_log_signed_and_padded_integers(tmp_path):
    path = write_log(tmp_path, b"sample,worker\n+0, 1 \n00000000000000000000001,0\n")
    samples, workers = read_assignments(path, num_samples=2, num_workers=2)
    assert samples.tolist() == [0, 1]
    assert workers.tolist() == [1, 0]


# -- scenarios and the environment -------------------------------------------------------------------------------


def test_scenario_name_override_is_config_error():
    with pytest.raises(ConfigError, match="the override name='other-v0' differs"):
        gym.make("esd_gym/Dispatch-v0", scenario=SYNTHETIC, name="other-v0", **SMALL_EPISODE)


def test_scenario_spec_name_override():
    with pytest.raises(ConfigError, match="differs from the scenario name"):
        get_scenario_spec(SYNTHETIC, name="other-v0")


def test_scenario_boolean_batch_size():
    with pytest.raises(ConfigError, match=r"batch_size: expected a number, not a boolean \(got True\)"):
        get_scenario_spec(SYNTHETIC, batch_size=True)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_scenario_derived_link_overflow():
    with pytest.raises(ConfigError, match=r"derived cluster: down_bytes_per_s: .*finite.*\(got inf\)"):
        gym.make("esd_gym/Dispatch-v0", scenario=SYNTHETIC, cluster={"downlink_mbps": 1e308}, **SMALL_EPISODE)


@pytest.mark.parametrize("penalty", ["high", None, True])
def test_env_penalty_not_a_number(penalty):
    with pytest.raises(ConfigError, match=rf"invalid_action_penalty: .*\(got {penalty!r}\)"):
        gym.make("esd_gym/Dispatch-v0", scenario=SYNTHETIC, invalid_action_penalty=penalty, **SMALL_EPISODE)


def test_batch_env_adjust_scale_not_a_number():
    with pytest.raises(ConfigError, match=r"adjust_scale: .*\(got 'x'\)"):
        gym.make("esd_gym/DispatchBatch-v0", scenario=SYNTHETIC, adjust_scale="x", **SMALL_EPISODE)


@pytest.mark.parametrize("options", [[1], {"start": True}])
def test_env_reset_bad_options(options):
    env = gym.make("esd_gym/Dispatch-v0", scenario=SYNTHETIC, **SMALL_EPISODE).unwrapped
    with pytest.raises(ConfigError, match="options"):
        env.reset(seed=0, options=options)

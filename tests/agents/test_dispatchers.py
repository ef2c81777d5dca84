"""Every dispatcher: registry, capacities on adversarial inputs, and hand-worked placements of the baselines."""

from __future__ import annotations

import numpy as np
import pytest

from agents import list_dispatchers, make_dispatcher
from agents.baselines import hash_to_worker, least_loaded_order
from esd_gym.dispatch import DispatchContext
from esd_gym.errors import ConfigError
from esd_gym.simulator import Simulator
from tests.agents.helpers import batch_of, make_cluster, priced_context

ALL_NAMES = [
    "random",
    "round-robin",
    "hash",
    "least-loaded",
    "locality",
    "bandwidth",
    "hot-cold",
    "hybriddis-heuristic",
    "hybriddis-optimal",
    "hybriddis",
]
# Small solver budgets keep the adversarial runs short.
FAST_OPTIONS = {"hybriddis-optimal": {"time_limit_s": 5.0}, "hybriddis": {"budget_s": 0.2}}


def test_registry_lists_every_name():
    assert list_dispatchers() == ALL_NAMES


def test_unknown_name_lists_valid_names():
    with pytest.raises(ConfigError, match="'greedy' is not known; valid names: random, round-robin"):
        make_dispatcher("greedy")


def test_unknown_option_is_rejected():
    with pytest.raises(ConfigError, match="has no option 'tabel'; valid options: table"):
        make_dispatcher("hash", tabel=1)


def test_invalid_option_value_is_rejected():
    with pytest.raises(ConfigError, match="budget_s must be positive"):
        make_dispatcher("hybriddis", budget_s=0)


def adversarial_context(num_samples: int = 12) -> DispatchContext:
    """Every sample prefers worker 0 by every criterion; capacities sum exactly to the batch size.

    Worker 0 has the fastest link, all rows fresh, and room for 1 sample; all samples share user row 0, so the
    hash of their user feature is the same. Workers 1..3 share the remaining 11 slots.
    """
    samples = [[0, 10 + (i % 3)] for i in range(num_samples)]
    batch = batch_of(samples)
    fresh = np.zeros((4, batch.num_unique), dtype=bool)
    fresh[0] = True
    cluster = make_cluster([1e9, 1e5, 1e5, 1e5])
    return priced_context(
        batch,
        pull_s=[1e-6, 1.0, 1.0, 1.0],
        fresh=fresh,
        capacity=[1, 4, 4, 3],
        cluster=cluster,
        latency_s=0.01,
        table_offsets=np.array([0, 10, 20]),
    )


@pytest.mark.parametrize("name", ALL_NAMES)
def test_capacities_hold_when_all_want_one_worker(name):
    context = adversarial_context()
    dispatcher = make_dispatcher(name, **FAST_OPTIONS.get(name, {}))
    dispatcher.reset(7)
    assignment = dispatcher.dispatch(context)
    loads = np.bincount(assignment, minlength=4)
    np.testing.assert_array_equal(loads, [1, 4, 4, 3])
    assert dispatcher.last_record["decision_time_s"] >= 0


@pytest.mark.parametrize("name", ALL_NAMES)
def test_total_capacity_below_batch_rejected(name):
    context = priced_context(batch_of([[0], [1], [2]]), [1.0, 1.0], np.zeros((2, 3), bool), capacity=[1, 1])
    with pytest.raises(ConfigError, match="capacity sums to 2, below the batch size 3"):
        make_dispatcher(name).dispatch(context)


def test_random_is_seeded():
    context = priced_context(batch_of([[i] for i in range(40)]), [1.0] * 4, np.zeros((4, 40), bool), [20] * 4)
    first, second = make_dispatcher("random"), make_dispatcher("random")
    first.reset(3)
    second.reset(3)
    batch_one = first.dispatch(context)
    np.testing.assert_array_equal(batch_one, second.dispatch(context))
    # The next batch draws on from the same generator: 40 equal draws in a row have probability about 4^-40.
    assert not np.array_equal(batch_one, first.dispatch(context))


def test_round_robin_rotation_continues():
    # Capacities 2, 1, 2: worker 1 is full after one sample, so rotation skips it: 0, 1, 2, 0, 2.
    context = priced_context(batch_of([[i] for i in range(5)]), [1.0] * 3, np.zeros((3, 5), bool), [2, 1, 2])
    dispatcher = make_dispatcher("round-robin")
    dispatcher.reset()
    np.testing.assert_array_equal(dispatcher.dispatch(context), [0, 1, 2, 0, 2])
    # The next batch starts after worker 2, the last one used.
    np.testing.assert_array_equal(dispatcher.dispatch(context), [0, 1, 2, 0, 2])
    small = priced_context(batch_of([[0], [1]]), [1.0] * 3, np.zeros((3, 2), bool), [2, 2, 2])
    dispatcher.reset()
    np.testing.assert_array_equal(dispatcher.dispatch(small), [0, 1])
    np.testing.assert_array_equal(dispatcher.dispatch(small), [2, 0])


def test_hash_of_key_by_hand():
    # (key × 0x9E3779B97F4A7C15 mod 2^64) >> 32, mod 4:
    # key 1: 0x9E3779B9 = 2654435769, mod 4 = 1.
    # key 2: 0x13C6EF372FE94F82A mod 2^64 = 0x3C6EF372FE94F82A, >> 32 = 0x3C6EF372 = 1013904242, mod 4 = 2.
    np.testing.assert_array_equal(hash_to_worker(np.array([0, 1, 2]), 4), [0, 1, 2])


def test_hash_matches_python_integers():
    keys = np.array([0, 1, 2, 3, 17, 942, 10**9, 2**40 + 5])
    expected = [((int(k) * 0x9E3779B97F4A7C15) % 2**64 >> 32) % 7 for k in keys]
    np.testing.assert_array_equal(hash_to_worker(keys, 7), expected)


def test_hash_dispatch_deterministic_with_spill():
    # Table 0 holds users 0..9 (offset 0), table 1 items from 10. Users 1, 1, 2 with capacity 1 per worker:
    # user 1 hashes to worker 1; the second sample of user 1 spills to worker 2; user 2 hashes to 2, now full,
    # and spills to worker 3.
    batch = batch_of([[1, 10], [1, 11], [2, 12]])
    context = priced_context(
        batch, [1.0] * 4, np.zeros((4, batch.num_unique), bool), [1, 1, 1, 1], table_offsets=np.array([0, 10, 20])
    )
    for _ in range(2):
        dispatcher = make_dispatcher("hash")
        dispatcher.reset(123)
        np.testing.assert_array_equal(dispatcher.dispatch(context), [1, 2, 3])


def test_hash_of_second_table():
    # Item rows 0, 1, 2 of table 1 (global ids 10, 11, 12) hash to workers 0, 1, 2 on 4 workers.
    batch = batch_of([[5, 12], [5, 10], [5, 11]])
    context = priced_context(
        batch, [1.0] * 4, np.zeros((4, batch.num_unique), bool), [3] * 4, table_offsets=np.array([0, 10, 20])
    )
    dispatcher = make_dispatcher("hash", table=1)
    np.testing.assert_array_equal(dispatcher.dispatch(context), [2, 0, 1])


def test_hash_table_out_of_range():
    context = priced_context(batch_of([[1]]), [1.0], np.zeros((1, 1), bool), [1], table_offsets=np.array([0, 10]))
    with pytest.raises(ConfigError, match="table=2 is out of range"):
        make_dispatcher("hash", table=2).dispatch(context)


def test_least_loaded_fills_by_fraction():
    # Capacities 1 and 3. Fills (k / cap): worker 0: 0; worker 1: 0, 1/3, 2/3. Sorted, ties to the lower index:
    # (0, w0), (0, w1), (1/3, w1), (2/3, w1).
    np.testing.assert_array_equal(least_loaded_order(np.array([1, 3]), 4), [0, 1, 1, 1])
    # Capacities 2 and 4: (0, w0), (0, w1), (1/4, w1), (1/2, w0), (1/2, w1), (3/4, w1).
    np.testing.assert_array_equal(least_loaded_order(np.array([2, 4]), 6), [0, 1, 1, 0, 1, 1])


def test_locality_rotates_ties():
    # Rows 0..2; row 0 fresh on workers 0 and 1, nothing fresh on worker 2.
    # Sample scores: s0 [1, 1, 0], s1 [0, 0, 0], s2 [0, 0, 0], s3 [1, 1, 0].
    # Pointer 0: s0 ties {0, 1} -> 0, pointer 1; s1 ties {0, 1, 2} -> 1, pointer 2; s2 -> 2, pointer 0;
    # s3 ties {0, 1} -> 0, pointer 1.
    batch = batch_of([[0], [1], [2], [0]])
    fresh = np.array([[True, False, False], [True, False, False], [False, False, False]])
    context = priced_context(batch, [1.0] * 3, fresh, [2, 2, 2])
    dispatcher = make_dispatcher("locality")
    dispatcher.reset()
    np.testing.assert_array_equal(dispatcher.dispatch(context), [0, 1, 2, 0])
    # The pointer carries over: s0 -> 1 (pointer 2), s1 -> 2 (pointer 0), s2 -> 0 (pointer 1), s3 -> 1.
    np.testing.assert_array_equal(dispatcher.dispatch(context), [1, 2, 0, 1])
    dispatcher.reset()
    np.testing.assert_array_equal(dispatcher.dispatch(context), [0, 1, 2, 0])


def test_locality_prefers_score_over_rotation():
    # Row 1 fresh on worker 2 only: sample [1] scores [0, 0, 1] and goes to 2 without moving the pointer.
    batch = batch_of([[1], [0]])
    fresh = np.array([[False, False], [False, False], [False, True]])
    context = priced_context(batch, [1.0] * 3, fresh, [1, 1, 1])
    np.testing.assert_array_equal(make_dispatcher("locality").dispatch(context), [2, 0])


def test_bandwidth_fills_fastest_first():
    # Downlinks 1, 3, 2 MB/s rank workers 1, 2, 0; capacity 2 each; five samples fill 1, 1, 2, 2, 0.
    cluster = make_cluster([1e6, 3e6, 2e6], capacity=[2, 2, 2])
    batch = batch_of([[i] for i in range(5)])
    context = DispatchContext.build(Simulator(cluster), batch, cluster.capacities(5))
    dispatcher = make_dispatcher("bandwidth")
    np.testing.assert_array_equal(dispatcher.dispatch(context), [1, 1, 2, 2, 0])
    assert dispatcher.last_record["worker_ranking"] == [1, 2, 0]


def test_bandwidth_follows_trace():
    # From t = 0 worker 0 runs at 10x: 10 MB/s beats 3 and 2, so the ranking becomes 0, 1, 2.
    trace = [[{"start_s": 0.0, "factor": 10.0}], [], []]
    cluster = make_cluster([1e6, 3e6, 2e6], capacity=[2, 2, 2], bandwidth_trace=trace)
    batch = batch_of([[i] for i in range(5)])
    context = DispatchContext.build(Simulator(cluster), batch, cluster.capacities(5))
    np.testing.assert_array_equal(make_dispatcher("bandwidth").dispatch(context), [0, 0, 1, 1, 2])


def test_hot_cold_split():
    # Rows 0, 1 fresh on worker 1; row 2 fresh on worker 2. Sample [0, 1] is hot on 1, [2] hot on 2,
    # [0, 2] is cold (no single worker holds both), [3] is cold. Hot first: s0 -> 1, s1 -> 2. Cold by fill:
    # fills 0, 1/2, 1/2 -> s2 -> 0; then 1/2, 1/2, 1/2 -> s3 -> 0.
    batch = batch_of([[0, 1], [2], [0, 2], [3]])
    fresh = np.array(
        [[False, False, False, False], [True, True, False, False], [False, False, True, False]]
    )
    context = priced_context(batch, [1.0] * 3, fresh, [2, 2, 2])
    dispatcher = make_dispatcher("hot-cold")
    np.testing.assert_array_equal(dispatcher.dispatch(context), [1, 2, 0, 0])
    assert dispatcher.last_record["hot_samples"] == 2

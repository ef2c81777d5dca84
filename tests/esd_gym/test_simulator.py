"""Hand-computed examples of every term of the system model.

Defaults of every test unless it sets other values:

- row_bytes = 64 and 16 header bytes, so a pulled or pushed row is an 80-byte message;
- requests of 16 bytes per id;
- downlink 1000 B/s and uplink 500 B/s, so a pull costs 80/1000 = 0.08 s, a push 80/500 = 0.16 s and a request
  16/500 = 0.032 s;
- latency 0 and compute 100 samples/s.
"""

from __future__ import annotations

import numpy as np
import pytest

from esd_gym.errors import AssignmentError
from esd_gym.simulator import Simulator
from tests.esd_gym.helpers import make_batch, make_cluster

PULL_S, PUSH_S, REQUEST_S = 0.08, 0.16, 0.032


def test_miss_pulls_and_pushes_row():
    simulator = Simulator(make_cluster([10]))
    report = simulator.step(make_batch([[7]]), np.array([0]))
    # One lookup (request), one pull (miss), and with s = 0 one push.
    assert report.lookups.tolist() == [1]
    assert report.pulls.tolist() == [1]
    assert report.hits.tolist() == [0]
    assert report.pushes.tolist() == [1]
    assert report.bytes_down.tolist() == [80]
    assert report.bytes_up.tolist() == [16 + 80]
    assert report.total_cost_s == pytest.approx(REQUEST_S + PULL_S + PUSH_S)


def test_hit_pays_request_bytes_only_down_nothing():
    simulator = Simulator(make_cluster([10]))
    batch = make_batch([[7]])
    simulator.step(batch, np.array([0]))
    report = simulator.step(batch, np.array([0]))
    # Worker 0 pushed its own update, so its copy is still fresh: a hit costs the request and (s = 0) the push.
    assert report.hits.tolist() == [1]
    assert report.pulls.tolist() == [0]
    assert report.bytes_down.tolist() == [0]
    assert report.bytes_up.tolist() == [16 + 80]
    assert report.lookup_cost_s.sum() == pytest.approx(REQUEST_S)
    assert report.total_cost_s == pytest.approx(REQUEST_S + PUSH_S)


def test_shared_row_counts_once_per_worker():
    simulator = Simulator(make_cluster([10]))
    # Three samples share row 5; sample 0 lists it twice (multi-hot): one lookup, one pull, one push.
    report = simulator.step(make_batch([[5, 5], [5, 6], [5]]), np.array([0, 0, 0]))
    assert report.lookups.tolist() == [2]
    assert report.pulls.tolist() == [2]
    assert report.pushes.tolist() == [2]


def test_remote_push_makes_copy_stale_with_s0():
    simulator = Simulator(make_cluster([10, 10]))
    batch = make_batch([[1], [1]])
    simulator.step(batch, np.array([0, 1]))
    report = simulator.step(batch, np.array([0, 1]))
    # Each worker pushed row 1 once, so each copy lags one update behind V(1): with s = 0 both re-pull.
    assert report.pulls.tolist() == [1, 1]
    assert report.hits.tolist() == [0, 0]


def test_stale_hit_within_bound_then_repull_past_it():
    # Worker 1 has no cache, so every use of row 1 there is transient and pushes one update at once.
    simulator = Simulator(make_cluster([10, 0], staleness_bound=1))
    simulator.step(make_batch([[1]]), np.array([0]))  # worker 0 caches row 1 (pending 1 <= 1: no push)

    simulator.step(make_batch([[1]]), np.array([1]))  # V(1) += 1: worker 0 lags 1 <= s
    report = simulator.step(make_batch([[1]]), np.array([0]))
    assert report.hits.tolist() == [1, 0]
    assert report.pulls.tolist() == [0, 0]

    # That hit raised worker 0's pending to 2 > 1, so it pushed 2 (V and v together): lag still 1.
    # Two more remote updates make the lag 3 > 1: the next lookup re-pulls.
    simulator.step(make_batch([[1], [1]]), np.array([1, 1]))
    report = simulator.step(make_batch([[1]]), np.array([0]))
    assert report.hits.tolist() == [0, 0]
    assert report.pulls.tolist() == [1, 0]


def test_own_pushes_keep_copy_fresh():
    simulator = Simulator(make_cluster([10, 10], staleness_bound=1))
    simulator.step(make_batch([[1], [1]]), np.array([1, 1]))  # worker 1: pending 2 > 1, pushes 2
    report = simulator.step(make_batch([[1]]), np.array([1]))
    # Worker 1's push raised V(1) and its own version together: lag 0, a hit.
    assert report.hits.tolist() == [0, 1]


def test_push_rule_s0_pushes_every_used_row():
    simulator = Simulator(make_cluster([10]))
    report = simulator.step(make_batch([[1, 2], [2, 3]]), np.array([0, 0]))
    assert report.pushes.tolist() == [3]
    # Nothing stays dirty with s = 0, so the flush pushes nothing and costs nothing.
    flush = simulator.flush()
    assert flush.pushes.tolist() == [0]
    assert flush.total_cost_s == 0.0


def test_push_rule_s2_accumulates_then_pushes():
    simulator = Simulator(make_cluster([10], staleness_bound=2))
    batch = make_batch([[1]])
    pushes = [int(simulator.step(batch, np.array([0])).pushes[0]) for _ in range(4)]
    # Pending after each iteration: 1, 2, 3 (> 2: push, back to 0), 1.
    assert pushes == [0, 0, 1, 0]


def test_flush_pushes_dirty_rows_and_costs_them():
    simulator = Simulator(make_cluster([10], staleness_bound=3, latency=0.01))
    simulator.step(make_batch([[1, 2]]), np.array([0]))
    flush = simulator.flush()
    # Rows 1 and 2 each hold one pending update: two pushes in one message: 0.01 + 2 × 0.16.
    assert flush.kind == "flush"
    assert flush.pushes.tolist() == [2]
    assert flush.total_cost_s == pytest.approx(0.01 + 2 * PUSH_S)
    assert flush.iteration_time_s == pytest.approx(0.01 + 2 * PUSH_S)


def test_evicted_dirty_row_is_written_back():
    simulator = Simulator(make_cluster([1], staleness_bound=5))
    simulator.step(make_batch([[1], [1]]), np.array([0, 0]))  # row 1 cached, pending 2
    report = simulator.step(make_batch([[2]]), np.array([0]))
    # Row 2 needs the only slot: row 1 is evicted with 2 pending updates and pushed back; row 2 stays pending.
    assert report.evictions.tolist() == [1]
    assert report.write_backs.tolist() == [1]
    assert report.pushes.tolist() == [1]
    assert report.total_cost_s == pytest.approx(REQUEST_S + PULL_S + PUSH_S)


def test_full_cache_of_used_rows_makes_transient():
    simulator = Simulator(make_cluster([2], staleness_bound=5))
    simulator.step(make_batch([[1, 2]]), np.array([0]))  # cache full with rows 1 and 2 (pending 1 each)
    report = simulator.step(make_batch([[1, 2, 3]]), np.array([0]))
    # Rows 1 and 2 are used in this iteration, so nothing can be evicted: row 3 is transient, used once
    # without being cached, and pushed at once. Rows 1 and 2 reach pending 2 <= 5: no push.
    assert report.transient.tolist() == [1]
    assert report.evictions.tolist() == [0]
    assert report.pulls.tolist() == [1]
    assert report.pushes.tolist() == [1]
    # Row 3 is still absent afterwards: the next lookup pulls it again.
    again = simulator.step(make_batch([[3]]), np.array([0]))
    assert again.pulls.tolist() == [1]


def test_zero_size_cache_makes_every_row_transient():
    simulator = Simulator(make_cluster([0], staleness_bound=3))
    report = simulator.step(make_batch([[1, 2]]), np.array([0]))
    assert report.transient.tolist() == [2]
    assert report.pushes.tolist() == [2]


def test_lru_evicts_least_recent_lfu_least_used():
    # Cache of 2. Row 1 used in iterations 1 and 2, row 2 in iteration 3; then row 3 needs a slot.
    # LRU evicts row 1 (last used in iteration 2, before row 2); LFU evicts row 2 (one use against two).
    batches = [make_batch([[1]]), make_batch([[1]]), make_batch([[2]]), make_batch([[3]]), make_batch([[1]])]
    lru = Simulator(make_cluster([2], cache_policy="lru"))
    lfu = Simulator(make_cluster([2], cache_policy="lfu"))
    for batch in batches[:4]:
        lru.step(batch, np.array([0]))
        lfu.step(batch, np.array([0]))
    assert lru.caches[0].ids.tolist() == [2, 3]
    assert lfu.caches[0].ids.tolist() == [1, 3]
    # The consequence for the next lookup of row 1: LRU misses, LFU hits.
    assert lru.step(batches[4], np.array([0])).pulls.tolist() == [1]
    assert lfu.step(batches[4], np.array([0])).hits.tolist() == [1]


def test_lru_order_follows_first_appearance_within_iteration():
    simulator = Simulator(make_cluster([3]))
    simulator.step(make_batch([[1, 2, 3]]), np.array([0]))  # recency 1 < 2 < 3
    simulator.step(make_batch([[3], [1]]), np.array([0, 0]))  # hits refresh 3 then 1: order 2 < 3 < 1
    simulator.step(make_batch([[4]]), np.array([0]))
    assert simulator.caches[0].ids.tolist() == [1, 3, 4]


def test_static_policy_caches_only_hot_rows():
    cluster = make_cluster([2], cache_policy="static", staleness_bound=4)
    simulator = Simulator(cluster, hot_ids=np.array([9, 1, 5]))  # ranked: only the first two fit
    report = simulator.step(make_batch([[1, 5, 9]]), np.array([0]))
    assert simulator.caches[0].ids.tolist() == [1, 9]
    # Row 5 is not hot: transient and pushed; rows 1 and 9 stay pending (1 <= 4).
    assert report.transient.tolist() == [1]
    assert report.pushes.tolist() == [1]


def test_two_ps_pay_latency_per_message():
    cluster = make_cluster([10, 10], num_ps=2, latency=0.5)
    simulator = Simulator(cluster)
    # Worker 0: rows 2 and 4 (PS 0) and row 3 (PS 1): two lookup and two push messages.
    # Worker 1: row 6 (PS 0) only: one lookup and one push message.
    report = simulator.step(make_batch([[2, 3], [4], [6]]), np.array([0, 0, 1]))
    worker0 = 4 * 0.5 + 3 * (REQUEST_S + PULL_S + PUSH_S)
    worker1 = 2 * 0.5 + (REQUEST_S + PULL_S + PUSH_S)
    assert report.cost_s.tolist() == pytest.approx([worker0, worker1])


def test_latency_counts_push_message_only_when_pushing():
    cluster = make_cluster([10], latency=0.5, staleness_bound=1)
    simulator = Simulator(cluster)
    report = simulator.step(make_batch([[2]]), np.array([0]))
    # Pending 1 <= 1: no push, so only the lookup message pays latency.
    assert report.total_cost_s == pytest.approx(0.5 + REQUEST_S + PULL_S)


def test_range_sharding_routes_by_block():
    cluster = make_cluster([10], num_ps=2, sharding="range", num_rows=10)
    assert cluster.ps_of(np.array([0, 4, 5, 9])).tolist() == [0, 0, 1, 1]


def test_overlap_takes_max_of_compute_and_communication():
    batch = make_batch([[1]] * 10)
    plain = Simulator(make_cluster([10], rate=10.0)).step(batch, np.zeros(10, dtype=np.int64))
    overlap = Simulator(make_cluster([10], rate=10.0, overlap_compute=True)).step(batch, np.zeros(10, dtype=np.int64))
    # Compute 10 samples / 10 per s = 1 s; communication = request + pull + push = 0.272 s.
    communication = REQUEST_S + PULL_S + PUSH_S
    assert plain.iteration_time_s == pytest.approx(1.0 + communication)
    assert overlap.iteration_time_s == pytest.approx(1.0)


def test_iteration_time_is_slowest_worker():
    simulator = Simulator(make_cluster([10, 10], rate=10.0))
    report = simulator.step(make_batch([[1], [2], [3]]), np.array([0, 0, 1]))
    # Worker 0: 2 samples (0.2 s) + two rows (2 × 0.272 s); worker 1: 0.1 s + 0.272 s.
    assert report.iteration_time_s == pytest.approx(0.2 + 2 * (REQUEST_S + PULL_S + PUSH_S))
    assert simulator.time_s == pytest.approx(report.iteration_time_s)


def test_bandwidth_change_between_iterations():
    cluster = make_cluster([10], rate=1e9)
    # Halve the bandwidth from t = 0.1 s on: the first iteration (starting at 0) runs at full speed.
    config = cluster.config.model_copy(deep=True)
    config.workers[0].bandwidth_trace = [{"start_s": 0.1, "factor": 0.5}]
    from esd_gym.cluster import Cluster

    simulator = Simulator(Cluster.from_config(config))
    first = simulator.step(make_batch([[1]]), np.array([0]))
    second = simulator.step(make_batch([[2]]), np.array([0]))
    assert first.total_cost_s == pytest.approx(REQUEST_S + PULL_S + PUSH_S)
    assert second.start_time_s == pytest.approx(first.iteration_time_s)
    assert second.total_cost_s == pytest.approx(2 * (REQUEST_S + PULL_S + PUSH_S))


def test_capacity_exceeded_raises():
    simulator = Simulator(make_cluster([10, 10]))
    with pytest.raises(AssignmentError, match="worker 0 gets 2 samples, above its capacity 1"):
        simulator.step(make_batch([[1], [2]]), np.array([0, 0]), capacity=np.array([1, 1]))


def test_worker_out_of_range_raises():
    simulator = Simulator(make_cluster([10, 10]))
    with pytest.raises(AssignmentError, match="worker 2, outside 0..1"):
        simulator.step(make_batch([[1]]), np.array([2]))


def test_lookups_see_ps_at_iteration_start():
    simulator = Simulator(make_cluster([10, 10]))
    simulator.step(make_batch([[1], [1]]), np.array([0, 1]))
    # Both workers hold row 1, each one update behind the other. Within the next iteration, worker 0's pull
    # does not see worker 1's push of the same iteration: both pull exactly once, and afterwards both lag again.
    report = simulator.step(make_batch([[1], [1]]), np.array([0, 1]))
    assert report.pulls.tolist() == [1, 1]
    row = np.array([1])
    assert [int(cache.lag[cache.locate(row)[0]][0]) for cache in simulator.caches] == [1, 1]

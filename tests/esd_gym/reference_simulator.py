"""A literal, per-id re-implementation of the system model, used as an independent oracle in tests.

It follows the protocol text step by step with Python dicts and absolute version counters (V(k) at the PS,
v_w(k) per cached copy), where the real simulator uses sorted NumPy arrays and lags. Slow but obviously right.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Link:
    down: float
    up: float
    latency: float


@dataclass
class CachedRow:
    version: int
    pending: int
    last_used: int
    use_count: int


@dataclass
class ReferenceWorker:
    capacity_rows: int
    rate: float
    links: list[Link]
    hot: set[int] = field(default_factory=set)  # the rows the static policy may cache
    cache: dict[int, CachedRow] = field(default_factory=dict)


class ReferenceSimulator:
    def __init__(
        self,
        workers: list[ReferenceWorker],
        row_bytes: int,
        staleness_bound: int,
        num_ps: int = 1,
        request_bytes: int = 16,
        header_bytes: int = 16,
        policy: str = "lru",
        overlap: bool = False,
    ) -> None:
        self.workers = workers
        self.row_bytes = row_bytes
        self.s = staleness_bound
        self.num_ps = num_ps
        self.request_bytes = request_bytes
        self.header_bytes = header_bytes
        self.policy = policy
        self.overlap = overlap
        self.version: dict[int, int] = {}
        self.clock = 0
        self.time_s = 0.0

    def _ps(self, row: int) -> int:
        return row % self.num_ps

    def _worker_cost(self, worker: ReferenceWorker, lookups: dict, pulls: dict, pushes: dict) -> float:
        message = self.row_bytes + self.header_bytes
        cost = 0.0
        for ps, link in enumerate(worker.links):
            if lookups.get(ps, 0):
                cost += link.latency
            if pushes.get(ps, 0):
                cost += link.latency
            cost += lookups.get(ps, 0) * self.request_bytes / link.up
            cost += pulls.get(ps, 0) * message / link.down
            cost += pushes.get(ps, 0) * message / link.up
        return cost

    def step(self, batch: list[list[int]], assignment: list[int]) -> dict:
        totals = dict(lookups=0, hits=0, pulls=0, pushes=0, write_backs=0, transient=0, cost=0.0)
        all_pushes: list[tuple[int, int, int]] = []  # (worker, row, amount)
        busy = []
        for w, worker in enumerate(self.workers):
            samples = [batch[i] for i in range(len(batch)) if assignment[i] == w]
            keys: list[int] = []
            counts: dict[int, int] = {}
            for sample in samples:
                for row in dict.fromkeys(sample):  # a sample counts once per row
                    if row not in counts:
                        keys.append(row)
                        counts[row] = 0
                    counts[row] += 1
            pinned = set(keys)
            lookups: dict[int, int] = {}
            pulls: dict[int, int] = {}
            pushes: dict[int, int] = {}
            transient: list[int] = []
            write_back: list[tuple[int, int]] = []
            for row in keys:
                ps = self._ps(row)
                lookups[ps] = lookups.get(ps, 0) + 1
                totals["lookups"] += 1
                current = self.version.get(row, 0)
                copy = worker.cache.get(row)
                self.clock += 1
                if copy is not None and current - copy.version <= self.s:
                    totals["hits"] += 1
                    copy.last_used = self.clock
                    copy.use_count += 1
                    continue
                pulls[ps] = pulls.get(ps, 0) + 1
                totals["pulls"] += 1
                if copy is not None:
                    copy.version = current
                    copy.last_used = self.clock
                    copy.use_count += 1
                    continue
                if self.policy == "static" and row not in worker.hot:
                    transient.append(row)
                    continue
                if len(worker.cache) >= worker.capacity_rows:
                    victims = [k for k in worker.cache if k not in pinned]
                    if not victims or self.policy == "static":
                        transient.append(row)
                        continue
                    if self.policy == "lfu":
                        victim = min(victims, key=lambda k: (worker.cache[k].use_count, worker.cache[k].last_used))
                    else:
                        victim = min(victims, key=lambda k: worker.cache[k].last_used)
                    evicted = worker.cache.pop(victim)
                    if evicted.pending > 0:
                        write_back.append((victim, evicted.pending))
                worker.cache[row] = CachedRow(version=current, pending=0, last_used=self.clock, use_count=1)

            for row in keys:
                if row in worker.cache:
                    copy = worker.cache[row]
                    copy.pending += counts[row]
                    if copy.pending > self.s:
                        all_pushes.append((w, row, copy.pending))
                        copy.pending = 0
                        pushes[self._ps(row)] = pushes.get(self._ps(row), 0) + 1
                else:
                    all_pushes.append((w, row, counts[row]))
                    pushes[self._ps(row)] = pushes.get(self._ps(row), 0) + 1
            for row, amount in write_back:
                all_pushes.append((w, row, amount))
                pushes[self._ps(row)] = pushes.get(self._ps(row), 0) + 1
            totals["transient"] += len(transient)
            totals["write_backs"] += len(write_back)
            totals["pushes"] += sum(pushes.values())
            cost = self._worker_cost(worker, lookups, pulls, pushes)
            totals["cost"] += cost
            compute = len(samples) / worker.rate
            busy.append(max(compute, cost) if self.overlap else compute + cost)

        self._apply(all_pushes)
        totals["time"] = max(busy)
        self.time_s += totals["time"]
        return totals

    def _apply(self, all_pushes: list[tuple[int, int, int]]) -> None:
        for w, row, amount in all_pushes:
            self.version[row] = self.version.get(row, 0) + amount
            copy = self.workers[w].cache.get(row)
            if copy is not None:
                copy.version += amount

    def flush(self) -> dict:
        all_pushes = []
        cost = 0.0
        busy = []
        pushed = 0
        for w, worker in enumerate(self.workers):
            pushes: dict[int, int] = {}
            for row, copy in worker.cache.items():
                if copy.pending > 0:
                    all_pushes.append((w, row, copy.pending))
                    copy.pending = 0
                    pushes[self._ps(row)] = pushes.get(self._ps(row), 0) + 1
            worker_cost = self._worker_cost(worker, {}, {}, pushes)
            cost += worker_cost
            busy.append(worker_cost)
            pushed += sum(pushes.values())
        self._apply(all_pushes)
        self.time_s += max(busy)
        return dict(cost=cost, pushes=pushed, time=max(busy))

"""Unit tests for scheduler.WaitingLine (no server): the coordinator's way of going on
routing while a conflicting transaction waits, simulated with fake workers that execute
their FIFO queues in random batches and report them late."""

from __future__ import annotations

import random
from collections import defaultdict, deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from applier.pipeline.scheduler import Scheduler, WaitingLine


def test_blocks_only_on_shared_keys():
    line = WaitingLine()
    assert not line.blocks([1, 2])  # empty line blocks nothing
    line.add("t1", {1, 2})
    assert line.blocks([2, 3])
    assert not line.blocks([3, 4])
    assert not line.blocks([])  # no keys: nothing in common
    assert len(line) == 1


def test_release_is_oldest_first_and_stops_at_the_first_unroutable():
    s = Scheduler(2)
    s.assign(0, 1, [1])
    s.assign(1, 2, [2])
    line = WaitingLine()
    line.add("a", {1, 2})  # held by both workers
    line.add("b", {3})  # routable, but behind "a"
    assert list(line.release(s)) == []
    assert len(line) == 2
    s.complete(1, 2)  # worker 1 releases key 2: only worker 0 holds "a"'s keys
    released = []
    for worker, item, keys in line.release(s):
        s.assign(worker, 10 + len(released), keys)
        released.append((worker, item))
    assert released[0] == (0, "a")
    assert [item for _, item in released] == ["a", "b"]
    assert len(line) == 0 and not line.blocks([1, 2, 3])


def test_key_counts_survive_duplicates_across_waiting_transactions():
    s = Scheduler(2)
    s.assign(0, 1, [1])
    s.assign(1, 2, [2])
    line = WaitingLine()
    line.add("a", {1, 2})
    line.add("b", {1})
    s.complete(0, 1)
    s.complete(1, 2)
    out = []
    for worker, item, keys in line.release(s):
        s.assign(worker, 3 + len(out), keys)
        out.append(item)
    assert out == ["a", "b"]
    assert not line.blocks([1]) and not line.blocks([2])


class FakeWorker:
    def __init__(self) -> None:
        self.queue: deque[tuple[int, int]] = deque()  # (ticket, seq) assigned, not executed
        self.unreported: list[tuple[int, int]] = []


def simulate(rng: random.Random, workers: int, txs: list[list[int]]) -> int:
    """Dispatch like the coordinator: wait in line when blocked or unroutable, release
    the line after every completion. Returns how many transactions waited."""
    s = Scheduler(workers)
    line = WaitingLine()
    fakes = [FakeWorker() for _ in range(workers)]
    source_order: dict[int, list[int]] = defaultdict(list)
    executed_order: dict[int, list[int]] = defaultdict(list)
    executed: list[int] = []
    tickets = iter(range(1, 10**9))
    waited = 0

    def assign(worker: int, seq: int, keys: frozenset[int]) -> None:
        ticket = next(tickets)
        s.assign(worker, ticket, keys)
        fakes[worker].queue.append((ticket, seq))

    def release() -> None:
        for worker, seq, keys in line.release(s):
            assign(worker, seq, keys)  # type: ignore[arg-type]

    def step() -> bool:
        candidates = [f for f in fakes if f.queue or f.unreported]
        if not candidates:
            return False
        i = rng.randrange(len(candidates))
        f = candidates[i]
        if f.queue and (not f.unreported or rng.random() < 0.6):
            for _ in range(rng.randint(1, 3)):
                if not f.queue:
                    break
                ticket, seq = f.queue.popleft()
                executed.append(seq)
                for k in set(txs[seq - 1]):
                    executed_order[k].append(seq)
                f.unreported.append((ticket, seq))
        else:
            cut = rng.randint(1, len(f.unreported))
            s.complete(fakes.index(f), f.unreported[cut - 1][0])
            del f.unreported[:cut]
            release()
        s.check()
        return True

    for seq, raw in enumerate(txs, start=1):
        keys = frozenset(raw)
        for k in sorted(keys):
            source_order[k].append(seq)
        for _ in range(rng.randint(0, 2)):
            step()
        if line.blocks(keys):
            line.add(seq, keys)
            waited += 1
            continue
        w = s.route(keys)
        if w is None:
            line.add(seq, keys)
            waited += 1
            continue
        assign(w, seq, keys)

    guard = 0
    while step():
        guard += 1
        assert guard < 100_000
    assert len(line) == 0, "transactions left waiting with nothing in flight"
    assert s.idle()
    assert sorted(executed) == list(range(1, len(txs) + 1))  # each exactly once
    for k, seqs in source_order.items():
        assert executed_order[k] == seqs, f"key {k}: executed {executed_order[k]} != {seqs}"
    return waited


@settings(max_examples=150, deadline=None)
@given(
    workers=st.integers(min_value=1, max_value=5),
    txs=st.lists(st.lists(st.integers(min_value=0, max_value=7), max_size=4), min_size=1, max_size=60),
    rng=st.randoms(use_true_random=False),
)
def test_waiting_line_keeps_per_key_source_order(workers, txs, rng):
    simulate(rng, workers, txs)


@pytest.mark.parametrize("seed", range(8))
def test_waiting_line_random_hot_keys(seed):
    rng = random.Random(seed)
    hot = [rng.randrange(1000) for _ in range(3)]
    txs = [[rng.choice(hot) if rng.random() < 0.5 else rng.randrange(1000) for _ in range(rng.randint(1, 4))]
           for _ in range(500)]
    assert simulate(rng, rng.randint(2, 6), txs) > 0  # hot keys make transactions wait

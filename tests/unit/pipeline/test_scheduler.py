"""Unit tests for applier.scheduler (no server): fake transactions and fake workers."""

from __future__ import annotations

import random
from collections import defaultdict, deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from applier.pipeline.scheduler import EMPTY_KEYS, Scheduler

# -- routing rules one by one ---------------------------------------------------------


def test_workers_property_and_validation():
    assert Scheduler(4).workers == 4
    with pytest.raises(ValueError):
        Scheduler(0)


def test_no_conflict_goes_to_least_busy():
    s = Scheduler(3)
    s.assign(0, 1, [10])
    s.assign(0, 2, [11])
    s.assign(1, 3, [12])
    # busy: w0=2, w1=1, w2=0
    assert s.route([99]) == 2
    s.assign(2, 4, [99])
    s.assign(2, 5, [98])
    # busy: w0=2, w1=1, w2=2
    assert s.route([100, 101]) == 1
    s.check()


def test_empty_keys_go_to_least_busy():
    s = Scheduler(2)
    s.assign(0, 1, [1])
    assert s.route(EMPTY_KEYS) == 1
    assert s.route([]) == 1
    s.assign(1, 2, EMPTY_KEYS)
    s.assign(1, 3, ())
    assert s.busy(1) == 2
    assert s.route(EMPTY_KEYS) == 0
    assert s.complete(1, 3) == 2
    assert s.held_keys() == 1
    s.check()


def test_single_holder_gets_transaction_even_if_busiest():
    s = Scheduler(3)
    for seq in range(1, 6):
        s.assign(0, seq, [seq])  # worker 0 is by far the busiest
    assert s.route([3]) == 0
    assert s.route([3, 4, 1000]) == 0  # held keys all on worker 0, others free
    s.assign(0, 6, [3, 1000])
    assert s.holding(3) == (0, 2)
    assert s.holding(1000) == (0, 1)
    s.check()


def test_multiple_holders_cannot_route_until_completion():
    s = Scheduler(3)
    s.assign(0, 1, [1])
    s.assign(1, 2, [2])
    s.assign(1, 3, [2, 5])
    assert s.holders([1, 2, 7]) == {0, 1}
    assert s.route([1, 2]) is None
    assert s.route([1, 2, 7]) is None
    assert s.route([7]) == 2  # unrelated keys still routable
    # worker 1 completes only its first transaction: key 2 still held by seq 3
    assert s.complete(1, 2) == 1
    assert s.route([1, 2]) is None
    assert s.complete(1, 3) == 1
    assert s.holders([1, 2]) == {0}
    assert s.route([1, 2]) == 0
    assert s.complete(0, 1) == 1
    assert s.holders([1, 2]) == set()
    assert s.idle()
    s.check()


def test_route_does_not_change_state():
    s = Scheduler(3)
    s.assign(1, 1, [1])
    before = (repr(s), [s.queued(w) for w in range(3)])
    for _ in range(5):
        assert s.route([2]) == s.route([2])
        assert s.route([1]) == 1
    assert (repr(s), [s.queued(w) for w in range(3)]) == before


def test_assign_rejects_key_held_by_other_worker_and_rolls_back():
    s = Scheduler(2)
    s.assign(0, 1, [1, 2])
    with pytest.raises(ValueError):
        s.assign(1, 2, [3, 4, 5, 1, 6, 7])
    s.check()
    assert s.holders([3, 4, 5, 6, 7]) == set()
    assert s.busy(1) == 0
    assert s.holding(1) == (0, 1)


def test_assign_rejects_non_increasing_seq_on_worker():
    s = Scheduler(2)
    s.assign(0, 5, [1])
    with pytest.raises(ValueError):
        s.assign(0, 5, [2])
    with pytest.raises(ValueError):
        s.assign(0, 4, [2])
    s.assign(1, 4, [2])  # other worker: fine
    s.check()


# -- de-dup and completion --------------------------------------------------------------


def test_duplicate_keys_within_transaction_count_once():
    s = Scheduler(2)
    s.assign(0, 1, [7, 7, 7, 8, 8])
    assert s.holding(7) == (0, 1)
    assert s.holding(8) == (0, 1)
    assert s.route([7, 7, 8]) == 0
    s.assign(0, 2, (7, 7))
    assert s.holding(7) == (0, 2)
    s.check()
    assert s.complete(0, 1) == 1
    assert s.holding(7) == (0, 1)
    assert s.holding(8) is None
    assert s.complete(0, 2) == 1
    assert s.holding(7) is None
    assert s.idle()


def test_transaction_never_waits_on_itself():
    s = Scheduler(4)
    w = s.route([1, 1, 2, 2])
    assert w is not None
    s.assign(w, 1, iter([1, 1, 2, 2]))  # any iterable, consumed once
    assert s.route([2, 1, 2]) == w


def test_complete_releases_counts_and_partial_upto_seq():
    s = Scheduler(2)
    s.assign(0, 1, [1, 2])
    s.assign(0, 3, [2, 3])
    s.assign(0, 5, [3])
    s.assign(1, 4, [9])
    assert s.busy(0) == 3
    assert s.holding(2) == (0, 2)
    assert s.holding(3) == (0, 2)
    assert s.complete(0, 0) == 0  # nothing at or below 0
    assert s.complete(0, 2) == 1  # only seq 1 (seq 3 > 2)
    assert s.queued(0) == [3, 5]
    assert s.holding(1) is None
    assert s.holding(2) == (0, 1)
    assert s.complete(0, 2) == 0  # idempotent
    assert s.complete(0, 4) == 1  # seq 3; seq 4 is on worker 1, untouched
    assert s.holding(2) is None
    assert s.holding(3) == (0, 1)
    assert s.busy(1) == 1
    assert not s.idle()
    s.check()
    assert s.complete(0, 10**9) == 1
    assert s.complete(1, 4) == 1
    assert s.idle()
    assert s.held_keys() == 0
    s.check()


def test_complete_on_empty_worker():
    s = Scheduler(2)
    assert s.complete(1, 100) == 0
    assert s.idle()


def test_idle_for_barrier():
    s = Scheduler(3)
    assert s.idle()
    s.assign(2, 1, EMPTY_KEYS)
    assert not s.idle()
    s.complete(2, 1)
    assert s.idle()


def test_large_worker_counts_pack_correctly():
    for n in (1, 2, 3, 7, 8, 9, 64, 65, 1000):
        s = Scheduler(n)
        last = n - 1
        for seq in range(1, 40):
            s.assign(last, seq, [1, seq])
        assert s.holding(1) == (last, 39)
        assert s.route([1]) == last
        s.check()
        assert s.complete(last, 39) == 39
        assert s.idle() and s.held_keys() == 0


# -- load spreading ---------------------------------------------------------------------


def test_disjoint_keys_spread_over_all_workers_without_completions():
    n = 5
    s = Scheduler(n)
    counts = [0] * n
    for seq in range(1, 101):
        w = s.route([seq])
        s.assign(w, seq, [seq])
        counts[w] += 1
    assert counts == [20] * n


def test_disjoint_keys_spread_round_robin_when_always_idle():
    n = 4
    s = Scheduler(n)
    used = []
    for seq in range(1, 41):
        w = s.route([seq])
        s.assign(w, seq, [seq])
        used.append(w)
        s.complete(w, seq)  # every worker idle again: ties everywhere
    assert used == [i % n for i in range(40)]


def test_hot_key_does_not_starve_tie_break():
    # Every other transaction hits a hot key held by worker 0; the free ones must
    # still rotate over the remaining workers.
    n = 4
    s = Scheduler(n)
    s.assign(0, 1, [0])  # worker 0 holds hot key 0 for the whole test
    free_used = set()
    seq = 1
    for i in range(30):
        seq += 1
        if i % 2:
            assert s.route([0, 1000 + i]) == 0
            s.assign(0, seq, [0, 1000 + i])
        else:
            w = s.route([1000 + i])
            s.assign(w, seq, [1000 + i])
            s.complete(w, seq)
            free_used.add(w)
    assert free_used == {1, 2, 3}


# -- simulation -------------------------------------------------------------------------


class FakeWorker:
    """FIFO worker: executes its queue head at random times, reports completion later."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.queue: deque[tuple[int, frozenset[int]]] = deque()  # assigned, not executed
        self.unreported: list[int] = []  # executed, not yet reported complete


def run_simulation(rng: random.Random, workers: int, txs: list[list[int]]) -> None:
    s = Scheduler(workers)
    fakes = [FakeWorker(i) for i in range(workers)]
    source_order: dict[int, list[int]] = defaultdict(list)  # key -> seqs in source order
    executed_order: dict[int, list[int]] = defaultdict(list)  # key -> seqs as executed
    executed: list[int] = []
    executed_by: dict[int, int] = {}
    tx_keys: dict[int, frozenset[int]] = {}
    # keys of transactions queued-or-running per worker (for the invariant check)
    in_flight: list[dict[int, frozenset[int]]] = [{} for _ in range(workers)]

    def check_invariants() -> None:
        s.check()
        owner: dict[int, tuple[int, int]] = {}
        for w, txmap in enumerate(in_flight):
            for keys in txmap.values():
                for k in keys:
                    ow, c = owner.get(k, (w, 0))
                    assert ow == w, f"key {k} held by workers {ow} and {w}"
                    owner[k] = (w, c + 1)
        for k, (w, c) in owner.items():
            assert s.holding(k) == (w, c)
        assert s.held_keys() == len(owner)
        for w in range(workers):
            assert s.busy(w) == len(in_flight[w])
        assert s.idle() == (sum(map(len, in_flight)) == 0)

    def step() -> bool:
        """One random action of a random worker; False if nothing can happen."""
        candidates = [f for f in fakes if f.queue or f.unreported]
        if not candidates:
            return False
        f = rng.choice(candidates)
        if f.queue and (not f.unreported or rng.random() < 0.6):
            # execute a batch of 1..3 transactions from the head, in FIFO order
            for _ in range(rng.randint(1, 3)):
                if not f.queue:
                    break
                seq, keys = f.queue.popleft()
                assert keys == tx_keys[seq]  # whole transaction, never split
                assert seq not in executed_by, f"seq {seq} executed twice"
                executed_by[seq] = f.index
                executed.append(seq)
                for k in keys:
                    executed_order[k].append(seq)
                f.unreported.append(seq)
        else:
            # report a random prefix of the executed transactions (partial completion)
            cut = rng.randint(1, len(f.unreported))
            upto = f.unreported[cut - 1]
            released = s.complete(f.index, upto)
            assert released == cut
            for seq in f.unreported[:cut]:
                del in_flight[f.index][seq]
            del f.unreported[:cut]
        check_invariants()
        return True

    for seq, raw in enumerate(txs, start=1):
        keys = tuple(raw)  # may contain duplicates
        dedup = frozenset(keys)
        tx_keys[seq] = dedup
        for k in sorted(dedup):
            source_order[k].append(seq)
        # random progress between arrivals
        for _ in range(rng.randint(0, 2)):
            step()
        w = s.route(keys)
        waits = 0
        while w is None:
            assert len(s.holders(keys)) > 1
            assert step(), "route() returned None but nothing is in flight"
            waits += 1
            assert waits < 10_000, "caller waited forever"
            w = s.route(keys)
        holders = s.holders(keys)
        assert len(holders) <= 1
        if holders:
            assert holders == {w}
        else:
            assert s.busy(w) == min(s.busy(i) for i in range(workers))
        s.assign(w, seq, keys)
        fakes[w].queue.append((seq, dedup))
        in_flight[w][seq] = dedup
        check_invariants()

    guard = 0
    while step():
        guard += 1
        assert guard < 100_000
    assert s.idle()
    assert s.held_keys() == 0

    # each transaction executed exactly once, on exactly one worker
    assert sorted(executed) == list(range(1, len(txs) + 1))
    assert len(executed_by) == len(txs)
    # per key: execution order equals source order
    assert set(executed_order) == set(source_order)
    for k, seqs in source_order.items():
        assert executed_order[k] == seqs, f"key {k}: executed {executed_order[k]} != {seqs}"


@settings(max_examples=150, deadline=None)
@given(
    workers=st.integers(min_value=1, max_value=5),
    txs=st.lists(
        st.lists(st.integers(min_value=0, max_value=7), min_size=0, max_size=4),
        min_size=1,
        max_size=60,
    ),
    rng=st.randoms(use_true_random=False),
)
def test_simulation_preserves_per_key_order_hypothesis(workers, txs, rng):
    run_simulation(rng, workers, txs)


@pytest.mark.parametrize("seed", range(12))
def test_simulation_preserves_per_key_order_random(seed):
    rng = random.Random(seed)
    workers = rng.randint(2, 8)
    keyspace = rng.choice([4, 16, 64])
    txs = [[rng.randrange(keyspace) for _ in range(rng.randint(0, 5))] for _ in range(400)]
    run_simulation(rng, workers, txs)


def test_a_worker_beyond_the_width_only_drains():
    """Once the width narrows, a transaction whose keys only a worker beyond it holds
    waits (None) instead of joining that worker's queue: the worker finishes what it has
    and lets its keys go, then the transaction goes to a worker within the width. (On a
    hot-row workload the held keys would otherwise keep a worker the width gave up fed
    for good, and its conflicts with it.)"""
    s = Scheduler(4)
    s.assign(0, 1, (10,))
    s.assign(1, 2, (20,))  # worker 1 took it while the width was 4
    s.width = 1
    assert s.route((20,)) is None  # held beyond the width: wait
    assert s.route((10,)) == 0  # held within it: its holder
    assert s.route((30,)) == 0  # free: within the width
    assert s.route((10, 20)) is None
    s.complete(1, 2)
    assert s.route((20,)) == 0 and s.route((10, 20)) == 0
    s.check()

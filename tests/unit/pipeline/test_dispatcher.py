"""The dispatcher against fake workers (tiflow's causality tests are the model): random
transactions with random keys, workers that commit their queued messages in their own
FIFO order but at random times relative to each other, queues that fill up.

What must hold, whatever the timing: every transaction is committed exactly once;
transactions that share a key commit in source order (and never on two workers at
once); the watermark is the end of the longest committed prefix; ``drain`` returns
with nothing in flight. With ``ordered`` (preserve_commit_order), tickets are given in
source order; tickets are never reused.
"""

from __future__ import annotations

import random
from collections import deque

from hypothesis import given, settings
from hypothesis import strategies as st

from applier.binlog.transactions import Transaction
from applier.metrics import Metrics
from applier.pipeline import dispatcher as dispatcher_mod
from applier.pipeline.checkpoint import Watermark
from applier.pipeline.dispatcher import Dispatcher
from applier.pipeline.messages import Done, Work
from applier.pipeline.pool import InstantPool
from applier.pipeline.width import Width

FILE = "mysql-bin.000001"


def end_of(seq: int) -> int:
    return (1 << 32) + 100 * seq


class FakePool:
    """Workers that commit whole messages, in FIFO order per worker, when the test's
    random clock says so: on every poll a worker may finish its oldest message."""

    turn = None

    def __init__(self, size: int, rng: random.Random, queue_size: int, keys: dict[int, set[int]]) -> None:
        self.size = size
        self.rng = rng
        self.queue_size = queue_size
        self.keys = keys
        self.queues: list[deque[Work]] = [deque() for _ in range(size)]
        self.committed: list[int] = []  # seqs in commit order
        self.running: dict[int, int] = {}  # key -> worker that has it queued or running
        self.tickets: dict[int, int] = {}  # seq -> ticket

    def send(self, worker: int, work: Work, timeout: float) -> bool:
        if len(self.queues[worker]) >= self.queue_size:
            return False
        for txn in work.txns:
            for k in self.keys[txn.seq]:
                holder = self.running.get(k)
                assert holder in (None, worker), f"key {k} queued on workers {holder} and {worker}"
                self.running[k] = worker
            self.tickets[txn.seq] = txn.ticket
        self.queues[worker].append(work)
        return True

    def next_ack(self, timeout: float) -> Done | None:
        busy = [w for w, q in enumerate(self.queues) if q]
        if not busy or (timeout == 0 and self.rng.random() < 0.5):
            return None
        w = self.rng.choice(busy)
        work = self.queues[w].popleft()
        for txn in work.txns:
            self.committed.append(txn.seq)
        still = {k for q in self.queues[w] for t in q.txns for k in self.keys[t.seq]}
        for txn in work.txns:
            for k in self.keys[txn.seq]:
                if k not in still:
                    self.running.pop(k, None)
        return Done(w, tuple(t.seq for t in work.txns), 0, work.txns[-1].ticket)

    def check(self) -> None:
        pass

    def stop(self, graceful: bool) -> None:
        pass


def transactions(rng: random.Random, n: int, nkeys: int) -> list[tuple[Transaction, set[int]]]:
    out = []
    for seq in range(1, n + 1):
        keys = {rng.randrange(nkeys) for _ in range(rng.randint(0, 3))}
        out.append((Transaction(seq, "", FILE, end_of(seq) & 0xFFFFFFFF, 0), keys))
    return out


def run(seed: int, n: int, workers: int, nkeys: int, queue_size: int, ordered: bool, max_waiting: int,
        adapt: bool = False):
    rng = random.Random(seed)
    txns = transactions(rng, n, nkeys)
    keys = {t.seq: k for t, k in txns}
    pool = FakePool(workers, rng, queue_size, keys)
    watermark = Watermark(None)
    d = Dispatcher(pool, watermark, Metrics(), ordered=ordered, adapt=adapt)
    if d.width is not None:  # a width that changes all the time: routing must stay exact
        d.width = Width(workers, start=rng.randint(1, workers), period=0.0)
    old = dispatcher_mod.MAX_WAITING
    dispatcher_mod.MAX_WAITING = max_waiting
    try:
        for txn, k in txns:
            watermark.register(txn.seq, txn.end_ordinal, txn.file, txn.gtid)
            d.dispatch(txn, set(k))
            if rng.random() < 0.1:
                d.idle()
            assert watermark.ordinal == end_of(prefix(pool.committed)) if prefix(pool.committed) else True
        d.drain()
    finally:
        dispatcher_mod.MAX_WAITING = old
    return pool, watermark, d, keys


def prefix(committed: list[int]) -> int:
    done, p = set(committed), 0
    while p + 1 in done:
        p += 1
    return p


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**32), n=st.integers(1, 120), workers=st.integers(1, 5),
       nkeys=st.integers(1, 30), queue_size=st.integers(1, 4), ordered=st.booleans(),
       max_waiting=st.sampled_from([4, 2000]), adapt=st.booleans())
def test_every_transaction_once_and_per_key_source_order(seed, n, workers, nkeys, queue_size, ordered,
                                                         max_waiting, adapt):
    """With ``adapt``, the number of workers fed free transactions changes at almost
    every acknowledgement: the rules hold whatever it is."""
    pool, watermark, d, keys = run(seed, n, workers, nkeys, queue_size, ordered, max_waiting, adapt)
    assert sorted(pool.committed) == list(range(1, n + 1))
    last: dict[int, int] = {}
    for seq in pool.committed:
        for k in keys[seq]:
            assert last.get(k, 0) < seq, f"key {k}: {seq} committed after {last[k]}"
            last[k] = seq
    assert watermark.ordinal == end_of(n)
    assert d.scheduler.idle() and not d.line
    d.scheduler.check()
    tickets = [pool.tickets[seq] for seq in range(1, n + 1)]
    assert sorted(set(tickets)) == sorted(tickets)  # each ticket once
    if ordered:  # tickets (the commit order) follow source order
        assert tickets == sorted(tickets)


def test_a_conflict_waits_in_line_while_others_pass():
    """Keys held by two workers: the transaction waits; a later one sharing nothing with
    it is routed meanwhile; one sharing its key waits behind it."""
    rng = random.Random(1)
    keys = {1: {1}, 2: {2}, 3: {1, 2}, 4: {9}, 5: {2}}
    pool = FakePool(2, rng, 100, keys)
    pool.next_ack = lambda timeout: None  # type: ignore[method-assign]  # nobody commits yet
    watermark = Watermark(None)
    d = Dispatcher(pool, watermark, Metrics(), adapt=False)  # both workers fed
    for seq in range(1, 6):
        txn = Transaction(seq, "", FILE, end_of(seq) & 0xFFFFFFFF, 0)
        watermark.register(seq, txn.end_ordinal, FILE, "")
        d.dispatch(txn, set(keys[seq]))
    assert len(d.line) == 2  # 3 (both workers hold its keys) and 5 (behind 3)
    sent = sorted(t.seq for q in pool.queues for w in q for t in w.txns)
    assert sent == [1, 2, 4]
    del pool.next_ack  # workers commit again
    d.drain()
    assert pool.committed.index(3) < pool.committed.index(5)


def test_instant_pool_acknowledges_everything():
    pool = InstantPool(3)
    watermark = Watermark(None)
    metrics = Metrics()
    d = Dispatcher(pool, watermark, metrics)
    for seq in range(1, 101):
        txn = Transaction(seq, "", FILE, end_of(seq) & 0xFFFFFFFF, 0, rows=2)
        watermark.register(seq, txn.end_ordinal, FILE, "")
        d.dispatch(txn, {seq % 7})
    d.drain()
    assert (metrics.transactions, metrics.rows) == (100, 200)
    assert watermark.ordinal == end_of(100)

"""The exactly-once core without a server: the watermark, each row's ``done`` list and
recovery, simulated over random commit orders and crash points.

Model: transactions 1..n end at increasing positions; workers commit batches of their
own transactions, each batch atomically with their checkpoint row (watermark handed
over when the batch was sent, done list = ``CheckpointRow.next_done``); a crash can
happen between any two commits. Recovery (``checkpoint.recover``) must name exactly
the committed transactions: resume at W* and skip the ``done`` entries beyond it.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from applier.binlog.position import BinlogPosition
from applier.pipeline.checkpoint import CheckpointRow, Watermark, recover

FILE = "mysql-bin.000003"
BASE = 3 << 32  # ordinals of FILE


def end_of(seq: int) -> int:
    return BASE + 1000 + 100 * seq


@settings(max_examples=300, deadline=None)
@given(st.permutations(list(range(1, 41))))
def test_watermark_is_the_longest_committed_prefix(order):
    w = Watermark(BinlogPosition(FILE, 4), "0-1-0")
    for seq in range(1, 41):
        w.register(seq, end_of(seq), FILE, f"0-1-{seq}")
    done: set[int] = set()
    for seq in order:
        w.done(seq)
        done.add(seq)
        prefix = 0
        while prefix + 1 in done:
            prefix += 1
        assert w.ordinal == (end_of(prefix) if prefix else BinlogPosition(FILE, 4).ordinal)
        assert w.gtid == (f"0-1-{prefix}" if prefix else "0-1-0")
        assert w.file == FILE


def test_watermark_keeps_the_last_gtid_through_transactions_without_one():
    w = Watermark(None)
    w.register(1, end_of(1), FILE, "0-1-5")
    w.register(2, end_of(2), FILE, "")  # e.g. a transaction read without a GTID event
    w.done(2)
    assert w.ordinal == 0  # 1 is not done: nothing moved
    w.done(1)
    assert (w.ordinal, w.gtid) == (end_of(2), "0-1-5")


def simulate(rng: random.Random, n: int, workers: int, crash_after: int):
    """Run the protocol until ``crash_after`` commits; return (rows, committed seqs)."""
    rows = {k: (0, "") for k in range(workers + 1)}  # worker -> (watermark, done text)
    rows[0] = (BASE + 4, "")
    mem = {k: CheckpointRow("s", k) for k in range(1, workers + 1)}
    watermark = Watermark(BinlogPosition(FILE, 4))
    queues: dict[int, list[tuple[list[int], int]]] = {k: [] for k in mem}
    next_seq, commits, committed = 1, 0, set()
    while commits < crash_after and (next_seq <= n or any(queues.values())):
        if next_seq <= n and (rng.random() < 0.5 or not any(queues.values())):
            # send a batch of 1-3 transactions to a worker, with the watermark of now
            k = rng.randrange(1, workers + 1)
            batch = list(range(next_seq, min(n, next_seq + rng.randrange(3)) + 1))
            for seq in batch:
                watermark.register(seq, end_of(seq), FILE, "")
            next_seq = batch[-1] + 1
            queues[k].append((batch, watermark.ordinal))
            continue
        k = rng.choice([k for k, q in queues.items() if q])
        batch, sent_watermark = queues[k].pop(0)
        done = mem[k].next_done(sent_watermark, [end_of(s) for s in batch])
        rows[k] = (sent_watermark, ",".join(map(str, done)))  # commits with the batch
        mem[k].done = done
        commits += 1
        committed.update(batch)
        for seq in batch:
            watermark.done(seq)
    table = [(k, w, FILE, "", d, 0, 0, "") for k, (w, d) in rows.items()]
    return table, committed, next_seq - 1


@settings(max_examples=400, deadline=None)
@given(seed=st.integers(0, 2**32), n=st.integers(1, 60), workers=st.integers(1, 5),
       crash_after=st.integers(0, 80))
def test_recovery_names_exactly_what_committed(seed, n, workers, crash_after):
    rows, committed, _ = simulate(random.Random(seed), n, workers, crash_after)
    rec = recover(rows)
    assert rec.start is not None and rec.start.file == FILE
    w = rec.start.ordinal
    # every transaction at or below W* committed; beyond it, exactly the done entries
    for seq in range(1, n + 1):
        end = end_of(seq)
        applied_after_restart = end > w and end not in rec.done
        assert (seq in committed) != applied_after_restart, (seq, w, sorted(rec.done))


def test_recovery_of_an_empty_table_and_of_a_pending_ddl():
    assert recover([]).start is None
    w = end_of(5)
    rows = [(0, w, FILE, "0-1-5", "", end_of(6), 3, ""), (1, end_of(4), FILE, "", str(end_of(7)), 0, 4, "")]
    rec = recover(rows)
    assert rec.start == BinlogPosition(FILE, w & 0xFFFFFFFF)
    assert rec.gtid == "0-1-5"
    assert rec.ddl_pending == end_of(6)  # beyond W*: may or may not have run
    assert rec.done == frozenset({end_of(7)})
    assert rec.applied_transactions == 7
    rows[0] = (0, end_of(6), FILE, "0-1-6", "", end_of(6), 3, "")  # the DDL's end recorded after it
    assert recover(rows).ddl_pending == 0
    assert not recover(rows).handed_back
    rows[0] = (*rows[0][:7], "handed back at 2026-12-01 10:00:00")
    assert recover(rows).handed_back == "handed back at 2026-12-01 10:00:00"


def test_next_done_keeps_entries_until_a_watermark_passes_them():
    row = CheckpointRow("s", 1)
    row.done = [end_of(3), end_of(9)]
    assert row.next_done(end_of(5), [end_of(6), end_of(10)]) == [end_of(9), end_of(6), end_of(10)]
    assert row.next_done(end_of(10), [end_of(11)]) == [end_of(11)]

"""The forward pass (``pipeline.flow.Flow``) without servers: barriers that come
one after the other commit together; a relay log whose oldest file starts inside a
transaction.

The native SQL thread deletes a relay file once it has executed it, so the oldest relay
file left may start with the tail of a transaction whose start (GTID, BEGIN, TableMaps)
was in the deleted one. That tail was applied by whoever applied up to the position the
applier starts from: skipped. A tail that ends after that position is a transaction
whose start is lost: a clean MissingTableMap, never applied in part nor skipped."""

from __future__ import annotations

from dataclasses import replace

import pytest

from applier.binlog.events import INSERT
from applier.errors import MissingTableMap
from applier.metrics import Metrics
from applier.pipeline.checkpoint import Watermark
from applier.pipeline.dispatcher import Dispatcher
from applier.pipeline.flow import Flow
from applier.pipeline.pool import InstantPool
from applier.pipeline.source import SourceDisconnected
from tests.unit.pipeline.test_intake import _always_readable, make_intake, make_source  # noqa: F401
from tests.unit.streams import FILE1, TEMPLATES, Stream, TableDef, dml, fixed_tables, simple_insert


class _NoSerial:
    """No barrier or streamed transaction comes in these streams."""

    def __getattr__(self, name: str):
        raise AssertionError(f"serial.{name} called")


def _headless_stream(with_table_map: bool) -> tuple[bytes, int]:
    """The tail of a transaction (its rows event, maybe its TableMap, its XID), then two
    whole ones. Returns the stream and where the tail ends."""
    a, *_ = fixed_tables()
    st = Stream(True)
    if with_table_map:
        st.table_map(a)
    st.rows(INSERT, 2, simple_insert(a, [1]))
    st.xid()
    tail_end = st.pos
    dml(st, a, [2])
    dml(st, a, [3])
    return bytes(st.data), tail_end


def _flow(native_scan: bool, skip_upto: int, serial=None, tables=None) -> tuple[Flow, InstantPool, Metrics]:
    metrics = Metrics()
    watermark = Watermark(None)
    pool = InstantPool(2)
    intake = make_intake(tables or fixed_tables()[:1], native_scan=native_scan)
    flow = Flow(intake, Dispatcher(pool, watermark, metrics, adapt=False), serial or _NoSerial(), watermark,
                metrics)
    flow.skip_upto = skip_upto
    return flow, pool, metrics


class _Serial:
    """Records what the serial path was given; the pool's sends at that moment show
    what reached the workers before."""

    def __init__(self, pool_sent) -> None:
        self.calls: list[tuple[str, list[int], int]] = []
        self.pool_sent = pool_sent

    def apply_batch(self, txns) -> None:
        self.calls.append(("batch", [t.end_pos for t in txns], sum(self.pool_sent())))
        for t in txns:
            t.rows = 1

    def apply(self, txn) -> bool:
        self.calls.append(("ddl", [txn.end_pos], sum(self.pool_sent())))
        return True


@pytest.mark.parametrize("native_scan", [True, False])
def test_barriers_in_a_row_commit_together_in_source_order(native_scan: bool) -> None:
    """Three barriers, a transaction for the workers, two barriers, DDL, one barrier, the
    end of the stream: the serial path gets [3 barriers] (before the workers get the
    next one), [2 barriers] (before the DDL), the DDL, then [1] when reading ends: held
    barriers are whole transactions, so the end of reading commits them, never drops
    them. Every one is counted once, the watermark reaches the last."""
    a, *_ = fixed_tables()
    n = TableDef(TEMPLATES["fk"], 55, "db", "n")
    st = Stream(True)
    ends = []
    for ids in ([1], [2], [3]):
        dml(st, n, ids)
        ends.append(st.pos)
    dml(st, a, [1])
    for ids in ([4], [5]):
        dml(st, n, ids)
        ends.append(st.pos)
    st.ddl()
    ends.append(st.pos)
    dml(st, n, [6])
    ends.append(st.pos)
    holder: dict = {}
    serial = _Serial(lambda: holder["pool"].sent)
    flow, pool, metrics = _flow(native_scan, 0, serial, [a, n])
    holder["pool"] = pool
    with pytest.raises(SourceDisconnected):
        flow.run(make_source(bytes(st.data), True))
    assert serial.calls == [("batch", ends[0:3], 0), ("batch", ends[3:5], 1), ("ddl", [ends[5]], 1),
                            ("batch", [ends[6]], 1)]
    assert metrics.barriers == 7 and metrics.transactions == 8
    assert flow.watermark.ordinal == _ordinal(ends[-1])


def test_a_barrier_batch_is_at_most_batch_txns() -> None:
    a, *_ = fixed_tables()
    n = TableDef(TEMPLATES["nokey"], 55, "db", "n")
    st = Stream(True)
    for i in range(7):
        dml(st, n, [i])
    serial = _Serial(lambda: [0])
    flow, _, _ = _flow(False, 0, serial, [a, n])
    flow.intake.cfg = replace(flow.intake.cfg, batch_txns=3)
    with pytest.raises(SourceDisconnected):
        flow.run(make_source(bytes(st.data), True))
    assert [len(c[1]) for c in serial.calls] == [3, 3, 1]


def _ordinal(pos: int) -> int:
    return int(FILE1.rsplit(".", 1)[1]) << 32 | pos


@pytest.mark.parametrize("native_scan", [True, False])
@pytest.mark.parametrize("with_table_map", [True, False])
def test_a_tail_applied_before_the_start_is_skipped(native_scan: bool, with_table_map: bool) -> None:
    data, tail_end = _headless_stream(with_table_map)
    flow, pool, metrics = _flow(native_scan, _ordinal(tail_end))
    with pytest.raises(SourceDisconnected):  # the stream's end
        flow.run(make_source(data, True))
    flow.dispatcher.drain()
    assert metrics.skipped_recovered == 1
    assert metrics.transactions == 2  # the two whole ones, sent to the workers
    assert sum(pool.sent) == 2


@pytest.mark.parametrize("native_scan", [True, False])
@pytest.mark.parametrize("with_table_map", [True, False])
def test_a_tail_after_the_start_stops_cleanly(native_scan: bool, with_table_map: bool) -> None:
    data, tail_end = _headless_stream(with_table_map)
    flow, pool, metrics = _flow(native_scan, _ordinal(tail_end) - 1)
    with pytest.raises(MissingTableMap, match=f"{FILE1}:{tail_end}"):
        flow.run(make_source(data, True))
    assert sum(pool.sent) == 0 and metrics.skipped_recovered == 0


@pytest.mark.parametrize("native_scan", [True, False])
def test_a_tail_is_skipped_when_reading_from_a_gtid_set(native_scan: bool) -> None:
    """No position to compare with (a MySQL replica with unordered parallel workers hands
    over a GTID set only): relay files are deleted only once applied, so the tail was."""
    data, _ = _headless_stream(False)
    flow, pool, metrics = _flow(native_scan, 0)
    flow.tails_applied = True
    with pytest.raises(SourceDisconnected):
        flow.run(make_source(data, True))
    flow.dispatcher.drain()
    assert metrics.skipped_recovered == 1 and sum(pool.sent) == 2

"""The forward pass (``pipeline.coordinator.Flow``) without servers: a relay log whose
oldest file starts inside a transaction.

The native SQL thread deletes a relay file once it has executed it, so the oldest relay
file left may start with the tail of a transaction whose start (GTID, BEGIN, TableMaps)
was in the deleted one. That tail was applied by whoever applied up to the position the
applier starts from: skipped. A tail that ends after that position is a transaction
whose start is lost: a clean MissingTableMap, never applied in part nor skipped."""

from __future__ import annotations

import pytest

from applier.binlog.events import INSERT
from applier.errors import MissingTableMap
from applier.metrics import Metrics
from applier.pipeline.checkpoint import Watermark
from applier.pipeline.coordinator import Flow
from applier.pipeline.dispatcher import Dispatcher
from applier.pipeline.pool import InstantPool
from applier.pipeline.source import SourceDisconnected
from tests.unit.pipeline.test_intake import _always_readable, make_intake, make_source  # noqa: F401
from tests.unit.streams import FILE1, Stream, dml, fixed_tables, simple_insert


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


def _flow(native_scan: bool, skip_upto: int) -> tuple[Flow, InstantPool, Metrics]:
    a, *_ = fixed_tables()
    metrics = Metrics()
    watermark = Watermark(None)
    pool = InstantPool(2)
    flow = Flow(make_intake([a], native_scan=native_scan), Dispatcher(pool, watermark, metrics),
                _NoSerial(), watermark, metrics)
    flow.skip_upto = skip_upto
    return flow, pool, metrics


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

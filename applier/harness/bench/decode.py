"""The coordinator's own ceiling: read, group, key and route a backlog with no target.

The real stages (``DumpSource``, ``Intake``, ``Dispatcher`` over an ``InstantPool`` that
acknowledges every message as it is sent, ``Flow``), with a serial stand-in that only
decodes the rows of barriers and streamed transactions. Table definitions come from
the source itself (its tables are the target's).
"""

from __future__ import annotations

import time
from typing import Any

from ...binlog.native import decode_rows
from ...binlog.position import BinlogPosition
from ...binlog.transactions import RowsEvent, Transaction
from ...config import Config
from ...db.connect import connect
from ...db.schema import SchemaCache
from ...metrics import Metrics
from ...pipeline.checkpoint import Watermark
from ...pipeline.dispatcher import Dispatcher
from ...pipeline.flow import Flow
from ...pipeline.intake import Filter, Intake
from ...pipeline.pool import InstantPool
from ...pipeline.source import DumpSource, EndOfBinlog
from ...pipeline.tables import TableCache
from ...pipeline.writeset import Weigher

DECODE_RUNS = 3


class _TimedWatermark(Watermark):
    """Also notes when the first and the last transaction were done."""

    first: float | None = None
    last = 0.0

    def done(self, seq: int) -> None:
        now = time.perf_counter()
        if self.first is None:
            self.first = now
        self.last = now
        super().done(seq)


class _CountingSerial:
    """Stands in for the serial applier: decodes the rows, applies nothing."""

    def __init__(self, tables: TableCache) -> None:
        self.tables = tables

    def _rows(self, txn: Transaction, items) -> int:
        n = 0
        for it in items:
            if isinstance(it, RowsEvent):
                t = self.tables.get(txn.table_maps[it.table_id])
                n += len(decode_rows(t.plan, it.op, it.body, it.version, frozenset()))
        return n

    def apply(self, txn: Transaction) -> bool:
        if txn.is_ddl:
            self.tables.invalidate()
            return True
        txn.rows = self._rows(txn, txn.items)
        return False

    def apply_batch(self, txns: list[Transaction]) -> None:
        for txn in txns:
            self.apply(txn)

    def stream_begin(self, txn: Transaction) -> None:
        pass

    def stream(self, txn: Transaction, items) -> int:
        return self._rows(txn, items)

    def stream_end(self, txn: Transaction) -> None:
        pass

    def abandon(self) -> None:
        pass

    def record(self) -> None:
        pass


def decode_once(cfg: Config, flavor: str, start: BinlogPosition) -> dict[str, Any]:
    """One pass over the backlog from ``start`` to the source's end of binlog."""
    a = cfg.apply
    conn = connect(cfg.source, "source")
    metrics = Metrics()
    watermark = clock = _TimedWatermark(None)
    workers = 1 if a.policy == "serial" else a.workers
    try:
        tables = TableCache(SchemaCache(conn))
        intake = Intake(a, Filter(a, cfg.target.checkpoint_schema), tables, Weigher(conn))
        dispatcher = Dispatcher(InstantPool(workers), watermark, metrics)
        flow = Flow(intake, dispatcher, _CountingSerial(tables), watermark, metrics)
        reader = DumpSource(cfg.source, flavor, non_blocking=True, server_id=0)
        started = time.perf_counter()
        try:
            reader.open(start)
            flow.run(reader)
        except EndOfBinlog:
            pass
        finally:
            reader.close()
        dispatcher.drain()
        total = time.perf_counter() - started
    finally:
        conn.close()
    m = metrics
    # the rate once transactions flow: connecting and the dump request (~0.1 s, a
    # quarter of a 20,000-transaction run) are not what bounds a long catch-up
    first = clock.first if clock.first is not None else started
    seconds = max(clock.last - first, 1e-9) * m.transactions / max(m.transactions - 1, 1)
    return {
        "transactions": m.transactions,
        "rows": m.rows,
        "seconds_with_setup": round(total, 3),
        "seconds": round(seconds, 3),
        "tps": round(m.transactions / seconds, 1),
        "rows_per_s": round(m.rows / seconds, 1),
        "workers": workers,
        "policy": a.policy,
        "barriers": m.barriers,
        "big_transactions": m.big_transactions,
    }


def measure_decode(cfg: Config, flavor: str, start: BinlogPosition) -> dict[str, Any]:
    """Transactions/s the coordinator alone reads, groups, hashes and routes (no target):
    the best of ``DECODE_RUNS`` runs, as a ceiling (one run lasts well under a second, so
    a single one mostly measures what else the machine did meanwhile)."""
    runs = [decode_once(cfg, flavor, start) for _ in range(DECODE_RUNS)]
    best = max(runs, key=lambda r: r["tps"])
    best["runs_tps"] = [r["tps"] for r in runs]
    return best

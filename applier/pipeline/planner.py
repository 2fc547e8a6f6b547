"""Whole transactions -> statements for the target, in source order or compacted.

Two ways to turn row changes into statements:

* compacted (tables whose only unique key is the row key; ``compaction.NetChanges``):
  changes to one row collapse to their net effect, then per table one multi-row
  DELETE, INSERT and INSERT ... ON DUPLICATE KEY UPDATE;
* in source order (tables with secondary unique keys, tables without a row key, foreign
  keys): each rows event in order, one statement per row (one INSERT per event).

Statements go to a ``StatementSink``: a worker plans a batch into a ``StatementLog`` and
its runner thread executes it later (``session.Session.execute``), so planning the next
batch overlaps the target executing the current one; the serial path's streamed
transactions run them at once (``session.Executor``). Each statement carries the
affected-row count it must have: a missing row for UPDATE/DELETE, or an INSERT that
does not insert, means the target has diverged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..binlog import events as ev
from ..binlog import rowcodec as rc
from ..binlog.native import decode_rows
from ..binlog.transactions import RowsEvent, Statement, Transaction
from .compaction import NET_FLUSH_ROWS, NetChanges
from .sink import FK_CHECKS, Planned, StatementLog, StatementSink, lenient
from .tables import Table, TableCache, enum_zero, match_image, values_of

if TYPE_CHECKING:
    from .messages import Work

NO_FOREIGN_KEY_CHECKS_F = 0x0002  # rows event flag: the source session had foreign_key_checks=0


class Planner:
    """Writes whole transactions' changes to a sink, inside the caller's open target
    transaction. ``tables`` resolves TableMaps (the planner's own, or the coordinator's)."""

    def __init__(self, sink: StatementSink, tables: TableCache, verify: bool = False) -> None:
        self.sink = sink
        self.tables = tables
        self.verify = verify  # [apply] verify_before_image: rows must hold their whole before image

    @property
    def fk_checks(self) -> bool:
        """foreign_key_checks as the sink leaves them (``StatementSink.fk_checks``)."""
        return self.sink.fk_checks

    def foreign_key_checks(self, on: bool) -> None:
        """Follow the source session's foreign_key_checks (rows event flag, statement
        flags2): with them off there, deletes cascade nothing and orphans are allowed."""
        if on != self.sink.fk_checks:
            flag = b"1" if on else b"0"
            self.sink.session(b"SET SESSION foreign_key_checks = " + flag, FK_CHECKS + flag.decode())

    def new_net(self) -> NetChanges:
        return NetChanges(self.sink, self.verify)

    def items(self, txn_maps: dict[int, bytes], items: list[RowsEvent | Statement],
              net: NetChanges | None = None) -> int:
        """Write ``items`` in order; return the rows. Changes to compactable tables go
        through ``net`` (the caller's, to compact across calls, or a private one flushed
        here). ``net`` is flushed whenever source order matters (statements, other
        tables) and when it holds ``NET_FLUSH_ROWS`` rows, so memory stays bounded for
        big transactions."""
        own = net is None
        if net is None:
            net = self.new_net()
        total = 0
        for item in items:
            if isinstance(item, Statement):
                net.flush()
                self.foreign_key_checks(not item.no_fk_checks)
                self.sink.statement(item)
                self.tables.invalidate()
                continue
            table = self.tables.get(txn_maps[item.table_id])
            rows = decode_rows(table.plan, item.op, item.body, item.version)
            total += len(rows)
            if table.compactable:
                net.add(table, item.op, rows)
                if net.rows >= NET_FLUSH_ROWS:
                    net.flush()
                continue
            net.flush()
            # flags follow the 6-byte table id; only barriers (FK tables) get here with them
            self.foreign_key_checks(not item.body[6] & NO_FOREIGN_KEY_CHECKS_F)
            self._in_order(table, item.op, rows)
        if own:
            net.flush()
        return total

    def _in_order(self, table: Table, op: int, rows) -> None:
        name = f"{table.tmap.db}.{table.tmap.table}"
        sink = self.sink
        if op == ev.INSERT:
            sql = table.insert_head + b",".join(values_of(table, after) for _, after in rows)
            if enum_zero(table, (after for _, after in rows)):
                lenient(sink, sql, len(rows), f"INSERT into {name}")
            else:
                sink.run(sql, len(rows), f"INSERT into {name}")
            return
        limit = b"" if table.key is not None else b" LIMIT 1"
        where_of = match_image if self.verify else where_key
        for before, after in rows:
            if op == ev.DELETE:
                sql = b"DELETE FROM " + table.name + b" WHERE " + where_of(table, before) + limit
                sink.run(sql, 1, f"DELETE from {name}")
            else:
                sets = _set_clause(table, before, after)
                if not sets:
                    sets = table.col_names[table.writable[0]] + b"=" + table.col_names[table.writable[0]]
                sql = b"UPDATE " + table.name + b" SET " + sets + b" WHERE " + where_of(table, before) + limit
                if enum_zero(table, (after,)):
                    lenient(sink, sql, 1, f"UPDATE of {name}")
                else:
                    sink.run(sql, 1, f"UPDATE of {name}")


def where_key(table: Table, image: rc.Row) -> bytes:
    names = table.col_names
    if table.key is not None:
        return b" AND ".join(names[i] + b"=" + image[i] for i in table.key)  # type: ignore[operator]
    # no row key: match every stored column, NULL-safe, one row only
    return b" AND ".join(
        names[i] + b"<=>" + image[i] for i in table.writable if image[i] is not None
    )


def _set_clause(table: Table, before: rc.Row, after: rc.Row) -> bytes:
    names = table.col_names
    return b",".join(
        names[i] + b"=" + after[i]  # type: ignore[operator]
        for i in table.writable
        if after[i] is not None and after[i] != before[i]
    )


# -- batches -----------------------------------------------------------------------------


@dataclass(slots=True)
class PlannedBatch:
    """Statements of whole transactions, to run in one target transaction."""

    statements: list[Planned]
    fk_checks_at_start: bool  # the session's foreign_key_checks the statements assume
    txns: list[Transaction]
    rows: int
    last: Work  # the newest message: its watermark goes into the checkpoint row


class BatchPlan:
    """Accumulates messages into one batch's statements; ``finish`` when the executor
    is ready for it (the longer it accumulates, the less work per transaction)."""

    def __init__(self, planner: Planner, log: StatementLog) -> None:
        self.planner = planner
        self.log = log
        self.net = planner.new_net()
        self.fk_checks_at_start = planner.fk_checks
        self.txns: list[Transaction] = []
        self.rows = 0
        self.last: Work | None = None

    def add(self, work: Work) -> None:
        planner, net = self.planner, self.net
        for txn in work.txns:
            self.rows += planner.items(txn.table_maps, txn.items, net)
        self.txns.extend(work.txns)
        self.last = work

    def finish(self) -> PlannedBatch:
        assert self.last is not None, "an empty batch"
        self.net.flush()
        return PlannedBatch(self.log.take(), self.fk_checks_at_start, self.txns, self.rows, self.last)


class BatchPlanner:
    """Plans batches (``BatchPlan``) against one TableCache, which it invalidates when the
    messages' schema version moves (DDL the coordinator applied since)."""

    def __init__(self, tables: TableCache, verify: bool = False) -> None:
        self.log = StatementLog()
        self.planner = Planner(self.log, tables, verify)
        self._schema_version = 0

    def new_plan(self, schema_version: int) -> BatchPlan:
        if schema_version != self._schema_version:
            self.planner.tables.invalidate()
            self._schema_version = schema_version
        return BatchPlan(self.planner, self.log)

    def plan(self, batch: list[Work]) -> PlannedBatch:
        plan = self.new_plan(batch[-1].schema_version)
        for work in batch:
            plan.add(work)
        return plan.finish()

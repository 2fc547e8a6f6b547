"""The serial path: transactions the coordinator applies itself, alone, on its own target
session (checkpoint row 0), after the workers have drained.

* barriers (tables with foreign keys or without a usable key): planned like a worker
  batch and committed through the one apply path (``Session.execute``, with retries);
* DDL: cannot share a transaction with the checkpoint (it commits implicitly), so row 0
  first records it as pending (``ddl_pending``); after a crash that one statement is
  re-run tolerating "already exists / already gone" errors;
* big transactions, streamed: their rows are applied as they are read, inside one open
  target transaction, never held whole in memory; committed with row 0 at the end (not
  retried: what was read is gone);
* ``record``: row 0 takes the watermark when the applier has caught up or stops
  cleanly, so the checkpoint says exactly where the target is.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging

import MySQLdb

from ..binlog.transactions import RowsEvent, Transaction
from ..config import ApplyConfig
from ..db import codes
from ..db.sql import drop_if_exists
from ..errors import ApplierError, TargetError
from .checkpoint import Watermark
from .compaction import NetChanges
from .messages import Work
from .pipe import PipedSink
from .planner import BatchPlanner, Planner
from .session import Session, lost
from .tables import TableCache

log = logging.getLogger(__name__)


class SerialApplier:
    def __init__(self, session: Session, tables: TableCache, watermark: Watermark,
                 apply: ApplyConfig, *, ddl_pending: int = 0, turn=None) -> None:
        self.session = session
        self.tables = tables
        self.watermark = watermark
        self.apply_cfg = apply
        self.turn = turn  # preserve_commit_order: set to a serial transaction's ticket
        self._ddl_pending = ddl_pending  # a DDL that may have run before a crash
        self._batches = BatchPlanner(tables, apply.verify_before_image)
        self._direct = Planner(session.executor, tables, apply.verify_before_image)
        self._net: NetChanges | None = None  # the streamed transaction's compaction buffer
        self._pipe: PipedSink | None = None  # ... where its statements go (a thread runs them)
        self._stream: Planner | None = None  # ... and its planner, writing there
        self._recorded = watermark.ordinal

    # -- whole transactions --------------------------------------------------------------

    def apply(self, txn: Transaction) -> bool:
        """Apply a barrier or DDL transaction and commit it with row 0; True when it
        changed the schema (cached table definitions are stale)."""
        if txn.is_ddl:
            self._ddl(txn)
            return True
        self.apply_batch([txn])
        return False

    def apply_batch(self, txns: list[Transaction]) -> None:
        """Barriers that came one after the other (no DDL among them), in source order in
        one target transaction committed with row 0, like a worker batch: one commit
        (one fsync of the target's redo and binlog) for all of them. ``txns[-1].rows``
        gets the batch's rows."""
        batch = self._batches.plan([self._work(txns)])
        a = self.apply_cfg
        self.session.execute(batch, a.retries, a.retry_backoff_seconds, self.turn)
        for txn in txns:
            txn.rows = 0
        txns[-1].rows = batch.rows
        self._recorded = txns[-1].end_ordinal

    def _work(self, txns: list[Transaction]) -> Work:
        """The transactions as a message whose watermark is the last one's end: everything
        before them has committed (drained), so once they commit the watermark is there."""
        last = txns[-1]
        return Work(txns, last.end_ordinal, last.file, self.watermark.gtid_after(*(t.gtid for t in txns)), 0)

    def _ddl(self, txn: Transaction) -> None:
        s = self.session
        rerun = txn.end_ordinal == self._ddl_pending
        w = self.watermark
        try:
            s.conn.query(s.row.statement(w.ordinal, w.file, w.gtid, [], "", 0, w.timestamp, txn.end_ordinal))
            s.conn.commit()
            for item in txn.items:
                if isinstance(item, RowsEvent):  # CREATE TABLE ... SELECT: after its statement
                    txn.rows += self._direct.items(txn.table_maps, [item])
                    continue
                try:
                    self._direct.items(txn.table_maps, [item])
                except TargetError as e:
                    if not (rerun and e.code in codes.DDL_ALREADY_DONE):
                        raise
                    log.warning("DDL already applied before the restart, continuing: %s", e)
                    again = drop_if_exists(item.sql) if e.code == codes.ER_BAD_TABLE_ERROR else None
                    if again is not None:  # drop what the target still has of those it names
                        self._direct.items(txn.table_maps, [dataclasses.replace(item, sql=again)])
            self._commit_row0(txn)
        except MySQLdb.Error as e:
            raise self._error(e, txn) from None
        self.tables.invalidate()

    # -- streamed big transactions ---------------------------------------------------------

    def stream_begin(self, txn: Transaction) -> None:
        """Start applying a big transaction (the workers are drained). Its statements
        run on row 0's connection from a ``PipedSink``: the target executes them while
        the next rows are planned."""
        log.info("transaction above big_txn_rows=%d rows: streaming it", self.apply_cfg.big_txn_rows)
        self._pipe = PipedSink(self.session.executor)
        self._stream = Planner(self._pipe, self.tables, self.apply_cfg.verify_before_image)
        self._net = self._stream.new_net()

    def stream(self, txn: Transaction, items: list) -> int:
        """More of the streamed transaction (rows events, SAVEPOINT statements)."""
        assert self._stream is not None
        with self._streamed(txn):
            return self._stream.items(txn.table_maps, items, self._net)

    def stream_end(self, txn: Transaction) -> None:
        assert self._net is not None and self._pipe is not None
        with self._streamed(txn):
            self._net.flush()
            self._pipe.finish()  # every statement ran: row 0's connection is ours again
            self._end_stream()
            self._commit_row0(txn)

    def abandon(self) -> None:
        """Forget a partly applied streamed transaction (the source connection broke)."""
        if self._net is not None:
            self._end_stream()
            with contextlib.suppress(MySQLdb.Error):
                self.session.conn.rollback()

    @contextlib.contextmanager
    def _streamed(self, txn: Transaction):
        """Errors of a streamed transaction: nothing more of it runs (the pipe stops and
        gives the connection back before it is rolled back), then the usual mapping."""
        try:
            yield
        except BaseException as e:
            self._end_stream()
            if isinstance(e, MySQLdb.Error):
                raise self._error(e, txn) from None
            raise

    def _end_stream(self) -> None:
        if self._pipe is not None:
            self._pipe.stop()
        self._pipe = self._stream = self._net = None

    # -- position ----------------------------------------------------------------------------

    def record(self) -> None:
        """Row 0 takes the watermark, if it moved since row 0 was last written (workers'
        rows hold the watermark of when their last batch was sent). Never while a
        streamed transaction is open on row 0's connection: the commit would take its
        rows so far with it (its own end records the position)."""
        w = self.watermark
        if w.ordinal == self._recorded or not w.ordinal or self._net is not None:
            return
        s = self.session
        try:
            s.conn.query(s.row.statement(w.ordinal, w.file, w.gtid, [], "", 0, w.timestamp))
            s.conn.commit()
        except MySQLdb.Error as e:
            raise self._error(e, None) from None
        self._recorded = w.ordinal

    # -- helpers -----------------------------------------------------------------------------

    def _commit_row0(self, txn: Transaction) -> None:
        s, w = self.session, self.watermark
        s.conn.query(s.row.statement(txn.end_ordinal, txn.file, w.gtid_after(txn.gtid), [], txn.gtid,
                                     1, txn.timestamp))
        s.conn.commit()
        if self.turn is not None:  # drained: every earlier ticket has committed
            self.turn.value = txn.ticket
        self._recorded = txn.end_ordinal

    def _error(self, e: MySQLdb.Error, txn: Transaction | None) -> ApplierError:
        with contextlib.suppress(MySQLdb.Error):
            self.session.conn.rollback()
        what = f"transaction {txn.gtid or txn.seq}" if txn is not None else "the checkpoint"
        if codes.code_of(e) in codes.GONE:
            return lost(e, f"applying {what}")
        return TargetError(f"target error applying {what}: {codes.code_of(e)}: {codes.message_of(e)}")

"""The forward pass: each item the intake yields is settled, in source order.

    Routed     -> skipped (filtered out, or committed before a restart) or dispatched
    Barrier    -> drain, then applied alone (DDL), or held to commit with the barriers
                  right after it (``serial.apply_batch``)
    Stream ... -> a big transaction applied as it is read (``serial.stream_*``), rolled
                  back if its end never comes
    IDLE       -> acknowledgements read, held-back work shipped, row 0 takes the exact
                  position once everything has committed

The watermark (``checkpoint.Watermark``) learns what is read (``register``) and what
has committed (``done``). Reading never calls back into dispatch.
"""

from __future__ import annotations

import logging
import time

from ..binlog.position import GtidPosition
from ..errors import MissingTableMap
from ..metrics import Metrics, lag_seconds
from .checkpoint import Watermark
from .dispatcher import Dispatcher
from .intake import IDLE, Barrier, Intake, Routed, Stream, StreamAbort, StreamEnd
from .until import UntilTracker

log = logging.getLogger(__name__)

PROGRESS_SECONDS = 10.0  # how often `applier -v run` logs its progress
RECORD_SECONDS = 1.0  # caught up: how often row 0 may take the watermark


class Flow:
    """The forward pass: intake items -> skip, dispatch, serial apply or stream."""

    def __init__(self, intake: Intake, dispatcher: Dispatcher, serial, watermark: Watermark,
                 metrics: Metrics, committed: frozenset[int] = frozenset(),
                 until: UntilTracker | None = None) -> None:
        self.intake = intake
        self.dispatcher = dispatcher
        self.serial = serial  # a SerialApplier, or what stands in for one (bench)
        self.watermark = watermark
        self.metrics = metrics
        self.committed = committed  # end ordinals committed beyond the recovered watermark
        self.until = until
        self.applied_gtids: GtidPosition | None = None  # a file replay started by GTID: skip these
        self.skip_upto = 0  # a relay log read from its start: transactions ending here or before
        self.tails_applied = False  # a relay log read from a GTID set: a headless tail was applied
        self._skipping = None  # a streamed transaction applied before (not applied again)
        self._streaming = None  # the streamed transaction being applied (begun, not ended)
        self._held: list = []  # barriers read one after the other, not yet applied (_flush_barriers)
        self.idle_read = -1  # metrics.read when the intake last had nothing to read (IDLE)
        self.lock = None  # the checkpoint lock (lock.CheckpointLock): lost -> stop at once
        self.stop = False
        self._next_progress = 0.0
        self._next_record = 0.0

    def run(self, reader) -> None:
        """Until the reader ends (raises), ``stop`` is set or the UNTIL point is reached.
        A streamed transaction whose end was not read is rolled back: nothing of it
        commits (what comes next resumes before it)."""
        try:
            self._run(reader)
        finally:
            if self._streaming is not None:
                self._streaming = None
                self.serial.abandon()
        self._flush_barriers()

    def _items(self, reader):
        """The intake's items. When reading ends (end of the binlog, a disconnect, the end
        of a file), the held barriers commit first: they are whole transactions."""
        items = self.intake.items(reader)
        while True:
            try:
                item = next(items)
            except BaseException:
                self._flush_barriers()
                raise
            yield item

    def _flush_barriers(self) -> None:
        """Barriers that came one after the other commit together (``serial.apply_batch``)."""
        held, self._held = self._held, []
        if held:
            self.serial.apply_batch(held)
            for txn in held:
                self._serial_done(txn)

    def _run(self, reader) -> None:
        dispatcher, until, lock = self.dispatcher, self.until, self.lock
        for item in self._items(reader):
            if lock is not None:
                lock.check()  # another applier may hold the target now: not one more transaction
            t = type(item)
            if self._held and (t is not Barrier or item.txn.is_ddl):  # type: ignore[union-attr]
                self._flush_barriers()  # held barriers commit before anything else happens
            if t is Routed:
                txn = item.txn  # type: ignore[union-attr]
                if until is not None and until.before(txn):
                    return
                if not self._settled(txn):
                    dispatcher.dispatch(txn, item.keys)  # type: ignore[union-attr]
                if until is not None and until.after(txn):
                    return
            elif item is IDLE:
                self._idle()
            elif t is Barrier:
                txn = item.txn  # type: ignore[union-attr]
                if until is not None and until.before(txn):
                    return
                if self._settled(txn):
                    pass
                elif not txn.is_ddl:  # held, to commit with the barriers right after it
                    if not self._held:
                        dispatcher.drain()
                    txn.ticket = dispatcher.next_ticket()
                    self._held.append(txn)
                    if len(self._held) >= self.intake.cfg.batch_txns:
                        self._flush_barriers()
                else:
                    dispatcher.drain()
                    txn.ticket = dispatcher.next_ticket()
                    self.serial.apply(txn)  # DDL: cached table definitions are stale
                    dispatcher.schema_version += 1
                    self.intake.forget_tables()
                    self._serial_done(txn)
                if until is not None and until.after(txn):
                    return
            elif t is Stream:
                txn = item.txn  # type: ignore[union-attr]
                if item.first:  # type: ignore[union-attr]
                    if until is not None and until.before(txn):
                        return
                    if self._applied_before(txn):
                        self._skipping = txn
                        continue
                    dispatcher.drain()
                    self.metrics.big_transactions += 1
                    self.serial.stream_begin(txn)
                    self._streaming = txn
                if txn is not self._skipping:
                    txn.rows += self.serial.stream(txn, item.items)  # type: ignore[union-attr]
            elif t is StreamAbort:
                if item.txn is self._skipping:  # type: ignore[union-attr]
                    self._skipping = None
                else:
                    self._streaming = None
                    self.serial.abandon()
            elif t is StreamEnd:
                txn = item.txn  # type: ignore[union-attr]
                self._register(txn)
                if txn is self._skipping:
                    self._skipping = None
                    self.metrics.skipped_recovered += 1
                    self.watermark.done(txn.seq)
                else:
                    txn.ticket = dispatcher.next_ticket()
                    self.serial.stream_end(txn)
                    self._streaming = None
                    self._serial_done(txn)
                if until is not None and until.after(txn):
                    return
            if self.stop:
                return

    def _register(self, txn) -> None:
        self.watermark.register(txn.seq, txn.end_ordinal, txn.file, txn.gtid, txn.timestamp)
        m = self.metrics
        m.read += 1
        if txn.timestamp:
            m.last_source_timestamp = txn.timestamp

    def _settled(self, txn) -> bool:
        """Register ``txn`` with the watermark; True if there is nothing to apply."""
        if txn.headless:
            self._headless(txn)
        self._register(txn)
        if txn.headless:
            self.metrics.skipped_recovered += 1
        elif not txn.items and not txn.payload:
            self.metrics.skipped_filtered += 1
        elif txn.end_ordinal in self.committed or txn.end_ordinal <= self.skip_upto or (
                self.applied_gtids is not None and txn.gtid and txn.gtid in self.applied_gtids):
            self.metrics.skipped_recovered += 1
        else:
            return False
        self.watermark.done(txn.seq)
        return True

    def _headless(self, txn) -> None:
        """The tail of a transaction whose start was not read (a relay log's oldest file
        begins inside it: the SQL thread deleted the file before once it had applied it).
        Applied before if it ends at or before the start position, or (``tails_applied``)
        when a relay log is read from a GTID set, with no position to compare: relay files
        are deleted only once applied. Otherwise its start is lost: stop, never apply a
        part of it nor skip it."""
        if txn.end_ordinal in self.committed or txn.end_ordinal <= self.skip_upto:
            return
        if self.tails_applied:
            log.info("skipped the tail of a transaction ending at %s:%d: its start is before the "
                     "oldest relay log (applied before)", txn.file, txn.end_pos)
            return
        raise MissingTableMap(
            f"the end of a transaction (at {txn.file}:{txn.end_pos}) came without its start "
            f"(GTID, BEGIN, TableMaps), after the applied position: the events before it did "
            "not reach the applier")

    def _applied_before(self, txn) -> bool:
        """A streamed transaction that starts (``end_ordinal`` until it ends) before the
        position to skip to, or whose GTID was applied: it was applied before."""
        return txn.end_ordinal < self.skip_upto or (
            self.applied_gtids is not None and bool(txn.gtid) and txn.gtid in self.applied_gtids)

    def _serial_done(self, txn) -> None:
        self.watermark.done(txn.seq)
        m = self.metrics
        m.barriers += 1
        m.transactions += 1
        m.rows += txn.rows

    def _idle(self) -> None:
        """Nothing to read right now: let the workers' acknowledgements in, and once
        everything has committed, let row 0 take the exact position (at most once per
        RECORD_SECONDS)."""
        self.idle_read = self.metrics.read
        self.dispatcher.idle()
        now = time.monotonic()
        if now >= self._next_record and self.dispatcher.quiet():
            self._next_record = now + RECORD_SECONDS
            self.serial.record()
        if now >= self._next_progress:
            self._next_progress = now + PROGRESS_SECONDS
            m, w = self.metrics, self.watermark
            log.info("applied %d transactions (%d rows, %.0f TPS), position %s:%d, lag %.1fs",
                     m.transactions, m.rows, m.tps, w.file, w.ordinal & 0xFFFFFFFF, self.lag() or 0.0)

    def pending(self) -> int:
        """Transactions read and not committed (the exporter's thread calls it): registered
        and not done, and a streamed one until its end is read (numbered, registered)."""
        streaming = self._streaming
        return self.watermark.outstanding() + (streaming is not None and not streaming.seq)

    def lag(self) -> float | None:
        """``metrics.lag_seconds`` now (the exporter's thread calls it too)."""
        streaming, m = self._streaming, self.metrics
        oldest = self.watermark.oldest_pending_timestamp() or (streaming.timestamp if streaming is not None else 0)
        return lag_seconds(oldest, m.last_source_timestamp, self.idle_read == m.read)


__all__ = ["Flow"]

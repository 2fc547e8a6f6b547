"""The coordinator: wires the stages and runs them; it decides nothing itself.

    source (bytes) -> intake (whole transactions + keys) -> dispatcher (scheduler,
    waiting line) -> pool (worker processes: plan, apply, commit with checkpoint)
                   \\-> serial (barriers, DDL, streamed big transactions: row 0)

``Flow`` is the forward pass over one source connection: each item the intake yields
is settled (skipped: filtered out or committed before a restart; routed; applied alone
after a drain; streamed), and the watermark (``checkpoint.Watermark``) learns what has
committed. ``Coordinator.run`` does what surrounds it: preflight, recovery from the
checkpoint, starting and stopping the workers, reconnecting to the source (resuming at
the watermark after draining the workers).
"""

from __future__ import annotations

import logging
import signal
import time

import MySQLdb

from ..binlog.position import BinlogPosition, GtidPosition, file_base
from ..config import Config
from ..db import codes
from ..db.schema import SchemaCache
from ..errors import ConfigError, MissingTableMap, TargetError, TargetLost, Unreachable
from ..metrics import Metrics, lag_seconds
from . import checkpoint, preflight
from .checkpoint import Recovery, Watermark
from .dispatcher import Dispatcher
from .intake import IDLE, Barrier, Filter, Intake, Routed, Stream, StreamAbort, StreamEnd
from .pool import Pool, ProcessPool
from .reading import DumpReading, FileReading, Reading
from .relay import RelayLogReading
from .serial import SerialApplier
from .session import Session
from .tables import TableCache
from .until import Until, UntilTracker, gtids_before
from .writeset import Weigher

log = logging.getLogger(__name__)

PROGRESS_SECONDS = 10.0  # how often `applier -v run` logs its progress
RECORD_SECONDS = 1.0  # caught up: how often row 0 may take the watermark
STABLE_SECONDS = 60.0  # a target connection that lasted this long resets the reconnect count


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
        self.lock = None  # the checkpoint lock (checkpoint.CheckpointLock): lost -> stop at once
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


class Coordinator:
    def __init__(self, cfg: Config, until: Until | None = None, *, locked: bool = False,
                 reading: Reading | None = None) -> None:
        self.cfg = cfg
        self.until = until
        if reading is None:  # where the binlog comes from
            reading = RelayLogReading(cfg) if cfg.source.mode == "relay-log" else DumpReading(cfg)
        self.reading = reading
        self.locked = locked  # the caller holds the checkpoint schema's lock (handback)
        self.metrics = Metrics()
        self._flow: Flow | None = None
        self._stop = False

    def live(self) -> dict | None:
        """A snapshot of the running pass for the metrics exporter (another thread): plain
        numbers read without locks (each read is atomic; a scrape may mix two moments by
        a few transactions). None between passes."""
        flow = self._flow
        if flow is None:
            return None
        w, d = flow.watermark, flow.dispatcher
        return {
            "position_file": w.file,
            "position": w.ordinal & 0xFFFFFFFF,
            "gtid": w.gtid,
            "lag_seconds": flow.lag(),  # None: not known yet
            "pending": flow.pending(),  # read, not committed
            "beyond": w.beyond(flow.committed),  # committed past the applied position
            "in_flight": [d.scheduler.busy(i) for i in range(d.scheduler.workers)],
            "waiting": len(d.line),
        }

    def request_stop(self, *_args) -> None:
        self._stop = True
        if self._flow is not None:
            self._flow.stop = True

    def run(self) -> Metrics:
        cfg = self.cfg
        self.reading.preflight()
        self.flavor = self.reading.flavor
        preflight.inspect_target(cfg.target, check_replica=not self.locked)
        t = cfg.target
        attempts = 0
        while True:
            began = time.monotonic()
            try:
                self._run_from_checkpoint()
                return self.metrics
            except (TargetLost, Unreachable) as e:
                if isinstance(e, Unreachable) and not attempts:
                    raise  # unreachable from the start: nothing to resume
                if time.monotonic() - began > STABLE_SECONDS:
                    attempts = 0
                attempts += 1
                if attempts > t.reconnect_attempts or self._stop:
                    raise
                pause = min(30.0, t.reconnect_backoff_seconds * 2 ** (attempts - 1))
                log.warning("%s; reconnecting to the target in %.1fs (attempt %d of %d), then "
                            "resuming from the checkpoint", e, pause, attempts, t.reconnect_attempts)
                time.sleep(pause)

    def _run_from_checkpoint(self) -> None:
        cfg, a = self.cfg, self.cfg.apply
        schema = cfg.target.checkpoint_schema
        pool: Pool | None = None
        session: Session | None = None
        clean = False
        lock = None if self.locked else checkpoint.CheckpointLock(cfg.target)
        try:
            session = Session(cfg.target, checkpoint.COORDINATOR_ROW, self.flavor)
            conn = session.conn
            checkpoint.ensure_table(conn, schema)
            conn.commit()
            recovery = checkpoint.load(conn, schema)
            weigher = Weigher(conn)
            conn.commit()
            start, gtid = self._start_position(recovery)
            until = self._until(start, gtid, recovery)
            workers = 1 if a.policy == "serial" else a.workers
            for wid in range(workers + 1):
                checkpoint.CheckpointRow(schema, wid).insert_if_missing(conn, start, gtid)
            watermark = Watermark(start, gtid)
            log.info("applying from %s with %d workers", start or f"GTID {gtid}", workers)
            pool = ProcessPool(workers, cfg.target, a)
            tables = TableCache(SchemaCache(conn))
            dispatcher = Dispatcher(pool, watermark, self.metrics, ordered=a.preserve_commit_order,
                                    adapt=a.adapt_workers)
            serial = SerialApplier(session, tables, watermark, a, ddl_pending=recovery.ddl_pending,
                                   turn=pool.turn)
            intake = Intake(a, Filter(a, schema), tables, weigher)
            flow = self._flow = Flow(intake, dispatcher, serial, watermark, self.metrics,
                                     recovery.done, until)
            flow.stop = self._stop
            flow.lock = lock
            self.reading.run(flow, start, gtid)
            dispatcher.drain()
            serial.record()  # the exact position, now that nothing is in flight
            self.metrics.position = f"{watermark.file}:{watermark.ordinal & 0xFFFFFFFF}"
            self.metrics.gtid = watermark.gtid
            log.info("stopped at %s%s", self.metrics.position, f" (GTID {watermark.gtid})" if watermark.gtid else "")
            self.metrics.until_reached = until.reached if until is not None else None
            clean = True
        except MySQLdb.Error as e:
            code = codes.code_of(e)
            if code in codes.GONE or code in codes.UNREACHABLE:
                raise TargetLost(f"lost the connection to the target {cfg.target.describe()} "
                                 f"({code}: {codes.message_of(e)})") from None
            raise TargetError(f"target {cfg.target.describe()}: {code}: {codes.message_of(e)}") from None
        finally:
            if self._flow is not None:
                self.metrics.scanned = self._flow.intake.scanned
            self._flow = None
            if pool is not None:
                pool.stop(graceful=clean)
            if session is not None:
                session.close()
            if lock is not None:
                lock.release()

    def _start_position(self, recovery: Recovery) -> tuple[BinlogPosition | None, str]:
        """Where to start reading, and the GTID position there. A checkpoint wins over the
        start options; a start from the options is checked with the source first, so a
        wrong one leaves no checkpoint behind."""
        src = self.cfg.source
        if recovery.handed_back:
            raise ConfigError(
                f"checkpoint schema {self.cfg.target.checkpoint_schema!r}: the target was "
                f"{recovery.handed_back}: its native replica applies the source now; run "
                "`applier takeover` to take over again"
            )
        if recovery.exists:
            if src.start_file or src.start_gtid:
                log.info("a checkpoint exists: [source] start options are ignored")
            if recovery.start is None and not recovery.gtid:
                raise ConfigError(
                    f"checkpoint schema {self.cfg.target.checkpoint_schema!r} holds no position: "
                    "drop it (or run `applier takeover --force`) and start again"
                )
            log.info("resuming from checkpoint %s%s (%d committed beyond it)",
                     recovery.start or "", f" GTID {recovery.gtid}" if recovery.gtid else "",
                     len(recovery.done))
            return recovery.start, recovery.gtid
        if src.start_file:
            start, gtid = BinlogPosition(src.start_file, src.start_pos), ""
        elif src.start_gtid:
            start, gtid = None, str(GtidPosition(src.start_gtid))
        elif isinstance(self.reading, FileReading):
            start, gtid = None, ""  # the first file's first event
        else:
            raise ConfigError(
                "no start position: the target has no checkpoint yet, so set [source] start_file "
                "(and start_pos) or start_gtid to where the target's data stops, or run "
                "`applier takeover` on a native replica"
            )
        self.reading.check_start(start, gtid)
        return start, gtid

    def _until(self, start: BinlogPosition | None, gtid: str, recovery: Recovery) -> UntilTracker | None:
        until = self.until
        if until is None:
            return None
        before = ""  # a file start: the source's GTIDs before it count as applied for --until-gtid
        if until.gtid and start is not None and isinstance(self.reading, DumpReading):
            before = gtids_before(self.cfg.source, self.flavor, start)
        tracker = UntilTracker(until, gtid, before)
        if until.position is not None:
            if start is not None and until.position.ordinal <= start.ordinal:
                raise ConfigError(f"--until-position {until.position} is at or before where this run "
                                  f"starts ({start}): there is nothing to apply")
            beyond = [o for o in recovery.done if o > until.position.ordinal]
            if beyond:
                end = BinlogPosition.from_ordinal(max(beyond), _base(start))
                raise ConfigError(f"--until-position {until.position} is before transactions already "
                                  f"applied out of order (up to {end}): give {end} or later")
        if until.gtid and tracker.read_all():
            raise ConfigError(f"--until-gtid {until.gtid} is already applied (the target is at "
                              f"{gtid}): there is nothing to apply")
        return tracker


def _base(start: BinlogPosition | None) -> str:
    return file_base(start.file) if start is not None else "mysql-bin"


def _reload_nothing(*_args) -> None:
    log.warning("SIGHUP: the applier reloads nothing (its config is read once, at start); "
                "restart it to apply a changed config: it resumes from its checkpoint")


def install_signal_handlers(coord: Coordinator) -> None:
    """SIGTERM/SIGINT stop cleanly; SIGHUP (a `systemctl reload`, a closed terminal)
    changes nothing and says so, instead of killing the applier."""
    signal.signal(signal.SIGTERM, coord.request_stop)
    signal.signal(signal.SIGINT, coord.request_stop)
    signal.signal(signal.SIGHUP, _reload_nothing)


__all__ = ["Coordinator", "Flow", "install_signal_handlers"]

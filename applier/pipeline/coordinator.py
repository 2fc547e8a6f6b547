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

from ..binlog.position import BinlogPosition
from ..config import Config
from ..db.schema import SchemaCache
from ..errors import ConfigError, ConnectError, SourceError
from ..metrics import Metrics
from ..ops import preflight
from . import checkpoint
from .checkpoint import Recovery, Watermark
from .dispatcher import Dispatcher
from .intake import IDLE, Barrier, Filter, Intake, Routed, Stream, StreamEnd
from .pool import Pool, ProcessPool
from .serial import SerialApplier
from .session import Session
from .source import DumpSource, EndOfBinlog, SourceDisconnected
from .tables import TableCache
from .writeset import Weigher

log = logging.getLogger(__name__)

PROGRESS_SECONDS = 10.0  # how often `applier -v run` logs its progress


class Flow:
    """The forward pass: intake items -> skip, dispatch, serial apply or stream."""

    def __init__(self, intake: Intake, dispatcher: Dispatcher, serial, watermark: Watermark,
                 metrics: Metrics, committed: frozenset[int] = frozenset()) -> None:
        self.intake = intake
        self.dispatcher = dispatcher
        self.serial = serial  # a SerialApplier, or what stands in for one (bench)
        self.watermark = watermark
        self.metrics = metrics
        self.committed = committed  # end ordinals committed beyond the recovered watermark
        self.stop = False
        self._next_progress = 0.0

    def run(self, reader) -> None:
        """Until the reader ends (raises) or ``stop`` is set."""
        dispatcher, metrics = self.dispatcher, self.metrics
        for item in self.intake.items(reader):
            t = type(item)
            if t is Routed:
                txn = item.txn  # type: ignore[union-attr]
                if self._settled(txn):
                    continue
                dispatcher.dispatch(txn, item.keys)  # type: ignore[union-attr]
                if txn.timestamp:
                    metrics.last_source_timestamp = txn.timestamp
            elif item is IDLE:
                dispatcher.idle()
                self._progress()
                if self.stop:
                    return
            elif t is Barrier:
                txn = item.txn  # type: ignore[union-attr]
                if self._settled(txn):
                    continue
                dispatcher.drain()
                txn.ticket = dispatcher.next_ticket()
                if self.serial.apply(txn):  # DDL: cached table definitions are stale
                    dispatcher.schema_version += 1
                    self.intake.forget_tables()
                self._serial_done(txn)
            elif t is Stream:
                txn = item.txn  # type: ignore[union-attr]
                if item.first:  # type: ignore[union-attr]
                    dispatcher.drain()
                    metrics.big_transactions += 1
                    self.serial.stream_begin(txn)
                txn.rows += self.serial.stream(txn, item.items)  # type: ignore[union-attr]
            elif t is StreamEnd:
                txn = item.txn  # type: ignore[union-attr]
                self.watermark.register(txn.seq, txn.end_ordinal, txn.file, txn.gtid)
                txn.ticket = dispatcher.next_ticket()
                self.serial.stream_end(txn)
                self._serial_done(txn)
            if self.stop:
                return

    def _settled(self, txn) -> bool:
        """Register ``txn`` with the watermark; True if there is nothing to apply."""
        self.watermark.register(txn.seq, txn.end_ordinal, txn.file, txn.gtid)
        if not txn.items and not txn.payload:
            self.metrics.skipped_filtered += 1
        elif txn.end_ordinal in self.committed:
            self.metrics.skipped_recovered += 1
        else:
            return False
        self.watermark.done(txn.seq)
        return True

    def _serial_done(self, txn) -> None:
        self.watermark.done(txn.seq)
        m = self.metrics
        m.barriers += 1
        m.transactions += 1
        m.rows += txn.rows
        if txn.timestamp:
            m.last_source_timestamp = txn.timestamp

    def _progress(self) -> None:
        now = time.monotonic()
        if now < self._next_progress:
            return
        self._next_progress = now + PROGRESS_SECONDS
        m, w = self.metrics, self.watermark
        log.info("applied %d transactions (%d rows, %.0f TPS), position %s:%d, lag %.1fs",
                 m.transactions, m.rows, m.tps, w.file, w.ordinal & 0xFFFFFFFF, m.lag_seconds())


class Coordinator:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.metrics = Metrics()
        self._flow: Flow | None = None
        self._stop = False

    def request_stop(self, *_args) -> None:
        self._stop = True
        if self._flow is not None:
            self._flow.stop = True

    def run(self) -> Metrics:
        cfg = self.cfg
        facts = preflight.inspect_source(cfg.source)
        preflight.check_source(facts, start_file=cfg.source.start_file or None,
                               start_gtid=cfg.source.start_gtid or None)
        if cfg.source.flavor not in ("auto", facts.flavor):
            raise ConfigError(f"[source] flavor = {cfg.source.flavor!r} but the source is {facts.flavor}")
        self.flavor = facts.flavor
        preflight.inspect_target(cfg.target)
        self._run_from_checkpoint()
        return self.metrics

    def _run_from_checkpoint(self) -> None:
        cfg, a = self.cfg, self.cfg.apply
        session = Session(cfg.target, checkpoint.COORDINATOR_ROW)
        pool: Pool | None = None
        clean = False
        try:
            conn = session.conn
            checkpoint.ensure_table(conn, cfg.target.checkpoint_schema)
            conn.commit()
            recovery = checkpoint.load(conn, cfg.target.checkpoint_schema)
            weigher = Weigher(conn)
            conn.commit()
            start, gtid = self._start_position(recovery)
            workers = 1 if a.policy == "serial" else a.workers
            for wid in range(workers + 1):
                checkpoint.CheckpointRow(cfg.target.checkpoint_schema, wid).insert_if_missing(conn, start)
            watermark = Watermark(start, recovery.gtid)
            pool = ProcessPool(workers, cfg.target, a)
            tables = TableCache(SchemaCache(conn))
            dispatcher = Dispatcher(pool, watermark, self.metrics, ordered=a.preserve_commit_order)
            serial = SerialApplier(session, tables, watermark, a, ddl_pending=recovery.ddl_pending,
                                   turn=pool.turn)
            intake = Intake(a, Filter(a, cfg.target.checkpoint_schema), tables, weigher)
            flow = self._flow = Flow(intake, dispatcher, serial, watermark, self.metrics, recovery.done)
            flow.stop = self._stop
            self._read(flow, start, gtid)
            dispatcher.drain()
            serial.record()  # the exact position, now that nothing is in flight
            clean = True
        finally:
            self.metrics.scanned = self._flow.intake.scanned if self._flow is not None else 0
            self._flow = None
            if pool is not None:
                pool.stop(graceful=clean)
            session.close()

    def _start_position(self, recovery: Recovery) -> tuple[BinlogPosition | None, str]:
        src = self.cfg.source
        if recovery.start is not None:
            log.info("resuming from checkpoint %s (%d committed beyond it)",
                     recovery.start, len(recovery.done))
            return recovery.start, ""
        if src.start_file:
            return BinlogPosition(src.start_file, src.start_pos), ""
        if src.start_gtid:
            return None, src.start_gtid
        raise ConfigError(
            "no start position: the target has no checkpoint yet, so set [source] start_file "
            "(and start_pos) or start_gtid to where the target's data stops"
        )

    def _read(self, flow: Flow, start: BinlogPosition | None, gtid: str) -> None:
        """Run ``flow`` over dump connections until the end (``stop_at_end``) or a stop
        request; after a disconnect, drain and resume at the watermark."""
        cfg = self.cfg.source
        attempts = 0
        position, gtid_start = start, gtid
        while not flow.stop:
            reader = DumpSource(cfg, self.flavor, non_blocking=self.cfg.apply.stop_at_end)
            try:
                reader.open(position, gtid_start)
                attempts = 0
                flow.run(reader)
                return
            except EndOfBinlog:
                if flow.intake.partial:
                    raise SourceError("the source binlog ends inside a transaction") from None
                return
            except (SourceDisconnected, ConnectError) as e:
                attempts += 1
                if attempts > cfg.reconnect_attempts:
                    raise SourceError(
                        f"source {cfg.describe()} unreachable after {cfg.reconnect_attempts} reconnect "
                        f"attempts ({e}): check the server, then run again to resume"
                    ) from None
                log.warning("source connection lost (%s); reconnecting from the last applied position", e)
                flow.intake.abandon()
                flow.serial.abandon()
                flow.dispatcher.drain()
                w = flow.watermark
                if w.ordinal:
                    position = BinlogPosition(w.file, w.ordinal & 0xFFFFFFFF)
                time.sleep(min(30.0, cfg.reconnect_backoff_seconds * 2 ** (attempts - 1)))
            finally:
                reader.close()


def install_signal_handlers(coord: Coordinator) -> None:
    signal.signal(signal.SIGTERM, coord.request_stop)
    signal.signal(signal.SIGINT, coord.request_stop)


__all__ = ["Coordinator", "Flow", "install_signal_handlers"]

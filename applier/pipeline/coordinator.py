"""The coordinator: wires the stages and runs them; it decides nothing itself.

    source (bytes) -> intake (whole transactions + keys) -> dispatcher (scheduler,
    waiting line) -> pool (worker processes: plan, apply, commit with checkpoint)
                   \\-> serial (barriers, DDL, streamed big transactions: row 0)

``flow.Flow`` is the forward pass over one source connection (or file). ``Coordinator.run``
does what surrounds it: preflight, recovery from the
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
from ..db.connect import connect
from ..db.schema import SchemaCache
from ..errors import ConfigError, TargetError, TargetLost, Unreachable
from ..metrics import Metrics
from . import checkpoint, preflight
from .checkpoint import Recovery, Watermark
from .dispatcher import Dispatcher
from .flow import Flow
from .intake import Filter, Intake
from .lock import CheckpointLock
from .pool import Pool, ProcessPool
from .reading import DumpReading, FileReading, Reading
from .relay import RelayLogReading
from .serial import SerialApplier
from .session import Session
from .tables import TableCache
from .until import Until, UntilTracker, gtids_before
from .writeset import Weigher

log = logging.getLogger(__name__)

STABLE_SECONDS = 60.0  # a target connection that lasted this long resets the reconnect count


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
        lookups = None
        clean = False
        lock = None if self.locked else CheckpointLock(cfg.target)
        try:
            session = Session(cfg.target, checkpoint.COORDINATOR_ROW, self.flavor)
            conn = session.conn
            checkpoint.ensure_table(conn, schema)
            conn.commit()
            recovery = checkpoint.load(conn, schema)
            conn.commit()
            # schema and collation-weight lookups: their own connection, so they never
            # share row 0's with the statements of a streamed transaction (pipe.py)
            lookups = connect(cfg.target, "target", stay_open=True)
            weigher = Weigher(lookups)
            start, gtid = self._start_position(recovery)
            until = self._until(start, gtid, recovery)
            workers = 1 if a.policy == "serial" else a.workers
            for wid in range(workers + 1):
                checkpoint.CheckpointRow(schema, wid).insert_if_missing(conn, start, gtid)
            watermark = Watermark(start, gtid)
            log.info("applying from %s with %d workers", start or f"GTID {gtid}", workers)
            pool = ProcessPool(workers, cfg.target, a, lazy=a.adapt_workers)
            tables = TableCache(SchemaCache(lookups))
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
            if lookups is not None:
                lookups.close()
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


__all__ = ["Coordinator", "install_signal_handlers"]

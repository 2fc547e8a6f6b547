"""The coordinator: the only module that wires the stages together.

source (raw events) -> transactions (whole transactions) -> writeset (keys, computed
per rows event as it arrives) -> scheduler (which worker) -> workers (apply + commit
with checkpoint). Transactions that cannot be tracked safely are barriers: the
coordinator drains every worker and applies them itself on its own target session
(row 0 of the checkpoint table). A transaction above ``big_txn_rows`` is streamed:
from the moment it crosses the threshold, its rows events are applied as they are
read, inside one open target transaction, so it is never held whole in memory.

After a source disconnect, the coordinator drains the workers and resumes reading at
the watermark (the last applied position), discarding a partly read transaction.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import queue
import signal
import time
from dataclasses import dataclass
from typing import Any

import MySQLdb

from . import checkpoint, errors
from . import events as ev
from . import inspect as preflight
from .checkpoint import Watermark
from .config import Config
from .errors import ApplierError, ConfigError, SourceError, TargetError, WorkerDied
from .metrics import Metrics
from .position import BinlogPosition
from .scheduler import Scheduler, WaitingLine
from .session import Session, Work
from .source import BinlogSource, EndOfBinlog, SourceDisconnected
from .transactions import RowsEvent, Transaction, TransactionBuilder, statement_databases
from .workers import STOP, WorkerSpec, worker_main
from .writeset import (
    TableKeys,
    Weigher,
    database_key,
    decode_keys,
    event_keys,
    native_scan,
    scan_route,
    table_key,
)

log = logging.getLogger(__name__)

SEND_AT = 16  # transactions held back per worker before a queue message is sent
MAX_WAITING = 2_000  # transactions waiting for a conflict to clear before reading pauses
PROGRESS_SECONDS = 10.0  # how often `applier -v run` logs its progress

# errors a re-run DDL may raise when it had already been applied before a crash
_DDL_ALREADY_DONE = {1007, 1008, 1050, 1051, 1060, 1061, 1091, 1146, 1068, 1826, 1022}


def table_of_map(body: bytes) -> tuple[str, str]:
    """(db, table) straight from TableMap bytes, without a full parse (for filters)."""
    n = body[8]
    db = body[9 : 9 + n].decode()
    p = 9 + n + 1
    m = body[p]
    return db, body[p + 1 : p + 1 + m].decode()


@dataclass
class _Current:
    """Per-transaction routing state while its events arrive."""

    txn: Transaction
    keys: set[int]
    streaming: bool = False
    net: Any = None  # the streamed transaction's compaction buffer (target._NetChanges)
    after_statement: bool = False  # rows follow a statement: CREATE TABLE ... SELECT


class Coordinator:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.metrics = Metrics()
        self._stop = False
        self._workers: list = []
        self._inboxes: list = []
        self._outbox = None
        self._cur: _Current | None = None
        self._schema_version = 0
        self._tkeys: dict[bytes, TableKeys] = {}
        self._next_worker_check = 0.0  # monotonic time of the next idle-time worker check
        self._outgoing: list[list[Transaction]] = []
        self._turn = None  # shared last-committed ticket (preserve_commit_order)
        self._ticket = 0
        self._dispatched = 0
        self._next_progress_log = 0.0
        self._scanner = None  # the native scanner of the current dump connection
        self._waiting = WaitingLine()  # transactions whose keys several workers hold
        self._releasing = False
        self._big_ahead = False  # the next rows event starts a transaction known to be big

    # -- lifecycle ---------------------------------------------------------------------

    def request_stop(self, *_args) -> None:
        self._stop = True

    def run(self) -> Metrics:
        cfg = self.cfg
        facts = preflight.inspect_source(cfg.source)
        preflight.check_source(facts, start_file=cfg.source.start_file or None,
                               start_gtid=cfg.source.start_gtid or None)
        if cfg.source.flavor not in ("auto", facts.flavor):
            raise ConfigError(f"[source] flavor = {cfg.source.flavor!r} but the source is {facts.flavor}")
        self.flavor = facts.flavor
        preflight.inspect_target(cfg.target)
        self.serial = Session(cfg.target, checkpoint.COORDINATOR_ROW)
        checkpoint.ensure_table(self.serial.conn, cfg.target.checkpoint_schema)
        self.serial.conn.commit()
        self.recovery = checkpoint.load(self.serial.conn, cfg.target.checkpoint_schema)
        self._weigher = Weigher(self.serial.conn)
        self.serial.conn.commit()
        start, gtid = self._start_position()
        self.serial.row.insert_if_missing(self.serial.conn, start)
        self.watermark = Watermark(start, self.recovery.gtid)
        self.scheduler = Scheduler(1 if cfg.apply.policy == "serial" else cfg.apply.workers)
        self.builder = TransactionBuilder()
        self._start_workers(start)
        clean = False
        try:
            self._stream(start, gtid)
            self._drain()
            clean = True
        finally:
            self._stop_workers(graceful=clean)
            with contextlib.suppress(Exception):
                self.serial.conn.close()
        return self.metrics

    def _start_position(self) -> tuple[BinlogPosition | None, str]:
        src = self.cfg.source
        if self.recovery.start is not None:
            log.info("resuming from checkpoint %s (%d committed beyond it)",
                     self.recovery.start, len(self.recovery.done))
            return self.recovery.start, ""
        if src.start_file:
            return BinlogPosition(src.start_file, src.start_pos), ""
        if src.start_gtid:
            return None, src.start_gtid
        raise ConfigError(
            "no start position: the target has no checkpoint yet, so set [source] start_file "
            "(and start_pos) or start_gtid to where the target's data stops"
        )

    def _start_workers(self, start: BinlogPosition | None) -> None:
        ctx = mp.get_context("spawn")
        a = self.cfg.apply
        self._outbox = ctx.Queue()
        # preserve_commit_order: tickets number the applied transactions in source order;
        # workers commit ticket n only after ``turn`` (last committed ticket) is n - 1
        self._turn = ctx.Value("q", 0) if a.preserve_commit_order else None
        for wid in range(1, self.scheduler.workers + 1):
            checkpoint.CheckpointRow(self.cfg.target.checkpoint_schema, wid).insert_if_missing(
                self.serial.conn, start
            )
            inbox = ctx.Queue(maxsize=a.queue_size)
            spec = WorkerSpec(wid, self.cfg.target, a.batch_txns, a.retries, a.retry_backoff_seconds)
            proc = ctx.Process(target=worker_main, args=(spec, inbox, self._outbox, self._turn),
                               name=f"applier-worker-{wid}", daemon=True)
            proc.start()
            self._workers.append(proc)
            self._inboxes.append(inbox)
            self._outgoing.append([])

    def _stop_workers(self, graceful: bool = True) -> None:
        """Graceful: STOP after the (drained) queues, wait. After an error: kill now (a
        killed worker's open batch rolls back with its checkpoint, so that is safe), as
        the queues may be full and never read again."""
        for inbox, proc in zip(self._inboxes, self._workers, strict=True):
            if graceful and proc.is_alive():
                with contextlib.suppress(Exception):
                    inbox.put(STOP, timeout=1)
            # exit must not wait for a feeder thread writing into a dead worker's pipe
            inbox.cancel_join_thread()
        deadline = time.monotonic() + (30 if graceful else 0)
        for proc in self._workers:
            proc.join(max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join(5)

    # -- the stream --------------------------------------------------------------------

    def _stream(self, start: BinlogPosition | None, gtid: str) -> None:
        cfg = self.cfg.source
        attempts = 0
        position, gtid_start = start, gtid
        while not self._stop:
            src = BinlogSource(cfg, self.flavor, non_blocking=self.cfg.apply.stop_at_end)
            try:
                src.open(position, gtid_start)
                attempts = 0
                self._scanner = self._new_scanner(src)
                if self._scanner is None:
                    items = src.events(self._on_idle)
                else:
                    items = src.read(self._scanner, self.builder.at_boundary, self._on_idle)
                for item in items:
                    if type(item) is list:
                        self._on_records(item, src.file)
                    else:
                        if src.big_ahead:  # the scanner stopped at a big transaction here
                            src.big_ahead = False
                            self._big_ahead = True
                        self._on_event(item, src.file)
                    if self._stop:
                        break
                return
            except EndOfBinlog:
                if self._cur is not None:
                    raise SourceError("the source binlog ends inside a transaction") from None
                return
            except (SourceDisconnected, errors.ConnectError) as e:
                attempts += 1
                if attempts > cfg.reconnect_attempts:
                    raise SourceError(
                        f"source {cfg.describe()} unreachable after {cfg.reconnect_attempts} reconnect "
                        f"attempts ({e}): check the server, then run again to resume"
                    ) from None
                log.warning("source connection lost (%s); reconnecting from the last applied position", e)
                self._abandon_partial()
                self._drain()
                if self.watermark.ordinal:
                    position = BinlogPosition(self.watermark.file, self.watermark.ordinal & 0xFFFFFFFF)
                time.sleep(min(30.0, cfg.reconnect_backoff_seconds * 2 ** (attempts - 1)))
            finally:
                src.close()

    def _new_scanner(self, src: BinlogSource):
        if native_scan is None or not self.cfg.apply.native_scan:
            return None
        return native_scan.Scanner(self._scan_route, checksum=src.checksum,
                                   max_rows=self.cfg.apply.big_txn_rows)

    def _scan_route(self, body: bytes):
        """The native scanner met a TableMap: how to key its rows events, or None to
        leave its transactions to the Python path (filtered tables, barriers)."""
        db, table_name = table_of_map(body)
        if not self._allowed(db):
            return None
        table = self.serial.applier.tables.get(body)
        if table.schema.barrier_reason:
            return None
        policy = self.cfg.apply.policy
        if policy == "writeset":
            return scan_route(self._table_keys(body, table), table.plan)
        extra = {"table": (table_key(db, table_name),), "database": (database_key(db),)}.get(policy, ())
        return scan_route(None, table.plan, extra)

    def _table_keys(self, body: bytes, table) -> TableKeys:
        """How to hash one TableMap's unique keys (cached until the next DDL)."""
        tkeys = self._tkeys.get(body)
        if tkeys is None:
            tkeys = self._tkeys[body] = TableKeys(table.schema, table.plan, self._weigher)
        return tkeys

    def _on_records(self, records: list, file: str) -> None:
        """Whole transactions from the native scanner: (gtid, timestamp, end_pos,
        payload, keys, rows) each, never barriers (it leaves those to _on_event)."""
        builder = self.builder
        builder.file = file
        self.metrics.scanned += len(records)
        for gtid, timestamp, end_pos, payload, keys, rows in records:
            txn = builder.whole(gtid, timestamp, end_pos, payload, rows)
            if timestamp:
                self.metrics.last_source_timestamp = timestamp
            self._settle(txn, keys)

    def _abandon_partial(self) -> None:
        self._big_ahead = False
        if self._cur is not None and self._cur.streaming:
            with contextlib.suppress(MySQLdb.Error):
                self.serial.conn.rollback()
        self._cur = None
        self.builder.reset()

    def _on_event(self, e: ev.Event, file: str) -> None:
        done = self.builder.add(e, file)
        if e.type in ev.ROWS_EVENTS:
            txn = self.builder.current
            assert txn is not None
            if self._cur is None or self._cur.txn is not txn:
                self._cur = _Current(txn, set(), after_statement=txn.is_ddl)
            self._on_rows(self._cur, txn.items[-1])  # type: ignore[arg-type]
        elif done is not None:
            cur = self._cur if self._cur is not None and self._cur.txn is done else _Current(done, set())
            self._cur = None
            self._big_ahead = False
            self._on_transaction(cur)
        elif e.type == ev.QUERY and self._cur is not None and self._cur.streaming:
            # SAVEPOINT / ROLLBACK TO inside a streamed transaction: apply it in place
            cur = self._cur
            stmt = cur.txn.items.pop()
            if any(self._allowed(d) for d in statement_databases(stmt)):  # type: ignore[arg-type]
                self.serial.applier.apply_items(cur.txn.table_maps, [stmt], cur.net)
        elif e.type == ev.HEARTBEAT:
            self._poll_acks()

    def _allowed(self, db: str) -> bool:
        a = self.cfg.apply
        if db == self.cfg.target.checkpoint_schema or db in a.ignore_databases:
            return False
        return not a.databases or db in a.databases

    def _on_rows(self, cur: _Current, item: RowsEvent) -> None:
        txn = cur.txn
        body = txn.table_maps[item.table_id]
        db, _ = table_of_map(body)
        if not self._allowed(db):
            txn.items.pop()
            return
        if cur.streaming:
            txn.rows += self.serial.applier.apply_items(txn.table_maps, [item], cur.net)
            txn.items.pop()
            return
        if self._big_ahead and not cur.after_statement:
            # the scanner already counted more than big_txn_rows rows in this transaction:
            # stream it from here instead of hashing rows until the threshold says so
            self._big_ahead = False
            self._begin_streaming(cur, count=True)
            return
        if cur.after_statement:
            # CREATE TABLE ... SELECT: the new table's rows share the statement's
            # transaction and the table is not on the target before the statement ran
            # there, so no lookup (nor streaming): _apply_ddl applies it all in order.
            return
        table = self.serial.applier.tables.get(body)
        reason = table.schema.barrier_reason
        if reason and not txn.barrier:
            txn.barrier = reason
        policy = self.cfg.apply.policy
        if policy == "writeset" and not reason:
            tkeys = self._table_keys(body, table)
            txn.rows += event_keys(tkeys, table.plan, item.op, item.body, item.version, cur.keys)
        else:
            txn.rows += len(decode_keys(table.plan, item.op, item.body, item.version, frozenset()))
            if policy == "table":
                cur.keys.add(table_key(table.tmap.db, table.tmap.table))
            elif policy == "database":
                cur.keys.add(database_key(table.tmap.db))
        if txn.rows > self.cfg.apply.big_txn_rows:
            self._begin_streaming(cur)

    def _begin_streaming(self, cur: _Current, *, count: bool = False) -> None:
        """Drain the workers, apply what was read of the transaction so far, and apply
        the rest as it arrives. ``count``: those rows were not counted yet."""
        log.info("transaction above big_txn_rows=%d rows: draining workers and streaming it",
                 self.cfg.apply.big_txn_rows)
        self._drain()
        cur.streaming = True
        cur.net = self.serial.applier.new_net()
        self.metrics.big_transactions += 1
        rows = self.serial.applier.apply_items(cur.txn.table_maps, cur.txn.items, cur.net)
        if count:
            cur.txn.rows += rows
        cur.txn.items.clear()

    def _on_transaction(self, cur: _Current) -> None:
        txn = cur.txn
        self.metrics.last_source_timestamp = txn.timestamp or self.metrics.last_source_timestamp
        txn.items = [
            i for i in txn.items
            if isinstance(i, RowsEvent) or any(self._allowed(d) for d in statement_databases(i))
        ]
        if cur.streaming:
            self.watermark.register(txn.seq, txn.end_ordinal, txn.file, txn.gtid)
            self._commit_serial(txn, streamed=True, net=cur.net)
            return
        self._settle(txn, cur.keys)

    def _settle(self, txn: Transaction, keys: set[int]) -> None:
        """A whole transaction: skip it (filtered out, committed before a restart), apply
        it alone (barrier) or route it to a worker."""
        ordinal = txn.end_ordinal
        self.watermark.register(txn.seq, ordinal, txn.file, txn.gtid)
        if not txn.items and not txn.payload:
            self.metrics.skipped_filtered += 1
            self.watermark.done(txn.seq)
            return
        if ordinal in self.recovery.done:
            self.metrics.skipped_recovered += 1
            self.watermark.done(txn.seq)
            return
        if not txn.payload and (txn.is_ddl or txn.barrier):  # (scanner ones never are)
            self._commit_serial(txn, streamed=False)
            return
        self._dispatch(txn, keys)

    # -- parallel path -----------------------------------------------------------------

    def _dispatch(self, txn: Transaction, keys: set[int]) -> None:
        """Route to a worker. A transaction whose keys several workers hold waits until
        only one does. Meanwhile later transactions that share no key with any waiting
        one are routed as usual (no row in common, so their order does not matter) and
        the others wait behind it, in source order: the coordinator keeps the workers'
        queues full instead of stalling on every conflict. With preserve_commit_order
        the coordinator itself waits (tickets follow dispatch order)."""
        waiting = self._waiting
        if waiting.blocks(keys):
            self._wait_in_line(txn, keys)
            return
        worker = self.scheduler.route(keys)
        if worker is None:
            self.metrics.waits += 1
            if self._turn is None:
                self._wait_in_line(txn, keys)
                return
            deadline = time.monotonic() + 3600
            while worker is None:
                self._wait_ack(deadline)
                worker = self.scheduler.route(keys)
        self._assign(worker, txn, keys)

    def _wait_in_line(self, txn: Transaction, keys: set[int]) -> None:
        self._waiting.add(txn, keys)
        # what it waits for may still be held back here (SEND_AT): send it, or the line
        # would only move once it is full
        self._send_all()
        if len(self._waiting) > MAX_WAITING:  # bounded memory: stop reading until some go
            deadline = time.monotonic() + 3600
            while len(self._waiting) > MAX_WAITING // 2:
                self._wait_ack(deadline)

    def _release_waiting(self) -> None:
        """Route waiting transactions whose conflicts have cleared, oldest first."""
        if self._releasing:  # _assign -> _send -> _poll_acks -> here: the outer call goes on
            return
        self._releasing = True
        try:
            for worker, txn, keys in self._waiting.release(self.scheduler):
                self._assign(worker, txn, keys)  # type: ignore[arg-type]
        finally:
            self._releasing = False

    def _assign(self, worker: int, txn: Transaction, keys: set[int]) -> None:
        # Tickets number transactions in dispatch order: the scheduler's per-worker
        # FIFO, and with preserve_commit_order the commit order (= source order there,
        # as nothing waits in line). Waiting transactions make dispatch order differ
        # from seq (source) order otherwise.
        self._ticket += 1
        txn.ticket = self._ticket
        self.scheduler.assign(worker, txn.ticket, keys)
        pending = self._outgoing[worker]
        pending.append(txn)
        if len(pending) >= SEND_AT:
            self._send(worker)
        self._dispatched += 1
        if self._dispatched % SEND_AT == 0:
            self._poll_acks()
            self._log_progress()

    def _send(self, worker: int) -> None:
        """Ship the worker's held-back transactions as one queue message."""
        txns = self._outgoing[worker]
        if not txns:
            return
        self._outgoing[worker] = []
        w = self.watermark
        wire = Work(txns, w.ordinal, w.file, w.gtid, self._schema_version).to_wire()
        inbox = self._inboxes[worker]
        while True:
            try:
                inbox.put(wire, timeout=0.5)
                return
            except queue.Full:
                self._poll_acks()
                self._check_workers()

    def _send_all(self) -> None:
        for worker in range(len(self._outgoing)):
            self._send(worker)

    def _on_idle(self) -> None:
        """The source has nothing more right now: send what is held back, read acks, and
        notice a dead worker (while the source is quiet nothing else would)."""
        self._send_all()
        self._poll_acks()
        now = time.monotonic()
        if now >= self._next_worker_check:
            self._next_worker_check = now + 0.5
            self._check_workers()
        self._log_progress()

    def _log_progress(self) -> None:
        now = time.monotonic()
        if now < self._next_progress_log:
            return
        self._next_progress_log = now + PROGRESS_SECONDS
        m, w = self.metrics, self.watermark
        log.info("applied %d transactions (%d rows, %.0f TPS), position %s:%d, lag %.1fs",
                 m.transactions, m.rows, m.tps, w.file, w.ordinal & 0xFFFFFFFF, m.lag_seconds())

    def _poll_acks(self) -> None:
        outbox = self._outbox
        while True:
            try:
                msg = outbox.get_nowait()
            except queue.Empty:
                return
            self._handle_ack(msg)

    def _wait_ack(self, deadline: float) -> None:
        self._send_all()  # a completion we wait for may still be held back here
        while True:
            try:
                msg = self._outbox.get(timeout=0.5)
                self._handle_ack(msg)
                return
            except queue.Empty:
                self._check_workers()
                if time.monotonic() > deadline:
                    raise TargetError("workers made no progress for an hour: check the target for locks") from None

    def _handle_ack(self, msg) -> None:
        if msg[0] == "error":
            _, wid, kind, text = msg
            cls = getattr(errors, kind, WorkerDied)
            raise cls(text) if isinstance(cls, type) and issubclass(cls, ApplierError) else WorkerDied(text)
        _, wid, seqs, rows, last_ticket = msg
        self.scheduler.complete(wid - 1, last_ticket)
        for seq in seqs:
            self.watermark.done(seq)
        self.metrics.transactions += len(seqs)
        self.metrics.rows += rows
        if self._waiting:
            self._release_waiting()
        self.metrics.batches += 1

    def _check_workers(self) -> None:
        for proc in self._workers:
            if proc.exitcode is not None:
                # an error message may be on its way, possibly behind other workers'
                # acknowledgements: read them all (bounded) and prefer it to an exit code
                for _ in range(10_000):
                    try:
                        self._handle_ack(self._outbox.get(timeout=1))
                    except queue.Empty:
                        break
                raise WorkerDied(
                    f"{proc.name} exited with code {proc.exitcode}: the checkpoint is consistent, "
                    "run `applier run` again to resume"
                )

    def _drain(self) -> None:
        """Wait until every routed and every waiting transaction has committed."""
        deadline = time.monotonic() + 3600
        while self._waiting or not self.scheduler.idle():
            self._wait_ack(deadline)

    # -- serial path (barriers) --------------------------------------------------------

    def _commit_serial(self, txn: Transaction, *, streamed: bool, net=None) -> None:
        self._drain()
        self.metrics.barriers += 1
        s = self.serial
        if txn.is_ddl and not streamed:  # a streamed one is never DDL (its statements ran)
            self._apply_ddl(txn)
        else:
            a = self.cfg.apply
            for attempt in range(a.retries + 1):
                try:
                    txn.rows += s.applier.apply_items(txn.table_maps, txn.items, net)
                    if net is not None:
                        net.flush(s.applier)
                    s.conn.query(self._row0(txn))
                    s.conn.commit()
                    break
                except MySQLdb.Error as e:
                    with contextlib.suppress(MySQLdb.Error):
                        s.conn.rollback()
                    if streamed or attempt == a.retries or (e.args and e.args[0] not in (1213, 1205)):
                        raise TargetError(f"target error applying transaction {txn.gtid or txn.seq}: {e}") from None
                    time.sleep(a.retry_backoff_seconds * 2**attempt)
                except ApplierError:
                    with contextlib.suppress(MySQLdb.Error):
                        s.conn.rollback()
                    raise
        self.watermark.done(txn.seq)
        if self._turn is not None:  # drained: every earlier ticket has committed
            self._ticket += 1
            self._turn.value = self._ticket
        self.metrics.transactions += 1
        self.metrics.rows += txn.rows

    def _row0(self, txn: Transaction, ddl_pending: int = 0, *, before: bool = False) -> bytes:
        w = self.watermark
        if before:
            return self.serial.row.statement(w.ordinal, w.file, w.gtid, [], "", 0, 0, ddl_pending)
        return self.serial.row.statement(txn.end_ordinal, txn.file, txn.gtid or w.gtid, [], txn.gtid,
                                         1, txn.timestamp)

    def _apply_ddl(self, txn: Transaction) -> None:
        s = self.serial
        rerun = txn.end_ordinal == self.recovery.ddl_pending
        s.conn.query(self._row0(txn, txn.end_ordinal, before=True))
        s.conn.commit()
        for item in txn.items:
            if isinstance(item, RowsEvent):  # CREATE TABLE ... SELECT
                txn.rows += s.applier.apply_items(txn.table_maps, [item])
                continue
            try:
                s.applier.apply_statement(item)
            except TargetError as e:
                if rerun and any(f"error {c}:" in str(e) for c in _DDL_ALREADY_DONE):
                    log.warning("DDL already applied before the restart, continuing: %s", e)
                else:
                    raise
        s.conn.query(self._row0(txn))
        s.conn.commit()
        self._schema_version += 1
        self._tkeys.clear()
        if self._scanner is not None:
            self._scanner.forget_tables()
        s.applier.tables.invalidate()



def install_signal_handlers(coord: Coordinator) -> None:
    signal.signal(signal.SIGTERM, coord.request_stop)
    signal.signal(signal.SIGINT, coord.request_stop)


__all__ = ["Coordinator", "install_signal_handlers"]

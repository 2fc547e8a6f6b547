"""Worker processes: each applies whole transactions on its own target connection.

A worker takes up to ``batch_txns`` transactions already waiting in its queue and
applies them as one target transaction together with its checkpoint row (see
``checkpoint``), so the target does one commit for many source transactions. It never
splits a source transaction across commits. Deadlocks and lock-wait timeouts roll the
batch back and retry it whole with backoff; any other error is reported to the
coordinator and the worker exits: it never skips a transaction.

Workers are started with the ``spawn`` method (no inherited sockets) and die with the
coordinator (PR_SET_PDEATHSIG), so an orphan can never commit after a restart began.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import queue
import signal
import time
from collections import deque
from dataclasses import dataclass

import MySQLdb

from .checkpoint import COORDINATOR_ROW, CheckpointRow
from .config import TargetConfig
from .connect import connect
from .errors import ApplierError, TargetError
from .schema import SchemaCache
from .target import RETRYABLE, BatchApplier, Executor, TableCache
from .transactions import Transaction, pack, unpack

log = logging.getLogger(__name__)

STOP = "stop"


@dataclass(frozen=True)
class WorkerSpec:
    worker_id: int
    target: TargetConfig
    batch_txns: int
    retries: int
    retry_backoff_seconds: float


@dataclass(slots=True)
class Work:
    """Transactions for one worker plus the coordinator's watermark when they were sent.
    Shipped as ``to_wire()`` tuples: several transactions per queue message keeps the
    per-transaction cost of crossing processes small."""

    txns: list[Transaction]
    watermark: int
    watermark_file: str
    watermark_gtid: str
    schema_version: int

    def to_wire(self) -> tuple:
        return (self.watermark, self.watermark_file, self.watermark_gtid, self.schema_version,
                [pack(t) for t in self.txns])

    @classmethod
    def from_wire(cls, data: tuple) -> Work:
        w, wf, wg, sv, txns = data
        return cls([unpack(t) for t in txns], w, wf, wg, sv)


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    # The signal only covers a death from now on. A coordinator that died while we were
    # starting up has already left us re-parented: exit rather than run as an orphan.
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:
        os._exit(1)


class Session:
    """A target connection with its applier and checkpoint row (workers and barriers)."""

    def __init__(self, target: TargetConfig, worker_id: int) -> None:
        self.conn = connect(target, "target", autocommit=False, found_rows=True)
        self.applier = BatchApplier(Executor(self.conn), TableCache(SchemaCache(self.conn)))
        self.row = CheckpointRow(target.checkpoint_schema, worker_id)
        if worker_id != COORDINATOR_ROW:  # row 0 never holds done entries
            self.row.resume(self.conn)
        self.schema_version = 0

    def apply_batch(self, batch: list[Work], retries: int, backoff: float, turn=None) -> int:
        """Apply the batch with the checkpoint in one target transaction. With ``turn``
        (preserve_commit_order: a shared counter of the last committed ticket), the
        batch holds consecutive tickets and commits only when the ticket before its
        first has committed."""
        last = batch[-1]
        if last.schema_version != self.schema_version:
            self.applier.tables.invalidate()
            self.schema_version = last.schema_version
        txns = [t for w in batch for t in w.txns]
        attempt = 0
        while True:
            try:
                rows = self.applier.apply_batch(txns)
                self.conn.query(
                    self.row.statement(
                        last.watermark, last.watermark_file, last.watermark_gtid,
                        [t.end_ordinal for t in txns], txns[-1].gtid, len(txns), txns[-1].timestamp,
                    )
                )
                if turn is not None and not wait_turn(turn, txns[0].ticket - 1, ORDER_ROLLBACK_SECONDS):
                    # An earlier transaction may be waiting for a lock we hold while we
                    # wait for it to commit: release ours, wait for our turn, redo.
                    self.conn.rollback()
                    if not wait_turn(turn, txns[0].ticket - 1, ORDER_GIVE_UP_SECONDS):
                        raise TargetError(
                            f"transaction {txns[0].gtid or txns[0].seq} waited "
                            f"{ORDER_GIVE_UP_SECONDS}s for its turn to commit: an earlier one is stuck"
                        )
                    continue
                self.conn.commit()
                if turn is not None:
                    turn.value = txns[-1].ticket
                self.row.committed()
                return rows
            except MySQLdb.Error as e:
                with contextlib.suppress(MySQLdb.Error):
                    self.conn.rollback()
                code = e.args[0] if e.args else 0
                if code not in RETRYABLE:
                    raise TargetError(f"target error {code} applying a batch: {e.args[-1]}") from None
                if attempt == retries:
                    raise TargetError(
                        f"target kept failing with error {code} ({e.args[-1]}) after {retries} retries: "
                        "raise [apply] retries or look for long transactions on the target"
                    ) from None
                time.sleep(backoff * (2**attempt))
                attempt += 1
            except ApplierError:
                with contextlib.suppress(MySQLdb.Error):
                    self.conn.rollback()
                raise


ORDER_ROLLBACK_SECONDS = 1.0  # waiting this long for our turn: assume we block an earlier one
ORDER_GIVE_UP_SECONDS = 3600.0


def wait_turn(turn, ticket: int, seconds: float) -> bool:
    """Wait until ``turn`` (the last committed ticket) reaches ``ticket``."""
    if turn.value >= ticket:
        return True
    deadline = time.monotonic() + seconds
    pause = 0.00005
    while turn.value < ticket:
        if time.monotonic() > deadline:
            return False
        time.sleep(pause)
        pause = min(pause * 2, 0.002)
    return True


def _take_queued(inbox, limit: int) -> tuple[list[Work], bool]:
    """Messages already waiting in ``inbox`` (at most ``limit`` transactions' worth),
    without blocking; the flag says STOP was among them."""
    taken: list[Work] = []
    count = 0
    while count < limit:
        try:
            msg = inbox.get_nowait()
        except queue.Empty:
            break
        if msg == STOP:
            return taken, True
        taken.append(Work.from_wire(msg))
        count += len(taken[-1].txns)
    return taken, False


def _batch_loop(spec: WorkerSpec, session: Session, inbox, outbox, turn) -> None:
    """Batches of whatever is queued, up to batch_txns transactions."""
    wid = spec.worker_id
    while True:
        first = inbox.get()
        if first == STOP:
            return
        batch = [Work.from_wire(first)]
        more, stop = _take_queued(inbox, spec.batch_txns - len(batch[0].txns))
        batch += more
        rows = session.apply_batch(batch, spec.retries, spec.retry_backoff_seconds)
        outbox.put(("done", wid, [t.seq for w in batch for t in w.txns], rows))
        if stop:
            return


def _ordered_loop(spec: WorkerSpec, session: Session, inbox, outbox, turn) -> None:
    """preserve_commit_order: a batch is a run of consecutive tickets (a batch holding
    tickets 1 and 3 while another worker holds 2 could never commit)."""
    wid = spec.worker_id
    pending: deque[tuple[Work, Transaction]] = deque()
    stop = False
    while True:
        if not pending:
            if stop:
                return
            msg = inbox.get()
            if msg == STOP:
                return
            work = Work.from_wire(msg)
            pending.extend((work, t) for t in work.txns)
        if not stop and len(pending) < spec.batch_txns:  # what is queued: longer runs
            more, stop = _take_queued(inbox, spec.batch_txns)
            pending.extend((work, t) for work in more for t in work.txns)
        work, txn = pending.popleft()
        run = [txn]
        while pending and len(run) < spec.batch_txns and pending[0][1].ticket == run[-1].ticket + 1:
            work, txn = pending.popleft()
            run.append(txn)
        batch = [Work(run, work.watermark, work.watermark_file, work.watermark_gtid, work.schema_version)]
        rows = session.apply_batch(batch, spec.retries, spec.retry_backoff_seconds, turn)
        outbox.put(("done", wid, [t.seq for t in run], rows))


def _report_and_exit(outbox, msg: tuple) -> None:
    """Send the error, then exit. ``put`` only hands the message to the queue's feeder
    thread: flush it (close + join_thread) before ``os._exit``, or it is lost."""
    with contextlib.suppress(Exception):
        outbox.put(msg)
        outbox.close()
        outbox.join_thread()
    os._exit(1)


def worker_main(spec: WorkerSpec, inbox, outbox, turn=None) -> None:
    """Process entry point. Messages in: Work or STOP. Out: ("done", id, seqs, rows) or
    ("error", id, error class name, message). ``turn``: see Session.apply_batch."""
    _die_with_parent()
    # The coordinator decides when to stop: a Ctrl-C (SIGINT) or a SIGTERM sent to the
    # whole process group (systemd's default) reaches it too, and it stops us cleanly.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    wid = spec.worker_id
    try:
        session = Session(spec.target, wid)
        loop = _ordered_loop if turn is not None else _batch_loop
        loop(spec, session, inbox, outbox, turn)
    except ApplierError as e:
        _report_and_exit(outbox, ("error", wid, type(e).__name__, str(e)))
    except Exception as e:  # noqa: BLE001 - report anything, never hang the coordinator
        _report_and_exit(outbox, ("error", wid, "WorkerDied", f"worker {wid} crashed: {type(e).__name__}: {e}"))
    with contextlib.suppress(Exception):
        session.conn.close()

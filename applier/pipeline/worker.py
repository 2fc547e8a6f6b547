"""A worker process: applies whole transactions on its own target connection.

A worker applies batches of whole transactions, each as one target transaction together
with its checkpoint row (see ``checkpoint``), so the target does one commit for many
source transactions. It never splits a source transaction across commits. Two threads
overlap the two halves of the work: the main thread reads the queue and plans the next
batch (``planner.BatchPlan``: decode, compact, build statements) while a runner thread
executes the previous one (``session.Session.execute``; MySQLdb releases the GIL while
the target works). A batch grows for as long as the runner is busy (up to
``batch_txns``), so batches are big exactly when the target is the bottleneck and
small, for low latency, when it is not. Any error is reported to the coordinator
(``messages.Failed``) and the worker exits: it never skips a transaction. Its own table
cache rewrites TableMaps into their target database (``[apply] rewrite_databases``,
from its ``WorkerSpec``) as the coordinator's does, so it writes the same tables.

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
import threading
from collections import deque
from dataclasses import dataclass

import MySQLdb

from ..binlog.transactions import Transaction
from ..config import TargetConfig
from ..db import codes
from ..db.connect import connect
from ..db.schema import SchemaCache
from ..errors import ApplierError, WorkerDied
from .filters import target_rewrite
from .messages import Done, Failed, Work
from .planner import BatchPlan, BatchPlanner
from .session import Session, lost
from .tables import TableCache

log = logging.getLogger(__name__)

STOP = "stop"
POLL_SECONDS = 0.0005  # while a plan grows: how often to look whether the runner is idle


@dataclass(frozen=True)
class WorkerSpec:
    worker_id: int  # 1-based: its checkpoint row
    target: TargetConfig
    batch_txns: int
    retries: int
    retry_backoff_seconds: float
    verify_before_image: bool = False
    rewrite_databases: tuple[str, ...] = ()  # [apply] rewrite_databases: this worker's TableCache


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    # The signal only covers a death from now on. A coordinator that died while we were
    # starting up has already left us re-parented: exit rather than run as an orphan.
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:
        os._exit(1)


def _done(wid: int, txns: list[Transaction], rows: int, retries: int) -> Done:
    return Done(wid - 1, tuple(t.seq for t in txns), rows, txns[-1].ticket, retries)


class _Runner:
    """The thread that executes planned batches on the session's connection, in order,
    and acknowledges each to the coordinator after its commit."""

    def __init__(self, spec: WorkerSpec, session: Session, outbox) -> None:
        self.spec, self.session, self.outbox = spec, session, outbox
        self.jobs: queue.Queue = queue.Queue(maxsize=1)  # one planned batch in reserve
        self.idle = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"runner-{spec.worker_id}", daemon=True)
        self.thread.start()

    def submit(self, plan: BatchPlan) -> None:
        self.jobs.put(plan.finish())

    def close(self) -> None:
        self.jobs.put(None)
        self.thread.join()

    def _run(self) -> None:
        spec = self.spec
        try:
            while True:
                self.idle.set()
                batch = self.jobs.get()
                self.idle.clear()
                if batch is None:
                    return
                retried = self.session.execute(batch, spec.retries, spec.retry_backoff_seconds)
                self.outbox.put(_done(spec.worker_id, batch.txns, batch.rows, retried))
        except BaseException as e:  # noqa: BLE001 - report anything, never hang the coordinator
            _report_and_exit(self.outbox, _failed(spec.worker_id, e))


def _batch_loop(spec: WorkerSpec, session: Session, planner: BatchPlanner, inbox, outbox) -> None:
    """Plan while the runner executes; hand it the plan when it is idle (or full)."""
    runner = _Runner(spec, session, outbox)
    plan: BatchPlan | None = None
    version = 0
    while True:
        if plan is not None and (runner.idle.is_set() or len(plan.txns) >= spec.batch_txns):
            runner.submit(plan)
            plan = None
        try:
            msg = inbox.get() if plan is None else inbox.get(timeout=POLL_SECONDS)
        except queue.Empty:
            continue
        if msg == STOP:
            if plan is not None:
                runner.submit(plan)
            runner.close()
            return
        work = Work.from_wire(msg)
        if plan is not None and work.schema_version != version:
            runner.submit(plan)  # (the coordinator drains before DDL: not expected)
            plan = None
        if plan is None:
            plan = planner.new_plan(work.schema_version)
            version = work.schema_version
        plan.add(work)


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


def _ordered_loop(spec: WorkerSpec, session: Session, planner: BatchPlanner, inbox, outbox, turn) -> None:
    """preserve_commit_order: a batch is a run of consecutive tickets (a batch holding
    tickets 1 and 3 while another worker holds 2 could never commit). Planned and
    executed in turn: commit order, not the target, is what limits this mode."""
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
        batch = planner.plan([Work(run, work.watermark, work.watermark_file, work.watermark_gtid,
                                   work.schema_version)])
        retried = session.execute(batch, spec.retries, spec.retry_backoff_seconds, turn)
        outbox.put(_done(spec.worker_id, run, batch.rows, retried))


def _failed(wid: int, e: BaseException) -> Failed:
    if isinstance(e, ApplierError):
        return Failed(wid - 1, e)
    if isinstance(e, MySQLdb.Error) and codes.code_of(e) in codes.GONE | codes.UNREACHABLE:
        return Failed(wid - 1, lost(e, f"in worker {wid}"))  # the coordinator resumes
    return Failed(wid - 1, WorkerDied(f"worker {wid} crashed: {type(e).__name__}: {e}"))


def _report_and_exit(outbox, msg: Failed) -> None:
    """Send the error, then exit. ``put`` only hands the message to the queue's feeder
    thread: flush it (close + join_thread) before ``os._exit``, or it is lost."""
    with contextlib.suppress(Exception):
        outbox.put(msg)
        outbox.close()
        outbox.join_thread()
    os._exit(1)


def worker_main(spec: WorkerSpec, inbox, outbox, turn=None) -> None:
    """Process entry point. In: ``Work.to_wire()`` tuples or STOP. Out: ``Done`` or
    ``Failed``. ``turn``: see Session.execute."""
    _die_with_parent()
    # The coordinator decides when to stop: a Ctrl-C (SIGINT) or a SIGTERM sent to the
    # whole process group (systemd's default) reaches it too, and it stops us cleanly.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the coordinator says it reloads nothing
    session = None
    try:
        session = Session(spec.target, spec.worker_id)
        # its own connection: schema lookups must not share the executing one
        conn = connect(spec.target, "target", stay_open=True)
        planner = BatchPlanner(TableCache(SchemaCache(conn), target_rewrite(spec.rewrite_databases, conn)),
                               spec.verify_before_image)
        if turn is not None:
            _ordered_loop(spec, session, planner, inbox, outbox, turn)
        else:
            _batch_loop(spec, session, planner, inbox, outbox)
    except Exception as e:  # noqa: BLE001 - report anything, never hang the coordinator
        _report_and_exit(outbox, _failed(spec.worker_id, e))
    if session is not None:
        session.close()

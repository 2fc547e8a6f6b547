"""Dispatch: whole transactions to the pool's workers, conflict-free, and back.

Routing is the ``scheduler``'s (keys held by one worker: that worker; by none: the least
busy; by several: not now). A transaction that cannot be routed waits in the
``WaitingLine`` while later transactions that share no key with any waiting one are
routed as usual (no row in common, so their order does not matter); those that do
wait behind it, in source order. With ``preserve_commit_order`` nothing passes a
waiting transaction: the dispatcher itself waits (tickets are the commit order).

Tickets number transactions in dispatch order: the scheduler's per-worker FIFO and,
with commit order, the order in which workers commit. Transactions are held back per
worker and shipped ``SEND_AT`` to a message (``messages.Work``, carrying the watermark
of when it was sent). Acknowledgements (``messages.Done``) release the scheduler's keys
and advance the ``checkpoint.Watermark``.

Control only flows down: reading acknowledgements (``_poll``) never routes; waiting
transactions are released at the top of ``dispatch``, ``idle`` and the wait loops.
"""

from __future__ import annotations

import time

from ..binlog.transactions import Transaction
from ..errors import TargetError
from ..metrics import Metrics
from .checkpoint import Watermark
from .messages import Done, Work
from .pool import Pool
from .scheduler import Scheduler, WaitingLine
from .width import Width

SEND_AT = 16  # transactions held back per worker before a queue message is sent
MAX_WAITING = 2_000  # transactions waiting for a conflict to clear before reading pauses
POLL_EVERY = 16  # dispatches between two looks at the acknowledgements
ACK_WAIT = 0.5  # seconds per wait for an acknowledgement (then the workers are checked)
STUCK_SECONDS = 3600.0
CHECK_SECONDS = 0.5  # how often an idle dispatcher looks for dead workers
ORDERED_RUN = 256  # preserve_commit_order: consecutive transactions kept on one worker
SATURATED = 2 * SEND_AT  # in flight per fed worker: the workers, not the source, set the pace


class Dispatcher:
    def __init__(self, pool: Pool, watermark: Watermark, metrics: Metrics, *,
                 ordered: bool = False, adapt: bool = True) -> None:
        self.pool = pool
        self.scheduler = Scheduler(pool.size)
        # how many workers get free transactions (with commit order too: a run of
        # consecutive tickets stays on a worker within the width)
        self.width = Width(pool.size) if adapt else None
        if self.width is not None:
            self.scheduler.width = self.width.value
        self._committed = 0
        self.watermark = watermark
        self.metrics = metrics
        self.ordered = ordered
        self.schema_version = 0  # DDL applied so far: workers drop stale table definitions
        self.line = WaitingLine()
        self._held: list[list[Transaction]] = [[] for _ in range(pool.size)]
        self._ticket = 0
        self._dispatched = 0
        self._next_check = 0.0
        self._run_worker = 0  # preserve_commit_order: the worker the current run goes to

    # -- the coordinator's calls ---------------------------------------------------------

    def dispatch(self, txn: Transaction, keys: set[int]) -> None:
        """Route ``txn`` to a worker, or let it wait in line."""
        line = self.line
        if line:
            self._release()
            if line.blocks(keys):
                self._wait_in_line(txn, keys)
                return
        if self.ordered:
            self._dispatch_ordered(txn, keys)
            return
        worker = self.scheduler.route(keys)
        if worker is None:
            self.metrics.waits += 1
            self._wait_in_line(txn, keys)
            return
        self._assign(worker, txn, keys)

    def _dispatch_ordered(self, txn: Transaction, keys: set[int]) -> None:
        """preserve_commit_order: a worker commits runs of consecutive tickets, so
        transactions no worker holds keys of stay with the current run's worker for
        ORDERED_RUN of them (runs of one would make every commit wait for the previous
        worker's); a conflict makes the dispatcher wait, nothing passes."""
        sched = self.scheduler
        run = self._run_worker
        prefer = run if run < sched.width and sched.busy(run) < ORDERED_RUN else None
        worker = sched.route(keys, prefer)
        if worker is None:
            self.metrics.waits += 1
            deadline = time.monotonic() + STUCK_SECONDS
            while worker is None:
                self._wait_ack(deadline)
                worker = sched.route(keys, prefer)
        self._run_worker = worker
        self._assign(worker, txn, keys)

    def idle(self) -> None:
        """The source has nothing more right now: ship what is held back, read
        acknowledgements, release waiting transactions, notice a dead worker."""
        self._send_all()
        self._poll()
        self._release()
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + CHECK_SECONDS
            self.pool.check()

    def drain(self) -> None:
        """Wait until every routed and every waiting transaction has committed."""
        deadline = time.monotonic() + STUCK_SECONDS
        while self.line or not self.scheduler.idle():
            self._wait_ack(deadline)
            self._release()

    def quiet(self) -> bool:
        """Nothing routed, waiting or held back: everything dispatched has committed."""
        return not self.line and self.scheduler.idle()

    def next_ticket(self) -> int:
        """A ticket for a transaction the coordinator commits itself (after ``drain``)."""
        self._ticket += 1
        return self._ticket

    # -- routing ---------------------------------------------------------------------------

    def _assign(self, worker: int, txn: Transaction, keys: set[int]) -> None:
        self._ticket += 1
        txn.ticket = self._ticket
        self.scheduler.assign(worker, txn.ticket, keys)
        held = self._held[worker]
        held.append(txn)
        if len(held) >= SEND_AT:
            self._send(worker)
        self._dispatched += 1
        if self._dispatched % POLL_EVERY == 0:
            self._poll()

    def _wait_in_line(self, txn: Transaction, keys: set[int]) -> None:
        self.line.add(txn, keys)
        # what it waits for may still be held back here: ship it, or the line would
        # only move once it is full
        self._send_all()
        if len(self.line) > MAX_WAITING:  # bounded memory: stop reading until some go
            deadline = time.monotonic() + STUCK_SECONDS
            while len(self.line) > MAX_WAITING // 2:
                self._wait_ack(deadline)
                self._release()

    def _release(self) -> None:
        """Route waiting transactions whose conflicts have cleared, oldest first."""
        for worker, txn, keys in self.line.release(self.scheduler):
            self._assign(worker, txn, keys)  # type: ignore[arg-type]

    # -- the pool ------------------------------------------------------------------------

    def _send(self, worker: int) -> None:
        """Ship the worker's held-back transactions as one message."""
        txns = self._held[worker]
        if not txns:
            return
        self._held[worker] = []
        w = self.watermark
        work = Work(txns, w.ordinal, w.file, w.gtid, self.schema_version)
        while not self.pool.send(worker, work, ACK_WAIT):
            self._poll()  # a full queue: completions free the keys and the watermark moves
            self.pool.check()

    def _send_all(self) -> None:
        for worker in range(len(self._held)):
            self._send(worker)

    def _poll(self) -> None:
        pool = self.pool
        while (ack := pool.next_ack(0)) is not None:
            self._done(ack)

    def _wait_ack(self, deadline: float) -> None:
        self._send_all()  # a completion we wait for may still be held back here
        while True:
            ack = self.pool.next_ack(ACK_WAIT)
            if ack is not None:
                self._done(ack)
                self._poll()
                return
            self.pool.check()
            if time.monotonic() > deadline:
                raise TargetError("workers made no progress for an hour: check the target for locks")

    def _done(self, ack: Done) -> None:
        self.scheduler.complete(ack.worker, ack.ticket)
        done = self.watermark.done
        for seq in ack.seqs:
            done(seq)
        m = self.metrics
        m.transactions += len(ack.seqs)
        m.rows += ack.rows
        m.batch(len(ack.seqs), ack.retries)
        if self.width is not None:
            self._committed += len(ack.seqs)
            sched = self.scheduler
            sched.width = self.width.observe(time.monotonic(), self._committed,
                                             sched.in_flight >= SATURATED * sched.width)

"""Worker pools behind one small protocol: ``send`` work to a worker, take the next
acknowledgement, ``check`` for dead workers, ``stop``.

``ProcessPool`` runs ``worker.worker_main`` processes with a bounded inbox each and one
shared outbox. ``InstantPool`` acknowledges every message as soon as it is sent, with
no target: the coordinator's own ceiling (``applier bench``'s decode figure) and the
dispatcher's unit tests use it.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import queue
import time
from collections import deque
from typing import Protocol

from ..config import ApplyConfig, TargetConfig
from ..errors import WorkerDied
from .messages import Done, Failed, Work
from .worker import STOP, WorkerSpec, worker_main


class Pool(Protocol):
    size: int
    turn: object | None  # preserve_commit_order: the shared last-committed ticket

    def send(self, worker: int, work: Work, timeout: float) -> bool:
        """Queue ``work`` for ``worker`` (0-based); False if its queue stayed full."""
        ...

    def next_ack(self, timeout: float) -> Done | None:
        """The next acknowledgement, waiting up to ``timeout`` seconds (0: don't wait);
        raises the error a worker failed with."""
        ...

    def check(self) -> None:
        """Raise if a worker process has exited."""
        ...

    def stop(self, graceful: bool) -> None:
        ...


def _ack(msg: Done | Failed) -> Done:
    if type(msg) is Failed:
        raise msg.error
    return msg


class ProcessPool:
    """``size`` worker processes (``spawn``), each with its checkpoint row ``1..size``.
    ``lazy``: the first one starts at once (a target that refuses the workers says so
    before anything is read), each other one with the first work sent to it (with the
    adaptive width, a worker never fed is never started: no process, no connection)."""

    def __init__(self, size: int, target: TargetConfig, apply: ApplyConfig, *, lazy: bool = False) -> None:
        # multiprocessing's resource tracker (a process of its own, started with the first
        # queue) cleans up the semaphores of a worker killed with -9 and warns about them
        # on stderr after the applier has exited, below its one-line error: quiet it
        os.environ.setdefault("PYTHONWARNINGS", "ignore::UserWarning:multiprocessing.resource_tracker")
        ctx = mp.get_context("spawn")
        self.size = size
        self._outbox = ctx.Queue()
        # preserve_commit_order: tickets number the applied transactions in source order;
        # workers commit ticket n only after ``turn`` (last committed ticket) is n - 1.
        # One worker commits its inbox in order anyway: it keeps the pipelined loop
        # (bench --commit-order: 1,626 TPS with turns against ~4,500 without)
        self.turn = ctx.Value("q", 0) if apply.preserve_commit_order and size > 1 else None
        self._procs: list = []
        self._started: list[bool] = []
        self._inboxes: list = []
        for wid in range(1, size + 1):
            inbox = ctx.Queue(maxsize=apply.queue_size)
            spec = WorkerSpec(wid, target, apply.batch_txns, apply.retries, apply.retry_backoff_seconds,
                              apply.verify_before_image, apply.rewrite_databases)
            proc = ctx.Process(target=worker_main, args=(spec, inbox, self._outbox, self.turn),
                               name=f"applier-worker-{wid}", daemon=True)
            if wid == 1 or not lazy:
                proc.start()
            self._started.append(wid == 1 or not lazy)
            self._procs.append(proc)
            self._inboxes.append(inbox)

    def send(self, worker: int, work: Work, timeout: float) -> bool:
        if not self._started[worker]:  # lazy: its first work
            self._procs[worker].start()
            self._started[worker] = True
        try:
            self._inboxes[worker].put(work.to_wire(), timeout=timeout)
            return True
        except queue.Full:
            return False

    def next_ack(self, timeout: float) -> Done | None:
        try:
            msg = self._outbox.get(timeout=timeout) if timeout > 0 else self._outbox.get_nowait()
        except queue.Empty:
            return None
        return _ack(msg)

    def check(self) -> None:
        for proc in self._procs:
            if proc.exitcode is not None:
                # its error message may be on its way, behind other workers'
                # acknowledgements: read what is there (bounded) and prefer it
                for _ in range(10_000):
                    try:
                        msg = self._outbox.get(timeout=1)
                    except queue.Empty:
                        break
                    if type(msg) is Failed:
                        raise msg.error
                raise WorkerDied(
                    f"{proc.name} exited with code {proc.exitcode}: the checkpoint is consistent, "
                    "run `applier run` again to resume"
                )

    def stop(self, graceful: bool) -> None:
        """Graceful: STOP after the (drained) queues, wait. After an error: kill now (a
        killed worker's open batch rolls back with its checkpoint, so that is safe), as
        the queues may be full and never read again."""
        for inbox, proc in zip(self._inboxes, self._procs, strict=True):
            if graceful and proc.is_alive():
                with contextlib.suppress(Exception):
                    inbox.put(STOP, timeout=1)
            # exit must not wait for a feeder thread writing into a dead worker's pipe
            inbox.cancel_join_thread()
        deadline = time.monotonic() + (30 if graceful else 0)
        for proc, started in zip(self._procs, self._started, strict=True):
            if not started:
                continue  # never fed (lazy)
            proc.join(max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join(5)


class InstantPool:
    """Acknowledges each message at once: every transaction 'commits' when it is sent.
    ``sent`` counts the messages per worker."""

    turn = None

    def __init__(self, size: int) -> None:
        self.size = size
        self.sent = [0] * size
        self._acks: deque[Done] = deque()

    def send(self, worker: int, work: Work, timeout: float) -> bool:
        self.sent[worker] += 1
        txns = work.txns
        self._acks.append(Done(worker, tuple(t.seq for t in txns), sum(t.rows for t in txns),
                               txns[-1].ticket))
        return True

    def next_ack(self, timeout: float) -> Done | None:
        return self._acks.popleft() if self._acks else None

    def check(self) -> None:
        pass

    def stop(self, graceful: bool) -> None:
        self._acks.clear()

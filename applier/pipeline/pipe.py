"""A statement sink that runs what it is given on a thread, in order (``PipedSink``).

A streamed big transaction is planned by the coordinator (rows decoded, compacted, made
into statements) and executed by the target. Run one after the other, the two halves
add up; through this sink the coordinator plans the next rows while the target executes
the statements of the rows before them (MySQLdb releases the GIL while the server
works). Only the serial path's streamed transactions use it.

Invariants:

* statements run in the order they were given, on the wrapped executor's connection, by
  the sink's one thread, and by nobody else until ``finish`` or ``stop`` returned (both
  wait for the thread): the caller must not use that connection in between;
* the first error stops execution: no later statement runs, and that error is raised to
  the caller at its next call or by ``finish`` (a streamed transaction is never
  committed past a statement that failed or was never run);
* ``fk_checks`` is the session's foreign_key_checks as the statements given so far
  leave it (what the planner must assume for the next one), like ``StatementLog``'s;
* at most ``depth`` statements wait to run, so memory stays bounded (each is at most
  one flush of ``compaction.NET_FLUSH_ROWS`` rows' worth).
"""

from __future__ import annotations

import queue
import threading

from ..binlog.transactions import Statement
from .session import Executor
from .sink import FK_CHECKS

_RUN, _SESSION, _STATEMENT = range(3)


class PipedSink:
    """A ``planner.StatementSink`` over an ``Executor``, executing on its own thread."""

    def __init__(self, executor: Executor, depth: int = 4) -> None:
        self.executor = executor
        self.fk_checks = executor.fk_checks
        self._jobs: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._stopped = False
        self._thread = threading.Thread(target=self._work, name="stream-sink", daemon=True)
        self._thread.start()

    # -- the StatementSink interface (the planner's thread) ------------------------------

    def run(self, sql: bytes, expect: int | None, what: str) -> int:
        self._put((_RUN, sql, expect, what))
        return expect or 0

    def session(self, sql: bytes, what: str) -> None:
        self._put((_SESSION, sql, None, what))
        if what.startswith(FK_CHECKS):
            self.fk_checks = what.endswith("1")

    def statement(self, stmt: Statement) -> None:
        self._put((_STATEMENT, stmt, None, ""))

    # -- the end ------------------------------------------------------------------------

    def finish(self) -> None:
        """Wait until every statement given has run; raise the first error, if any."""
        self._join()
        self._raise()

    def stop(self) -> None:
        """Run nothing more of what waits; return once the thread is done with the
        connection (a statement already running completes first)."""
        self._stopped = True
        self._join()

    # -- inside ---------------------------------------------------------------------------

    def _put(self, job: tuple) -> None:
        self._raise()
        if not self._thread.is_alive():
            raise RuntimeError("PipedSink used after finish() or stop()")
        self._jobs.put(job)

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _join(self) -> None:
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join()

    def _work(self) -> None:
        ex = self.executor
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if self._error is not None or self._stopped:
                continue  # taken off the queue (the producer never blocks), never run
            kind, arg, expect, what = job
            try:
                if kind == _RUN:
                    ex.run(arg, expect, what)
                elif kind == _SESSION:
                    ex.session(arg, what)
                else:
                    ex.statement(arg)
            except BaseException as e:  # noqa: BLE001 - raised to the caller, in its thread
                self._error = e

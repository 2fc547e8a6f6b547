"""``pipe.PipedSink`` without a server: a fake executor records what runs, on which
thread, and can fail or stall on a statement."""

from __future__ import annotations

import threading
import time

import pytest

from applier.binlog.transactions import Statement
from applier.errors import TargetError
from applier.pipeline.pipe import PipedSink
from applier.pipeline.sink import FK_CHECKS


class FakeExecutor:
    def __init__(self, fail_on: bytes = b"", stall: threading.Event | None = None) -> None:
        self.fk_checks = True
        self.ran: list[bytes] = []
        self.threads: set[str] = set()
        self.fail_on = fail_on
        self.stall = stall
        self.stalled = threading.Event()  # "slow" has begun

    def _do(self, sql: bytes) -> None:
        self.threads.add(threading.current_thread().name)
        if self.stall is not None and sql == b"slow":
            self.stalled.set()
            assert self.stall.wait(5)
        if sql == self.fail_on:
            raise TargetError(f"target refused {sql!r}")
        self.ran.append(sql)

    def run(self, sql: bytes, expect: int | None, what: str) -> int:
        self._do(sql)
        return expect or 0

    def session(self, sql: bytes, what: str) -> None:
        self._do(sql)
        if what.startswith(FK_CHECKS):
            self.fk_checks = what.endswith("1")

    def statement(self, stmt: Statement) -> None:
        self._do(stmt.sql)


def test_statements_run_in_order_on_one_other_thread():
    ex = FakeExecutor()
    pipe = PipedSink(ex, depth=2)  # a small queue: the producer waits, nothing is lost
    for i in range(200):
        pipe.run(b"r%d" % i, 1, "x")
        if i % 50 == 0:
            pipe.session(b"s%d" % i, "other")
            pipe.statement(Statement("db", b"t%d" % i, None))
    pipe.finish()
    want = []
    for i in range(200):
        want.append(b"r%d" % i)
        if i % 50 == 0:
            want += [b"s%d" % i, b"t%d" % i]
    assert ex.ran == want
    assert ex.threads == {"stream-sink"}


def test_fk_checks_follow_what_was_given_not_what_ran():
    stall = threading.Event()
    ex = FakeExecutor(stall=stall)
    pipe = PipedSink(ex)
    pipe.run(b"slow", None, "x")
    pipe.session(b"SET SESSION foreign_key_checks = 0", FK_CHECKS + "0")
    assert pipe.fk_checks is False and ex.fk_checks is True  # planned, not yet run
    stall.set()
    pipe.finish()
    assert ex.fk_checks is False


def test_the_first_error_stops_everything_after_it_and_reaches_the_caller():
    ex = FakeExecutor(fail_on=b"bad")
    pipe = PipedSink(ex)
    pipe.run(b"a", 1, "x")
    pipe.run(b"bad", 1, "x")
    deadline = time.monotonic() + 5
    with pytest.raises(TargetError, match="bad"):  # at a later call ...
        while time.monotonic() < deadline:
            pipe.run(b"later", 1, "x")
            time.sleep(0.001)
    with pytest.raises(TargetError, match="bad"):  # ... and at the end
        pipe.finish()
    assert ex.ran[0] == b"a" and b"bad" not in ex.ran
    assert all(sql == b"later" for sql in ex.ran[1:]) and len(ex.ran) < 3  # none ran after it


def test_stop_runs_nothing_that_waits_and_waits_for_the_running_one():
    stall = threading.Event()
    ex = FakeExecutor(stall=stall)
    pipe = PipedSink(ex, depth=8)
    pipe.run(b"slow", None, "x")
    for i in range(5):
        pipe.run(b"w%d" % i, 1, "x")
    assert ex.stalled.wait(5)
    threading.Timer(0.2, stall.set).start()
    pipe.stop()  # returns once "slow" is done
    assert ex.ran == [b"slow"]
    with pytest.raises(RuntimeError):
        pipe.run(b"after", 1, "x")

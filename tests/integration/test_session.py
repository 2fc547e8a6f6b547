"""A planned batch that meets a lock-wait timeout on the target is rolled back and run
again whole (``session.Session.execute``): its statements, its checkpoint row, and the
session settings it assumed at its start (foreign_key_checks) — on a real target, with
a real row lock held by another connection."""

from __future__ import annotations

import threading
import time

import pytest

from applier.binlog.position import BinlogPosition
from applier.binlog.transactions import Transaction
from applier.config import TargetConfig
from applier.errors import TargetError
from applier.pipeline import checkpoint
from applier.pipeline.messages import Work
from applier.pipeline.planner import PlannedBatch
from applier.pipeline.session import Session
from applier.pipeline.sink import FK_CHECKS, SESSION_STATEMENT

pytestmark = pytest.mark.flavors("mariadb", "mysql")  # MariaDB -> MariaDB, MySQL -> MySQL


def _batch(db: str, fk_at_start: bool) -> PlannedBatch:
    txn = Transaction(1, "0-1-7", "mysql-bin.000001", 500, 0)
    statements = [
        (b"SET SESSION foreign_key_checks = 0", SESSION_STATEMENT, FK_CHECKS + "0"),
        (f"UPDATE {db}.t SET n = n + 1 WHERE id = 1".encode(), 1, f"UPDATE of {db}.t"),
        (b"SET SESSION foreign_key_checks = 1", SESSION_STATEMENT, FK_CHECKS + "1"),
    ]
    return PlannedBatch(statements, fk_at_start, [txn], 1, Work([txn], 0, "mysql-bin.000001", "", 0))


def _session(target, dbname) -> Session:
    tc = target.server_config()
    cfg = TargetConfig(host=tc.host, port=tc.port, user=tc.user, password=tc.password,
                       checkpoint_schema=f"ckpt_{dbname}")
    conn = target.connect()
    checkpoint.ensure_table(conn, cfg.checkpoint_schema)
    checkpoint.CheckpointRow(cfg.checkpoint_schema, 1).insert_if_missing(
        conn, BinlogPosition("mysql-bin.000001", 4))
    conn.close()
    session = Session(cfg, 1)
    session.conn.query(b"SET SESSION innodb_lock_wait_timeout = 1")
    return session


def _setup(target, dbname) -> None:
    target.execute(f"CREATE DATABASE {dbname}")
    target.execute(f"CREATE TABLE {dbname}.t (id INT PRIMARY KEY, n INT NOT NULL)")
    target.execute(f"INSERT INTO {dbname}.t VALUES (1, 0)")


def test_lock_wait_timeout_retries_the_whole_batch(target, dbname):
    _setup(target, dbname)
    session = _session(target, dbname)
    blocker = target.connect()
    blocker.autocommit(False)
    cur = blocker.cursor()
    cur.execute(f"SELECT * FROM {dbname}.t WHERE id = 1 FOR UPDATE")  # holds the row
    release = threading.Timer(1.5, blocker.commit)  # after the first attempt timed out
    release.start()
    try:
        started = time.monotonic()
        session.execute(_batch(dbname, fk_at_start=True), retries=5, backoff=0.2)
        assert time.monotonic() - started >= 1.0  # it did wait for the lock and retry
    finally:
        release.join()
        blocker.close()
    # applied once (not once per attempt), with its checkpoint row, in one commit
    assert target.query(f"SELECT n FROM {dbname}.t") == [(1,)]
    rec = checkpoint.load(target.connect(), f"ckpt_{dbname}")
    assert rec.done == frozenset({BinlogPosition("mysql-bin.000001", 500).ordinal})
    # the session's foreign_key_checks are what the batch left, and tracked as such
    cur = session.conn.cursor()
    cur.execute("SELECT @@SESSION.foreign_key_checks")
    assert cur.fetchone()[0] == 1
    session.conn.close()


def test_a_retry_restores_the_settings_the_batch_assumed(target, dbname):
    """The first attempt stops after switching foreign_key_checks off (session settings
    survive a rollback); the retry must start with them on, as the batch assumed."""
    _setup(target, dbname)
    session = _session(target, dbname)
    batch = _batch(dbname, fk_at_start=True)
    batch.statements.pop()  # the batch ends with the checks off
    blocker = target.connect()
    blocker.autocommit(False)
    blocker.cursor().execute(f"SELECT * FROM {dbname}.t WHERE id = 1 FOR UPDATE")
    restored: list[int] = []
    real = session.executor.settle  # record what the server held after each settling

    def recording(fk_checks: bool) -> None:
        real(fk_checks)
        cur = session.conn.cursor()
        cur.execute("SELECT @@SESSION.foreign_key_checks")
        restored.append(cur.fetchone()[0])
        cur.close()

    session.executor.settle = recording  # type: ignore[method-assign]
    release = threading.Timer(1.5, blocker.commit)
    release.start()
    try:
        session.execute(batch, retries=5, backoff=0.2)
    finally:
        release.join()
        blocker.close()
    assert restored and set(restored) == {1}  # every retry began with the checks on again
    assert target.query(f"SELECT n FROM {dbname}.t") == [(1,)]
    cur = session.conn.cursor()
    cur.execute("SELECT @@SESSION.foreign_key_checks")
    assert cur.fetchone()[0] == 0  # what the batch's statements left
    session.conn.close()


def test_retries_exhausted_is_an_error_naming_the_setting(target, dbname):
    _setup(target, dbname)
    session = _session(target, dbname)
    blocker = target.connect()
    blocker.autocommit(False)
    blocker.cursor().execute(f"SELECT * FROM {dbname}.t WHERE id = 1 FOR UPDATE")
    try:
        with pytest.raises(TargetError, match=r"after 1 retries: raise \[apply\] retries"):
            session.execute(_batch(dbname, fk_at_start=True), retries=1, backoff=0.01)
    finally:
        blocker.rollback()
        blocker.close()
    assert target.query(f"SELECT n FROM {dbname}.t") == [(0,)]
    session.conn.close()

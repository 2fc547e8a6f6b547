"""Drop-in for the SQL thread on real servers: a native MariaDB replica under a
concurrent workload -> `applier takeover` -> `applier run` (stopped by SIGTERM, then
killed -9 mid-way, leaving gaps) -> `applier handback` -> the native replica catches up.
Per-row counters and a ledger (one row per source transaction) are compared at the end:
nothing lost, nothing applied twice. Every bad input: one clear line, nothing changed.
"""

from __future__ import annotations

import random
import signal
import subprocess
import threading
import time
from pathlib import Path

import MySQLdb
import MySQLdb.cursors
import pytest

from applier.binlog.position import MariadbGtidPos
from applier.db.replica import Replica
from applier.harness import sandbox
from tests.appliers import Applier, applied
from tests.integration.test_cli_errors import APPLIER, REPO, assert_clean_error, run_cli
from tests.support import assert_same, render_toml

ROWS = 40
WAIT = 90.0


@pytest.fixture
def pair(tmp_path, mariadb_available):
    """A source and a target that is its native replica (from the source's first event)."""
    source, target = sandbox.start_pair(tmp_path / "servers")
    try:
        first = source.query("SHOW BINARY LOGS")[0][0]
        target.execute(
            "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%s, MASTER_USER=%s, "
            "MASTER_PASSWORD=%s, MASTER_LOG_FILE=%s, MASTER_LOG_POS=4, MASTER_USE_GTID=no",
            (source.port, source.user, source.password, first))
        target.execute("START SLAVE")
        yield source, target
    finally:
        target.stop()
        source.stop()


def seed(source, db: str) -> None:
    source.execute(f"CREATE DATABASE {db}")
    source.execute(f"CREATE TABLE {db}.counters (id INT PRIMARY KEY, n INT NOT NULL)")
    source.execute(f"CREATE TABLE {db}.ledger (seq INT PRIMARY KEY, at_id INT NOT NULL)")
    source.execute(f"INSERT INTO {db}.counters SELECT seq, 0 FROM {db}.seq_1_to_{ROWS}")


class Load:
    """Transactions on the source from a thread: two counters + a ledger row each; at
    most ``count`` of them (``stop()`` ends it sooner: ``done`` says how many)."""

    def __init__(self, source, db: str, count: int, pause: float, domains: int = 1) -> None:
        self.source, self.db, self.count, self.pause = source, db, count, pause
        self.domains = domains  # MariaDB: transaction k in GTID domain k % domains
        self.done = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        rng = random.Random(7)
        conn = self.source.connect()
        try:
            conn.autocommit(False)
            cur = conn.cursor()
            for seq in range(1, self.count + 1):
                if self.domains > 1:
                    cur.execute(f"SET SESSION gtid_domain_id = {seq % self.domains}")
                a, b = rng.randrange(1, ROWS + 1), rng.randrange(1, ROWS + 1)
                cur.execute(f"UPDATE {self.db}.counters SET n = n + 1 WHERE id IN (%s, %s)", (a, b))
                cur.execute(f"INSERT INTO {self.db}.ledger VALUES (%s, %s)", (seq, a))
                conn.commit()
                self.done = seq
                if self._stop.wait(self.pause):
                    break
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e
        finally:
            conn.close()

    def stop(self) -> int:
        """End the load after the transaction it runs; how many committed."""
        self._stop.set()
        self.join()
        return self.done

    def join(self) -> None:
        self.thread.join(WAIT)
        assert not self.thread.is_alive() and self.error is None, self.error


def config(tmp_path: Path, source, target, db: str, **apply) -> Path:
    sc, tc = source.server_config(), target.server_config()
    path = tmp_path / "applier.toml"
    path.write_text(render_toml({
        "source": {"host": sc.host, "port": sc.port, "user": sc.user, "password": sc.password,
                   "heartbeat_seconds": 1.0},
        "target": {"host": tc.host, "port": tc.port, "user": tc.user, "password": tc.password},
        "apply": {"databases": [db], "workers": 4, "batch_txns": 16, **apply},
    }))
    return path


def wait_for(what: str, predicate, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def caught_up(source, target) -> bool:
    st = Replica(target.connect(), "mariadb", "target").status()
    file, pos = source.binlog_position()
    return st is not None and (st.exec_file, st.exec_pos) == (file, pos)


def test_takeover_run_handback_under_load(pair, tmp_path, dbname):
    source, target = pair
    seed(source, dbname)
    wait_for("the native replica", lambda: caught_up(source, target))
    load = Load(source, dbname, count=2500, pause=0.003)
    path = config(tmp_path, source, target, dbname)
    try:
        wait_for("some load", lambda: load.done > 200)
        out = run_cli("takeover", "--config", str(path))
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith("took over at mysql-bin.")
        st = Replica(target.connect(), "mariadb", "target").status()
        assert not st.sql_running and not st.io_running
        ckpt = "mts_applier"
        first = Applier(path, log_dir=tmp_path, name="run1")
        wait_for("applied transactions", lambda: applied(target, ckpt) > 300)
        first.signal(signal.SIGTERM, group=False)
        assert first.wait() == 0, first.describe()
        second = Applier(path, log_dir=tmp_path, name="run2")
        base = applied(target, ckpt)
        wait_for("more applied transactions", lambda: applied(target, ckpt) > base + 300)
        second.signal(signal.SIGKILL, group=True)  # mid-way: workers may leave gaps
        second.wait()
        second.assert_gone()
        out = run_cli("handback", "--config", str(path), timeout=WAIT)
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith("handed back at mysql-bin.")
        again = run_cli("run", "--config", str(path), "--stop-at-end")
        assert_clean_error(again, 5, "its own replica SQL thread runs", "applier takeover")
    finally:
        load.join()
    wait_for("the native replica after handback", lambda: caught_up(source, target))
    assert_same(source, target, dbname)
    target.execute("STOP SLAVE")
    again = run_cli("run", "--config", str(path), "--stop-at-end")
    assert_clean_error(again, 2, "handed back", "applier takeover")
    ledger = target.query(f"SELECT COUNT(*), SUM(n) FROM {dbname}.ledger, "
                          f"(SELECT SUM(n) AS n FROM {dbname}.counters) c")
    assert ledger[0][0] == 2500


def test_takeover_bad_inputs_change_nothing(pair, source, target, tmp_path, dbname):
    replica_source, replica = pair
    seed(replica_source, dbname)
    wait_for("the native replica", lambda: caught_up(replica_source, replica))
    # not a replica
    out = run_cli("takeover", "--config", str(config(tmp_path, source, target, dbname)))
    assert_clean_error(out, 2, "is not a replica")
    # the replica replicates from another server than [source]
    out = run_cli("takeover", "--config", str(config(tmp_path, source, replica, dbname)))
    assert_clean_error(out, 2, "replicates from 127.0.0.1:", "point [source] at the replica's source")
    assert Replica(replica.connect(), "mariadb", "t").status().sql_running
    # the SQL thread stopped on an error
    replica.execute(f"INSERT INTO {dbname}.counters VALUES ({ROWS + 1}, 0)")
    replica_source.execute(f"INSERT INTO {dbname}.counters VALUES ({ROWS + 1}, 0)")
    wait_for("the replica's error", lambda: Replica(replica.connect(), "mariadb", "t").status().sql_errno)
    path = config(tmp_path, replica_source, replica, dbname)
    out = run_cli("takeover", "--config", str(path))
    assert_clean_error(out, 5, "stopped on error 1062", "fix it")
    replica.execute(f"DELETE FROM {dbname}.counters WHERE id = {ROWS + 1}")
    replica.execute("START SLAVE")
    wait_for("the native replica", lambda: caught_up(replica_source, replica))
    # a takeover, then a second one without --force
    assert run_cli("takeover", "--config", str(path)).returncode == 0
    out = run_cli("takeover", "--config", str(path))
    assert_clean_error(out, 2, "already holds a position", "--force")
    assert run_cli("takeover", "--config", str(path), "--force").returncode == 0
    # handback with no gaps, then the native replica goes on
    assert run_cli("handback", "--config", str(path)).returncode == 0
    replica_source.execute(f"UPDATE {dbname}.counters SET n = n + 5")
    wait_for("the native replica", lambda: caught_up(replica_source, replica))
    assert_same(replica_source, replica, dbname)


def test_handback_applies_exactly_the_transactions_in_gaps(pair, tmp_path, dbname):
    """A worker blocked on a row lock while another commits later transactions, then
    kill -9: the checkpoint has gaps. handback applies exactly the missing ones."""
    source, target = pair
    seed(source, dbname)
    wait_for("the native replica", lambda: caught_up(source, target))
    path = config(tmp_path, source, target, dbname, workers=2, batch_txns=1)
    assert run_cli("takeover", "--config", str(path)).returncode == 0
    source.execute(f"UPDATE {dbname}.counters SET n = n + 1 WHERE id = 1")  # blocked below
    for seq in range(1, 31):
        source.execute(f"INSERT INTO {dbname}.ledger VALUES (%s, %s)", (seq, seq))
    blocker = target.connect()
    blocker.autocommit(False)
    blocker.cursor().execute(f"SELECT * FROM {dbname}.counters WHERE id = 1 FOR UPDATE")
    try:
        app = Applier(path, log_dir=tmp_path, name="gaps")
        wait_for("later transactions to commit out of order", lambda: target.query(
            "SELECT COUNT(*) FROM mts_applier.checkpoint WHERE done <> ''")[0][0] > 0)
        time.sleep(0.5)
        app.signal(signal.SIGKILL, group=True)
        app.wait()
        app.assert_gone()
    finally:
        blocker.rollback()
        blocker.close()
    rows = target.query("SELECT done FROM mts_applier.checkpoint WHERE done <> ''")
    assert rows, "no transaction was committed out of order: the test set-up failed"
    assert int(target.query(f"SELECT n FROM {dbname}.counters WHERE id = 1")[0][0]) == 0
    out = run_cli("handback", "--config", str(path), timeout=WAIT)
    assert out.returncode == 0, out.stderr
    wait_for("the native replica after handback", lambda: caught_up(source, target))
    assert_same(source, target, dbname)


def killed_midway(args: list[str], delay: float) -> int:
    """``applier ARGS`` killed -9 after ``delay`` seconds (or its exit code when it ended
    first; -9 when killed)."""
    proc = subprocess.Popen([*APPLIER, *args], cwd=REPO, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return proc.wait(delay)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(WAIT)


def test_kill_9_during_takeover_and_handback_then_rerun(pair, tmp_path, dbname):
    """kill -9 at several moments of `takeover` and of `handback`, under load; rerunning
    the command finishes the switch (a takeover that already wrote its position says so;
    a handback that marked the checkpoint but did not start the replica starts it), and
    the native replica ends equal to the source, every ledger row once."""
    source, target = pair
    seed(source, dbname)
    wait_for("the native replica", lambda: caught_up(source, target))
    load = Load(source, dbname, count=1500, pause=0.004)
    path = config(tmp_path, source, target, dbname)
    delays = (0.3, 0.6, 0.9, 1.2)
    try:
        wait_for("some load", lambda: load.done > 100)
        for delay in delays:
            killed_midway(["takeover", "--config", str(path)], delay)
        out = run_cli("takeover", "--config", str(path))
        assert out.returncode == 0 or "already holds a position" in out.stderr, out.stderr
        app = Applier(path, log_dir=tmp_path, name="run")
        wait_for("applied transactions", lambda: applied(target, "mts_applier") > 200)
        app.signal(signal.SIGKILL, group=True)
        app.wait()
        app.assert_gone()
        for delay in delays:
            killed_midway(["handback", "--config", str(path)], delay)
        out = run_cli("handback", "--config", str(path), timeout=WAIT)
        assert out.returncode == 0, out.stderr
        assert "the native replica runs" in out.stdout
        st = Replica(target.connect(), "mariadb", "target").status()
        assert st.sql_running and st.io_running
    finally:
        load.join()
    wait_for("the native replica after handback", lambda: caught_up(source, target))
    assert_same(source, target, dbname)
    assert target.query(f"SELECT COUNT(*) FROM {dbname}.ledger")[0][0] == 1500


def test_handback_rerun_starts_a_replica_left_stopped(pair, tmp_path, dbname):
    """The state a kill -9 between marking the checkpoint handed back and START SLAVE
    leaves: rerunning handback starts the native replica (and says where it is); with
    the replica running a rerun succeeds and changes nothing (a script may run it again
    after a kill that came once the handback had finished)."""
    source, target = pair
    seed(source, dbname)
    wait_for("the native replica", lambda: caught_up(source, target))
    path = config(tmp_path, source, target, dbname)
    assert run_cli("takeover", "--config", str(path)).returncode == 0
    source.execute(f"UPDATE {dbname}.counters SET n = n + 1")
    assert run_cli("run", "--config", str(path), "--stop-at-end").returncode == 0
    out = run_cli("handback", "--config", str(path))
    assert out.returncode == 0, out.stderr
    target.execute("STOP SLAVE")
    source.execute(f"UPDATE {dbname}.counters SET n = n + 1")
    out = run_cli("handback", "--config", str(path))
    assert out.returncode == 0, out.stderr
    assert "the native replica runs" in out.stdout
    wait_for("the native replica", lambda: caught_up(source, target))
    assert_same(source, target, dbname)
    before = Replica(target.connect(), "mariadb", "target").status()
    out = run_cli("handback", "--config", str(path))
    assert out.returncode == 0, out.stderr
    assert "the native replica runs" in out.stdout
    after = Replica(target.connect(), "mariadb", "target").status()
    assert after.sql_running and after.io_running
    assert (after.exec_file, after.exec_pos) == (before.exec_file, before.exec_pos)


def test_handback_to_a_target_that_was_never_a_replica(tmp_path, dbname, mariadb_available):
    """The target got its data from the applier alone: handback writes CHANGE MASTER with
    [source]'s host, port, user, password and TLS (preferred, and this source offers
    none: MASTER_SSL=0), starts the replica and returns once its IO thread is
    connected; the native replica then applies what the source writes next."""
    source, target = sandbox.start_pair(tmp_path / "servers")
    try:
        start = source.binlog_position()
        seed(source, dbname)
        sc, tc = source.server_config(), target.server_config()
        path = tmp_path / "lone.toml"
        path.write_text(render_toml({
            "source": {"host": sc.host, "port": sc.port, "user": sc.user, "password": sc.password,
                       "start_file": start[0], "start_pos": start[1]},
            "target": {"host": tc.host, "port": tc.port, "user": tc.user, "password": tc.password},
            "apply": {"databases": [dbname], "workers": 2},
        }))
        assert run_cli("run", "--config", str(path), "--stop-at-end").returncode == 0
        assert Replica(target.connect(), "mariadb", "target").status() is None
        out = run_cli("handback", "--config", str(path), timeout=WAIT)
        assert out.returncode == 0, out.stderr
        assert source.password not in out.stdout + out.stderr
        st = Replica(target.connect(), "mariadb", "target").status()
        assert st is not None and st.io_running and st.sql_running, st
        conn = target.connect()
        cur = conn.cursor(MySQLdb.cursors.DictCursor)
        cur.execute("SHOW SLAVE STATUS")
        assert cur.fetchone()["Master_SSL_Allowed"] == "No"  # the source offers no TLS
        conn.close()
        source.execute(f"UPDATE {dbname}.counters SET n = n + 1")
        wait_for("the native replica", lambda: caught_up(source, target))
        assert_same(source, target, dbname)
    finally:
        target.stop()
        source.stop()


def _domains(gtid: str) -> dict[int, int]:
    """A MariaDB GTID position as {domain: seq}."""
    return {g.domain: g.seq for g in MariadbGtidPos.parse(gtid).domains().values()}


@pytest.fixture
def gtid_pair(tmp_path, mariadb_available):
    """A source and a target that is its native replica by GTID (MASTER_USE_GTID=slave_pos)
    with parallel replication, so its GTID domains apply independently."""
    source = sandbox.make_source(tmp_path / "servers" / "source")
    target = sandbox.make_target(tmp_path / "servers" / "target")
    target.options.update({"slave_parallel_threads": "4", "slave_parallel_mode": "optimistic"})
    source.start()
    try:
        target.start()
        try:
            yield source, target
        finally:
            target.stop()
    finally:
        source.stop()


def gtid_caught_up(source, target) -> bool:
    return _domains(target.query("SELECT @@GLOBAL.gtid_slave_pos")[0][0]) == _domains(source.gtid_position())


def test_takeover_and_handback_of_a_gtid_replica_with_two_domains(gtid_pair, tmp_path, dbname):
    """A native replica by GTID (MASTER_USE_GTID=slave_pos) of a source writing in two
    GTID domains: takeover records its gtid_slave_pos (both domains) with its position;
    runs (SIGTERM, then kill -9); handback sets gtid_slave_pos to the source's GTID
    position at the applier's exact position (every domain) with MASTER_USE_GTID =
    slave_pos; the native replica catches up in both domains, every ledger row once."""
    source, target = gtid_pair
    seed(source, dbname)
    target.execute("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%s, MASTER_USER=%s, "
                   "MASTER_PASSWORD=%s, MASTER_USE_GTID=slave_pos",
                   (source.port, source.user, source.password))
    target.execute("START SLAVE")
    wait_for("the native replica", lambda: gtid_caught_up(source, target))
    load = Load(source, dbname, count=100_000, pause=0.002, domains=2)  # stopped below
    path = config(tmp_path, source, target, dbname)
    ckpt = "mts_applier"
    try:
        wait_for("some load in both domains", lambda: load.done > 100)
        out = run_cli("takeover", "--config", str(path))
        assert out.returncode == 0, out.stderr
        slave_pos = target.query("SELECT @@GLOBAL.gtid_slave_pos")[0][0]
        assert set(_domains(slave_pos)) == {0, 1}, slave_pos
        row = target.query(f"SELECT watermark_file, watermark, watermark_gtid FROM {ckpt}.checkpoint")
        assert len(row) == 1 and row[0][2] == slave_pos and row[0][0].startswith("mysql-bin.")
        # the file position taken is the one where the source was at that GTID position
        at = source.query("SELECT BINLOG_GTID_POS(%s, %s)", (row[0][0], int(row[0][1]) & 0xFFFFFFFF))[0][0]
        assert _domains(at) == _domains(slave_pos)
        assert f"GTID {slave_pos})" in out.stdout, out.stdout
        first = Applier(path, log_dir=tmp_path, name="run1")
        wait_for("applied transactions", lambda: applied(target, ckpt) > 200)
        first.signal(signal.SIGTERM, group=False)
        assert first.wait() == 0, first.describe()
        second = Applier(path, log_dir=tmp_path, name="run2")
        base = applied(target, ckpt)
        wait_for("more applied transactions", lambda: applied(target, ckpt) > base + 200)
        second.signal(signal.SIGKILL, group=True)  # mid-way: workers may leave gaps
        second.wait()
        second.assert_gone()
        out = run_cli("handback", "--config", str(path), timeout=WAIT)
        assert out.returncode == 0, out.stderr
        handed = out.stdout.removeprefix("handed back at GTID ").split(";")[0]
        assert out.stdout.startswith("handed back at GTID ") and set(_domains(handed)) == {0, 1}, out.stdout
        conn = target.connect()
        cur = conn.cursor(MySQLdb.cursors.DictCursor)
        cur.execute("SHOW SLAVE STATUS")
        st = cur.fetchone()
        conn.close()
        assert st["Using_Gtid"] == "Slave_Pos", st["Using_Gtid"]
        rec = target.query(f"SELECT watermark_file, watermark FROM {ckpt}.checkpoint")[0]
        at = source.query("SELECT BINLOG_GTID_POS(%s, %s)", (rec[0], int(rec[1]) & 0xFFFFFFFF))[0][0]
        assert _domains(handed) == _domains(at)  # the applier's exact position, every domain
        after = load.done  # the native replica applies what the source writes from now on
        wait_for("more load", lambda: load.done > after + 40)
        later = _domains(source.gtid_position())
        wait_for("the native replica to apply the new load in both domains", lambda: all(
            _domains(target.query("SELECT @@GLOBAL.gtid_slave_pos")[0][0]).get(d, 0) >= later[d]
            for d in (0, 1)))
    finally:
        count = load.stop()
    wait_for("the native replica after handback", lambda: gtid_caught_up(source, target))
    st = Replica(target.connect(), "mariadb", "target").status()
    assert st.sql_running and st.io_running and not st.sql_errno
    assert_same(source, target, dbname)
    assert target.query(f"SELECT COUNT(*), MIN(seq), MAX(seq) FROM {dbname}.ledger")[0] == (count, 1, count)


def test_takeover_of_a_gtid_replica_follows_its_gtid_slave_pos(gtid_pair, tmp_path, dbname):
    """A stopped GTID replica whose gtid_slave_pos was moved past a transaction by hand
    (the DBA applied it on the replica: MariaDB's way to skip one) continues after its
    gtid_slave_pos, not after its file position: takeover takes the GTID position (every
    domain), the applier applies nothing twice, and the native replica goes on after
    handback."""
    source, target = gtid_pair
    seed(source, dbname)
    target.execute("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%s, MASTER_USER=%s, "
                   "MASTER_PASSWORD=%s, MASTER_USE_GTID=slave_pos",
                   (source.port, source.user, source.password))
    target.execute("START SLAVE")
    wait_for("the native replica", lambda: gtid_caught_up(source, target))  # the tables, first
    conn = source.connect()
    cur = conn.cursor()
    cur.execute("SET SESSION gtid_domain_id = 1")
    cur.execute(f"INSERT INTO {dbname}.ledger VALUES (-1, 0)")
    wait_for("the native replica", lambda: gtid_caught_up(source, target))
    target.execute("STOP SLAVE")
    target.execute(f"INSERT INTO {dbname}.ledger VALUES (-2, 0)")  # by hand, then skipped
    cur.execute(f"INSERT INTO {dbname}.ledger VALUES (-2, 0)")
    target.execute("SET GLOBAL gtid_slave_pos = %s", (source.gtid_position(),))
    conn.close()
    path = config(tmp_path, source, target, dbname)
    out = run_cli("takeover", "--config", str(path))
    assert out.returncode == 0, out.stderr
    slave_pos = target.query("SELECT @@GLOBAL.gtid_slave_pos")[0][0]
    assert out.stdout.startswith(f"took over at GTID {slave_pos};"), out.stdout
    assert "is not the GTID position at its executed file position" in out.stderr, out.stderr
    load = Load(source, dbname, count=60, pause=0.0, domains=2)
    load.join()
    out = run_cli("run", "--config", str(path), "--stop-at-end")
    assert out.returncode == 0, out.stderr
    assert run_cli("handback", "--config", str(path)).returncode == 0
    source.execute(f"UPDATE {dbname}.counters SET n = n + 1")
    wait_for("the native replica after handback", lambda: gtid_caught_up(source, target))
    assert_same(source, target, dbname)
    assert target.query(f"SELECT COUNT(*) FROM {dbname}.ledger")[0][0] == 62

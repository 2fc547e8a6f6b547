"""takeover -> run -> handback on MySQL 9.7: the target is a native MySQL replica of a
MySQL source (GTID mode, SOURCE_AUTO_POSITION=1, parallel workers that preserve commit
order) under a concurrent load. `applier takeover` stops it and records its executed
position (SHOW REPLICA STATUS's file/pos and gtid_executed); `applier run` applies from
there (stopped by SIGTERM, then killed -9 mid-way, which may leave gaps); `applier
handback` applies exactly the transactions in the gaps, adds the applied GTIDs to the
replica's gtid_executed (gtid_purged='+...') and starts it with auto-position: it
catches up, nothing lost, nothing applied twice (a ledger row per source transaction).
On a replica of the session's MySQL source: the restart matrix's takeover row (stop at
once, after work, kill -9, then restart) and kill -9 during takeover and handback.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from applier.binlog.position import MysqlGtidSet
from applier.db.replica import Replica
from applier.errors import TargetError
from applier.harness import sandbox
from tests.appliers import Applier, applied
from tests.faults import faultlib as fl
from tests.integration.test_cli_errors import assert_clean_error, run_cli
from tests.integration.test_takeover import ROWS, WAIT, Load, config, wait_for
from tests.support import assert_same, render_toml

pytestmark = pytest.mark.integration

COUNT = 3000  # load transactions (at least 15 s of them: every phase below sees some)


@pytest.fixture
def mysql_pair(tmp_path, mysql_available):
    """A MySQL source and a target that is its native GTID replica."""
    source = sandbox.make_source(tmp_path / "servers" / "source", flavor="mysql")
    target = sandbox.make_target(tmp_path / "servers" / "target", flavor="mysql")
    target.options.update({"gtid_mode": "ON", "enforce_gtid_consistency": "ON",
                           "replica_parallel_workers": "4", "replica_preserve_commit_order": "ON"})
    source.start()
    try:
        target.start()
        try:
            target.execute(
                "CHANGE REPLICATION SOURCE TO SOURCE_HOST='127.0.0.1', SOURCE_PORT=%s, SOURCE_USER=%s, "
                "SOURCE_PASSWORD=%s, SOURCE_AUTO_POSITION=1, SOURCE_SSL=1",
                (source.port, source.user, source.password))
            target.execute("START REPLICA")
            yield source, target
        finally:
            target.stop()
    finally:
        source.stop()


def seed(source, db: str) -> None:
    source.execute(f"CREATE DATABASE {db}")
    source.execute(f"CREATE TABLE {db}.counters (id INT PRIMARY KEY, n INT NOT NULL)")
    source.execute(f"CREATE TABLE {db}.ledger (seq INT PRIMARY KEY, at_id INT NOT NULL)")
    source.execute(f"INSERT INTO {db}.counters WITH RECURSIVE s (i) AS "
                   f"(SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {ROWS}) SELECT i, 0 FROM s")


def caught_up(source, target) -> bool:
    """The replica executed every GTID the source has (and its threads run)."""
    executed = MysqlGtidSet.parse(target.gtid_position())
    return MysqlGtidSet.parse(source.gtid_position()).issubset(executed)


def test_mysql_takeover_run_handback_under_load(mysql_pair, tmp_path: Path, dbname):
    source, target = mysql_pair
    seed(source, dbname)
    wait_for("the native replica", lambda: caught_up(source, target))
    load = Load(source, dbname, count=COUNT, pause=0.005)
    path = config(tmp_path, source, target, dbname)
    try:
        wait_for("some load", lambda: load.done > 150)
        out = run_cli("takeover", "--config", str(path))
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith("took over at mysql-bin.") and "GTID" in out.stdout, out.stdout
        st = Replica(target.connect(), "mysql", "target").status()
        assert st is not None and not st.sql_running and not st.io_running
        status = run_cli("status", "--config", str(path))
        assert status.returncode == 0, status.stderr
        assert "applied gtid:" in status.stdout and "lag (transactions):" in status.stdout
        ckpt = "mts_applier"
        first = Applier(path, log_dir=tmp_path, name="run1")
        wait_for("applied transactions", lambda: applied(target, ckpt) > 100)
        first.signal(signal.SIGTERM, group=False)
        assert first.wait() == 0, first.describe()
        second = Applier(path, log_dir=tmp_path, name="run2")
        base = applied(target, ckpt)
        wait_for("more applied transactions", lambda: applied(target, ckpt) > base + 100)
        second.signal(signal.SIGKILL, group=True)  # mid-way: workers may leave gaps
        second.wait()
        second.assert_gone()
        out = run_cli("handback", "--config", str(path), timeout=WAIT)
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith("handed back at"), out.stdout
        again = run_cli("run", "--config", str(path), "--stop-at-end")
        assert_clean_error(again, 5, "its own replica SQL thread runs", "applier takeover")
    finally:
        load.join()
    wait_for("the native replica after handback", lambda: caught_up(source, target))
    st = Replica(target.connect(), "mysql", "target").status()
    assert st is not None and st.sql_running and st.auto_position and not st.sql_errno
    assert_same(source, target, dbname)
    assert target.query(f"SELECT COUNT(*) FROM {dbname}.ledger")[0][0] == COUNT


@pytest.fixture
def mysql_lone_pair(tmp_path, mysql_available):
    """A MySQL source and a target that has never been a replica (GTID mode on, as a
    replica of a GTID source must be)."""
    source = sandbox.make_source(tmp_path / "servers" / "source", flavor="mysql")
    target = sandbox.make_target(tmp_path / "servers" / "target", flavor="mysql")
    target.options.update({"gtid_mode": "ON", "enforce_gtid_consistency": "ON"})
    source.start()
    try:
        target.start()
        try:
            yield source, target
        finally:
            target.stop()
    finally:
        source.stop()


def _lone_config(tmp_path: Path, name: str, source, target, db: str, start, ssl_mode: str) -> Path:
    sc, tc = source.server_config(), target.server_config()
    path = tmp_path / name
    path.write_text(render_toml({
        "source": {"host": sc.host, "port": sc.port, "user": sc.user, "password": sc.password,
                   "start_file": start[0], "start_pos": start[1], "ssl_mode": ssl_mode},
        "target": {"host": tc.host, "port": tc.port, "user": tc.user, "password": tc.password},
        "apply": {"databases": [db], "workers": 2},
    }))
    return path


def _connection(target) -> tuple[str, str]:
    """(SSL_ALLOWED, GET_PUBLIC_KEY) of the replica's connection configuration."""
    row = target.query("SELECT SSL_ALLOWED, GET_PUBLIC_KEY FROM performance_schema."
                       "replication_connection_configuration WHERE CHANNEL_NAME = ''")[0]
    return str(row[0]), str(row[1])


def _replicates(source, target, db: str) -> None:
    """The native replica is connected and applies what the source writes next."""
    st = Replica(target.connect(), "mysql", "target").status()
    assert st is not None and st.io_running and st.sql_running, st
    source.execute(f"UPDATE {db}.counters SET n = n + 1")

    def at_the_end() -> bool:  # by file position: the applier's own commits got the target's GTIDs
        now = Replica(target.connect(), "mysql", "target").status()
        return now is not None and (now.exec_file, now.exec_pos) == source.binlog_position()

    wait_for("the native replica", at_the_end)
    assert_same(source, target, db)


def test_handback_to_a_target_that_was_never_a_replica(mysql_lone_pair, tmp_path, dbname):
    """MySQL 9's caching_sha2_password: a replica's first login (nothing cached on the
    source: FLUSH PRIVILEGES) needs TLS or the source's RSA public key. handback maps
    [source] ssl_mode onto SOURCE_SSL (preferred: TLS, as the source offers it) or adds
    GET_SOURCE_PUBLIC_KEY=1 (disabled), and waits until the IO thread is connected: an
    IO thread that cannot connect (here: equal server ids) is one error line, exit 5,
    and a rerun once it is fixed starts it."""
    source, target = mysql_lone_pair
    start = source.binlog_position()
    seed(source, dbname)
    # TLS off: the RSA public key
    plain = _lone_config(tmp_path, "plain.toml", source, target, dbname, start, "disabled")
    out = run_cli("run", "--config", str(plain), "--stop-at-end")
    assert out.returncode == 0, out.stderr
    source_id = int(source.query("SELECT @@server_id")[0][0])
    target.execute(f"SET GLOBAL server_id = {source_id}")
    source.execute("FLUSH PRIVILEGES")
    out = run_cli("handback", "--config", str(plain), "--file-position", timeout=WAIT)
    fl.error_line(out.stderr, out.returncode, TargetError.exit_code, "IO thread", "cannot connect",
                  "equal", secrets=(source.password, target.password), stdout=out.stdout)
    target.execute("SET GLOBAL server_id = 2")
    source.execute("FLUSH PRIVILEGES")
    out = run_cli("handback", "--config", str(plain), "--file-position", timeout=WAIT)
    assert out.returncode == 0, out.stderr
    assert _connection(target) == ("NO", "YES")
    _replicates(source, target, dbname)
    # TLS preferred (the source offers it): SOURCE_SSL = 1
    target.execute("STOP REPLICA")
    target.execute("RESET REPLICA ALL")
    target.execute("DROP DATABASE mts_applier")
    tls = _lone_config(tmp_path, "tls.toml", source, target, dbname, source.binlog_position(), "preferred")
    source.execute(f"UPDATE {dbname}.counters SET n = n + 1")
    out = run_cli("run", "--config", str(tls), "--stop-at-end")
    assert out.returncode == 0, out.stderr
    source.execute("FLUSH PRIVILEGES")
    out = run_cli("handback", "--config", str(tls), "--file-position", timeout=WAIT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("handed back at mysql-bin."), out.stdout
    assert _connection(target)[0] == "YES"
    _replicates(source, target, dbname)


# -- a native replica of the session's MySQL source, shared by the tests below --------------


@pytest.fixture(scope="module")
def mysql_replica(mysql_source, tmp_path_factory):
    """A MySQL 9.7 target that each test makes a native GTID replica of the session's MySQL
    source (``replicate_from_now``): gtid_mode ON, four workers preserving commit order."""
    target = sandbox.make_target(tmp_path_factory.mktemp("mysql-replica"), flavor="mysql")
    target.options.update({"gtid_mode": "ON", "enforce_gtid_consistency": "ON",
                           "replica_parallel_workers": "4", "replica_preserve_commit_order": "ON"})
    target.start()
    yield target
    target.stop()


def replicate_from_now(source, target) -> None:
    """``target`` becomes a native replica (auto-position, TLS: the account's
    caching_sha2_password needs it or the RSA key) of ``source`` from the source's
    current GTIDs: what the source held before is not replicated."""
    target.execute("STOP REPLICA")
    target.execute("RESET REPLICA ALL")
    target.execute("RESET BINARY LOGS AND GTIDS")
    target.execute("SET GLOBAL gtid_purged = %s", (source.gtid_position(),))
    target.execute(
        "CHANGE REPLICATION SOURCE TO SOURCE_HOST='127.0.0.1', SOURCE_PORT=%s, SOURCE_USER=%s, "
        "SOURCE_PASSWORD=%s, SOURCE_AUTO_POSITION=1, SOURCE_SSL=1",
        (source.port, source.user, source.password))
    target.execute("START REPLICA")


@pytest.mark.parametrize("stop", ("at-once", "after-work", "kill"))
def test_mysql_takeover_restarts(mysql_source, mysql_replica, tmp_path, dbname, stop):
    """The restart matrix's takeover row on MySQL (test_restart_matrix.py has the others):
    a run started by `applier takeover` of a native MySQL replica is stopped at once,
    after some work (SIGTERM) or killed -9 mid-way; a restart catches up, every ledger
    row once."""
    from tests.integration.test_restart_matrix import _first_run_then_restart, write_config

    source, target = mysql_source, mysql_replica
    replicate_from_now(source, target)
    seed(source, dbname)
    wait_for("the native replica", lambda: caught_up(source, target))
    path = write_config(tmp_path / "applier.toml", source, target, dbname, {})
    _first_run_then_restart(source, target, dbname, tmp_path, path, "takeover", stop)
    st = Replica(target.connect(), "mysql", "target").status()
    assert st is not None and not st.sql_running and not st.io_running  # the applier's, until handback


def test_mysql_kill_9_during_takeover_and_handback_then_rerun(mysql_source, mysql_replica, tmp_path, dbname):
    """kill -9 at several moments of `takeover` and of `handback` on MySQL, under load;
    rerunning the command finishes the switch (a takeover that already wrote its
    position says so; a handback killed after adding GTIDs to gtid_executed, after
    pointing the replica, or after marking the checkpoint, completes), and the native
    replica ends equal to the source, every ledger row once."""
    from tests.integration.test_restart_matrix import write_config
    from tests.integration.test_takeover import killed_midway

    source, target = mysql_source, mysql_replica
    replicate_from_now(source, target)
    seed(source, dbname)
    wait_for("the native replica", lambda: caught_up(source, target))
    load = Load(source, dbname, count=100_000, pause=0.003)  # stopped below
    path = write_config(tmp_path / "applier.toml", source, target, dbname, {})
    schema = f"ckpt_{dbname}"
    delays = (0.4, 0.8, 1.2, 1.6)
    try:
        wait_for("some load", lambda: load.done > 100)
        for delay in delays:
            killed_midway(["takeover", "--config", str(path)], delay)
        out = run_cli("takeover", "--config", str(path))
        assert out.returncode == 0 or "already holds a position" in out.stderr, out.stderr
        st = Replica(target.connect(), "mysql", "target").status()
        assert st is not None and not st.sql_running and not st.io_running
        app = Applier(path, log_dir=tmp_path, name="run")
        wait_for("applied transactions", lambda: applied(target, schema) > 200)
        app.signal(signal.SIGKILL, group=True)
        app.wait()
        app.assert_gone()
        for delay in delays:
            killed_midway(["handback", "--config", str(path)], delay)
        out = run_cli("handback", "--config", str(path), timeout=WAIT)
        assert out.returncode == 0, out.stderr
        st = Replica(target.connect(), "mysql", "target").status()
        assert st is not None and st.sql_running and st.io_running and st.auto_position
        out = run_cli("handback", "--config", str(path), timeout=WAIT)  # once more: nothing to do
        assert out.returncode == 0 and "the native replica runs" in out.stdout, out.stderr
        after = load.done
        wait_for("the native replica to apply new load", lambda: load.done > after + 50)
    finally:
        count = load.stop()
    wait_for("the native replica after handback", lambda: caught_up(source, target))
    assert_same(source, target, dbname)
    assert target.query(f"SELECT COUNT(*), MIN(seq), MAX(seq) FROM {dbname}.ledger")[0] == (count, 1, count)

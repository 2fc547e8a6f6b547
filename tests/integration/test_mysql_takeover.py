"""takeover -> run -> handback on MySQL 9.7: the target is a native MySQL replica of a
MySQL source (GTID mode, SOURCE_AUTO_POSITION=1, parallel workers that preserve commit
order) under a concurrent load. `applier takeover` stops it and records its executed
position (SHOW REPLICA STATUS's file/pos and gtid_executed); `applier run` applies from
there (stopped by SIGTERM, then killed -9 mid-way, which may leave gaps); `applier
handback` applies exactly the transactions in the gaps, adds the applied GTIDs to the
replica's gtid_executed (gtid_purged='+...') and starts it with auto-position: it
catches up, nothing lost, nothing applied twice (a ledger row per source transaction).
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from applier.binlog.position import MysqlGtidSet
from applier.db.replica import Replica
from applier.harness import sandbox
from tests.appliers import Applier, applied
from tests.integration.test_cli_errors import assert_clean_error, run_cli
from tests.integration.test_takeover import ROWS, WAIT, Load, config, wait_for
from tests.support import assert_same

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

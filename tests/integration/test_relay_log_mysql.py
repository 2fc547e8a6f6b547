"""Relay-log mode on MySQL 9.7: the target is a native MySQL replica (GTID auto-position,
or file/position) whose IO thread keeps running with 4 KiB relay log files (many
rotations) under a concurrent load; `applier takeover` stops only its SQL thread; the
applier executes the relay log through an IO-thread stop/start, a source FLUSH BINARY
LOGS and a kill -9 of itself; at the end the target equals the source, every load
transaction once (a ledger row each), the applied relay logs are gone (dropped beyond
relay_log_purge_bytes), and after `applier handback` the native replica goes on.

MySQL's relay logs: each file starts with the replica's FormatDescription and
Previous_gtids (server_id 2, skipped), then the source's FormatDescription; a file begun
at an IO-thread connect or after a source rotation has the source's artificial Rotate
(log position 0) naming the source file it continues, a real Rotate ends a source file
(then the relay log rotates too), and the replica writes Rotates with server_id 0 for
what the source skipped (auto-position). The sandbox's mysqld runs in a chroot, so its
@@relay_log_index is a path inside it: the config names the host's path
(``[source] relay_log_index``).
"""

from __future__ import annotations

import contextlib
import signal
import time
from pathlib import Path

import pytest

from applier.db.replica import Replica
from applier.harness import sandbox
from tests.appliers import Applier, applied
from tests.integration.test_cli_errors import assert_clean_error, run_cli
from tests.integration.test_mysql_takeover import caught_up, seed
from tests.integration.test_relay_log import (
    PURGE_BYTES,
    Held,
    across_a_source_rotation,
    relay_config,
)
from tests.integration.test_takeover import WAIT, Load, wait_for
from tests.support import assert_same

pytestmark = pytest.mark.integration

COUNT = 3000  # load transactions: ~1.5 MB of relay log, over PURGE_BYTES


def _pair(tmp_path: Path, auto_position: bool):
    source = sandbox.make_source(tmp_path / "servers" / "source", flavor="mysql")
    target = sandbox.make_target(tmp_path / "servers" / "target", flavor="mysql")
    target.options.update({"gtid_mode": "ON", "enforce_gtid_consistency": "ON",
                           "max_relay_log_size": "4096", "relay_log": "relay-bin"})
    source.start()
    try:
        target.start()
        try:
            if auto_position:
                where, params = "SOURCE_AUTO_POSITION=1", ()
            else:
                where, params = "SOURCE_LOG_FILE=%s, SOURCE_LOG_POS=4", (source.query("SHOW BINARY LOGS")[0][0],)
            target.execute(
                "CHANGE REPLICATION SOURCE TO SOURCE_HOST='127.0.0.1', SOURCE_PORT=%s, SOURCE_USER=%s, "
                f"SOURCE_PASSWORD=%s, SOURCE_SSL=1, {where}",
                (source.port, source.user, source.password, *params))
            target.execute("START REPLICA")
            yield source, target
        finally:
            with contextlib.suppress(Exception):  # mysqld stops faster without its IO thread
                target.execute("STOP REPLICA")
            target.stop()
    finally:
        source.stop()


@pytest.fixture
def gtid_replica(tmp_path, mysql_available):
    """A MySQL source and its native replica (auto-position) with 4 KiB relay logs."""
    yield from _pair(tmp_path, auto_position=True)


@pytest.fixture
def file_replica(tmp_path, mysql_available):
    """The same, the replica by file and position (SOURCE_AUTO_POSITION=0)."""
    yield from _pair(tmp_path, auto_position=False)


def replica(target) -> Replica:
    return Replica(target.connect(), "mysql", "target")


def config(tmp_path: Path, source, target, db: str, **source_extra) -> Path:
    return relay_config(tmp_path, source, target, db, relay_log_index=str(target.datadir / "relay-bin.index"),
                        **source_extra)


def relay_files(target) -> list[Path]:
    """The files the relay log index names. MySQL replaces its index (every rotation) by
    deleting it and renaming a copy: missing for a moment, so read it again then."""
    index = target.datadir / "relay-bin.index"
    for _ in range(200):
        try:
            text = index.read_text()
            break
        except FileNotFoundError:
            time.sleep(0.01)
    else:
        raise AssertionError(f"{index} stays missing")
    return [target.datadir / Path(n.strip()).name for n in text.splitlines() if n.strip()]


def relay_bytes(target) -> int:
    total = 0
    for f in relay_files(target):
        with contextlib.suppress(FileNotFoundError):  # purged meanwhile
            total += f.stat().st_size
    return total


def native_caught_up(source, target) -> bool:
    st = replica(target).status()
    return st is not None and (st.exec_file, st.exec_pos) == source.binlog_position()


def test_relay_log_mode_under_load_then_handback(gtid_replica, tmp_path, dbname):
    source, target = gtid_replica
    seed(source, dbname)
    wait_for("the native replica", lambda: caught_up(source, target))
    # the index the server names (@@relay_log_index) is a path inside the chroot here
    found = relay_config(tmp_path, source, target, dbname)
    out = run_cli("run", "--config", str(found), "--stop-at-end")
    assert_clean_error(out, 2, f"relay log index {target.inside(target.datadir / 'relay-bin.index')} "
                       "is not readable here", "[source] relay_log_index")
    path = config(tmp_path, source, target, dbname)
    load = Load(source, dbname, count=COUNT, pause=0.002)
    early = Held([])
    try:
        wait_for("some load", lambda: load.done > 100)
        out = run_cli("takeover", "--config", str(path))
        assert out.returncode == 0, out.stderr
        st = replica(target).status()
        assert st.io_running and not st.sql_running  # relay-log mode keeps the IO thread
        early = Held(relay_files(target))
        first = Applier(path, log_dir=tmp_path, name="relay1")
        wait_for("applied transactions", lambda: applied(target, "mts_applier") > 300
                 or first.proc.poll() is not None)
        assert first.proc.poll() is None, first.describe()
        target.execute("STOP REPLICA IO_THREAD")  # an IO-thread restart mid-way
        time.sleep(0.5)
        target.execute("START REPLICA IO_THREAD")
        source.execute("FLUSH BINARY LOGS")  # a source rotation mid-way
        wait_for("more applied", lambda: applied(target, "mts_applier") > 1200
                 or first.proc.poll() is not None)
        assert first.proc.poll() is None, first.describe()
        first.signal(signal.SIGKILL, group=True)
        first.wait()
        first.assert_gone()
        second = Applier(path, log_dir=tmp_path, name="relay2")
        load.join()
        stop_caught_up_after_purge(source, target, second, early)
    finally:
        load.join()
        early.close()
    assert_same(source, target, dbname)
    assert target.query(f"SELECT COUNT(*) FROM {dbname}.ledger")[0][0] == COUNT
    total = relay_bytes(target)
    assert total <= 2 * PURGE_BYTES, f"relay logs were not removed: {total} bytes"

    out = run_cli("handback", "--config", str(path), timeout=WAIT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("handed back at"), out.stdout
    again = run_cli("run", "--config", str(path), "--stop-at-end")
    assert_clean_error(again, 5, "its own replica SQL thread runs", "applier takeover")
    for i in range(50):  # the native replica goes on
        source.execute(f"INSERT INTO {dbname}.ledger VALUES (%s, 0)", (COUNT + 1 + i,))
    wait_for("the native replica after handback", lambda: caught_up(source, target))
    st = replica(target).status()
    assert st.io_running and st.sql_running and not st.sql_errno, st
    assert_same(source, target, dbname)
    assert target.query(f"SELECT COUNT(*) FROM {dbname}.ledger")[0][0] == COUNT + 50


def stop_caught_up_after_purge(source, target, app: Applier, early: Held) -> None:
    """Wait until ``app`` has caught up with the source and dropped the relay logs held
    in ``early``, then SIGTERM it: exit 0."""
    end = source.binlog_position()

    def at_end() -> bool:
        rows = target.query("SELECT MAX(watermark_file), MAX(watermark) FROM mts_applier.checkpoint")
        return rows[0][0] == end[0] and int(rows[0][1]) & 0xFFFFFFFF >= end[1]

    wait_for("the applier to catch up", lambda: at_end() or app.proc.poll() is not None, timeout=180)
    assert app.proc.poll() is None, app.describe()
    wait_for("the applied relay logs to be dropped", lambda: early.removed() or app.proc.poll() is not None,
             timeout=60)
    assert app.proc.poll() is None, app.describe()
    app.signal(signal.SIGTERM, group=False)
    assert app.wait() == 0, app.describe()
    assert early.removed(), "the relay logs of the takeover are back"


def test_file_position_replica_restart_over_an_earlier_source_file(file_replica, tmp_path, dbname):
    """A replica by file and position: the purge points it at the applier's file
    position. Relay logs of an earlier source file (before a FLUSH BINARY LOGS) are read
    again after a restart: nothing applied twice."""
    source, target = file_replica
    seed(source, dbname)
    load = Load(source, dbname, count=400, pause=0)
    load.join()
    wait_for("the native replica", lambda: native_caught_up(source, target))
    path = config(tmp_path, source, target, dbname)
    across_a_source_rotation(source, target, dbname, path, tmp_path)
    assert target.query(f"SELECT COUNT(*) FROM {dbname}.ledger")[0][0] == 400

    # relay logs over relay_log_purge_bytes: dropped by pointing the replica at the
    # applier's file position (CHANGE REPLICATION SOURCE TO SOURCE_LOG_FILE/POS)
    early = Held(relay_files(target))
    seq = 400
    try:
        third = Applier(path, log_dir=tmp_path, name="relay3")
        for _ in range(40):  # bounded: until the relay logs hold more than PURGE_BYTES
            if relay_bytes(target) > 1.3 * PURGE_BYTES:
                break
            conn = source.connect()
            try:
                conn.cursor().executemany(f"INSERT INTO {dbname}.ledger VALUES (%s, 0)",
                                          [(seq + i + 1,) for i in range(200)])  # autocommit: 200 txns
            finally:
                conn.close()
            seq += 200
            time.sleep(0.1)
        stop_caught_up_after_purge(source, target, third, early)
    finally:
        early.close()
    assert_same(source, target, dbname)
    st = replica(target).status()
    assert st.io_running and not st.auto_position, st
    out = run_cli("handback", "--config", str(path), timeout=WAIT)
    assert out.returncode == 0, out.stderr
    for i in range(20):  # the native replica goes on
        source.execute(f"INSERT INTO {dbname}.ledger VALUES (%s, 0)", (seq + i + 1,))
    wait_for("the native replica after handback", lambda: native_caught_up(source, target))
    assert_same(source, target, dbname)
    assert target.query(f"SELECT COUNT(*) FROM {dbname}.ledger")[0][0] == seq + 20

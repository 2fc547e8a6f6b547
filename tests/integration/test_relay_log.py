"""Relay-log mode on real servers: a native MariaDB replica keeps its IO thread (small
relay log files: many rotations) under a concurrent workload; `applier takeover` stops
only its SQL thread; the applier executes the relay log through an IO-thread stop/start
and a kill -9 of itself; at the end the target equals the source and the applied relay
logs are gone. Bad input: a relay log whose source is not [source]."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from applier.db.replica import Replica
from applier.harness import sandbox
from tests.appliers import Applier, applied
from tests.integration.test_cli_errors import assert_clean_error, run_cli
from tests.integration.test_takeover import Load, seed, wait_for
from tests.support import assert_same, render_toml

PURGE_BYTES = 1 << 20  # the load writes about twice as much relay log


@pytest.fixture
def replica_pair(tmp_path, mariadb_available):
    """A source and its native replica with 4 KiB relay log files."""
    base = tmp_path / "servers"
    source = sandbox.make_source(base / "source")
    options = {**sandbox.target_options(), "max_relay_log_size": "4096", "relay_log": "relay-bin"}
    target = sandbox.LocalMariadb("target", base / "target", sandbox.free_port(), 2, False, options)
    source.start()
    target.start()
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


def relay_config(tmp_path: Path, source, target, db: str, **source_extra) -> Path:
    sc, tc = source.server_config(), target.server_config()
    path = tmp_path / "relay.toml"
    path.write_text(render_toml({
        "source": {"host": sc.host, "port": sc.port, "user": sc.user, "password": sc.password,
                   "mode": "relay-log", "relay_log_purge_bytes": PURGE_BYTES, **source_extra},
        "target": {"host": tc.host, "port": tc.port, "user": tc.user, "password": tc.password},
        "apply": {"databases": [db], "workers": 3, "batch_txns": 32},
    }))
    return path


def replica(target) -> Replica:
    return Replica(target.connect(), "mariadb", "target")


def relay_files(target) -> list[Path]:
    index = next(target.datadir.glob("*relay-bin.index"))
    return [target.datadir / Path(n.strip()).name for n in index.read_text().splitlines() if n.strip()]


class Held:
    """Relay log files held open: a file counts as removed once its last name is gone
    (``st_nlink`` 0). Names alone would not do: after the replica is pointed at a new
    position (CHANGE MASTER) the server numbers its relay logs from 000001 again."""

    def __init__(self, paths: list[Path]) -> None:
        self.fds = [os.open(p, os.O_RDONLY) for p in paths]

    def removed(self) -> bool:
        return all(os.fstat(fd).st_nlink == 0 for fd in self.fds)

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)


def across_a_source_rotation(source, target, dbname: str, path: Path, tmp_path: Path) -> None:
    """Takeover in relay-log mode (``path``), a run through a source FLUSH BINARY LOGS
    (the rest of the first file, then a short second one: its positions are below the
    first file's), stopped caught up; then a restart over those relay logs: each time
    equal to the source."""
    out = run_cli("takeover", "--config", str(path))
    assert out.returncode == 0, out.stderr
    first = Applier(path, log_dir=tmp_path, name="relay1")
    for i in range(100):  # the rest of the first file: more relay logs
        source.execute(f"UPDATE {dbname}.counters SET n = n + 1 WHERE id = %s", (i % 40 + 1,))
    source.execute("FLUSH BINARY LOGS")
    for i in range(20):
        source.execute(f"UPDATE {dbname}.counters SET n = n + 1 WHERE id = %s", (i + 1,))
    stop_caught_up(source, target, first)
    assert_same(source, target, dbname)
    assert len(relay_files(target)) > 3, "the relay logs were purged: the case is not made"
    for i in range(10):  # more for the restarted run
        source.execute(f"UPDATE {dbname}.counters SET n = n + 1 WHERE id = %s", (i + 1,))
    stop_caught_up(source, target, Applier(path, log_dir=tmp_path, name="relay2"))
    assert_same(source, target, dbname)


def stop_caught_up(source, target, app: Applier) -> None:
    """Wait until ``app``'s checkpoint is at the source's end, then SIGTERM: exit 0."""
    end = source.binlog_position()

    def caught_up() -> bool:
        rows = target.query("SELECT MAX(watermark_file), MAX(watermark) FROM mts_applier.checkpoint")
        return rows[0][0] == end[0] and int(rows[0][1]) & 0xFFFFFFFF >= end[1]

    wait_for("the applier to catch up", lambda: caught_up() or app.proc.poll() is not None)
    assert app.proc.poll() is None, app.describe()
    app.signal(signal.SIGTERM, group=False)
    assert app.wait() == 0, app.describe()


def test_relay_log_mode_under_load_with_io_restart_and_kill(replica_pair, tmp_path, dbname):
    source, target = replica_pair
    seed(source, dbname)
    wait_for("the native replica", lambda: replica(target).status().exec_pos
             == source.binlog_position()[1])
    path = relay_config(tmp_path, source, target, dbname)
    load = Load(source, dbname, count=5000, pause=0.001)
    early = Held([])
    try:
        out = run_cli("takeover", "--config", str(path))
        assert out.returncode == 0, out.stderr
        st = replica(target).status()
        assert st.io_running and not st.sql_running  # relay-log mode keeps the IO thread
        early = Held(relay_files(target))
        first = Applier(path, log_dir=tmp_path, name="relay1")
        wait_for("applied transactions", lambda: applied(target, "mts_applier") > 400)
        target.execute("STOP SLAVE IO_THREAD")  # an IO-thread restart mid-way
        time.sleep(0.5)
        target.execute("START SLAVE IO_THREAD")
        wait_for("more applied", lambda: applied(target, "mts_applier") > 1000)
        first.signal(signal.SIGKILL, group=True)
        first.wait()
        first.assert_gone()
        second = Applier(path, log_dir=tmp_path, name="relay2")
        load.join()
        end = source.binlog_position()

        def caught_up() -> bool:
            rows = target.query("SELECT MAX(watermark_file), MAX(watermark) FROM mts_applier.checkpoint")
            return rows[0][0] == end[0] and int(rows[0][1]) & 0xFFFFFFFF >= end[1]

        wait_for("the applier to catch up", caught_up, timeout=180)
        # caught up with relay logs over relay_log_purge_bytes: it drops them (checked
        # every INDEX_SECONDS at the newest file's end, so not at the same instant)
        wait_for("the applied relay logs to be dropped", early.removed, timeout=60)
        second.signal(signal.SIGTERM, group=False)
        assert second.wait() == 0, second.describe()
        assert early.removed(), "the relay logs of the takeover are back"
    finally:
        load.join()
        early.close()
    assert_same(source, target, dbname)
    assert target.query(f"SELECT COUNT(*) FROM {dbname}.ledger")[0][0] == 5000
    total = sum(f.stat().st_size for f in relay_files(target) if f.exists())
    assert total <= 2 * PURGE_BYTES, f"relay logs were not removed: {total} bytes"


def test_a_relay_log_from_another_source_is_refused(replica_pair, source, tmp_path, dbname):
    _, target = replica_pair
    path = relay_config(tmp_path, source, target, dbname)  # [source] is not the replica's
    out = run_cli("run", "--config", str(path), "--stop-at-end")
    assert_clean_error(out, 2, "relay log comes from 127.0.0.1:", "point [source] at")


def test_a_restart_reads_relay_logs_of_an_earlier_source_file(replica_pair, tmp_path, dbname):
    """Relay logs the applier applied stay until they are purged: after a restart the
    oldest ones may hold an earlier source binlog file than the checkpoint's (the source
    rotated since), and a relay log rotated for its size does not say which source file
    it continues. Its events must not be taken for the checkpoint file's (their positions
    past the checkpoint's are not later): nothing applied twice after the restart."""
    source, target = replica_pair
    seed(source, dbname)
    # the native replica applies (and deletes) many small relay logs: the oldest one left,
    # at the takeover, continues the source's first file without naming it
    load = Load(source, dbname, count=400, pause=0)
    load.join()
    wait_for("the native replica", lambda: replica(target).status().exec_pos
             == source.binlog_position()[1])
    path = relay_config(tmp_path, source, target, dbname)
    across_a_source_rotation(source, target, dbname, path, tmp_path)
    assert target.query(f"SELECT COUNT(*) FROM {dbname}.ledger")[0][0] == 400

"""Starting from a MariaDB GTID position instead of file:pos, and `applier status`
reporting the applied position, the source position and the lag."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import assert_same, config_toml, make_config, run_applier

pytestmark = pytest.mark.flavors("mariadb", "mysql")  # MariaDB -> MariaDB, MySQL -> MySQL

REPO = Path(__file__).resolve().parents[2]


def test_start_from_mariadb_gtid_position(source, target, dbname):
    source.execute(f"CREATE DATABASE {dbname}_before")  # a GTID to start after
    gtid = source.gtid_position()
    assert gtid
    cfg = make_config(source, target, dbname, workers=2)
    cfg = dataclasses.replace(cfg, source=dataclasses.replace(cfg.source, start_file="", start_gtid=gtid))
    source.execute(f"CREATE DATABASE {dbname}")
    source.execute(f"CREATE TABLE {dbname}.t (id INT PRIMARY KEY, v INT)")
    for i in range(50):
        source.execute(f"INSERT INTO {dbname}.t VALUES (%s, %s)", (i, i * i))
    m = run_applier(cfg)
    assert m.transactions >= 52
    assert_same(source, target, dbname)
    # the checkpoint now holds a file:pos and the GTID of the last applied transaction
    row = target.query(f"SELECT watermark_file, watermark_gtid FROM ckpt_{dbname}.checkpoint WHERE worker = 0")
    assert row and row[0][0].startswith("mysql-bin.")


def test_status_reports_position_and_lag(source, target, dbname, tmp_path):
    cfg = make_config(source, target, dbname, workers=1)
    conf = tmp_path / "applier.toml"
    conf.write_text(config_toml(cfg))
    source.execute(f"CREATE DATABASE {dbname}")
    source.execute(f"CREATE TABLE {dbname}.t (id INT PRIMARY KEY)")
    run_applier(cfg)

    def status() -> str:
        out = subprocess.run([sys.executable, "-m", "applier.cli", "status", "--config", str(conf)],
                             capture_output=True, text=True, timeout=60, cwd=REPO)
        assert out.returncode == 0, out.stderr
        assert source.password not in out.stdout + out.stderr
        return out.stdout

    caught_up = status()
    assert "lag (bytes):        0" in caught_up
    assert "lag (seconds):      0.0" in caught_up
    file, pos = source.binlog_position()
    assert f"applied position:   {file}:{pos}" in caught_up

    for i in range(5):
        source.execute(f"INSERT INTO {dbname}.t VALUES (%s)", (i,))
    behind = status()
    lag_bytes = int(behind.split("lag (bytes):")[1].split()[0])
    assert lag_bytes > 0
    assert "lag (transactions): 5" in behind


def test_status_without_a_checkpoint_says_so_and_writes_nothing(source, target, dbname, tmp_path):
    """``applier status`` is read-only: with no checkpoint schema on the target it exits 0
    with one line saying there is no checkpoint yet (and the source's position), JSON
    ``"checkpoint": false``, and creates nothing; a table without rows (and from before
    the ``state`` column) is no checkpoint either and is not altered."""
    import json

    cfg = make_config(source, target, dbname, workers=1)
    conf = tmp_path / "applier.toml"
    conf.write_text(config_toml(cfg))
    schema = f"ckpt_{dbname}"

    def schemas() -> int:
        return int(target.query("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s",
                                (schema,))[0][0])

    def status(*args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "applier.cli", "status", *args, "--config", str(conf)],
                             capture_output=True, text=True, timeout=60, cwd=REPO)
        assert out.returncode == 0 and out.stderr == "", out
        assert source.password not in out.stdout and target.password not in out.stdout
        return out.stdout

    def says_none(text: str) -> None:
        lines = text.strip().splitlines()
        assert len(lines) == 1, text
        file, pos = source.binlog_position()
        for fragment in ("no checkpoint yet", f"`{schema}`.checkpoint", "[target] checkpoint_schema",
                         "applier run", f"source position: {file}:{pos}"):
            assert fragment in lines[0], (fragment, text)

    says_none(status())
    as_json = json.loads(status("--json"))
    assert as_json["checkpoint"] is False and as_json["applied"] == "" and as_json["lag_bytes"] is None
    assert not schemas(), "applier status created the checkpoint schema"
    target.execute(f"CREATE DATABASE {schema}")  # a table without rows, from before ``state``
    target.execute(f"CREATE TABLE {schema}.checkpoint (worker INT PRIMARY KEY, watermark BIGINT, "
                   "watermark_file VARCHAR(512), watermark_gtid TEXT, done TEXT, ddl_pending BIGINT, "
                   "transactions BIGINT)")
    says_none(status())
    columns = target.query("SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s "
                           "AND TABLE_NAME = 'checkpoint'", (schema,))
    assert columns[0][0] == 7, "applier status altered the checkpoint table"


def test_a_client_without_the_accounts_auth_plugin_is_told_so(mysql_source, mysql_target, tmp_path):
    """MySQL 9 accounts use caching_sha2_password (mysql_native_password is gone): a client
    library that cannot load that plugin (here: MariaDB Connector/C pointed at an empty
    plugin directory) gets one line naming the plugin and where to install it, not an
    "access denied" (libmariadb reports it as 1045) nor advice to use
    mysql_native_password."""
    from applier import config

    sc, tc = mysql_source.server_config(), mysql_target.server_config()
    cfg = config.Config(
        source=config.SourceConfig(host=sc.host, port=sc.port, user=sc.user, password=sc.password),
        target=config.TargetConfig(host=tc.host, port=tc.port, user=tc.user, password=tc.password))
    conf = tmp_path / "applier.toml"
    conf.write_text(config_toml(cfg))
    empty = tmp_path / "no-plugins"
    empty.mkdir()
    out = subprocess.run([sys.executable, "-m", "applier.cli", "status", "--config", str(conf)],
                         capture_output=True, text=True, timeout=60, cwd=REPO,
                         env={**os.environ, "MARIADB_PLUGIN_DIR": str(empty)})
    from tests.integration.test_cli_errors import assert_clean_error

    line = assert_clean_error(out, 4, "caching_sha2_password", "libmariadb3", "MARIADB_PLUGIN_DIR",
                              secrets=(sc.password, tc.password))
    assert "mysql_native_password" not in line and "access denied" not in line, line


def _xid_ends(source, file: str, pos: int) -> list[str]:
    """End positions (``file:pos``) of the transactions in ``file`` after ``pos``, in order."""
    events = source.query(f"SHOW BINLOG EVENTS IN '{file}' FROM {pos}")
    return [f"{file}:{e[4]}" for e in events if e[2] == "Xid"]


def test_status_shows_transactions_committed_out_of_order_and_the_gaps(source, target, dbname, tmp_path):
    """A worker blocked on a row lock while the other commits later transactions, then
    kill -9: the checkpoint holds transactions committed beyond the watermark. `applier
    status` (text and --json) shows the watermark as the applied position, how many
    committed beyond it and up to where, how many lie in the gaps, and the lag counted
    without the ones already committed; `applier run` then closes the gaps. After the
    source rotates its binlog (a Rotate and a new file's header, no transaction) the
    byte lag is not 0 but the lag in transactions and in seconds is 0, not unknown."""
    import json

    from tests.appliers import Applier
    from tests.appliers import wait_for as wait_until

    start = source.binlog_position()
    source.execute(f"CREATE DATABASE {dbname}")
    source.execute(f"CREATE TABLE {dbname}.counters (id INT PRIMARY KEY, n INT NOT NULL)")
    source.execute(f"CREATE TABLE {dbname}.ledger (seq INT PRIMARY KEY, at_id INT NOT NULL)")
    source.execute(f"INSERT INTO {dbname}.counters VALUES (1, 0), (2, 0)")
    cfg = make_config(source, target, dbname, start=start, workers=2, batch_txns=1)
    run_applier(cfg)
    conf = tmp_path / "applier.toml"
    conf.write_text(config_toml(cfg.with_overrides("apply", stop_at_end=False)))

    def status(*args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "applier.cli", "status", *args, "--config", str(conf)],
                             capture_output=True, text=True, timeout=60, cwd=REPO)
        assert out.returncode == 0, out.stderr
        return out.stdout

    watermark = source.binlog_position()
    source.execute(f"UPDATE {dbname}.counters SET n = n + 1 WHERE id = 1")  # blocked on the target
    for seq in range(1, 31):
        source.execute(f"INSERT INTO {dbname}.ledger VALUES (%s, %s)", (seq, seq))
        if seq == 15:
            source.execute("FLUSH BINARY LOGS")  # the gaps and what lies beyond span two files
    second = source.binlog_position()[0]
    ends = _xid_ends(source, *watermark) + _xid_ends(source, second, 4)
    assert len(ends) == 31 and "{}:{}".format(*source.binlog_position()) == ends[-1]
    sizes = {str(r[0]): int(r[1]) for r in source.query("SHOW BINARY LOGS")}
    behind = sizes[watermark[0]] - watermark[1]  # + the second file up to where the source is
    blocker = target.connect()
    blocker.autocommit(False)
    blocker.cursor().execute(f"SELECT * FROM {dbname}.counters WHERE id = 1 FOR UPDATE")
    try:
        app = Applier(conf, log_dir=tmp_path, name="gaps")
        wait_until("transactions committed out of order", lambda: target.query(
            f"SELECT COUNT(*) FROM {dbname}.ledger")[0][0], 60, app)
        time.sleep(0.5)
        app.signal(signal.SIGKILL, group=True)
        app.wait()
        app.assert_gone()
    finally:
        blocker.rollback()
        blocker.close()
    seqs = [int(r[0]) for r in target.query(f"SELECT seq FROM {dbname}.ledger ORDER BY seq")]
    assert seqs and int(target.query(f"SELECT n FROM {dbname}.counters WHERE id = 1")[0][0]) == 0
    beyond, highest = len(seqs), max(seqs)  # ledger row k is transaction k + 1 after the watermark
    gaps = highest + 1 - beyond  # the blocked UPDATE at least, and what queued behind it
    assert gaps >= 1 and highest >= 16, (seqs, "the set-up failed: no gap, or none across the files")
    st = json.loads(status("--json"))
    assert st["applied"] == f"{watermark[0]}:{watermark[1]}"
    assert st["committed_beyond"] == beyond
    assert st["highest_committed"] == ends[highest]
    assert st["in_gaps"] == gaps
    assert st["lag_transactions"] == 31 - beyond
    # (MariaDB may add a Binlog_checkpoint event to the new file after its transactions)
    assert st["source"].startswith(f"{second}:") and int(st["source"].split(":")[1]) >= int(ends[-1].split(":")[1])
    assert st["lag_bytes"] == behind + int(st["source"].split(":")[1])
    assert st["lag_seconds"] is not None and 0 <= st["lag_seconds"] < 120
    assert st["applier"] == "not running"
    text = status()
    assert f"applied position:   {watermark[0]}:{watermark[1]}\n" in text
    assert (f"committed beyond:   {beyond} transactions, up to {ends[highest]}\n"
            f"in gaps:            {gaps} transactions (not applied yet)\n") in text
    assert f"lag (transactions): {31 - beyond}\n" in text
    # the gaps are closed by the next run, exactly once
    m = run_applier(cfg)
    assert m.skipped_recovered == beyond and m.transactions == 31 - beyond
    assert_same(source, target, dbname)
    st = json.loads(status("--json"))
    assert (st["committed_beyond"], st["in_gaps"], st["applied"]) == (0, None, ends[-1])
    assert (st["lag_transactions"], st["lag_seconds"]) == (0, 0.0), st  # (bytes: a Binlog_checkpoint may follow)
    assert "committed beyond" not in status()
    # a rotated binlog: bytes behind, no transaction behind
    source.execute("FLUSH BINARY LOGS")
    st = json.loads(status("--json"))
    assert st["lag_bytes"] > 0, st
    assert (st["lag_transactions"], st["lag_seconds"]) == (0, 0.0), st
    assert "lag (seconds):      0.0\n" in status()

"""Starting from a MariaDB GTID position instead of file:pos, and `applier status`
reporting the applied position, the source position and the lag."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

from tests.support import assert_same, config_toml, make_config, run_applier

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

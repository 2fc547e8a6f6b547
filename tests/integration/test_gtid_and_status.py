"""Starting from a MariaDB GTID position instead of file:pos, and `applier status`
reporting the applied position, the source position and the lag."""

from __future__ import annotations

import dataclasses
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

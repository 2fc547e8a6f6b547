"""Exact positions: `applier status` after a caught-up run, starts by GTID that apply
nothing, UNTIL (position, GTID, time), one applier per checkpoint schema, and start
positions that are checked before anything is written."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from applier.binlog.position import BinlogPosition
from applier.errors import Busy, ConfigError, SourceError
from applier.pipeline.coordinator import Coordinator
from applier.pipeline.until import Until
from tests.support import assert_same, config_toml, make_config, run_applier

REPO = Path(__file__).resolve().parents[2]


def status_json(cfg, tmp_path) -> dict:
    conf = tmp_path / "status.toml"
    conf.write_text(config_toml(cfg))
    out = subprocess.run([sys.executable, "-m", "applier.cli", "status", "--json", "--config", str(conf)],
                         capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def workload(source, db: str, n: int) -> None:
    source.execute(f"CREATE DATABASE IF NOT EXISTS {db}")
    source.execute(f"CREATE TABLE IF NOT EXISTS {db}.t (id INT PRIMARY KEY, v INT NOT NULL)")
    for i in range(n):
        source.execute(f"INSERT INTO {db}.t VALUES (%s, %s) ON DUPLICATE KEY UPDATE v = v + 1", (i % 17, i))


def checkpoint_rows(target, db: str) -> int:
    return int(target.query(f"SELECT COUNT(*) FROM ckpt_{db}.checkpoint")[0][0])


def test_status_is_exact_after_a_caught_up_run_with_several_workers(source, target, dbname, tmp_path):
    cfg = make_config(source, target, dbname, workers=4)
    workload(source, dbname, 300)
    m = run_applier(cfg)
    st = status_json(cfg, tmp_path)
    file, pos = source.binlog_position()
    assert st["applied"] == f"{file}:{pos}" == m.position
    assert (st["lag_bytes"], st["lag_transactions"], st["lag_seconds"]) == (0, 0, 0.0)
    assert st["committed_beyond"] == 0 and st["applier"] == "not running"
    assert st["applied_gtid"] == source.gtid_position() == m.gtid
    time.sleep(1.2)  # idle: nothing grows
    assert status_json(cfg, tmp_path)["lag_seconds"] == 0.0
    for i in range(5):
        source.execute(f"UPDATE {dbname}.t SET v = v + 1 WHERE id = %s", (i,))
    behind = status_json(cfg, tmp_path)
    assert behind["lag_transactions"] == 5 and behind["lag_bytes"] > 0
    assert 0 <= behind["lag_seconds"] < 30


def test_a_gtid_start_that_applies_nothing_restarts(source, target, dbname):
    source.execute(f"CREATE DATABASE {dbname}")
    source.execute(f"CREATE TABLE {dbname}.t (id INT PRIMARY KEY, v INT NOT NULL)")
    cfg = make_config(source, target, dbname, workers=2)
    cfg = dataclasses.replace(cfg, source=dataclasses.replace(cfg.source, start_file="",
                                                              start_gtid=source.gtid_position()))
    target.execute(f"CREATE DATABASE {dbname}")
    target.execute(f"CREATE TABLE {dbname}.t (id INT PRIMARY KEY, v INT NOT NULL)")
    m = run_applier(cfg)  # nothing to apply: the checkpoint holds only the GTID position
    assert m.transactions == 0
    workload(source, dbname, 20)
    m = run_applier(cfg)
    assert m.transactions >= 20  # (+ the CREATE ... IF NOT EXISTS the source logs)
    assert_same(source, target, dbname)
    assert m.gtid == source.gtid_position()


def test_until_position_stops_there_exactly(source, target, dbname):
    cfg = make_config(source, target, dbname, workers=3)
    workload(source, dbname, 30)
    stop = source.binlog_position()
    workload(source, dbname, 30)
    m = Coordinator(cfg, Until(position=BinlogPosition(*stop))).run()
    assert m.until_reached and m.position == f"{stop[0]}:{stop[1]}"
    n = int(target.query(f"SELECT SUM(v) FROM {dbname}.t")[0][0])
    m = run_applier(cfg)  # the rest
    assert int(target.query(f"SELECT SUM(v) FROM {dbname}.t")[0][0]) > n
    assert_same(source, target, dbname)


def test_until_gtid_and_until_time(source, target, dbname):
    cfg = make_config(source, target, dbname, workers=2)
    workload(source, dbname, 10)
    gtid = source.gtid_position()
    time.sleep(1.1)
    moment = time.time()
    time.sleep(1.1)
    workload(source, dbname, 10)
    m = Coordinator(cfg, Until(gtid=gtid)).run()
    assert m.until_reached and m.gtid == gtid
    with pytest.raises(ConfigError, match="already applied"):
        Coordinator(cfg, Until(gtid=gtid)).run()
    later = source.gtid_position()
    m = Coordinator(cfg, Until(time=moment)).run()  # nothing before the moment is left
    assert m.until_reached and m.gtid == gtid and m.transactions == 0
    m = Coordinator(cfg, Until(time=time.time() + 3600)).run()  # stop_at_end comes first
    assert m.gtid == later and not m.until_reached
    assert_same(source, target, dbname)


def test_until_before_the_start_is_refused(source, target, dbname):
    before = source.binlog_position()
    workload(source, dbname, 3)
    cfg = make_config(source, target, dbname)
    with pytest.raises(ConfigError, match="at or before where this run starts"):
        Coordinator(cfg, Until(position=BinlogPosition(*before))).run()


def test_a_second_applier_on_the_same_checkpoint_schema_refuses(source, target, dbname):
    cfg = make_config(source, target, dbname, stop_at_end=False)
    workload(source, dbname, 5)
    first = Coordinator(cfg)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            first.run()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not target.query(f"SELECT IS_USED_LOCK('mts_applier.ckpt_{dbname}')")[0][0]:
            assert time.monotonic() < deadline and thread.is_alive(), errors
            time.sleep(0.1)
        with pytest.raises(Busy, match=f"another applier works with checkpoint schema 'ckpt_{dbname}'"):
            Coordinator(cfg).run()
    finally:
        first.request_stop()
        thread.join(60)
    assert not errors and not thread.is_alive()
    run_applier(make_config(source, target, dbname))  # the lock went with the first one
    assert_same(source, target, dbname)


def test_a_start_inside_a_transaction_is_refused_and_leaves_no_checkpoint(source, target, dbname):
    source.execute(f"CREATE DATABASE {dbname}")
    source.execute(f"CREATE TABLE {dbname}.t (id INT PRIMARY KEY, v INT NOT NULL)")
    start = source.binlog_position()
    source.execute(f"INSERT INTO {dbname}.t VALUES (1, 1)")
    events = source.query(f"SHOW BINLOG EVENTS IN '{start[0]}' FROM {start[1]}")
    table_map = next(e for e in events if e[2] == "Table_map")
    mid_event = table_map[1] + 3
    for pos, what in ((table_map[1], "inside a transaction"), (mid_event, "not the start of an event")):
        cfg = make_config(source, target, dbname, start=(start[0], pos))
        with pytest.raises(SourceError, match=what):
            run_applier(cfg)
        assert not target.query("SELECT 1 FROM information_schema.tables WHERE table_schema = %s",
                                (f"ckpt_{dbname}",)) or checkpoint_rows(target, dbname) == 0
    target.execute(f"CREATE DATABASE {dbname}")
    target.execute(f"CREATE TABLE {dbname}.t (id INT PRIMARY KEY, v INT NOT NULL)")
    run_applier(make_config(source, target, dbname, start=start))  # the corrected start works
    assert_same(source, target, dbname)

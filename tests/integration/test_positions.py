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


def _snapshot(server, db: str) -> tuple:
    return tuple(int(x) for x in server.query(
        f"SELECT COUNT(*), COALESCE(SUM(v), 0), COALESCE(BIT_XOR(CRC32(CONCAT(id, '/', v))), 0) FROM {db}.t")[0])


def _phase(source, db: str, k: int) -> None:
    """10 transactions: new rows, and updates of the rows of the phase before."""
    for i in range(10):
        source.execute(f"INSERT INTO {db}.t VALUES (%s, %s)", (k * 100 + i, i))
        if k:
            source.execute(f"UPDATE {db}.t SET v = v + %s WHERE id = %s", (k, (k - 1) * 100 + i))


def _last_gtid(source, start: tuple[str, int]) -> str:
    """The GTID of the last transaction in the source's binlog (from ``start``, one file)."""
    if source.flavor == "mariadb":
        return source.gtid_position()  # one domain: its last GTID
    events = source.query(f"SHOW BINLOG EVENTS IN '{start[0]}' FROM {start[1]}")
    return [e[5] for e in events if e[2] == "Gtid"][-1].split("'")[1]


@pytest.mark.parametrize("flavor", ("mariadb", "mysql"))
def test_run_until_through_the_command_line(request, flavor, dbname, tmp_path):
    """`applier run --until-position | --until-gtid | --until-time` (not --stop-at-end):
    each run exits 0, prints the position it ends at (JSON: ``position``,
    ``until_reached``), and the target is at exactly that point: its data is the source's
    as it was there, and the checkpoint is one position, nothing committed beyond it."""
    from applier.pipeline import checkpoint
    from tests.integration.test_cli_errors import run_cli

    source = request.getfixturevalue("source" if flavor == "mariadb" else "mysql_source")
    target = request.getfixturevalue("target" if flavor == "mariadb" else "mysql_target")
    start = source.binlog_position()
    source.execute(f"CREATE DATABASE {dbname}")
    source.execute(f"CREATE TABLE {dbname}.t (id INT PRIMARY KEY, v INT NOT NULL)")
    _phase(source, dbname, 0)
    at_position, snap_position = source.binlog_position(), _snapshot(source, dbname)
    _phase(source, dbname, 1)
    gtid, at_gtid, snap_gtid = _last_gtid(source, at_position), source.binlog_position(), _snapshot(source, dbname)
    _phase(source, dbname, 2)
    at_time, snap_time = source.binlog_position(), _snapshot(source, dbname)
    time.sleep(1.1)
    moment = time.strftime("%Y-%m-%d %H:%M:%S")  # local time, whole seconds
    time.sleep(1.1)
    _phase(source, dbname, 3)
    cfg = make_config(source, target, dbname, start=start, workers=4, batch_txns=2, stop_at_end=False)
    conf = tmp_path / "applier.toml"
    conf.write_text(config_toml(cfg))
    for option, value, end, snap in (("--until-position", f"{at_position[0]}:{at_position[1]}", at_position,
                                      snap_position),
                                     ("--until-gtid", gtid, at_gtid, snap_gtid),
                                     ("--until-time", moment, at_time, snap_time)):
        out = run_cli("run", "--config", str(conf), option, value, timeout=120)
        assert out.returncode == 0, (option, out.stderr)
        summary = json.loads(out.stdout.strip().splitlines()[-1])
        assert summary["until_reached"] is True, (option, summary)
        assert summary["position"] == f"{end[0]}:{end[1]}", (option, summary)
        assert _snapshot(target, dbname) == snap, option
        conn = target.connect()
        try:
            rec = checkpoint.load(conn, f"ckpt_{dbname}")
        finally:
            conn.close()
        assert (str(rec.start), rec.done) == (f"{end[0]}:{end[1]}", frozenset()), option
    out = run_cli("run", "--config", str(conf), "--stop-at-end", timeout=120)
    assert out.returncode == 0, out.stderr
    assert_same(source, target, dbname)


# -- --until-gtid after a start at a file position --------------------------------------------


@pytest.fixture(scope="module")
def domains_pair(tmp_path_factory, mariadb_available):
    """A MariaDB source and target of this module's own: its tests write in two GTID
    domains, which would make the session source's GTID position two-domain for every
    later test."""
    from applier.harness import sandbox

    source, target = sandbox.start_pair(tmp_path_factory.mktemp("domains"))
    yield source, target
    target.stop()
    source.stop()


def _history_then_start(request, flavor: str, db: str):
    """Source and target holding the same rows, written on the source before the start
    position (MariaDB: in GTID domain 1 only); then 5 transactions after it (domain 0).
    (source, target, start, the GTIDs before the start, the source's GTIDs at the end)."""
    if flavor == "mariadb":
        source, target = request.getfixturevalue("domains_pair")
    else:
        source, target = request.getfixturevalue("mysql_source"), request.getfixturevalue("mysql_target")
        source.execute("FLUSH BINARY LOGS")  # the start file: Previous_gtids, then GTIDs before the start
    conn = source.connect()
    try:
        cur = conn.cursor()
        if flavor == "mariadb":
            cur.execute("SET SESSION gtid_domain_id = 1")
        for sql in (f"CREATE DATABASE {db}", f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT NOT NULL)"):
            cur.execute(sql)
            target.execute(sql)
        for i in range(5):
            cur.execute(f"INSERT INTO {db}.t VALUES ({i}, {i})")
            target.execute(f"INSERT INTO {db}.t VALUES ({i}, {i})")
    finally:
        conn.close()
    start, before = source.binlog_position(), source.gtid_position()
    for i in range(5, 10):
        source.execute(f"INSERT INTO {db}.t VALUES ({i}, {i})")
    return source, target, start, before, source.gtid_position()


@pytest.mark.parametrize("flavor", ("mariadb", "mysql"))
def test_until_gtid_naming_gtids_from_before_a_file_start_is_reached(request, flavor, dbname):
    """A first run from a file position with --until-gtid = the source's whole GTID
    position (MariaDB: a domain written to only before the start; MySQL: uuid:1-N) and
    no --stop-at-end: the run ends once the last transaction is applied, it does not
    wait for one past the point; a point wholly before the start is refused."""
    source, target, start, before, end = _history_then_start(request, flavor, dbname)
    cfg = make_config(source, target, dbname, start=start, workers=2, stop_at_end=False)
    with pytest.raises(ConfigError, match="already applied"):
        Coordinator(cfg, Until(gtid=before)).run()
    coord = Coordinator(cfg, Until(gtid=end))
    result: list = []
    thread = threading.Thread(target=lambda: result.append(coord.run()), daemon=True)
    thread.start()
    thread.join(60)
    if thread.is_alive():
        coord.request_stop()
        thread.join(60)
        pytest.fail(f"--until-gtid {end} was not reached after a start at {start}")
    assert result and result[0].until_reached
    assert result[0].position == "{}:{}".format(*source.binlog_position())
    assert_same(source, target, dbname)


@pytest.mark.parametrize("flavor", ("mariadb", "mysql"))
def test_run_until_gtid_after_a_file_start_through_the_command_line(request, flavor, dbname, tmp_path):
    """As above with `applier run --until-gtid` itself (with --stop-at-end, so that a
    point that is never reached would end the run too, reported as not reached)."""
    from tests.integration.test_cli_errors import run_cli

    source, target, start, _before, end = _history_then_start(request, flavor, dbname)
    conf = tmp_path / "applier.toml"
    conf.write_text(config_toml(make_config(source, target, dbname, start=start, workers=2)))
    out = run_cli("run", "--config", str(conf), "--until-gtid", end, "--stop-at-end", timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1])["until_reached"] is True, out.stdout

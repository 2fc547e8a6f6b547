"""`applier replay`: binlog files saved from a real source, applied to a real target in
parallel, exactly once, to the end or to an UNTIL point; bad files refused with one
clear line and nothing applied; a copy of a binlog still being written (its last
transaction incomplete) applied up to its last whole transaction, with a warning."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import time
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from applier.binlog import events as ev
from applier.harness import sandbox, workload
from tests.appliers import Applier, applied
from tests.integration.test_cli_errors import assert_clean_error, run_cli
from tests.support import assert_same, config_toml, make_config

DB = "rp"


def tables_of(server, db: str) -> dict[str, list[tuple]]:
    """Every table of ``db`` and its rows (sorted): a copy of its data at this moment."""
    names = [r[0] for r in server.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s ORDER BY 1", (db,))]
    return {n: sorted(server.query(f"SELECT * FROM `{db}`.`{n}`"), key=repr) for n in names}


def events_of(path: Path) -> list[tuple[int, int]]:
    """(offset, type) of every event of a binlog file."""
    data, out, p = path.read_bytes(), [], 4
    while p < len(data):
        out.append((p, data[p + 4]))
        p += int.from_bytes(data[p + 9 : p + 13], "little")
    return out


def summary(out) -> dict:
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def saved(tmp_path_factory, mariadb_available):
    """A source's binlog files over a workload (three files, a DDL, a big transaction,
    then a last file with a few transactions), copied away. Also: the last GTID before the
    files and a moment before them; where the last file's whole transactions end before
    its last one (``tail_pos``) and the tables then (``tail_rows``)."""
    base = tmp_path_factory.mktemp("replay")
    source = sandbox.make_source(base / "source")
    source.start()
    try:
        sc = source.server_config()
        source.execute("CREATE DATABASE rp_pre")  # a GTID before the files
        source.execute("FLUSH BINARY LOGS")
        before_gtid, before_time = source.gtid_position(), int(time.time())
        time.sleep(max(0.0, before_time + 1.05 - time.time()))  # the files' transactions: a later second
        workload.prepare(sc, DB, tables=3, rows=500)
        workload.run(sc, DB, "uniform", 1200, 4, tables=3, rows=500)
        source.execute("FLUSH BINARY LOGS")
        source.execute(f"ALTER TABLE {DB}.sbtest2 ADD COLUMN extra INT DEFAULT 3")
        workload.run(sc, DB, "big", 300, 2, tables=3, rows=500, big_rows=500)
        source.execute("FLUSH BINARY LOGS")
        workload.run(sc, DB, "uniform", 40, 2, tables=3, rows=500)
        tail_pos, tail_rows = source.binlog_position(), tables_of(source, DB)
        conn = source.connect()
        try:  # the last transaction: several events (a cut copy may end inside it)
            cur = conn.cursor()
            cur.execute("BEGIN")
            cur.execute(f"INSERT INTO {DB}.sbtest1 (k, c, pad) VALUES (1, 'last', 'x'), (2, 'last', 'y')")
            cur.execute(f"UPDATE {DB}.sbtest3 SET n = n + 1 WHERE id <= 20")
            cur.execute("COMMIT")
        finally:
            conn.close()
        names = [r[0] for r in source.query("SHOW BINARY LOGS")][1:]  # from the first FLUSH on
        files = base / "files"
        files.mkdir()
        for name in names:
            shutil.copy(source.datadir / name, files / name)
        assert tail_pos[0] == names[-1]
        yield SimpleNamespace(source=source, files=[files / n for n in names], before_gtid=before_gtid,
                              before_time=before_time, tail_pos=tail_pos[1], tail_rows=tail_rows)
    finally:
        source.stop()


@pytest.fixture
def fresh(tmp_path, mariadb_available):
    """An empty target (the replay applies the tables' creation too)."""
    target = sandbox.make_target(tmp_path / "target")
    target.start()
    yield target
    target.stop()


def config_file(tmp_path: Path, source, target, name: str = "replay.toml", **apply) -> Path:
    """A config for the target (no start position: a replay starts at the first file)."""
    cfg = make_config(source, target, DB, **apply)
    cfg = dataclasses.replace(cfg, source=dataclasses.replace(cfg.source, start_file="", start_pos=4))
    path = tmp_path / name
    path.write_text(config_toml(cfg))
    return path


def test_replay_applies_the_files_exactly(saved, fresh, tmp_path):
    source, files = saved.source, saved.files
    path = config_file(tmp_path, source, fresh, workers=4)
    out = run_cli("replay", "--config", str(path), *map(str, files), timeout=300)
    assert out.returncode == 0, out.stderr
    assert '"position": "mysql-bin.' in out.stdout
    assert_same(source, fresh, DB)
    again = run_cli("replay", "--config", str(path), *map(str, files), timeout=300)
    assert again.returncode == 0, again.stderr  # nothing twice: the checkpoint skips it all
    assert '"transactions": 0' in again.stdout
    assert_same(source, fresh, DB)


def test_replay_killed_then_again_resumes_exactly_once(saved, fresh, tmp_path):
    source, files = saved.source, saved.files
    path = config_file(tmp_path, source, fresh, workers=4, batch_txns=8)
    app = Applier(path, *map(str, files), log_dir=tmp_path, name="replay", command="replay")
    deadline_ok = _wait(lambda: applied(fresh, f"ckpt_{DB}") > 300 or app.proc.poll() is not None)
    assert deadline_ok, app.describe()
    app.signal(signal.SIGKILL, group=True)
    app.wait()
    app.assert_gone()
    out = run_cli("replay", "--config", str(path), *map(str, files), timeout=300)
    assert out.returncode == 0, out.stderr
    assert_same(source, fresh, DB)  # the ledger would hold a duplicate or miss a row


def test_bad_files_are_refused_and_nothing_is_applied(saved, fresh, tmp_path):
    source, files = saved.source, saved.files
    path = config_file(tmp_path, source, fresh)
    # a missing middle file
    out = run_cli("replay", "--config", str(path), str(files[0]), str(files[2]))
    assert_clean_error(out, 2, f"binlog file {files[1].name} is missing between")
    # a truncated last event
    cut = tmp_path / files[-1].name
    data = files[-1].read_bytes()
    cut.write_bytes(data[: len(data) - 7])
    out = run_cli("replay", "--config", str(path), str(files[0]), str(files[1]), str(cut))
    assert_clean_error(out, 3, str(cut), "truncated")
    # a corrupted event (a flipped byte: its CRC32 fails)
    bad = tmp_path / "bad" / files[0].name
    bad.parent.mkdir()
    raw = bytearray(files[0].read_bytes())
    raw[len(raw) // 2] ^= 0x40
    bad.write_bytes(bytes(raw))
    out = run_cli("replay", "--config", str(path), str(bad))
    assert_clean_error(out, 3, str(bad), "checksum")
    # a file of another server in the sequence
    other = sandbox.LocalMariadb("other", tmp_path / "other", sandbox.free_port(), 7, True,
                                 sandbox.source_options())
    other.start()
    try:
        other.execute("FLUSH BINARY LOGS")
        foreign = tmp_path / "foreign" / files[1].name
        foreign.parent.mkdir()
        shutil.copy(other.datadir / "mysql-bin.000001", foreign)
    finally:
        other.stop()
    out = run_cli("replay", "--config", str(path), str(files[0]), str(foreign))
    assert_clean_error(out, 3, "not from one server")
    # not a binlog file
    junk = tmp_path / "mysql-bin.000009"
    junk.write_bytes(b"hello")
    out = run_cli("replay", "--config", str(path), str(junk))
    assert_clean_error(out, 3, "is not a binlog file")
    # UNTIL before the start
    out = run_cli("replay", "--config", str(path), "--start-position", f"{files[1].name}:4",
                  "--until-position", f"{files[0].name}:200", *map(str, files))
    assert_clean_error(out, 2, "at or before where this run starts")
    assert not fresh.query(f"SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{DB}'")


def test_a_middle_file_cut_short_is_refused_before_anything_is_applied(saved, fresh, tmp_path):
    """A file before the last one, copied while the server wrote it, cut exactly at an
    event boundary: every event in it is whole, but its closing Rotate is missing and so
    are the transactions after the cut. Refused, naming the file and where it ends."""
    source, files = saved.source, saved.files
    path = config_file(tmp_path, source, fresh)
    events = events_of(files[0])
    assert events[-1][1] == ev.ROTATE
    gtids = [o for o, t in events if t == ev.MARIADB_GTID]
    data = files[0].read_bytes()
    for end in (events[-1][0], gtids[len(gtids) // 2]):  # before the Rotate; mid-file, between transactions
        cut = tmp_path / str(end) / files[0].name
        cut.parent.mkdir()
        cut.write_bytes(data[:end])
        out = run_cli("replay", "--config", str(path), str(cut), *map(str, files[1:]))
        assert_clean_error(out, 3, f"binlog file {cut} ends at offset {end} without the Rotate")
    assert not fresh.query(f"SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{DB}'")


def test_a_middle_file_ending_inside_a_transaction_is_an_error(saved, fresh, tmp_path):
    """A middle file that ends inside a transaction though a Rotate closes it (spliced):
    the rest of that transaction is nowhere; an error naming the file and the offset,
    and nothing of that transaction applied."""
    source, files = saved.source, saved.files
    path = config_file(tmp_path, source, fresh)
    events = events_of(files[0])
    xids = [o for o, t in events if t == ev.XID]
    data = files[0].read_bytes()
    start = xids[len(xids) // 2]  # cut just before a COMMIT, then the file's own Rotate
    spliced = tmp_path / "spliced" / files[0].name
    spliced.parent.mkdir()
    spliced.write_bytes(data[:start] + data[events[-1][0]:])
    whole = max(o for o, t in events if o < start and t == ev.MARIADB_GTID)
    out = run_cli("replay", "--config", str(path), str(spliced), *map(str, files[1:]), timeout=120)
    assert_clean_error(out, 3, f"binlog file {spliced} ends inside a transaction", f"offset {whole}")


@pytest.mark.parametrize(("native_scan", "big_txn_rows"), [(True, 10_000), (False, 10_000), (True, 10)])
def test_a_last_file_ending_inside_a_transaction_applies_the_whole_ones(saved, fresh, tmp_path, native_scan,
                                                                        big_txn_rows):
    """The last file copied while the server was writing its last transaction (cut at an
    event boundary inside it): the whole transactions are applied, the incomplete one is
    not (read by the native scanner, event by event, or streamed as a big transaction:
    rolled back), one warning names the file and where the whole transactions end, the
    printed position is there, exit 0 (what `mariadb-binlog | mariadb` users expect)."""
    source, files = saved.source, saved.files
    last = events_of(files[-1])
    xid = max(o for o, t in last if t == ev.XID)
    assert xid > saved.tail_pos
    cut = tmp_path / "live" / files[-1].name
    cut.parent.mkdir()
    cut.write_bytes(files[-1].read_bytes()[:xid])  # all of the last transaction but its COMMIT
    path = config_file(tmp_path, source, fresh, workers=3, native_scan=native_scan, big_txn_rows=big_txn_rows)
    out = run_cli("replay", "--config", str(path), *map(str, files[:-1]), str(cut), timeout=300)
    assert out.returncode == 0, out.stderr
    warnings = [line for line in out.stderr.splitlines() if "ends inside a transaction" in line]
    assert len(warnings) == 1, out.stderr
    assert str(cut) in warnings[0] and f"offset {saved.tail_pos}" in warnings[0], warnings
    assert "WARNING" in warnings[0] and "not applied" in warnings[0]
    result = summary(out)
    assert result["position"] == f"{files[-1].name}:{saved.tail_pos}"
    assert (result["native_scanned"] > 0) == native_scan and (result["big_transactions"] > 0) == (big_txn_rows < 100)
    assert tables_of(fresh, DB) == saved.tail_rows


@pytest.mark.parametrize("option", ["start_file", "start_gtid"])
def test_replay_ignores_the_start_options_of_the_source_section(saved, fresh, tmp_path, option):
    """A `run` config reused for a replay: [source] start_file/start_gtid are not used (a
    replay starts where --start-position/--start-gtid say, else at the first file)."""
    source, files = saved.source, saved.files
    cfg = make_config(source, fresh, DB)
    start = ({"start_file": files[1].name, "start_pos": 4} if option == "start_file" else
             {"start_file": "", "start_pos": 4, "start_gtid": source.gtid_position()})
    cfg = dataclasses.replace(cfg, source=dataclasses.replace(cfg.source, **start))
    path = tmp_path / "run.toml"
    path.write_text(config_toml(cfg))
    out = run_cli("replay", "--config", str(path), *map(str, files), timeout=300)
    assert out.returncode == 0, out.stderr
    assert_same(source, fresh, DB)


def test_until_at_or_before_the_first_transaction_applies_nothing(saved, fresh, tmp_path):
    """No start position: an UNTIL point at or before the files' first transaction is
    refused (nothing to apply), not reached one transaction past it."""
    source, files = saved.source, saved.files
    path = config_file(tmp_path, source, fresh)
    first = next(o for o, t in events_of(files[0]) if t == ev.MARIADB_GTID)
    moment = datetime.fromtimestamp(saved.before_time).strftime("%Y-%m-%d %H:%M:%S")
    for option, value in (("--until-position", f"{files[0].name}:{first}"), ("--until-position", f"{files[0].name}:4"),
                          ("--until-gtid", saved.before_gtid), ("--until-time", moment)):
        out = run_cli("replay", "--config", str(path), option, value, *map(str, files))
        assert_clean_error(out, 2, option, "first transaction", "nothing to apply")
    assert not fresh.query(f"SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{DB}'")
    # one byte into the first transaction: that one, and only that one
    out = run_cli("replay", "--config", str(path), "--until-position", f"{files[0].name}:{first + 1}",
                  *map(str, files))
    assert out.returncode == 0, out.stderr
    result = summary(out)
    assert result["until_reached"] and result["transactions"] == 1, result
    assert fresh.query(f"SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{DB}'")
    assert not fresh.query(f"SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{DB}'")


# -- UNTIL a GTID and a moment, over a long history ------------------------------------------

TRANSACTIONS = int(os.environ.get("REPLAY_TEST_TRANSACTIONS", "3000"))  # 20000 for the full size


@pytest.fixture(scope="module")
def history(tmp_path_factory, mariadb_available):
    """TRANSACTIONS transactions over five binlog files (a DDL and big transactions among
    them), copied away, with two points in the middle of files where the load paused and
    the source's data was copied: ``at_gtid`` (its GTID position) and ``at_time`` (a
    moment: the load paused more than a second around it, so the commit timestamps,
    whole seconds, have a boundary there)."""
    base = tmp_path_factory.mktemp("history")
    source = sandbox.make_source(base / "source")
    source.start()
    n = TRANSACTIONS

    def load(count: int, kind: str = "uniform") -> None:
        workload.run(sc, DB, kind, count, 4, tables=3, rows=500, big_rows=300, seed=count)

    def point() -> SimpleNamespace:  # the load is paused: the source's state at this point
        return SimpleNamespace(gtid=source.gtid_position(), position=source.binlog_position(),
                               rows=tables_of(source, DB))

    try:
        sc = source.server_config()
        source.execute("FLUSH BINARY LOGS")
        workload.prepare(sc, DB, tables=3, rows=500)
        load(n // 4)
        source.execute("FLUSH BINARY LOGS")
        load(n // 8)
        at_gtid = point()
        source.execute(f"ALTER TABLE {DB}.sbtest2 ADD COLUMN extra INT DEFAULT 3")
        load(8, "big")
        load(n // 8)
        source.execute("FLUSH BINARY LOGS")
        load(n // 5)
        before = time.time()
        at_time = point()
        at_time.moment = int(before) + 1  # after every commit so far, before every later one
        time.sleep(max(0.0, at_time.moment + 1.05 - time.time()))
        load(n // 5)
        source.execute("FLUSH BINARY LOGS")
        load(n - n // 4 - n // 8 * 2 - n // 5 * 2 - 8)
        source.execute("FLUSH BINARY LOGS")
        names = [r[0] for r in source.query("SHOW BINARY LOGS")][1:]
        files = base / "files"
        files.mkdir()
        for name in names:
            shutil.copy(source.datadir / name, files / name)
        yield SimpleNamespace(source=source, files=[files / f for f in names], at_gtid=at_gtid, at_time=at_time)
    finally:
        source.stop()


def _inside_a_file(files: list[Path], position: tuple[str, int]) -> None:
    """``position`` lies between two transactions of one file, not at its start or end."""
    path = next(f for f in files if f.name == position[0])
    gtids = [o for o, t in events_of(path) if t == ev.MARIADB_GTID]
    assert gtids[0] < position[1] < gtids[-1], (position, gtids[0], gtids[-1])
    assert path != files[-1] and path != files[0]


def test_replay_until_gtid_and_time_end_exactly_there(history, fresh, tmp_path):
    """--until-gtid in the middle of a file and --until-time between two transactions
    (after a pause of the load): each replay ends exactly there. Every table of the
    database equals the source's copy taken at that point; the printed position and GTID
    are the source's there."""
    files = history.files
    path = config_file(tmp_path, history.source, fresh, workers=4)
    moment = datetime.fromtimestamp(history.at_time.moment).strftime("%Y-%m-%d %H:%M:%S")
    for option, value, at in (("--until-gtid", history.at_gtid.gtid, history.at_gtid),
                              ("--until-time", moment, history.at_time)):
        _inside_a_file(files, at.position)
        started = time.monotonic()
        out = run_cli("replay", "--config", str(path), option, value, *map(str, files), timeout=900)
        assert out.returncode == 0, out.stderr
        result = summary(out)
        print(f"replay {option} of {TRANSACTIONS} transactions: {time.monotonic() - started:.1f}s, {result}")
        assert result["until_reached"] is True, result
        assert (result["gtid"], result["position"]) == (at.gtid, f"{at.position[0]}:{at.position[1]}"), result
        assert tables_of(fresh, DB) == at.rows
        fresh.execute(f"DROP DATABASE {DB}")
        fresh.execute(f"DROP DATABASE ckpt_{DB}")
    out = run_cli("replay", "--config", str(path), *map(str, files), timeout=900)  # and to the end
    assert out.returncode == 0, out.stderr
    assert_same(history.source, fresh, DB)


def _wait(predicate, timeout: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True

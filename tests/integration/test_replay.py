"""`applier replay`: binlog files saved from a real source, applied to a real target in
parallel, exactly once, to the end or to an UNTIL point; bad files refused with one
clear line and nothing applied."""

from __future__ import annotations

import dataclasses
import shutil
import signal
from pathlib import Path

import pytest

from applier.harness import sandbox, workload
from tests.appliers import Applier, applied
from tests.integration.test_cli_errors import assert_clean_error, run_cli
from tests.support import assert_same, config_toml, make_config

DB = "rp"


@pytest.fixture(scope="module")
def saved(tmp_path_factory, mariadb_available):
    """A source's binlog files over a workload (three files, a DDL, a big transaction),
    copied away, plus the table's content and the source's GTID at a midpoint."""
    base = tmp_path_factory.mktemp("replay")
    source = sandbox.make_source(base / "source")
    source.start()
    try:
        sc = source.server_config()
        source.execute("FLUSH BINARY LOGS")
        workload.prepare(sc, DB, tables=3, rows=500)
        workload.run(sc, DB, "uniform", 1200, 4, tables=3, rows=500)
        source.execute("FLUSH BINARY LOGS")
        mid_gtid = source.gtid_position()
        mid_rows = source.query(f"SELECT id, k, c, n FROM {DB}.sbtest1 ORDER BY id")
        source.execute(f"ALTER TABLE {DB}.sbtest2 ADD COLUMN extra INT DEFAULT 3")
        workload.run(sc, DB, "big", 300, 2, tables=3, rows=500, big_rows=500)
        source.execute("FLUSH BINARY LOGS")
        names = [r[0] for r in source.query("SHOW BINARY LOGS")][1:]  # from the first FLUSH on
        files = base / "files"
        files.mkdir()
        for name in names:
            shutil.copy(source.datadir / name, files / name)
        yield source, [files / n for n in names], mid_gtid, mid_rows
    finally:
        source.stop()


@pytest.fixture
def fresh(tmp_path, mariadb_available):
    """An empty target (the replay applies the tables' creation too)."""
    target = sandbox.make_target(tmp_path / "target")
    target.start()
    yield target
    target.stop()


def config_file(tmp_path: Path, source, target, **apply) -> Path:
    """A config for the target (no start position: a replay starts at the first file)."""
    cfg = make_config(source, target, DB, **apply)
    cfg = dataclasses.replace(cfg, source=dataclasses.replace(cfg.source, start_file="", start_pos=4))
    path = tmp_path / "replay.toml"
    path.write_text(config_toml(cfg))
    return path


def test_replay_applies_the_files_exactly(saved, fresh, tmp_path):
    source, files, _, _ = saved
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
    source, files, _, _ = saved
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


def test_replay_until_gtid_and_time_end_exactly_there(saved, fresh, tmp_path):
    source, files, mid_gtid, mid_rows = saved
    path = config_file(tmp_path, source, fresh, workers=3)
    out = run_cli("replay", "--config", str(path), "--until-gtid", mid_gtid, *map(str, files), timeout=300)
    assert out.returncode == 0, out.stderr
    assert f'"gtid": "{mid_gtid}"' in out.stdout and '"until_reached": true' in out.stdout
    assert fresh.query(f"SELECT id, k, c, n FROM {DB}.sbtest1 ORDER BY id") == mid_rows
    out = run_cli("replay", "--config", str(path), "--until-gtid", mid_gtid, *map(str, files))
    assert_clean_error(out, 2, "--until-gtid", "already applied")


def test_bad_files_are_refused_and_nothing_is_applied(saved, fresh, tmp_path):
    source, files, _, _ = saved
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


def _wait(predicate, timeout: float = 120.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True

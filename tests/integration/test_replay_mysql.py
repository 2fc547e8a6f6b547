"""`applier replay` of MySQL 9.7 binlog files: point-in-time recovery after restoring a
backup, to ``--until-gtid uuid:1-N`` (the usual call, the set of every GTID up to the
point). The backup's GTIDs were never read by the replay: they are in the target's
gtid_executed (as a restore sets gtid_purged), and they count as read, so the replay
ends exactly at the point, not at the end of the files."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest

from applier.harness import sandbox
from tests.integration.test_cli_errors import assert_clean_error, run_cli
from tests.integration.test_replay import tables_of
from tests.support import config_toml, make_config

pytestmark = pytest.mark.integration


@pytest.fixture
def restored(tmp_path, mysql_available):
    """A MySQL target in GTID mode, as a backup is restored to (its own, not the session's:
    the test sets its gtid_purged)."""
    target = sandbox.make_target(tmp_path / "target", flavor="mysql")
    target.options.update({"gtid_mode": "ON", "enforce_gtid_consistency": "ON"})
    target.start()
    yield target
    target.stop()


def test_mysql_until_gtid_after_a_restored_backup_ends_there(mysql_source, restored, tmp_path, dbname):
    src = mysql_source
    src.execute("FLUSH BINARY LOGS")
    first = src.binlog_position()[0]
    src.execute(f"CREATE DATABASE {dbname}")
    src.execute(f"CREATE TABLE {dbname}.t (id INT PRIMARY KEY, n INT NOT NULL)")
    for i in range(1, 21):
        src.execute(f"INSERT INTO {dbname}.t VALUES ({i}, {i})")
    backup_gtid, backup_pos, backup_rows = src.gtid_position(), src.binlog_position(), tables_of(src, dbname)
    for i in range(21, 41):
        src.execute(f"INSERT INTO {dbname}.t VALUES ({i}, {i})")
        src.execute(f"UPDATE {dbname}.t SET n = n + 1 WHERE id = {i - 20}")
    src.execute("FLUSH BINARY LOGS")  # the point lies in the second file
    for i in range(41, 51):
        src.execute(f"UPDATE {dbname}.t SET n = n * 2 WHERE id = {i - 40}")
    point_gtid, point_rows = src.gtid_position(), tables_of(src, dbname)
    for i in range(51, 71):
        src.execute(f"INSERT INTO {dbname}.t VALUES ({i}, 0)")
        src.execute(f"DELETE FROM {dbname}.t WHERE id = {i - 50}")
    src.execute("FLUSH BINARY LOGS")
    names = [r[0] for r in src.query("SHOW BINARY LOGS")]
    names = [n for n in names if first <= n < src.binlog_position()[0]]
    assert len(names) == 2
    files = tmp_path / "files"
    files.mkdir()
    for name in names:
        shutil.copy(src.datadir / name, files / name)

    # the backup, restored: its data and its GTIDs (gtid_purged, as mysqldump sets it)
    restored.execute(f"CREATE DATABASE {dbname}")
    restored.execute(f"CREATE TABLE {dbname}.t (id INT PRIMARY KEY, n INT NOT NULL)")
    restored.execute(f"INSERT INTO {dbname}.t VALUES " + ",".join(f"({i}, {n})" for i, n in backup_rows["t"]))
    restored.execute(f"SET GLOBAL gtid_purged = '+{backup_gtid}'")

    cfg = make_config(src, restored, dbname)
    cfg = dataclasses.replace(cfg, source=dataclasses.replace(cfg.source, start_file="", start_pos=4))
    path = tmp_path / "replay.toml"
    path.write_text(config_toml(cfg))
    paths = [str(files / n) for n in names]
    start = f"{backup_pos[0]}:{backup_pos[1]}"
    # the backup holds the point already: nothing to apply
    out = run_cli("replay", "--config", str(path), "--start-position", start, "--until-gtid", backup_gtid, *paths)
    assert_clean_error(out, 2, "--until-gtid", "already applied", "gtid_executed")
    out = run_cli("replay", "--config", str(path), "--start-position", start, "--until-gtid", point_gtid,
                  *paths, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "WARNING" not in out.stderr, out.stderr  # (not "files end before UNTIL", nor "not every GTID read")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["until_reached"] is True, result
    assert tables_of(restored, dbname) == point_rows
    assert result["transactions"] == 20 * 2 + 10, result

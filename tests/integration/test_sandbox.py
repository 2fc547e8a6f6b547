"""The sandbox really starts servers the applier can use, and survives restarts and crashes.

Lifecycle tests use their own server (``scratch``): stopping the session-wide ``source``
or ``target`` would break every later test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from applier.errors import ApplierError
from applier.harness import sandbox


@pytest.fixture(scope="module")
def scratch(
    mariadb_available: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[sandbox.LocalMariadb]:
    server = sandbox.make_source(tmp_path_factory.mktemp("scratch"), name="scratch")
    server.start()
    yield server
    server.stop()


def _variables(server: sandbox.LocalMariadb, *names: str) -> dict[str, str]:
    cols = ", ".join(f"@@{n}" for n in names)
    return dict(zip(names, (str(v) for v in server.query(f"SELECT {cols}")[0]), strict=True))


def test_fixtures_start(source: sandbox.LocalMariadb, target: sandbox.LocalMariadb) -> None:
    assert source.running and target.running
    assert source.port != target.port
    assert _variables(source, "server_id", "log_bin") == {"server_id": "1", "log_bin": "1"}
    assert _variables(target, "server_id", "log_bin") == {"server_id": "2", "log_bin": "0"}


def test_source_binlog_settings(source: sandbox.LocalMariadb) -> None:
    assert _variables(
        source,
        "binlog_format",
        "binlog_row_image",
        "binlog_row_metadata",
        "gtid_strict_mode",
        "log_slave_updates",
        "character_set_server",
    ) == {
        "binlog_format": "ROW",
        "binlog_row_image": "FULL",
        "binlog_row_metadata": "FULL",
        "gtid_strict_mode": "1",
        "log_slave_updates": "1",
        "character_set_server": "utf8mb4",
    }


def test_connect_as_mts_with_utf8mb4_and_autocommit(target: sandbox.LocalMariadb) -> None:
    conn = target.connect()
    try:
        cur = conn.cursor()
        cur.execute("SELECT CURRENT_USER(), @@autocommit, @@character_set_client")
        user, autocommit, charset = cur.fetchone()
    finally:
        conn.close()
    assert user == "mts@127.0.0.1" or user == "mts@localhost"
    assert (autocommit, charset) == (1, "utf8mb4")
    cfg = target.server_config()
    assert (cfg.host, cfg.port, cfg.user, cfg.password) == (
        "127.0.0.1",
        target.port,
        "mts",
        target.password,
    )


def test_password_never_in_repr(source: sandbox.LocalMariadb) -> None:
    assert source.password not in repr(source)
    assert source.password not in repr(source.server_config())


def test_binlog_position_advances(source: sandbox.LocalMariadb, dbname: str) -> None:
    before, gtid_before = source.binlog_position(), source.gtid_position()
    source.execute(f"CREATE DATABASE {dbname}")
    source.execute(f"CREATE TABLE {dbname}.t (id INT PRIMARY KEY, s VARCHAR(10))")
    assert source.execute(f"INSERT INTO {dbname}.t VALUES (1, 'é'), (2, '😀')") == 2
    after = source.binlog_position()
    assert after[0].startswith("mysql-bin.")
    assert (after[0], after[1]) > before
    assert source.gtid_position() not in ("", gtid_before)
    assert source.query(f"SELECT s FROM {dbname}.t ORDER BY id") == [("é",), ("😀",)]


def test_target_has_no_binlog_position(target: sandbox.LocalMariadb) -> None:
    with pytest.raises(ApplierError, match="no binary log"):
        target.binlog_position()


def test_restart_keeps_data(scratch: sandbox.LocalMariadb, dbname: str) -> None:
    scratch.execute(f"CREATE DATABASE {dbname}")
    scratch.execute(f"CREATE TABLE {dbname}.t (id INT PRIMARY KEY)")
    scratch.execute(f"INSERT INTO {dbname}.t VALUES (1), (2), (3)")
    port, position = scratch.port, scratch.binlog_position()
    scratch.stop()
    assert not scratch.running
    scratch.stop()  # idempotent
    scratch.start()
    scratch.start()  # no-op while running
    assert scratch.port == port
    assert scratch.query(f"SELECT COUNT(*) FROM {dbname}.t") == [(3,)]
    # A restart rotates the binlog; the old file stays.
    assert scratch.binlog_position()[0] > position[0]


def test_kill_then_start_recovers(scratch: sandbox.LocalMariadb, dbname: str) -> None:
    scratch.execute(f"CREATE DATABASE {dbname}")
    scratch.execute(f"CREATE TABLE {dbname}.t (id INT PRIMARY KEY)")
    scratch.execute(f"INSERT INTO {dbname}.t VALUES (1), (2)")
    gtid = scratch.gtid_position()
    scratch.kill()
    assert not scratch.running
    scratch.kill()  # idempotent
    scratch.start()
    assert scratch.query(f"SELECT id FROM {dbname}.t ORDER BY id") == [(1,), (2,)]
    assert scratch.gtid_position() == gtid
    scratch.execute(f"INSERT INTO {dbname}.t VALUES (3)")
    assert scratch.gtid_position() != gtid


def test_failed_start_shows_error_log(tmp_path: Path) -> None:
    server = sandbox.LocalMariadb(
        "broken", tmp_path / "broken", sandbox.free_port(), 9, False, {"no_such_option": "1"}
    )
    with pytest.raises(ApplierError, match="unknown variable") as info:
        server.start(timeout=30)
    assert "error.log" in str(info.value)
    assert not server.running


def test_missing_binaries_message(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    monkeypatch.setattr(sandbox, "_SEARCH_DIRS", (tmp_path,))
    with pytest.raises(ApplierError, match="apt-get install -y mariadb-server mariadb-client"):
        sandbox.find_mariadb_binaries()

"""The sandbox really starts servers the applier can use, and survives restarts and crashes.

Lifecycle tests use their own server (``scratch``, ``mysql_scratch``): stopping the
session-wide ``source`` or ``target`` would break every later test. The MySQL tests
(``test_mysql_*``) run ``mysqld`` 9.7 from the chroot of ``sandbox.find_mysql()``.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from applier.db.connect import connect
from applier.errors import ApplierError
from applier.harness import mariadb, sandbox


@pytest.fixture(scope="module")
def scratch(
    mariadb_available: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[sandbox.LocalMariadb]:
    server = sandbox.make_source(tmp_path_factory.mktemp("scratch"), name="scratch")
    server.start()
    yield server
    server.stop()


def _variables(server: sandbox.LocalServer, *names: str) -> dict[str, str]:
    cols = ", ".join(f"@@{n}" for n in names)
    return dict(zip(names, (str(v) for v in server.query(f"SELECT {cols}")[0]), strict=True))


def test_fixtures_start(source: sandbox.LocalMariadb, target: sandbox.LocalMariadb) -> None:
    assert source.running and target.running
    assert (source.flavor, target.flavor) == ("mariadb", "mariadb")
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
    monkeypatch.setattr(mariadb.shutil, "which", lambda name: None)
    monkeypatch.setattr(mariadb, "_SEARCH_DIRS", (tmp_path,))
    with pytest.raises(ApplierError, match="apt-get install -y mariadb-server mariadb-client"):
        sandbox.find_mariadb_binaries()


# -- MySQL 9.7 (LocalMysql, in the chroot) ---------------------------------------------


@pytest.fixture(scope="module")
def mysql_scratch(
    mysql_available: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[sandbox.LocalMysql, int]]:
    """A MySQL source of our own, and the port that was taken when it first started."""
    server = sandbox.make_source(
        tmp_path_factory.mktemp("mysql-scratch"), name="scratch", flavor="mysql"
    )
    assert isinstance(server, sandbox.LocalMysql)
    taken = server.port
    with socket.socket() as squatter:  # someone else got the port first
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        server.start()
    yield server, taken
    server.remove()
    assert not server.home.exists()


def test_mysql_fixtures_start(
    mysql_source: sandbox.LocalMysql, mysql_target: sandbox.LocalMysql
) -> None:
    assert mysql_source.running and mysql_target.running
    assert (mysql_source.flavor, mysql_target.flavor) == ("mysql", "mysql")
    assert mysql_source.port != mysql_target.port
    assert mysql_source.query("SELECT VERSION()")[0][0].startswith("9.")
    assert _variables(mysql_source, "server_id", "log_bin") == {"server_id": "1", "log_bin": "1"}
    assert _variables(mysql_target, "server_id", "log_bin") == {"server_id": "2", "log_bin": "0"}


def test_mysql_source_options_in_effect(mysql_source: sandbox.LocalMysql) -> None:
    assert _variables(
        mysql_source,
        "gtid_mode",
        "enforce_gtid_consistency",
        "binlog_format",
        "binlog_row_image",
        "binlog_row_metadata",
        "binlog_transaction_compression",
        "log_replica_updates",
        "super_read_only",
        "character_set_server",
    ) == {
        "gtid_mode": "ON",
        "enforce_gtid_consistency": "ON",
        "binlog_format": "ROW",
        "binlog_row_image": "FULL",
        "binlog_row_metadata": "FULL",
        "binlog_transaction_compression": "0",
        "log_replica_updates": "1",
        "super_read_only": "0",
        "character_set_server": "utf8mb4",
    }


def test_mysql_files_live_in_the_chroot(
    mysql_available: Path, mysql_source: sandbox.LocalMysql
) -> None:
    home = mysql_source.home
    assert home.is_relative_to(mysql_available)
    assert (home / "data" / "auto.cnf").is_file()
    assert mysql_source.error_log.is_file() and mysql_source.pid_file.is_file()
    assert mysql_source.socket.resolve() == (home / "mysqld.sock").resolve()
    assert (mysql_source.basedir / "chroot-home").resolve() == home.resolve()
    datadir = mysql_source.query("SELECT @@datadir")[0][0]
    assert datadir.rstrip("/") == mysql_source.inside(home / "data")
    # setpriv and chroot exec mysqld: the child's pid is the server's (bench reads its CPU).
    assert mysql_source._proc is not None
    assert Path(f"/proc/{mysql_source._proc.pid}/comm").read_text().strip() == "mysqld"


def test_mysql_fresh_binlog_has_no_account_events(mysql_source: sandbox.LocalMysql) -> None:
    first = mysql_source.query("SHOW BINARY LOGS")[0][0]
    events = mysql_source.query(f"SHOW BINLOG EVENTS IN '{first}'")
    infos = " ".join(str(e[5]) for e in events).upper()
    assert "USER" not in infos and "GRANT" not in infos


def test_mysql_binlog_and_gtid_position_advance(
    mysql_source: sandbox.LocalMysql, dbname: str
) -> None:
    before, gtid_before = mysql_source.binlog_position(), mysql_source.gtid_position()
    mysql_source.execute(f"CREATE DATABASE {dbname}")
    mysql_source.execute(f"CREATE TABLE {dbname}.t (id INT PRIMARY KEY, s VARCHAR(10))")
    assert mysql_source.execute(f"INSERT INTO {dbname}.t VALUES (1, 'é'), (2, '😀')") == 2
    after = mysql_source.binlog_position()
    assert after[0].startswith("mysql-bin.")
    assert (after[0], after[1]) > before
    gtid = mysql_source.gtid_position()
    (uuid,) = mysql_source.query("SELECT @@server_uuid")[0]
    assert gtid != gtid_before and gtid.startswith(f"{uuid}:1-")
    assert mysql_source.query(f"SELECT s FROM {dbname}.t ORDER BY id") == [("é",), ("😀",)]


def test_mysql_target_has_no_binlog_position(mysql_target: sandbox.LocalMysql) -> None:
    with pytest.raises(ApplierError, match="no binary log"):
        mysql_target.binlog_position()
    assert mysql_target.gtid_position() == ""


def test_mysql_mts_user_caching_sha2(mysql_target: sandbox.LocalMysql) -> None:
    plugins = mysql_target.query("SELECT DISTINCT plugin FROM mysql.user WHERE user = 'mts'")
    assert plugins == [("caching_sha2_password",)]
    assert mysql_target.password not in repr(mysql_target)
    # Empty the server's cache of successful logins: the next ones need the full exchange.
    mysql_target.execute("FLUSH PRIVILEGES")
    cfg = mysql_target.server_config()
    # PyMySQL (the binlog dump connection) over plain TCP: RSA key exchange (cryptography).
    conn = pymysql.connect(
        host=cfg.host,
        port=cfg.port,
        user=cfg.user,
        password=cfg.password,
        ssl_disabled=True,
        connect_timeout=10,
    )
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
            assert cur.fetchone() == ("Ssl_cipher", "")
            cur.execute("SELECT CURRENT_USER()")
            assert cur.fetchone() == ("mts@127.0.0.1",)
    finally:
        conn.close()
    # MySQLdb (libmariadb), as the applier connects to targets.
    conn = connect(cfg, "target")
    try:
        cur = conn.cursor()
        cur.execute("SELECT CURRENT_USER(), @@autocommit, @@character_set_client")
        assert cur.fetchone() == ("mts@127.0.0.1", 1, "utf8mb4")
    finally:
        conn.close()


def test_mysql_first_start_moves_off_a_taken_port(
    mysql_scratch: tuple[sandbox.LocalMysql, int],
) -> None:
    server, taken = mysql_scratch
    assert server.running and server.port != taken
    assert server.query("SELECT @@port") == [(server.port,)]


def test_mysql_restart_keeps_port_and_data(
    mysql_scratch: tuple[sandbox.LocalMysql, int], dbname: str
) -> None:
    scratch, _ = mysql_scratch
    scratch.execute(f"CREATE DATABASE {dbname}")
    scratch.execute(f"CREATE TABLE {dbname}.t (id INT PRIMARY KEY)")
    scratch.execute(f"INSERT INTO {dbname}.t VALUES (1), (2), (3)")
    port, position, gtid = scratch.port, scratch.binlog_position(), scratch.gtid_position()
    scratch.stop()
    assert not scratch.running
    scratch.stop()  # idempotent
    scratch.start()
    scratch.start()  # no-op while running
    assert scratch.port == port
    assert scratch.query(f"SELECT COUNT(*) FROM {dbname}.t") == [(3,)]
    assert scratch.binlog_position()[0] > position[0]  # a restart rotates the binlog
    assert scratch.gtid_position() == gtid


def test_mysql_kill_then_start_recovers(
    mysql_scratch: tuple[sandbox.LocalMysql, int], dbname: str
) -> None:
    scratch, _ = mysql_scratch
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


def test_mysql_failed_start_shows_error_log(mysql_available: Path, tmp_path: Path) -> None:
    server = sandbox.LocalMysql(
        "broken", tmp_path / "broken", sandbox.free_port(), 9, False, {"no_such_option": "1"}
    )
    try:
        with pytest.raises(ApplierError, match="unknown variable") as info:
            server.start(timeout=30)
        assert "error.log" in str(info.value)
        assert not server.running
    finally:
        server.remove()


def test_mysql_missing_chroot_message(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    empty = tmp_path / "no-chroot"
    empty.mkdir()
    monkeypatch.setenv("MTS_MYSQL_CHROOT", str(empty))
    expected = f"MTS_MYSQL_CHROOT={empty} bash .*bootstrap.sh"
    with pytest.raises(ApplierError, match=expected):
        sandbox.find_mysql()
    server = sandbox.make_source(tmp_path / "s", flavor="mysql")
    with pytest.raises(ApplierError, match=f"{empty}/usr/sbin/mysqld is missing"):
        server.start()
    assert not server.running and not list(empty.iterdir())


def test_unknown_flavor(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown server flavor 'oracle'"):
        sandbox.make_source(tmp_path, flavor="oracle")

"""Preflight checks (applier.inspect) and connection errors (applier.connect), on real servers.

The session ``source``/``target`` are shared: nothing here changes their globals. Users
made for a test are created with ``sql_log_bin=0`` and dropped afterwards. Bad binlog
settings are tried on a private, module-scoped spare server restarted with other options.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import uuid
from collections.abc import Iterator

import MySQLdb
import pytest

from applier.binlog.position import file_base, file_number
from applier.config import ServerConfig, SourceConfig, TargetConfig
from applier.db.connect import connect, flavor_and_version
from applier.errors import (
    BinlogPurgedError,
    ConfigError,
    ConnectError,
    SchemaError,
    SourceError,
    TargetError,
)
from applier.harness import sandbox
from applier.pipeline.preflight import (
    SourceFacts,
    check_source,
    check_tables_exist,
    inspect_source,
    inspect_target,
)

pytestmark = pytest.mark.integration

SPARE_SERVER_ID = 11


def _as(cls: type, server: ServerConfig, **overrides):
    """``server``'s connection settings as a SourceConfig/TargetConfig."""
    base = {f.name: getattr(server, f.name) for f in dataclasses.fields(ServerConfig)}
    return cls(**{**base, **overrides})


def _source_cfg(server, **overrides) -> SourceConfig:
    return _as(SourceConfig, server.server_config(), **overrides)


def _target_cfg(server, **overrides) -> TargetConfig:
    return _as(TargetConfig, server.server_config(), **overrides)


@contextlib.contextmanager
def _user(server, *grants: str, roles: tuple[str, ...] = ()) -> Iterator[tuple[str, str]]:
    """A throwaway user (and roles) on ``server``; ``{u}`` in grants is the account.

    Yields ``(name, password)``. Not binlogged, dropped at the end.
    """
    name = f"insp_{uuid.uuid4().hex[:10]}"
    password = f"pw-{uuid.uuid4().hex}"
    hosts = ("127.0.0.1", "localhost")
    conn = server.connect()
    cur = conn.cursor()
    try:
        cur.execute("SET SESSION sql_log_bin = 0")
        for role in roles:
            cur.execute(f"CREATE ROLE {role}")
        for host in hosts:
            account = f"'{name}'@'{host}'"
            cur.execute(f"CREATE USER {account} IDENTIFIED BY %s", (password,))
            for grant in grants:
                cur.execute(grant.format(u=account))
        yield name, password
    finally:
        for host in hosts:
            cur.execute(f"DROP USER IF EXISTS '{name}'@'{host}'")
        for role in roles:
            cur.execute(f"DROP ROLE IF EXISTS {role}")
        conn.close()


@pytest.fixture(scope="module")
def spare(tmp_path_factory) -> Iterator[sandbox.LocalMariadb]:
    """A private source whose options the tests may change (restarts it)."""
    server = sandbox.LocalMariadb(
        "inspect-spare",
        tmp_path_factory.mktemp("inspect-spare"),
        sandbox.free_port(),
        SPARE_SERVER_ID,
        True,
        sandbox.source_options(),
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _restart(server: sandbox.LocalMariadb, **options: str) -> None:
    wanted = {**sandbox.source_options(), **options}
    if server.options != wanted or not server.running:
        server.stop()
        server.options = wanted
        server.start()


# ---- connect -----------------------------------------------------------------------------


def test_connect_and_flavor(source):
    conn = connect(source.server_config(), "source")
    try:
        flavor, version = flavor_and_version(conn)
        assert flavor == "mariadb"
        assert version >= (10, 5, 0)
        assert conn.get_autocommit()
        assert conn.character_set_name() == "utf8mb4"
    finally:
        conn.close()


def test_connect_found_rows(target, dbname):
    target.execute(f"CREATE DATABASE {dbname}")

    def updated(found_rows: bool) -> int:
        conn = connect(target.server_config(), "target", db=dbname, found_rows=found_rows)
        try:
            cur = conn.cursor()
            cur.execute("CREATE TEMPORARY TABLE t (id INT PRIMARY KEY, v INT)")
            cur.execute("INSERT INTO t VALUES (1, 1)")
            return cur.execute("UPDATE t SET v = 1 WHERE id = 1")
        finally:
            conn.close()

    try:
        assert updated(found_rows=False) == 0
        assert updated(found_rows=True) == 1
    finally:
        target.execute(f"DROP DATABASE {dbname}")


def test_connect_autocommit_off_and_db(target):
    conn = connect(target.server_config(), "target", db="mysql", autocommit=False, read_timeout=5)
    try:
        assert not conn.get_autocommit()
        cur = conn.cursor()
        cur.execute("SELECT DATABASE()")
        assert cur.fetchone()[0] == "mysql"
    finally:
        conn.close()


@pytest.mark.parametrize("role", ["source", "target"])
def test_wrong_password(source, role):
    secret = "Wr0ng-s3cret-pw-9d2f"
    cfg = dataclasses.replace(source.server_config(), password=secret)
    with pytest.raises(ConnectError) as err:
        connect(cfg, role)
    message = str(err.value)
    assert secret not in message
    assert "access denied" in message
    assert f"[{role}] user/password" in message
    assert f"{cfg.host}:{cfg.port}" in message
    assert "\n" not in message
    # The driver's exception is not chained onto ours.
    assert err.value.__cause__ is None and err.value.__suppress_context__
    assert secret not in repr(cfg)


def test_wrong_password_through_inspect(source, target):
    secret = "An0ther-s3cret-pw-77"
    with pytest.raises(ConnectError) as err:
        inspect_source(_source_cfg(source, password=secret))
    assert secret not in str(err.value)
    with pytest.raises(ConnectError) as err:
        inspect_target(_target_cfg(target, password=secret))
    assert secret not in str(err.value)
    assert "[target] user/password" in str(err.value)


def test_unreachable_port():
    port = sandbox.free_port()  # nobody listens there
    cfg = SourceConfig(host="127.0.0.1", port=port, user="nobody", password="x")
    with pytest.raises(ConnectError) as err:
        connect(cfg, "source", connect_timeout=3)
    message = str(err.value)
    assert f"127.0.0.1:{port}" in message
    assert "not reachable" in message
    with pytest.raises(ConnectError, match="not reachable"):
        inspect_source(cfg)
    with pytest.raises(ConnectError, match=f"target server at 127.0.0.1:{port} is not reachable"):
        inspect_target(TargetConfig(host="127.0.0.1", port=port))


def test_unknown_database(target):
    with pytest.raises(ConnectError, match="unknown database 'no_such_db_insp'"):
        connect(target.server_config(), "target", db="no_such_db_insp")


# ---- source --------------------------------------------------------------------------------


def test_good_source_passes(source, caplog):
    facts = inspect_source(_source_cfg(source))
    assert isinstance(facts, SourceFacts)
    assert facts.flavor == "mariadb"
    assert facts.server_id == source.server_id
    assert (facts.binlog_format, facts.row_image, facts.row_metadata) == ("ROW", "FULL", "FULL")
    assert facts.checksum in ("CRC32", "NONE")
    assert facts.gtid_mode is None  # MariaDB
    names = [name for name, _ in facts.binlog_files]
    assert names and facts.current[0] == names[-1]
    assert facts.current[1] >= 4
    assert f"{source.port}" in facts.server
    with caplog.at_level(logging.WARNING, logger="applier.inspect"):
        check_source(facts, start_file=None)
        check_source(facts, start_file=names[0])
        check_source(facts, start_file=facts.current[0], start_gtid="0-1-1")
    assert not caplog.records


def test_binlog_disabled(target):
    cfg = _source_cfg(target)  # the target runs without --log-bin
    with pytest.raises(SourceError) as err:
        inspect_source(cfg)
    message = str(err.value)
    assert f"source 127.0.0.1:{target.port} has binary logging disabled" in message
    assert "--log-bin" in message


def test_server_id_clash(source):
    with pytest.raises(ConfigError, match=rf"\[source\] server_id = {source.server_id}"):
        inspect_source(_source_cfg(source, server_id=source.server_id))


def test_flavor_mismatch(source):
    with pytest.raises(ConfigError, match=r"\[source\] flavor = .mysql. .*MariaDB"):
        inspect_source(_source_cfg(source, flavor="mysql"))
    inspect_source(_source_cfg(source, flavor="mariadb"))


def test_missing_start_file(source):
    facts = inspect_source(_source_cfg(source))
    oldest = facts.binlog_files[0][0]
    before = f"{file_base(oldest)}.{file_number(oldest) - 1:06d}"
    with pytest.raises(BinlogPurgedError) as err:
        check_source(facts, start_file=before)
    message = str(err.value)
    assert f"binlog file {before} is not on" in message
    assert "purged" in message
    assert f"oldest is {oldest}" in message

    # Not purged, just wrong: a plain SourceError.
    newest = facts.binlog_files[-1][0]
    after = f"{file_base(newest)}.{file_number(newest) + 5:06d}"
    with pytest.raises(SourceError, match="newest is") as err:
        check_source(facts, start_file=after)
    assert not isinstance(err.value, BinlogPurgedError)
    with pytest.raises(SourceError, match="named mysql-bin.NNNNNN") as err:
        check_source(facts, start_file="other-bin.000001")
    assert not isinstance(err.value, BinlogPurgedError)


def test_user_without_replication_slave(source):
    with _user(source, "GRANT BINLOG MONITOR ON *.* TO {u}") as (name, password):
        cfg = _source_cfg(source, user=name, password=password)
        with pytest.raises(SourceError) as err:
            inspect_source(cfg)
    message = str(err.value)
    assert "REPLICATION SLAVE" in message
    assert "GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.*" in message
    assert name in message
    assert password not in message


def test_user_without_binlog_monitor(source):
    grant = "GRANT REPLICATION SLAVE ON *.* TO {u}"
    missing = pytest.raises(SourceError, match="lacks the BINLOG MONITOR privilege")
    with _user(source, grant) as (name, password), missing:
        inspect_source(_source_cfg(source, user=name, password=password))


def test_user_with_no_grants(source):
    missing = pytest.raises(SourceError, match="REPLICATION SLAVE and BINLOG MONITOR privileges")
    with _user(source) as (name, password), missing:
        inspect_source(_source_cfg(source, user=name, password=password))


def test_minimal_replication_user_passes(source):
    grant = "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO {u}"  # CLIENT = MONITOR
    with _user(source, grant) as (name, password):
        facts = inspect_source(_source_cfg(source, user=name, password=password))
    check_source(facts, start_file=facts.binlog_files[0][0])


def test_grants_through_a_default_role_pass(source):
    role = f"insp_role_{uuid.uuid4().hex[:8]}"
    grants = (
        f"GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO {role}",
        f"GRANT {role} TO {{u}}",
        f"SET DEFAULT ROLE {role} FOR {{u}}",
    )
    with _user(source, *grants, roles=(role,)) as (name, password):
        facts = inspect_source(_source_cfg(source, user=name, password=password))
    assert facts.binlog_format == "ROW"


def test_statement_format_refused(spare):
    _restart(spare, binlog_format="STATEMENT")
    facts = inspect_source(_source_cfg(spare))
    assert facts.binlog_format == "STATEMENT"
    with pytest.raises(SourceError) as err:
        check_source(facts, start_file=None)
    message = str(err.value)
    assert "binlog_format=STATEMENT" in message
    assert "set binlog_format=ROW" in message
    assert f":{spare.port}" in message

    _restart(spare, binlog_format="MIXED")
    with pytest.raises(SourceError, match="binlog_format=MIXED.*set binlog_format=ROW"):
        check_source(inspect_source(_source_cfg(spare)), start_file=None)


def test_minimal_row_image_refused(spare):
    _restart(spare, binlog_row_image="MINIMAL")
    facts = inspect_source(_source_cfg(spare))
    with pytest.raises(SourceError) as err:
        check_source(facts, start_file=None)
    message = str(err.value)
    assert "binlog_row_image=MINIMAL" in message
    assert "set binlog_row_image=FULL" in message


def test_row_metadata_not_full_only_warns(spare, caplog):
    _restart(spare, binlog_row_metadata="MINIMAL")
    facts = inspect_source(_source_cfg(spare))
    assert facts.row_metadata == "MINIMAL"
    with caplog.at_level(logging.WARNING, logger="applier.inspect"):
        check_source(facts, start_file=None)
    assert any("binlog_row_metadata=MINIMAL" in r.getMessage() for r in caplog.records)


def test_really_purged_start_file(spare):
    _restart(spare)
    oldest = inspect_source(_source_cfg(spare)).binlog_files[0][0]
    spare.execute("FLUSH BINARY LOGS")
    spare.execute("FLUSH BINARY LOGS")
    current = spare.binlog_position()[0]
    spare.execute(f"PURGE BINARY LOGS TO '{current}'")
    facts = inspect_source(_source_cfg(spare))
    assert [n for n, _ in facts.binlog_files] == [current]
    with pytest.raises(
        BinlogPurgedError, match=f"binlog file {oldest} is not on .*purged.*oldest is {current}"
    ):
        check_source(facts, start_file=oldest)


# ---- target --------------------------------------------------------------------------------


def test_good_target_passes(target):
    inspect_target(_target_cfg(target))
    inspect_target(_target_cfg(target, checkpoint_schema="some_other_ckpt"))


def test_target_user_without_checkpoint_grants(target):
    grant = "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE ON `app_insp`.* TO {u}"
    with _user(target, grant) as (name, password), pytest.raises(TargetError) as err:
        inspect_target(_target_cfg(target, user=name, password=password))
    message = str(err.value)
    assert "checkpoint schema 'mts_applier'" in message
    assert "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE ON `mts_applier`.*" in message
    assert password not in message


@pytest.mark.parametrize(
    "grant",
    [
        "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE ON `mts\\_applier`.* TO {u}",
        "GRANT ALL PRIVILEGES ON `mts%`.* TO {u}",
        "GRANT ALL ON *.* TO {u}",
    ],
)
def test_target_user_with_checkpoint_grants_passes(target, grant):
    with _user(target, grant) as (name, password):
        inspect_target(_target_cfg(target, user=name, password=password))


def test_target_read_only(spare):
    _restart(spare)
    grant = "GRANT ALL PRIVILEGES ON `mts_applier`.* TO {u}"
    spare.execute("SET GLOBAL read_only = ON")
    try:
        with _user(spare, grant) as (name, password):
            cfg = _target_cfg(spare, user=name, password=password)
            with pytest.raises(TargetError) as err:
                inspect_target(cfg)
        message = str(err.value)
        assert "read_only=ON" in message
        assert "SET GLOBAL read_only=OFF" in message
        assert "READ_ONLY ADMIN" in message
        # MariaDB 10.11: SUPER no longer lets a user write while read_only is on.
        super_user = _user(spare, grant, "GRANT SUPER ON *.* TO {u}")
        with super_user as (name, password), pytest.raises(TargetError, match="read_only=ON"):
            inspect_target(_target_cfg(spare, user=name, password=password))
        with _user(spare, grant, "GRANT READ_ONLY ADMIN ON *.* TO {u}") as (name, password):
            inspect_target(_target_cfg(spare, user=name, password=password))
        inspect_target(_target_cfg(spare))  # ALL PRIVILEGES
    finally:
        spare.execute("SET GLOBAL read_only = OFF")


def test_check_tables_exist(target):
    db = f"insp_{uuid.uuid4().hex[:8]}"
    target.execute(f"CREATE DATABASE {db}")
    try:
        target.execute(f"CREATE TABLE {db}.t1 (id INT PRIMARY KEY)")
        conn = target.connect()
        try:
            check_tables_exist(conn, [(db, "t1")])
            check_tables_exist(conn, [])
            with pytest.raises(SchemaError) as err:
                check_tables_exist(conn, [(db, "t1"), (db, "nope")])
            assert str(err.value).startswith(f"table {db}.nope is not on the target: create it")
            with pytest.raises(
                SchemaError, match=rf"2 tables are not on the target: {db}.a, nodb_{db}.b"
            ):
                check_tables_exist(conn, [(db, "a"), (db, "t1"), (f"nodb_{db}", "b")])
        finally:
            conn.close()
    finally:
        target.execute(f"DROP DATABASE {db}")


def test_error_messages_are_one_line(source, target):
    errors = []
    for call in (
        lambda: inspect_source(_source_cfg(target)),
        lambda: inspect_source(_source_cfg(source, server_id=source.server_id)),
        lambda: connect(dataclasses.replace(source.server_config(), password="bad"), "source"),
    ):
        with pytest.raises((SourceError, ConfigError, ConnectError, MySQLdb.Error)) as err:
            call()
        errors.append(err.value)
    assert all("\n" not in str(e) for e in errors)
    assert not any(isinstance(e, MySQLdb.Error) for e in errors)

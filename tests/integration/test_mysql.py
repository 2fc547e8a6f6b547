"""A MySQL 9.7 source (the chroot's ``mysqld``, session fixtures ``mysql_source`` /
``mysql_target``): what the preflight reads and refuses, the GTID start, and the binlog
settings a MySQL source may have: binlog_transaction_compression is read,
binlog_row_value_options=PARTIAL_JSON is refused before anything is applied (and, set
by one session only, when its first partial update arrives)."""

from __future__ import annotations

import dataclasses

import pytest

from applier.errors import SourceError
from applier.pipeline.preflight import check_source, inspect_source
from tests.support import assert_same, make_config, run_applier

pytestmark = pytest.mark.integration


def source_config(server, db="x"):
    return make_config(server, server, db).source


def test_mysql_source_facts_and_gtid_start(mysql_source, mysql_target, dbname):
    facts = inspect_source(source_config(mysql_source))
    assert facts.flavor == "mysql" and facts.version >= (9, 0, 0)
    assert (facts.binlog_format, facts.row_image, facts.row_metadata, facts.gtid_mode) == (
        "ROW", "FULL", "FULL", "ON")
    assert not facts.transaction_compression and facts.row_value_options == ""
    check_source(facts, start_file=facts.binlog_files[-1][0], start_gtid=None)
    # a start from a GTID set (COM_BINLOG_DUMP_GTID): the transactions after it, exactly
    ddl = (f"CREATE DATABASE {dbname}", f"CREATE TABLE {dbname}.t (id INT PRIMARY KEY, v VARCHAR(10))")
    for server in (mysql_source, mysql_target):
        for sql in ddl:
            server.execute(sql)
    gtid = mysql_source.gtid_position()
    mysql_source.execute(f"INSERT INTO {dbname}.t VALUES (1, 'a'), (2, 'b')")
    mysql_source.execute(f"UPDATE {dbname}.t SET v = 'c' WHERE id = 2")
    cfg = make_config(mysql_source, mysql_target, dbname)
    cfg = dataclasses.replace(cfg, source=dataclasses.replace(cfg.source, start_file="", start_gtid=gtid))
    run_applier(cfg)
    assert_same(mysql_source, mysql_target, dbname)


@pytest.fixture
def global_setting(mysql_source):
    """Set a global variable on the shared source for one test, restored after."""
    saved: dict[str, object] = {}

    def set_(name: str, value: str) -> None:
        if name not in saved:
            saved[name] = mysql_source.query(f"SELECT @@GLOBAL.{name}")[0][0]
        mysql_source.execute(f"SET GLOBAL {name} = %s", (value,))

    yield set_
    for name, value in saved.items():
        mysql_source.execute(f"SET GLOBAL {name} = %s", (value,))


def test_partial_json_is_refused_at_preflight(mysql_source, mysql_target, dbname, global_setting):
    global_setting("binlog_row_value_options", "PARTIAL_JSON")
    facts = inspect_source(source_config(mysql_source))
    with pytest.raises(SourceError) as info:
        check_source(facts, start_file=None)
    message = str(info.value)
    assert "binlog_row_value_options=PARTIAL_JSON" in message and "SET GLOBAL binlog_row_value_options=''" in message
    assert "\n" not in message
    with pytest.raises(SourceError, match="binlog_row_value_options"):
        run_applier(make_config(mysql_source, mysql_target, dbname))


def test_partial_json_of_one_session_stops_the_applier_naming_the_setting(mysql_source, mysql_target, dbname):
    start = mysql_source.binlog_position()
    conn = mysql_source.connect()
    try:
        cur = conn.cursor()
        cur.execute(f"CREATE DATABASE {dbname}")
        cur.execute(f"CREATE TABLE {dbname}.t (id INT PRIMARY KEY, j JSON)")
        cur.execute(f"INSERT INTO {dbname}.t VALUES (1, JSON_OBJECT('a', 1, 'b', REPEAT('x', 200)))")
        conn.commit()
        cur.execute("SET SESSION binlog_row_value_options = 'PARTIAL_JSON'")
        cur.execute(f"UPDATE {dbname}.t SET j = JSON_SET(j, '$.a', 2)")
        conn.commit()
    finally:
        conn.close()
    with pytest.raises(SourceError, match=r"binlog_row_value_options=PARTIAL_JSON \(set it to ''\)"):
        run_applier(make_config(mysql_source, mysql_target, dbname, start=start))
    # nothing of the partial update was applied (what came before may have been)
    rows = mysql_target.query(
        f"SELECT CAST(j AS CHAR) FROM {dbname}.t") if mysql_target.query(
        "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (dbname,)) else []
    assert all(r[0].startswith('{"a": 1,') for r in rows)


def test_transaction_compression_is_accepted(mysql_source, mysql_target, dbname, global_setting):
    global_setting("binlog_transaction_compression", "ON")
    facts = inspect_source(source_config(mysql_source))
    assert facts.transaction_compression
    check_source(facts, start_file=None)
    start = mysql_source.binlog_position()
    mysql_source.execute(f"CREATE DATABASE {dbname}")
    mysql_source.execute(f"CREATE TABLE {dbname}.t (id INT PRIMARY KEY, v TEXT)")
    for i in range(20):
        mysql_source.execute(f"INSERT INTO {dbname}.t VALUES (%s, REPEAT('z', 1000))", (i,))
    run_applier(make_config(mysql_source, mysql_target, dbname, start=start))
    assert_same(mysql_source, mysql_target, dbname)


def test_status_on_mysql_counts_lag_and_shows_gtid_sets(mysql_source, mysql_target, dbname):
    """`applier status` on MySQL: lag in transactions read from the source's binlog
    (compressed and tagged ones included), the applied and the source's GTID sets."""
    from applier.binlog.position import MysqlGtidSet
    from applier.ops.status import read_status

    start = mysql_source.binlog_position()
    mysql_source.execute(f"CREATE DATABASE {dbname}")
    mysql_source.execute(f"CREATE TABLE {dbname}.t (id INT AUTO_INCREMENT PRIMARY KEY, n INT)")
    cfg = make_config(mysql_source, mysql_target, dbname, start=start)
    run_applier(cfg)
    caught_up = read_status(cfg)
    assert (caught_up.lag_bytes, caught_up.lag_transactions, caught_up.lag_seconds) == (0, 0, 0.0)
    conn = mysql_source.connect()
    try:
        cur = conn.cursor()
        for i in range(5):
            cur.execute(f"INSERT INTO {dbname}.t (n) VALUES (%s)", (i,))
            conn.commit()
        cur.execute("SET SESSION binlog_transaction_compression = ON")
        for i in range(5):
            cur.execute(f"INSERT INTO {dbname}.t (n) VALUES (%s)", (i,))
            conn.commit()
        cur.execute("SET gtid_next = 'AUTOMATIC:status_tag'")
        for i in range(5):
            cur.execute(f"INSERT INTO {dbname}.t (n) VALUES (%s)", (i,))
            conn.commit()
        cur.execute("SET gtid_next = 'AUTOMATIC'")
    finally:
        conn.close()
    behind = read_status(cfg)
    assert behind.lag_transactions == 15 and behind.lag_bytes > 0 and behind.lag_seconds is not None
    assert ":status_tag:" in behind.source_gtid
    applied = MysqlGtidSet.parse(behind.applied_gtid)
    assert applied and applied.issubset(MysqlGtidSet.parse(behind.source_gtid))
    assert any(line.startswith("lag (transactions): 15") for line in behind.lines())
    run_applier(cfg)
    after = read_status(cfg)
    assert after.lag_transactions == 0 and ":status_tag:" in after.applied_gtid
    new = MysqlGtidSet.parse(behind.source_gtid).difference(MysqlGtidSet.parse(caught_up.source_gtid))
    assert new.count() == 15 and new.issubset(MysqlGtidSet.parse(after.applied_gtid))

"""MySQL's binlog, whole (issue 12), MySQL 9.7 -> MySQL 9.7 on the session servers
``mysql_source``/``mysql_target``: JSON documents of every kind, compressed transactions
(TRANSACTION_PAYLOAD_EVENT), tagged GTIDs, invisible columns and generated invisible
primary keys. Every test replicates its own database from the source's position before
it started, then compares with ``applier check`` and, for JSON, type by type.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from applier.binlog import mysqljson
from tests.support import assert_same, make_config, run_applier

pytestmark = pytest.mark.integration


def run(source: Any, target: Any, db: str, start: tuple[str, int], **apply: Any) -> None:
    run_applier(make_config(source, target, db, start=start, **apply))
    assert_same(source, target, db)


def on(server: Any, *statements: str, params: Any = None) -> None:
    conn = server.connect()
    try:
        cur = conn.cursor()
        for sql in statements:
            cur.execute(sql, params)
        conn.commit()
    finally:
        conn.close()


# -- JSON ----------------------------------------------------------------------------------

DOCUMENTS = [
    "JSON_OBJECT('decimal', 99.99, 'col', d, 'cast', CAST(2.5 AS DECIMAL(6,3)))",
    "CAST(1.50 AS JSON)",
    "JSON_OBJECT('m', CAST(-0.001 AS DECIMAL(30,20)), 'n', CAST(12345678901234567890.123456789 AS DECIMAL(65,30)))",
    "JSON_ARRAY(1, -2, 3.5, 'x', NULL, true, false, 1e20, -0.0e0, 1.5e-7, 0.1e0)",
    "JSON_OBJECT('big', CAST(18446744073709551615 AS UNSIGNED), 'u', CAST(5 AS UNSIGNED), "
    "'neg', -9223372036854775808, 'i32', 100000, 'i64', 10000000000)",
    "CAST(CAST(7 AS UNSIGNED) AS JSON)",
    "JSON_OBJECT('ключ', 'значение', '😀', JSON_ARRAY(JSON_OBJECT(), JSON_ARRAY()), '', 'empty key')",
    "JSON_OBJECT('d', CAST('2020-01-02' AS DATE), 't', CAST('-838:59:58.5' AS TIME(1)), "
    "'dt', CAST('2021-03-04 05:06:07.089' AS DATETIME(3)))",
    "CAST(CAST('2020-01-02' AS DATE) AS JSON)",
    "JSON_OBJECT('ts', ts, 'b', b, 'bl', bl, 'bn', bn, 'vb', vb, 'long', REPEAT(vb, 100))",
    "CAST('null' AS JSON)",
    "CAST('{}' AS JSON)",
    "CAST('[]' AS JSON)",
    "CAST('\"a\\\\u0001\\\\n\\\\\"\\\\\\\\/\"' AS JSON)",
    "JSON_ARRAY(JSON_ARRAY(JSON_ARRAY(JSON_OBJECT('a', JSON_ARRAY(1.5e300, CAST(2.5 AS DECIMAL(4,2)))))))",
    "JSON_OBJECT('long', REPEAT('x', 70000), 'n', 1)",  # a large object (32-bit offsets)
    "JSON_ARRAY(REPEAT('ab', 40000), 1, CAST(2 AS UNSIGNED), CAST(3.25 AS DECIMAL(5,2)))",
]


def _paths(text: str) -> list[str]:
    """Every path of a document, from its text (numbers kept as text)."""
    out = ["$"]

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                p = f"{path}.{json.dumps(k, ensure_ascii=False)}"
                out.append(p)
                walk(v, p)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                out.append(f"{path}[{i}]")
                walk(v, f"{path}[{i}]")

    walk(json.loads(text, parse_float=str, parse_int=str), "$")
    return out


def json_shape(server: Any, db: str, table: str = "j") -> list[tuple[Any, ...]]:
    """Per row: id, text, and the JSON_TYPE at every path (not JSON_STORAGE_SIZE: the
    precision byte stored beside a DECIMAL is not rebuilt, see mysqljson)."""
    conn = server.connect()
    try:
        cur = conn.cursor()
        cur.execute(f"SELECT id, CAST(j AS CHAR) FROM `{db}`.`{table}` ORDER BY id")
        rows = cur.fetchall()
        out = []
        for id_, text in rows:
            types = []
            if text is not None:
                for path in _paths(text):
                    cur.execute(f"SELECT JSON_TYPE(JSON_EXTRACT(j, %s)) FROM `{db}`.`{table}` WHERE id = %s",
                                (path, id_))
                    types.append((path, cur.fetchone()[0]))
            out.append((id_, text, tuple(types)))
        return out
    finally:
        conn.close()


@pytest.mark.parametrize("native_scan", [True, False])
def test_json_documents_replicate_exactly(mysql_source, mysql_target, dbname, native_scan):
    start = mysql_source.binlog_position()
    on(mysql_source, "SET SESSION time_zone = '+00:00'",
       f"CREATE DATABASE {dbname}",
       f"CREATE TABLE {dbname}.j (id INT PRIMARY KEY, j JSON, ts TIMESTAMP(3), b BIT(10), bl BLOB, "
       "bn BINARY(3), vb VARBINARY(4), d DECIMAL(10,2) DEFAULT 3.5)")
    for i, doc in enumerate(DOCUMENTS):
        on(mysql_source, "SET SESSION time_zone = '+00:00'",
           f"INSERT INTO {dbname}.j VALUES ({i}, NULL, '2020-01-02 03:04:05.678', b'1010101010', "
           "x'00ff01', x'610062', x'ff00fe', 7.25)",
           f"UPDATE {dbname}.j SET j = {doc} WHERE id = {i}")
    on(mysql_source, f"INSERT INTO {dbname}.j (id, j) VALUES (100, NULL), (101, CAST('null' AS JSON))",
       f"UPDATE {dbname}.j SET j = JSON_SET(j, '$.decimal', 1.25) WHERE id = 0",
       f"DELETE FROM {dbname}.j WHERE id = 12")
    run(mysql_source, mysql_target, dbname, start, native_scan=native_scan, workers=2)
    source_rows = json_shape(mysql_source, dbname)
    assert source_rows == json_shape(mysql_target, dbname)
    by_id = {r[0]: r for r in source_rows}
    assert dict(by_id[1][2])["$"] == "DECIMAL"
    assert by_id[100][1] is None and by_id[101][1] == "null"  # SQL NULL vs JSON null
    assert dict(by_id[9][2])['$."ts"'] == "TIMESTAMP" and dict(by_id[9][2])['$."b"'] == "BIT"


def test_json_that_no_expression_rebuilds_stops_naming_the_table(mysql_source, mysql_target, dbname):
    """A BINARY value inside a document whose bytes are not UTF-8: refused, not changed."""
    start = mysql_source.binlog_position()
    on(mysql_source, f"CREATE DATABASE {dbname}",
       f"CREATE TABLE {dbname}.j (id INT PRIMARY KEY, j JSON, bn BINARY(2))",
       f"INSERT INTO {dbname}.j VALUES (1, NULL, x'ff00')",
       f"UPDATE {dbname}.j SET j = JSON_OBJECT('bn', bn)")
    from applier.errors import DecodeError

    with pytest.raises(DecodeError, match=rf"{dbname}\.j.*MySQL type 254"):
        run_applier(make_config(mysql_source, mysql_target, dbname, start=start))


def test_json_text_matches_mysql_for_random_doubles(mysql_source):
    """MySQL's double printing (my_gcvt) is reproduced digit for digit."""
    import random
    import struct

    rng = random.Random(12)
    values = [struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0] for _ in range(400)]
    values += [rng.uniform(-1, 1) * 10 ** rng.randint(-20, 20) for _ in range(400)]
    values = [v for v in values if v == v and abs(v) != float("inf")]
    literals = ", ".join(f"CAST(CAST({v!r}{'' if 'e' in repr(v) else 'e0'} AS JSON) AS CHAR)" for v in values)
    got = mysql_source.query(f"SELECT {literals}")[0]
    assert [mysqljson.double_text(v) for v in values] == list(got)


# -- compressed transactions (TRANSACTION_PAYLOAD_EVENT) --------------------------------------


def compressed_workload(source: Any, db: str) -> None:
    """Row transactions in a session with binlog_transaction_compression=ON (the shared
    source keeps it OFF globally): small ones, a big one (streamed), a long one (more
    than the intake scans natively), DDL in between (never compressed), and a few
    uncompressed ones from another session."""
    conn = source.connect()
    plain = source.connect()
    try:
        cur, other = conn.cursor(), plain.cursor()
        cur.execute("SET SESSION binlog_transaction_compression = ON")
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.a (id INT PRIMARY KEY, n INT, s VARCHAR(50), j JSON)")
        cur.execute(f"CREATE TABLE {db}.b (id INT PRIMARY KEY, payload LONGBLOB)")
        for i in range(1, 201):
            cur.execute(f"INSERT INTO {db}.a VALUES (%s, %s, %s, JSON_OBJECT('i', %s, 'd', 1.50))",
                        (i, i, f"row {i}", i))
            if i % 3 == 0:
                cur.execute(f"UPDATE {db}.a SET n = n + 1, s = CONCAT(s, '!') WHERE id = %s", (i // 3,))
            conn.commit()
            if i % 50 == 0:
                other.execute(f"INSERT INTO {db}.b VALUES (%s, 'uncompressed')", (10_000 + i,))
                plain.commit()
        cur.execute(f"DELETE FROM {db}.a WHERE id % 7 = 0")
        conn.commit()
        cur.execute(f"ALTER TABLE {db}.a ADD COLUMN extra INT DEFAULT 5")
        cur.execute(f"UPDATE {db}.a SET extra = id * 2")  # one big transaction (~170 rows)
        conn.commit()
        for i in range(3):  # ~5 MB each uncompressed: above what the intake scans natively
            cur.execute(f"INSERT INTO {db}.b VALUES (%s, REPEAT(%s, 5000000))", (i, chr(65 + i)))
            conn.commit()
    finally:
        conn.close()
        plain.close()


@pytest.mark.parametrize("native_scan", [True, False])
def test_compressed_transactions_apply_equal(mysql_source, mysql_target, dbname, native_scan):
    start = mysql_source.binlog_position()
    compressed_workload(mysql_source, dbname)
    cfg = make_config(mysql_source, mysql_target, dbname, start=start, native_scan=native_scan,
                      big_txn_rows=100, workers=3)
    metrics = run_applier(cfg)
    assert_same(mysql_source, mysql_target, dbname)
    if native_scan:
        assert metrics.scanned > 150  # the small compressed ones went through the scanner
    else:
        assert metrics.scanned == 0
    # the binlog really held compressed transactions
    events = mysql_source.query(f"SHOW BINLOG EVENTS IN '{start[0]}' FROM {start[1]}")
    assert sum(1 for e in events if e[2] == "Transaction_payload") > 200


def test_compressed_transactions_resume_after_a_restart(mysql_source, mysql_target, dbname):
    """Positions after a compressed transaction are its payload's end: a second run
    resumes exactly there (nothing applied twice: the checkpoint skips, the check agrees)."""
    start = mysql_source.binlog_position()
    conn = mysql_source.connect()
    try:
        cur = conn.cursor()
        cur.execute("SET SESSION binlog_transaction_compression = ON")
        cur.execute(f"CREATE DATABASE {dbname}")
        cur.execute(f"CREATE TABLE {dbname}.c (id INT PRIMARY KEY, n INT NOT NULL)")
        for i in range(30):
            cur.execute(f"INSERT INTO {dbname}.c VALUES (%s, 0)", (i,))
            conn.commit()
        run_applier(make_config(mysql_source, mysql_target, dbname, start=start))
        for i in range(30):
            cur.execute(f"UPDATE {dbname}.c SET n = n + 1 WHERE id = %s", (i,))
            conn.commit()
    finally:
        conn.close()
    run(mysql_source, mysql_target, dbname, start)
    assert mysql_target.query(f"SELECT SUM(n), COUNT(*) FROM {dbname}.c")[0] == (30, 30)


# -- tagged GTIDs (MySQL 8.3+) ------------------------------------------------------------------


def _config_from_gtid(source: Any, target: Any, db: str, gtid: str, **apply: Any):
    import dataclasses

    cfg = make_config(source, target, db, **apply)
    return dataclasses.replace(cfg, source=dataclasses.replace(cfg.source, start_file="", start_pos=4,
                                                               start_gtid=gtid))


def tagged_load(source: Any, db: str, rounds: int) -> None:
    """Transactions under tags a and b (one session compressed), and untagged ones."""
    conn = source.connect()
    zipped = source.connect()
    try:
        cur, zcur = conn.cursor(), zipped.cursor()
        zcur.execute("SET SESSION binlog_transaction_compression = ON")
        for i in range(rounds):
            cur.execute("SET gtid_next = 'AUTOMATIC:tag_a'")
            cur.execute(f"INSERT INTO {db}.t (n) VALUES (%s)", (i,))
            conn.commit()
            cur.execute("SET gtid_next = 'AUTOMATIC'")
            cur.execute(f"UPDATE {db}.t SET n = n + 1 WHERE id = (SELECT MIN(id) FROM (SELECT id FROM {db}.t) x)")
            conn.commit()
            zcur.execute("SET gtid_next = 'AUTOMATIC:tag_b'")
            zcur.execute(f"INSERT INTO {db}.t (n) VALUES (%s)", (-i,))
            zipped.commit()
            zcur.execute("SET gtid_next = 'AUTOMATIC'")
    finally:
        conn.close()
        zipped.close()


@pytest.mark.parametrize("native_scan", [True, False])
def test_tagged_gtids_apply_and_are_checkpointed(mysql_source, mysql_target, dbname, native_scan):
    from applier.binlog.position import MysqlGtidSet
    from applier.pipeline import checkpoint

    start = mysql_source.binlog_position()
    on(mysql_source, f"CREATE DATABASE {dbname}",
       f"CREATE TABLE {dbname}.t (id INT AUTO_INCREMENT PRIMARY KEY, n INT)")
    tagged_load(mysql_source, dbname, 20)
    cfg = make_config(mysql_source, mysql_target, dbname, start=start, native_scan=native_scan)
    metrics = run_applier(cfg)
    assert_same(mysql_source, mysql_target, dbname)
    conn = mysql_target.connect()
    try:
        applied = MysqlGtidSet.parse(checkpoint.load(conn, cfg.target.checkpoint_schema).gtid)
    finally:
        conn.close()
    uuid = mysql_source.query("SELECT @@server_uuid")[0][0]
    executed = MysqlGtidSet.parse(mysql_source.gtid_position())
    # the checkpoint's GTIDs are the source's, tags and all (the run read from start)
    mine = MysqlGtidSet.parse(",".join(
        f"{uuid}:{tag}:{lo}-{hi}" if tag else f"{uuid}:{lo}-{hi}"
        for (u, tag), ivs in executed._sets.items() for lo, hi in ivs))
    assert applied.count() > 60 and applied.issubset(mine)
    assert ":tag_a:" in str(applied) and ":tag_b:" in str(applied)
    if native_scan:
        assert metrics.scanned >= 60


def test_start_and_until_at_tagged_gtids(mysql_source, mysql_target, dbname):
    """start_gtid holding tags is sent as a tagged GTID set (COM_BINLOG_DUMP_GTID), and
    --until-gtid names a tagged GTID: the run applies exactly the transactions between."""
    from applier.pipeline.coordinator import Coordinator
    from applier.pipeline.until import Until

    ddl = (f"CREATE DATABASE {dbname}", f"CREATE TABLE {dbname}.t (id INT AUTO_INCREMENT PRIMARY KEY, n INT)")
    on(mysql_source, *ddl)
    on(mysql_target, *ddl)
    tagged_load(mysql_source, dbname, 2)  # before the start: the target does not get these
    on(mysql_target, f"INSERT INTO {dbname}.t SELECT * FROM (SELECT 1 AS id, 2 AS n UNION ALL "
       "SELECT 2, 0 UNION ALL SELECT 3, 1 UNION ALL SELECT 4, -1) x")  # what the source holds now
    gtid = mysql_source.gtid_position()
    assert ":tag_a:" in gtid
    tagged_load(mysql_source, dbname, 5)
    from applier.binlog.position import MysqlGtidSet

    uuid = mysql_source.query("SELECT @@server_uuid")[0][0]
    new = MysqlGtidSet.parse(mysql_source.gtid_position()).difference(MysqlGtidSet.parse(gtid))
    (lo, hi), = new._sets[(uuid, "tag_b")]
    assert hi - lo == 4
    until_gtid = f"{uuid}:tag_b:{lo + 2}"  # the third of the five tag_b transactions
    cfg = _config_from_gtid(mysql_source, mysql_target, dbname, gtid, stop_at_end=False)
    Coordinator(cfg, Until(gtid=until_gtid)).run()
    rows = mysql_target.query(f"SELECT COUNT(*) FROM {dbname}.t")[0][0]
    assert rows == 4 + 2 * 3  # three rounds of two inserts
    run_applier(_config_from_gtid(mysql_source, mysql_target, dbname, gtid))  # resumes from the checkpoint
    assert_same(mysql_source, mysql_target, dbname)


def test_gtid_set_encoding_is_the_servers(mysql_source, dbname):
    """A binlog's PREVIOUS_GTIDS event is the server's own encoding of a GTID set (the one
    COM_BINLOG_DUMP_GTID takes): ours is byte for byte the same, tagged format included."""
    from applier.binlog import events as ev
    from applier.binlog.position import BinlogPosition, MysqlGtidSet
    from applier.pipeline.source import DumpSource, EndOfBinlog

    on(mysql_source, f"CREATE DATABASE {dbname}", f"CREATE TABLE {dbname}.t (id INT AUTO_INCREMENT PRIMARY KEY, n INT)")
    tagged_load(mysql_source, dbname, 1)
    executed = mysql_source.gtid_position()
    on(mysql_source, "FLUSH BINARY LOGS")
    file, _ = mysql_source.binlog_position()
    reader = DumpSource(make_config(mysql_source, mysql_source, dbname).source, "mysql", non_blocking=True)
    previous = None
    try:
        reader.open(BinlogPosition(file, 4))
        for e in reader.events():
            if e.type == ev.MYSQL_PREVIOUS_GTIDS:
                previous = e.body
                break
    except EndOfBinlog:
        pass
    finally:
        reader.close()
    assert previous is not None and ":tag_a:" in executed
    assert MysqlGtidSet.parse(executed).encode() == previous


# -- invisible columns and generated invisible primary keys -----------------------------------


def invisible_workload(source: Any, db: str, alter: bool = True) -> None:
    conn = source.connect()
    try:
        cur = conn.cursor()
        cur.execute("SET SESSION sql_generate_invisible_primary_key = ON")
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.g (a INT, b VARCHAR(10))")  # gets my_row_id INVISIBLE PRIMARY KEY
        cur.execute(f"CREATE TABLE {db}.i (id INT PRIMARY KEY, h INT INVISIBLE, v INT, "
                    "s VARCHAR(5) INVISIBLE DEFAULT 'dflt')")
        cur.execute(f"CREATE TABLE {db}.u (u INT NOT NULL DEFAULT 0 INVISIBLE, v INT, UNIQUE KEY (u))")
        conn.commit()
        for i in range(1, 41):
            cur.execute(f"INSERT INTO {db}.g VALUES (%s, %s)", (i, f"b{i}"))
            cur.execute(f"INSERT INTO {db}.i (id, h, v) VALUES (%s, %s, %s)", (i, i * 10, i))
            cur.execute(f"INSERT INTO {db}.u (u, v) VALUES (%s, %s)", (i, i))
            conn.commit()
        cur.execute(f"UPDATE {db}.g SET b = 'changed' WHERE a % 3 = 0")
        cur.execute(f"DELETE FROM {db}.g WHERE a % 5 = 0")
        cur.execute(f"UPDATE {db}.i SET h = h + 1, s = 'new' WHERE id % 4 = 0")
        cur.execute(f"UPDATE {db}.u SET u = u + 100 WHERE v % 2 = 0")
        cur.execute(f"DELETE FROM {db}.u WHERE v % 7 = 0")
        conn.commit()
        if alter:  # (MySQL's syntax: MariaDB has no ALTER COLUMN .. SET INVISIBLE)
            cur.execute(f"ALTER TABLE {db}.i ALTER COLUMN v SET INVISIBLE")
        cur.execute(f"UPDATE {db}.i SET v = -v WHERE id < 5")
        conn.commit()
    finally:
        conn.close()


@pytest.mark.parametrize("native_scan", [True, False])
def test_invisible_columns_and_generated_primary_keys(mysql_source, mysql_target, dbname, native_scan):
    start = mysql_source.binlog_position()
    invisible_workload(mysql_source, dbname)
    run(mysql_source, mysql_target, dbname, start, native_scan=native_scan, workers=3)
    invisible = ("SELECT TABLE_NAME, COLUMN_NAME, EXTRA FROM information_schema.COLUMNS "
                 "WHERE TABLE_SCHEMA = %s AND EXTRA LIKE '%%INVISIBLE%%' ORDER BY 1, 2")
    cols = mysql_target.query(invisible, (dbname,))
    assert cols == mysql_source.query(invisible, (dbname,))
    assert {(t, c) for t, c, _ in cols} >= {("g", "my_row_id"), ("i", "h"), ("i", "s"), ("i", "v"), ("u", "u")}
    for table, key in (("g", "my_row_id"), ("i", "id"), ("u", "u")):
        got = mysql_target.query(f"SELECT * , {key} FROM {dbname}.{table} ORDER BY {key}")
        assert got == mysql_source.query(f"SELECT *, {key} FROM {dbname}.{table} ORDER BY {key}")
    assert list(mysql_target.query(f"SELECT h, s, v FROM {dbname}.i WHERE id = 4")) == [(41, "new", -4)]


def test_check_sees_a_difference_in_an_invisible_column(mysql_source, mysql_target, dbname):
    from applier.ops.check import check

    start = mysql_source.binlog_position()
    invisible_workload(mysql_source, dbname)
    run(mysql_source, mysql_target, dbname, start)
    mysql_target.execute(f"UPDATE {dbname}.i SET h = 0 WHERE id = 7")
    mysql_target.execute(f"UPDATE {dbname}.g SET my_row_id = 1000 WHERE a = 1")
    report = check(mysql_source.server_config(), mysql_target.server_config(), databases=(dbname,))
    diffs = {d.table: d for d in report.diffs}
    assert set(diffs) == {"g", "i"}
    assert "`h`" in diffs["i"].reason and diffs["i"].row == "id=7"
    assert diffs["g"].reason in ("row missing on target", "extra row on target")


def test_a_target_hiding_generated_keys_is_refused_and_check_still_sees_them(
        mysql_source, mysql_target, dbname):
    from applier.errors import TargetError
    from applier.ops.check import check

    start = mysql_source.binlog_position()
    invisible_workload(mysql_source, dbname)
    run(mysql_source, mysql_target, dbname, start)
    mysql_target.execute("SET GLOBAL show_gipk_in_create_table_and_information_schema = OFF")
    try:
        with pytest.raises(TargetError, match="SET GLOBAL show_gipk_in_create_table_and_information_schema=ON"):
            run_applier(make_config(mysql_source, mysql_target, dbname))
        mysql_target.execute(f"UPDATE {dbname}.g SET my_row_id = my_row_id + 1000 WHERE a = 1")
        report = check(mysql_source.server_config(), mysql_target.server_config(), databases=(dbname,))
        assert [d.table for d in report.diffs] == ["g"]
    finally:
        mysql_target.execute("SET GLOBAL show_gipk_in_create_table_and_information_schema = ON")


@pytest.mark.parametrize("native_scan", [True, False])
def test_vector_columns(mysql_source, mysql_target, dbname, native_scan):
    """MySQL 9's VECTOR(n) (type 242, logged like a BLOB): inserted, updated, matched."""
    start = mysql_source.binlog_position()
    on(mysql_source, f"CREATE DATABASE {dbname}",
       f"CREATE TABLE {dbname}.v (id INT PRIMARY KEY, v VECTOR(3), w VECTOR(2) NULL)",
       f"INSERT INTO {dbname}.v VALUES (1, STRING_TO_VECTOR('[1.5, 2, -3]'), NULL), "
       f"(2, STRING_TO_VECTOR('[0, 0, 1e-30]'), STRING_TO_VECTOR('[7, 8]'))",
       f"UPDATE {dbname}.v SET v = STRING_TO_VECTOR('[4, 5, 6]'), w = STRING_TO_VECTOR('[1, 1]') WHERE id = 1",
       f"DELETE FROM {dbname}.v WHERE id = 2")
    run(mysql_source, mysql_target, dbname, start, native_scan=native_scan)
    assert mysql_target.query(f"SELECT id, VECTOR_TO_STRING(v), VECTOR_TO_STRING(w) FROM {dbname}.v") == \
        mysql_source.query(f"SELECT id, VECTOR_TO_STRING(v), VECTOR_TO_STRING(w) FROM {dbname}.v")

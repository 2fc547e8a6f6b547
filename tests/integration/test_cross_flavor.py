"""MySQL 9.7 -> MariaDB 10.11 and MariaDB 10.11 -> MySQL 9.7 (session servers): DDL runs
in its source session's character sets and collations, mapped to the target's where the
target lacks them (MySQL's default utf8mb4_0900_ai_ci does not exist on MariaDB 10.11);
a small type matrix (integers, decimals, floats, strings in utf8mb4 and latin1, binary,
temporal types, ENUM/SET/BIT, JSON) round-trips; ``applier check`` compares across
flavors (JSON by value when the two flavors store it differently)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from applier.errors import SchemaError
from tests.support import assert_same, make_config, run_applier

pytestmark = pytest.mark.integration

MATRIX = """CREATE TABLE {db}.m (
  id INT PRIMARY KEY,
  ti TINYINT, si SMALLINT UNSIGNED, mi MEDIUMINT, bi BIGINT, bu BIGINT UNSIGNED,
  dc DECIMAL(20, 6), f FLOAT, d DOUBLE,
  s VARCHAR(20), c CHAR(5), tx TEXT, l VARCHAR(10) CHARACTER SET latin1, lt TEXT CHARACTER SET latin1,
  vb VARBINARY(10), bl BLOB,
  dt DATE, dtm DATETIME(6), ts TIMESTAMP(3) NULL, tm TIME(2), y YEAR,
  e ENUM('x', 'y', 'z'), st SET('p', 'q', 'r'), bt BIT(10),
  j JSON
)"""

ROWS = [
    "(1, -128, 65535, -8388608, -9223372036854775808, 18446744073709551615, -99999999999999.999999, "
    "1.5, 2.5e300, 'héllo 😀', 'ab', 'text é', _latin1 X'E9E8', _latin1 X'4142E9', X'00FF10', "
    "REPEAT(X'AB', 300), '2020-01-02', '2021-03-04 05:06:07.123456', '2022-05-06 07:08:09.123', "
    "'-12:34:56.78', 2024, 'y', 'p,r', b'1010101010', '{\"a\": [1, 2.5, \"x\"], \"n\": null}')",
    "(2, 0, 0, 0, 0, 0, 0, 0, -0.0, '', '', '', '', '', X'', X'', '1000-01-01', '1000-01-01 00:00:00', "
    "NULL, '00:00:00', 1901, 'x', '', b'0', '[]')",
    "(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
    "NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    "(4, 127, 1, 8388607, 9223372036854775807, 1, 0.000001, 3.4e38, 1e-300, 'Ζ', 'zz', 'x', 'a', 'b', "
    "X'FF', X'00', '9999-12-31', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999', "
    "'838:59:59', 2155, 'z', 'q', b'1111111111', '{\"k\": {\"deep\": [true, false, 1e20]}}')",
]


def workload(source: Any, db: str) -> None:
    """DDL without explicit character sets (they come from the session), then rows."""
    conn = source.connect()
    try:
        cur = conn.cursor()
        cur.execute("SET SESSION time_zone = '+00:00'")
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(MATRIX.format(db=db))
        cur.execute(f"CREATE TABLE {db}.k (k VARCHAR(20) PRIMARY KEY, v INT)")  # a string key
        for row in ROWS:
            cur.execute(f"INSERT INTO {db}.m VALUES {row}")
        cur.execute(f"INSERT INTO {db}.k VALUES ('a', 1), ('B', 2), ('é', 3), ('a b', 4)")
        conn.commit()
        cur.execute(f"UPDATE {db}.m SET s = 'changed', j = JSON_ARRAY(1, 'two', 3.25), dc = dc + 1, "
                    "ts = '2001-01-01 00:00:00.5', l = _latin1 X'FC' WHERE id = 1")
        cur.execute(f"UPDATE {db}.m SET j = NULL, bt = b'11' WHERE id = 2")
        cur.execute(f"UPDATE {db}.k SET v = v * 10 WHERE k IN ('A', 'b')")  # case-insensitive match
        cur.execute(f"DELETE FROM {db}.m WHERE id = 4")
        conn.commit()
        cur.execute(f"ALTER TABLE {db}.k ADD COLUMN extra VARCHAR(10) DEFAULT 'dflt'")
        cur.execute(f"INSERT INTO {db}.k (k, v) VALUES ('new', 5)")
        conn.commit()
    finally:
        conn.close()


def collations(server: Any, db: str) -> dict[str, str | None]:
    rows = server.query(
        "SELECT CONCAT(TABLE_NAME, '.', COLUMN_NAME), COLLATION_NAME FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = %s", (db,))
    schema = server.query("SELECT DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA "
                          "WHERE SCHEMA_NAME = %s", (db,))
    return {"(database)": schema[0][0], **dict(rows)}


def json_values(server: Any, db: str) -> dict[int, Any]:
    return {i: None if j is None else json.loads(j, parse_float=Decimal)
            for i, j in server.query(f"SELECT id, CAST(j AS CHAR) FROM {db}.m")}


@pytest.mark.parametrize("native_scan", [True, False])
def test_mysql_to_mariadb(mysql_source, target, dbname, native_scan):
    start = mysql_source.binlog_position()
    workload(mysql_source, dbname)
    run_applier(make_config(mysql_source, target, dbname, start=start, native_scan=native_scan))
    assert_same(mysql_source, target, dbname)
    got = collations(target, dbname)
    src = collations(mysql_source, dbname)
    # MySQL's default utf8mb4_0900_ai_ci (NO PAD, accent and case insensitive) -> MariaDB's
    # UCA 14.0 equivalent; latin1 columns keep latin1_swedish_ci
    assert src["(database)"] == src["m.s"] == src["k.k"] == "utf8mb4_0900_ai_ci"
    assert got["(database)"] == got["m.s"] == got["k.k"] == got["k.extra"] == "utf8mb4_uca1400_nopad_ai_ci"
    assert got["m.l"] == src["m.l"] == "latin1_swedish_ci"
    # the JSON text on MariaDB is MySQL's own, byte for byte (the check compared it)
    assert json_values(target, dbname) == json_values(mysql_source, dbname)
    assert target.query(f"SELECT v FROM {dbname}.k ORDER BY k") == mysql_source.query(
        f"SELECT v FROM {dbname}.k ORDER BY k")


@pytest.mark.parametrize("native_scan", [True, False])
def test_mariadb_to_mysql(source, mysql_target, dbname, native_scan):
    start = source.binlog_position()
    workload(source, dbname)
    run_applier(make_config(source, mysql_target, dbname, start=start, native_scan=native_scan))
    assert_same(source, mysql_target, dbname)
    got = collations(mysql_target, dbname)
    src = collations(source, dbname)
    assert src["(database)"] == src["m.s"] == src["k.k"] == "utf8mb4_general_ci"
    assert got["(database)"] == got["m.s"] == got["k.k"] == got["k.extra"] == "utf8mb4_general_ci"
    assert got["m.l"] == src["m.l"] == "latin1_swedish_ci"
    assert json_values(mysql_target, dbname) == json_values(source, dbname)
    assert mysql_target.query(f"SELECT JSON_TYPE(j) FROM {dbname}.m WHERE id = 1")[0][0] == "ARRAY"


def test_explicit_mysql_collations_in_ddl_are_mapped(mysql_source, target, dbname):
    start = mysql_source.binlog_position()
    conn = mysql_source.connect()
    try:
        cur = conn.cursor()
        cur.execute(f"CREATE DATABASE {dbname} COLLATE utf8mb4_0900_as_cs")
        cur.execute(f"CREATE TABLE {dbname}.t (id INT PRIMARY KEY, a VARCHAR(5) COLLATE utf8mb4_0900_bin, "
                    "b VARCHAR(5) COMMENT 'utf8mb4_0900_ai_ci stays', "
                    "c VARCHAR(5) COLLATE utf8mb4_de_pb_0900_ai_ci) COLLATE=utf8mb4_0900_ai_ci")
        cur.execute(f"INSERT INTO {dbname}.t VALUES (1, 'a', 'b', 'c')")
        conn.commit()
    finally:
        conn.close()
    run_applier(make_config(mysql_source, target, dbname, start=start))
    assert_same(mysql_source, target, dbname)
    got = collations(target, dbname)
    assert got["(database)"] == "utf8mb4_uca1400_nopad_as_cs"
    assert (got["t.a"], got["t.b"], got["t.c"]) == (
        "utf8mb4_nopad_bin", "utf8mb4_uca1400_nopad_ai_ci", "utf8mb4_uca1400_german2_nopad_ai_ci")
    comment = target.query("SELECT COLUMN_COMMENT FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s "
                           "AND COLUMN_NAME = 'b'", (dbname,))[0][0]
    assert comment == "utf8mb4_0900_ai_ci stays"


def test_a_collation_without_equivalent_stops_naming_it(mysql_source, target, dbname):
    start = mysql_source.binlog_position()
    conn = mysql_source.connect()
    try:
        cur = conn.cursor()
        cur.execute("SET SESSION collation_server = 'utf8mb4_ja_0900_as_cs'")
        cur.execute(f"CREATE DATABASE {dbname}")  # would take the session's server collation
    finally:
        conn.close()
    with pytest.raises(SchemaError, match=r"no equivalent of the source's collation utf8mb4_ja_0900_as_cs \(id 303\)"):
        run_applier(make_config(mysql_source, target, dbname, start=start))
    assert not target.query("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (dbname,))


def test_check_compares_json_by_value_across_flavors(source, mysql_target, dbname):
    from applier.ops.check import check

    start = source.binlog_position()
    source.execute(f"CREATE DATABASE {dbname}")
    source.execute(f"CREATE TABLE {dbname}.j (id INT PRIMARY KEY, j JSON)")
    source.execute(f"CREATE TABLE {dbname}.nokey (j JSON)")
    source.execute(f"INSERT INTO {dbname}.j VALUES (1, '{{\"b\":1.50,\"a\":[1,2]}}'), (2, '[]'), (3, NULL)")
    source.execute(f"INSERT INTO {dbname}.nokey VALUES ('{{\"x\":1}}'), ('{{\"x\":1}}')")
    run_applier(make_config(source, mysql_target, dbname, start=start))
    assert_same(source, mysql_target, dbname)  # '{"b":1.50,...}' == MySQL's '{"a": [1, 2], "b": 1.5}'
    mysql_target.execute(f"UPDATE {dbname}.j SET j = JSON_ARRAY(1) WHERE id = 2")
    mysql_target.execute(f"UPDATE {dbname}.nokey SET j = JSON_OBJECT('x', 2) LIMIT 1")
    report = check(source.server_config(), mysql_target.server_config(), databases=(dbname,))
    diffs = {d.table: d for d in report.diffs}
    assert diffs["j"].row == "id=2" and "column `j` differs (as JSON): source '[]', target '[1]'" in diffs["j"].reason
    assert diffs["nokey"].reason == "JSON documents or doubles differ (as values)"


def test_check_compares_doubles_by_value_across_flavors(source, mysql_target, dbname):
    """MySQL prints DBL_MAX as 1.797693134862316e308, MariaDB as 1.7976931348623157e308:
    the same double, so equal; a double that differs in its 15th digit is a difference."""
    from applier.ops.check import check

    start = source.binlog_position()
    source.execute(f"CREATE DATABASE {dbname}")
    source.execute(f"CREATE TABLE {dbname}.d (id INT PRIMARY KEY, x DOUBLE, f FLOAT)")
    source.execute(f"CREATE TABLE {dbname}.nokey (x DOUBLE)")
    source.execute(f"INSERT INTO {dbname}.d VALUES (1, -1.7976931348623157e308, 3.4028234e38), "
                   f"(2, 2.2250738585072014e-308, -1.17549435e-38), (3, 0.1, NULL), (4, NULL, 1.5)")
    source.execute(f"INSERT INTO {dbname}.nokey VALUES (1.7976931348623157e308), (1e-300)")
    run_applier(make_config(source, mysql_target, dbname, start=start))
    assert_same(source, mysql_target, dbname)
    mysql_target.execute(f"UPDATE {dbname}.d SET x = 0.10000000000001 WHERE id = 3")
    mysql_target.execute(f"UPDATE {dbname}.nokey SET x = 1.0000000000001e-300 WHERE x < 1")
    report = check(source.server_config(), mysql_target.server_config(), databases=(dbname,))
    diffs = {d.table: d for d in report.diffs}
    assert diffs["d"].row == "id=3" and "column `x` differs: source '0.1'" in diffs["d"].reason, diffs["d"]
    assert diffs["nokey"].reason == "JSON documents or doubles differ (as values)"


def test_mysql_invisible_columns_and_generated_keys_to_mariadb(mysql_source, target, dbname):
    """MySQL's generated invisible primary keys (logged as an explicit my_row_id column
    with /*!80023 INVISIBLE */) and INVISIBLE columns come out invisible on MariaDB."""
    from tests.integration.test_mysql_binlog import invisible_workload

    start = mysql_source.binlog_position()
    invisible_workload(mysql_source, dbname, alter=False)
    run_applier(make_config(mysql_source, target, dbname, start=start))
    assert_same(mysql_source, target, dbname)
    invisible = target.query(
        "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s "
        "AND EXTRA LIKE '%%INVISIBLE%%' ORDER BY 1, 2", (dbname,))
    assert {tuple(r) for r in invisible} >= {("g", "my_row_id"), ("i", "h"), ("i", "s"), ("u", "u")}

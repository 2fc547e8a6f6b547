"""``applier check`` (applier.check) against the real session servers, MariaDB 10.11 and
MySQL 9.7 (every test runs on both: ``pair`` is parametrized by flavor).

Each test makes its own database on both servers directly with SQL (no replication);
on the source with ``sql_log_bin=0`` so other tests' binlogs stay clean. The check is
limited to that database with ``databases=(dbname,)``. MariaDB's sequence tables
(``seq_1_to_30``) do not exist on MySQL: there the statements read a numbers table
(``_SEQ``) instead.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from typing import Any

import pytest

from applier.errors import ConfigError, ConnectError
from applier.ops.check import WHOLE_TABLE, CheckReport, TableDiff, check

pytestmark = pytest.mark.integration


@dataclasses.dataclass
class Pair:
    """Connections to the test database on both servers."""

    source: Any
    target: Any
    db: str
    servers: tuple[Any, Any]
    flavor: str = "mariadb"

    def src(self, *statements: str, params: Any = None) -> None:
        _run(self.source, self._sql(statements), params)

    def tgt(self, *statements: str, params: Any = None) -> None:
        _run(self.target, self._sql(statements), params)

    def _sql(self, statements: tuple[str, ...]) -> tuple[str, ...]:
        if self.flavor == "mariadb":
            return statements
        return tuple(_SEQ_TABLE.sub(_numbers, sql) for sql in statements)

    def both(self, *statements: str, params: Any = None) -> None:
        self.src(*statements, params=params)
        self.tgt(*statements, params=params)

    def check(self, **kw: Any) -> CheckReport:
        source, target = self.servers
        kw.setdefault("databases", (self.db,))
        return check(source.server_config(), target.server_config(), **kw)

    def one_diff(self, **kw: Any) -> TableDiff:
        report = self.check(**kw)
        assert not report.ok
        assert len(report.diffs) == 1, report.diffs
        return report.diffs[0]


def _run(conn: Any, statements: tuple[str, ...], params: Any) -> None:
    with conn.cursor() as cur:
        for sql in statements:
            cur.execute(sql, params)


_SEQ = "mts_numbers.seq"  # MySQL: 0..1000, in place of MariaDB's sequence engine
_SEQ_TABLE = re.compile(r"\bseq_(\d+)_to_(\d+)\b")


def _numbers(m: re.Match[str]) -> str:
    return f"(SELECT seq FROM {_SEQ} WHERE seq BETWEEN {m.group(1)} AND {m.group(2)}) AS s"


def _make_numbers(conn: Any) -> None:
    _run(conn, (
        "SET SESSION cte_max_recursion_depth = 2000",
        "CREATE DATABASE IF NOT EXISTS mts_numbers",
        f"CREATE TABLE IF NOT EXISTS {_SEQ} (seq BIGINT UNSIGNED PRIMARY KEY)",
        f"INSERT IGNORE INTO {_SEQ} WITH RECURSIVE n (i) AS "
        "(SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 1000) SELECT i FROM n",
    ), None)


@pytest.fixture(params=["mariadb", "mysql"])
def pair(request: pytest.FixtureRequest, dbname: str) -> Iterator[Pair]:
    flavor = request.param
    prefix = "" if flavor == "mariadb" else "mysql_"
    source = request.getfixturevalue(f"{prefix}source")
    target = request.getfixturevalue(f"{prefix}target")
    src = source.connect()
    tgt = target.connect()
    _run(src, ("SET SESSION sql_log_bin = 0",), None)
    for conn in (src, tgt):
        if flavor == "mysql":
            _make_numbers(conn)
        _run(conn, (f"CREATE DATABASE `{dbname}` CHARACTER SET utf8mb4",), None)
        conn.select_db(dbname)
    try:
        yield Pair(src, tgt, dbname, (source, target), flavor)
    finally:
        for conn in (src, tgt):
            _run(conn, (f"DROP DATABASE IF EXISTS `{dbname}`",), None)
            conn.close()


MANY_TYPES = """
CREATE TABLE t (
  id INT PRIMARY KEY,
  s VARCHAR(20) NULL,
  c CHAR(5) NULL,
  b VARBINARY(20) NULL,
  bl BLOB NULL,
  tx TEXT NULL,
  f FLOAT NULL,
  d DOUBLE NULL,
  dc DECIMAL(20, 6) NULL,
  dt DATETIME(6) NULL,
  ts TIMESTAMP(3) NULL,
  tm TIME NULL,
  e ENUM('x', 'y', 'z') NULL,
  st SET('p', 'q') NULL,
  bt BIT(10) NULL,
  j JSON NULL,
  u BIGINT UNSIGNED NULL
)
"""

MANY_ROWS = """
INSERT INTO t VALUES
 (1, 'héllo', 'ab', X'00FF10', REPEAT(X'AB', 3000), 'text é', 0.1, 0.1, 1.5,
  '2020-01-02 03:04:05.123456', '2021-01-01 00:00:00.5', '-01:02:03', 'y', 'p,q', b'1010101010',
  '{"a": [1, 2]}', 18446744073709551615),
 (2, '', '', X'', X'', '', 0, -0.0, 0, '1000-01-01', NULL, '00:00:00', 'x', '', b'0', '[]', 0),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL),
 (4, '😀', 'z', X'FFFFFFFF', X'00', 'x', 3.4e38, 1.7976931348623157e308, -99999999999999.999999,
  '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07', '838:59:59', 'z', 'q', b'1111111111',
  'null', 1)
"""


def test_identical_tables_of_many_types_are_ok(pair: Pair) -> None:
    pair.both(MANY_TYPES, MANY_ROWS)
    pair.both(
        "CREATE TABLE nopk (a INT, b VARCHAR(10))",
        "INSERT INTO nopk VALUES (1, 'x'), (1, 'x'), (2, NULL)",
        "CREATE TABLE nothing (id INT PRIMARY KEY)",
    )
    report = pair.check()
    assert report.ok, report.diffs
    assert report.diffs == ()
    assert report.tables_checked == 3
    assert report.rows_checked == 4 + 3
    assert "no differences" in str(report)


def test_identical_many_types_in_small_chunks(pair: Pair) -> None:
    pair.both(MANY_TYPES, MANY_ROWS)
    report = pair.check(chunk_rows=1)
    assert report.ok, report.diffs
    assert report.rows_checked == 4


def test_changed_value_in_the_middle_names_the_row(pair: Pair) -> None:
    pair.both(
        "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20), n INT)",
        "INSERT INTO t SELECT seq, CONCAT('v', seq), seq FROM seq_1_to_100",
    )
    pair.tgt("UPDATE t SET v = 'changed' WHERE id = 50")
    diff = pair.one_diff()
    assert (diff.db, diff.table) == (pair.db, "t")
    assert diff.row == "id=50"
    assert "column `v` differs" in diff.reason
    assert "'v50'" in diff.reason and "'changed'" in diff.reason
    assert diff.chunk == "chunk 1 (id from start to end)"
    assert f"`{pair.db}`.`t`" in str(diff)


def test_several_columns_differ(pair: Pair) -> None:
    pair.both(
        "CREATE TABLE t (id INT PRIMARY KEY, a INT, b INT, c INT)",
        "INSERT INTO t VALUES (1, 1, 1, 1), (2, 2, 2, 2)",
    )
    pair.tgt("UPDATE t SET a = 20, c = 22 WHERE id = 2")
    diff = pair.one_diff()
    assert diff.row == "id=2"
    assert "columns `a`, `c` differ" in diff.reason
    assert "source 2, target 20" in diff.reason


def test_row_missing_on_target(pair: Pair) -> None:
    pair.both(
        "CREATE TABLE t (id INT PRIMARY KEY, v INT)",
        "INSERT INTO t SELECT seq, seq FROM seq_1_to_30",
    )
    pair.tgt("DELETE FROM t WHERE id IN (17, 25)")
    diff = pair.one_diff()
    assert diff.reason == "row missing on target"
    assert diff.row == "id=17"


def test_extra_row_on_target(pair: Pair) -> None:
    pair.both(
        "CREATE TABLE t (id INT PRIMARY KEY, v INT)",
        "INSERT INTO t SELECT seq * 2, seq FROM seq_1_to_30",
    )
    pair.tgt("INSERT INTO t VALUES (7, 7)")
    diff = pair.one_diff()
    assert diff.reason == "extra row on target"
    assert diff.row == "id=7"


@pytest.mark.parametrize("chunk_rows", [10, 30, 1000])
def test_extra_row_after_the_last_source_key(pair: Pair, chunk_rows: int) -> None:
    pair.both(
        "CREATE TABLE t (id INT PRIMARY KEY, v INT)",
        "INSERT INTO t SELECT seq, seq FROM seq_1_to_30",
    )
    pair.tgt("INSERT INTO t VALUES (1000, 1)")
    diff = pair.one_diff(chunk_rows=chunk_rows)
    assert diff.reason == "extra row on target"
    assert diff.row == "id=1000"
    assert diff.chunk is not None and diff.chunk.endswith("to end)")


def test_rows_only_on_target_of_an_empty_source_table(pair: Pair) -> None:
    pair.both("CREATE TABLE t (id INT PRIMARY KEY)")
    pair.tgt("INSERT INTO t VALUES (5), (6)")
    diff = pair.one_diff()
    assert (diff.reason, diff.row) == ("extra row on target", "id=5")


def test_table_missing_on_target_and_extra_table(pair: Pair) -> None:
    pair.both("CREATE TABLE same (id INT PRIMARY KEY)")
    pair.src("CREATE TABLE only_src (id INT PRIMARY KEY)", "INSERT INTO only_src VALUES (1)")
    pair.tgt("CREATE TABLE only_tgt (id INT PRIMARY KEY)")
    report = pair.check()
    assert not report.ok
    by_table = {d.table: d for d in report.diffs}
    assert set(by_table) == {"only_src", "only_tgt"}
    assert by_table["only_src"].reason == "table missing on target"
    assert "extra table on target" in by_table["only_tgt"].reason
    assert report.tables_checked == 2  # the source's tables


def test_views_are_not_tables(pair: Pair) -> None:
    pair.both("CREATE TABLE t (id INT PRIMARY KEY)")
    pair.src("CREATE VIEW v AS SELECT * FROM t")
    assert pair.check().ok


def test_different_column_lists(pair: Pair) -> None:
    pair.src("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10))")
    pair.tgt("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))")
    pair.src("CREATE TABLE more (id INT PRIMARY KEY)")
    pair.tgt("CREATE TABLE more (id INT PRIMARY KEY, extra INT)")
    pair.src("CREATE TABLE named (id INT PRIMARY KEY, a INT)")
    pair.tgt("CREATE TABLE named (id INT PRIMARY KEY, b INT)")
    pair.src("CREATE TABLE widths (id INT(11) PRIMARY KEY)")  # display width is not a type
    pair.tgt("CREATE TABLE widths (id INT(5) PRIMARY KEY)")
    report = pair.check()
    by_table = {d.table: d.reason for d in report.diffs}
    assert set(by_table) == {"t", "more", "named"}
    assert "varchar(10)" in by_table["t"] and "varchar(20)" in by_table["t"]
    assert "extra column(s) `extra`" in by_table["more"]
    assert "`a`" in by_table["named"] and "`b`" in by_table["named"]


def test_null_versus_empty_string(pair: Pair) -> None:
    pair.both(
        "CREATE TABLE t (id INT PRIMARY KEY, a VARCHAR(10) NULL, b VARCHAR(10) NULL)",
        "INSERT INTO t VALUES (1, 'x', NULL), (2, NULL, 'y')",
    )
    # CONCAT_WS skips NULLs: ('', NULL) vs (NULL, '') would collide without the NULL bits.
    pair.src("INSERT INTO t VALUES (3, '', NULL)")
    pair.tgt("INSERT INTO t VALUES (3, NULL, '')")
    diff = pair.one_diff()
    assert diff.row == "id=3"
    assert "columns `a`, `b` differ" in diff.reason
    assert "source '', target NULL" in diff.reason


def test_null_versus_empty_string_without_primary_key(pair: Pair) -> None:
    pair.both("CREATE TABLE t (a VARCHAR(10) NULL)")
    pair.src("INSERT INTO t VALUES ('')")
    pair.tgt("INSERT INTO t VALUES (NULL)")
    diff = pair.one_diff()
    assert diff.chunk == WHOLE_TABLE
    assert diff.reason in ("row missing on target", "extra row on target")


def test_binary_data_differing_in_one_byte(pair: Pair) -> None:
    blob = bytes(range(256)) * 8
    changed = blob[:1000] + bytes([blob[1000] ^ 1]) + blob[1001:]
    pair.both("CREATE TABLE t (id INT PRIMARY KEY, vb VARBINARY(16), bl LONGBLOB)")
    pair.both("INSERT INTO t VALUES (1, %s, %s)", params=(b"\x00\xff\x80", blob))
    pair.src("INSERT INTO t VALUES (2, %s, %s)", params=(b"\x00\xff\x80", blob))
    pair.tgt("INSERT INTO t VALUES (2, %s, %s)", params=(b"\x00\xff\x80", changed))
    pair.src("INSERT INTO t VALUES (3, %s, NULL)", params=(b"\xc3\xa9\x00",))
    pair.tgt("INSERT INTO t VALUES (3, %s, NULL)", params=(b"\xc3\xa9\x01",))
    report = pair.check(chunk_rows=2)
    (diff,) = report.diffs
    assert diff.row == "id=2"
    assert "column `bl` differs" in diff.reason
    assert "2048 bytes" in diff.reason
    pair.tgt("UPDATE t SET bl = %s WHERE id = 2", params=(blob,))
    (diff,) = pair.check().diffs
    assert diff.row == "id=3"
    assert "column `vb` differs: source 0xC3A900, target 0xC3A901" in diff.reason


def test_text_bytes_are_compared_without_conversion(pair: Pair) -> None:
    # 'é' in latin1 and an invalid utf8 byte sequence must not collapse to the same text.
    pair.both(
        "CREATE TABLE t (id INT PRIMARY KEY, l VARCHAR(5) CHARACTER SET latin1, "
        "u TEXT CHARACTER SET utf8mb4)"
    )
    pair.src("INSERT INTO t VALUES (1, _latin1 X'E9', _utf8mb4 X'F09F9880')")
    pair.tgt("INSERT INTO t VALUES (1, _latin1 X'E8', _utf8mb4 X'F09F9880')")
    diff = pair.one_diff()
    assert "column `l` differs: source 'é', target 'è'" in diff.reason
    pair.tgt("UPDATE t SET l = _latin1 X'E9', u = _utf8mb4 X'F09F9881'")
    diff = pair.one_diff()
    assert "column `u` differs" in diff.reason


def test_case_only_difference_in_a_case_insensitive_column(pair: Pair) -> None:
    pair.both(
        "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10) COLLATE utf8mb4_general_ci)",
        "INSERT INTO t VALUES (1, 'abc')",
    )
    pair.tgt("UPDATE t SET v = 'ABC'")
    assert "column `v` differs: source 'abc', target 'ABC'" in pair.one_diff().reason


def test_float_and_double_compared_by_exact_value(pair: Pair) -> None:
    # FLOAT 1.0000001 and 1.0000002 both print as "1"; DOUBLE 1 + 2^-52 needs 17 digits.
    pair.both("CREATE TABLE t (id INT PRIMARY KEY, f FLOAT, d DOUBLE)")
    pair.src("INSERT INTO t VALUES (1, 1.0000001, 1), (2, 1, 1 + POW(2, -52))")
    pair.tgt("INSERT INTO t VALUES (1, 1.0000002, 1), (2, 1, 1 + POW(2, -52))")
    diff = pair.one_diff()
    assert (diff.row, "column `f` differs" in diff.reason) == ("id=1", True)
    pair.tgt("UPDATE t SET f = 1.0000001 WHERE id = 1", "UPDATE t SET d = 1 WHERE id = 2")
    diff = pair.one_diff()
    assert diff.row == "id=2"
    assert "column `d` differs: source 1.0000000000000002, target 1" in diff.reason


def test_no_primary_key_duplicated_row(pair: Pair) -> None:
    pair.both(
        "CREATE TABLE t (a INT, b VARCHAR(10))",
        "INSERT INTO t VALUES (1, 'x'), (2, 'y'), (3, 'z')",
    )
    pair.tgt("INSERT INTO t VALUES (2, 'y')")
    diff = pair.one_diff()
    assert diff.chunk == WHOLE_TABLE
    assert diff.reason == "row appears 1 times on source, 2 times on target"
    assert diff.row == "a=2, b='y'"


def test_no_primary_key_duplicates_on_source_swapped_on_target(pair: Pair) -> None:
    # Same count, same set of distinct rows: only the multiplicities differ.
    pair.both("CREATE TABLE t (a INT)")
    pair.src("INSERT INTO t VALUES (1), (1), (2)")
    pair.tgt("INSERT INTO t VALUES (1), (2), (2)")
    diff = pair.one_diff()
    assert diff.chunk == WHOLE_TABLE
    assert diff.row in ("a=1", "a=2")


def test_no_primary_key_row_missing(pair: Pair) -> None:
    pair.both("CREATE TABLE t (a INT, b BLOB)", "INSERT INTO t VALUES (1, 'x'), (2, 'yy')")
    pair.tgt("DELETE FROM t WHERE a = 2")
    diff = pair.one_diff()
    assert (diff.reason, diff.chunk) == ("row missing on target", WHOLE_TABLE)
    assert diff.row == "a=2, b=0x7979"  # BLOB: binary data is shown as hex


def test_unique_not_null_key_is_used_when_there_is_no_primary_key(pair: Pair) -> None:
    pair.both(
        "CREATE TABLE t (n INT NULL, k INT NOT NULL, v INT, UNIQUE KEY nk (n), UNIQUE KEY uk (k))",
        "INSERT INTO t SELECT seq, seq * 10, seq FROM seq_1_to_50",
    )
    pair.tgt("UPDATE t SET v = 0 WHERE k = 330")
    diff = pair.one_diff(chunk_rows=10)
    assert diff.row == "k=330"
    assert diff.chunk == "chunk 4 (k after 300 up to 400)"


def test_composite_primary_key(pair: Pair) -> None:
    pair.both(
        "CREATE TABLE t (a INT, b VARCHAR(10), v INT, PRIMARY KEY (a, b))",
        "INSERT INTO t SELECT seq DIV 10, CONCAT('k', seq MOD 10), seq FROM seq_0_to_99",
    )
    report = pair.check(chunk_rows=7)
    assert report.ok and report.rows_checked == 100
    pair.tgt("UPDATE t SET v = -1 WHERE a = 7 AND b = 'k3'")
    pair.tgt("DELETE FROM t WHERE a = 9 AND b = 'k0'")
    diff = pair.one_diff(chunk_rows=7)
    assert diff.row == "a=7, b='k3'"
    assert "column `v` differs: source 73, target -1" in diff.reason
    assert diff.chunk == "chunk 11 ((a, b) after (6, 'k9') up to (7, 'k6'))"


def test_composite_key_missing_row_in_later_chunk(pair: Pair) -> None:
    pair.both(
        "CREATE TABLE t (d DATE, n BIGINT, x DECIMAL(10, 2), PRIMARY KEY (d, n, x))",
        "INSERT INTO t SELECT DATE('2024-01-01') + INTERVAL (seq MOD 3) DAY, seq MOD 5, "
        "seq / 7 FROM seq_1_to_200",
    )
    assert pair.check(chunk_rows=13).rows_checked == 200
    pair.tgt("DELETE FROM t WHERE d = '2024-01-03' AND n = 4 ORDER BY x DESC LIMIT 1")
    diff = pair.one_diff(chunk_rows=13)
    assert diff.reason == "row missing on target"
    assert diff.row is not None and diff.row.startswith("d='2024-01-03', n=4, x=")


def test_multiple_chunks_difference_in_a_later_chunk(pair: Pair) -> None:
    pair.both(
        "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))",
        "INSERT INTO t SELECT seq, CONCAT('v', seq) FROM seq_1_to_1000",
    )
    assert pair.check(chunk_rows=50).rows_checked == 1000
    pair.tgt("UPDATE t SET v = 'x' WHERE id = 777")
    report = pair.check(chunk_rows=50)
    (diff,) = report.diffs
    assert diff.row == "id=777"
    assert diff.chunk == "chunk 16 (id after 750 up to 800)"
    assert report.rows_checked == 800  # stops at the first differing chunk of a table


def test_string_keys_in_chunks(pair: Pair) -> None:
    # Case-insensitive collation order, accents, emoji and trailing spaces in the key.
    pair.both(
        "CREATE TABLE t (k VARCHAR(20) COLLATE utf8mb4_general_ci PRIMARY KEY, v INT)",
        "INSERT INTO t VALUES ('a', 1), ('B', 2), ('c', 3), ('é', 4), ('Z', 5), ('😀', 6), "
        "('a b', 7), ('', 8), ('ab', 9), ('AC', 10), ('x''y', 11)",
    )
    for n in (1, 2, 3, 100):
        report = pair.check(chunk_rows=n)
        assert report.ok and report.rows_checked == 11, (n, report)
    pair.tgt("UPDATE t SET v = 0 WHERE k = 'ab'")
    diff = pair.one_diff(chunk_rows=2)
    assert diff.row == "k='ab'"
    pair.tgt("UPDATE t SET v = 9 WHERE k = 'ab'", "UPDATE t SET k = 'AB' WHERE k = 'ab'")
    diff = pair.one_diff(chunk_rows=2)
    assert diff.row == "k='ab'"
    assert "column `k` differs: source 'ab', target 'AB'" in diff.reason


def test_binary_and_temporal_keys_in_chunks(pair: Pair) -> None:
    pair.both(
        "CREATE TABLE b (k VARBINARY(8) PRIMARY KEY, v INT)",
        "INSERT INTO b SELECT UNHEX(LPAD(HEX(seq * 37), 6, '0')), seq FROM seq_0_to_40",
        "CREATE TABLE ts (k DATETIME(6), t TIME, f DOUBLE, PRIMARY KEY (k, t, f))",
        "INSERT INTO ts SELECT '2020-01-01' + INTERVAL seq * 1001 MICROSECOND, "
        "SEC_TO_TIME(CAST(seq AS SIGNED) - 20), seq / 3 FROM seq_0_to_40",
        "CREATE TABLE en (e ENUM('z', 'a', 'm') PRIMARY KEY)",
        "INSERT INTO en VALUES ('a'), ('m'), ('z')",
    )
    report = pair.check(chunk_rows=4)
    assert report.ok, report.diffs
    assert report.rows_checked == 41 + 41 + 3
    pair.tgt("DELETE FROM b WHERE v = 30", "DELETE FROM en WHERE e = 'm'")
    pair.both(
        "CREATE TABLE st (s SET('p', 'q''s', 'r') PRIMARY KEY)",
        "INSERT INTO st VALUES ('p,r'), ('q''s')",
    )
    pair.tgt("UPDATE st SET s = 'r' WHERE s = 'p,r'")
    diffs = {d.table: d for d in pair.check(chunk_rows=4).diffs}
    assert set(diffs) == {"b", "en", "st"}
    assert (diffs["st"].reason, diffs["st"].row) == (
        "extra row on target",
        "s='r'",
    )  # SETs sort by number
    assert diffs["b"].row == "k=0x000456"
    assert diffs["en"].row == "e='m'"


def test_databases_filter_and_ignore(pair: Pair) -> None:
    pair.both("CREATE TABLE t (id INT PRIMARY KEY)")
    pair.src("INSERT INTO t VALUES (1)")
    assert not pair.check().ok
    assert pair.check(ignore_databases=(pair.db,)).tables_checked == 0
    assert pair.check(databases=("no_such_database_here",)).ok


def test_connect_error_names_the_server_not_the_password(pair: Pair) -> None:
    source, target = pair.servers
    bad = dataclasses.replace(target.server_config(), port=1)
    with pytest.raises(ConnectError) as info:
        check(source.server_config(), bad, databases=(pair.db,))
    message = str(info.value)
    assert "127.0.0.1:1" in message and "target" in message
    assert bad.password not in message
    wrong = dataclasses.replace(source.server_config(), password="not-the-password-xyz")
    with pytest.raises(ConnectError) as info:
        check(wrong, target.server_config(), databases=(pair.db,))
    assert "source" in str(info.value)
    assert "not-the-password-xyz" not in str(info.value)


def test_bad_chunk_rows(pair: Pair) -> None:
    with pytest.raises(ConfigError):
        pair.check(chunk_rows=0)


class _Recording:
    """A connection (and its cursors) that records every statement."""

    def __init__(self, inner: Any, log: list[str]) -> None:
        self._inner = inner
        self._log = log

    def cursor(self) -> Any:
        return _Recording(self._inner.cursor(), self._log)

    def execute(self, sql: str, params: Any = None) -> Any:
        self._log.append(sql)
        return self._inner.execute(sql, params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_one_query_per_chunk_per_side(pair: Pair) -> None:
    source, target = pair.servers
    pair.both(
        "CREATE TABLE t (a INT, b INT, v INT, PRIMARY KEY (a, b))",
        "INSERT INTO t SELECT seq DIV 10, seq MOD 10, seq FROM seq_1_to_1000",
    )
    logs: dict[str, list[str]] = {"source": [], "target": []}
    servers = {"source": source, "target": target}

    def connect(server: Any, role: str) -> Any:
        return _Recording(servers[role].connect(), logs[role])

    report = pair.check(chunk_rows=100, connect=connect)
    assert report.ok and report.rows_checked == 1000
    for role, log in logs.items():
        data = [sql for sql in log if f"`{pair.db}`.`t`" in sql]
        assert len(data) == 11, (role, data)  # 10 full chunks + the empty open-ended one
        assert "START TRANSACTION WITH CONSISTENT SNAPSHOT" in log

"""Source and target columns that differ in signedness or in ENUM/SET members, on real
servers (MariaDB -> MariaDB and MySQL 9.7 -> MySQL 9.7; both sources log
binlog_row_metadata=FULL, so the TableMap carries SIGNEDNESS and the member strings).

The binlog logs an integer's bytes and an ENUM/SET's member index / bitmap, not the
value's meaning; a target column of the other signedness or with its members in another
order used to take them silently (exit 0, wrong data). Now:

* refused, before anything is applied (``applier run --stop-at-end``: one ``error:``
  line naming the table, the column and both types, exit 5, no traceback, the table
  stays empty): INT -> INT UNSIGNED (a -1), INT UNSIGNED -> INT (4294967295 would come
  out as -1), ENUM members in another order, a SET without one of the source's members;
* applied exactly: INT UNSIGNED -> BIGINT (signed, strictly wider) with values above
  2^31, ENUM/SET with members appended on the target (members compare as text: a latin1
  ENUM into a utf8mb4 one with the same members and one more).

Each case runs in its own database (tables created on each side directly: the DDL lies
before the start position).
"""

from __future__ import annotations

import pytest

from applier.errors import SchemaError
from tests.integration.test_cli_errors import Setup, assert_clean_error, run_cli

# (source column, target column, the values inserted on the source, what the error names)
REFUSED = {
    "int-into-unsigned": ("INT", "INT UNSIGNED", [-1, 7], ("INT", "INT UNSIGNED", "negative")),
    "unsigned-into-int": ("INT UNSIGNED", "INT", [4294967295, 1], ("INT UNSIGNED", "INT (narrower")),
    "bigint-unsigned-into-bigint": ("BIGINT UNSIGNED", "BIGINT", [18446744073709551615],
                                    ("BIGINT UNSIGNED", "BIGINT (narrower")),
    "tinyint-into-smallint-unsigned": ("TINYINT", "SMALLINT UNSIGNED", [-128], ("TINYINT", "SMALLINT UNSIGNED")),
    "enum-reordered": ("ENUM('x','y','z')", "ENUM('z','y','x')", ["x", "z"],
                       ("ENUM('x','y','z')", "ENUM('z','y','x')")),
    "enum-fewer": ("ENUM('x','y','z')", "ENUM('x','y')", ["y"], ("ENUM('x','y','z')", "ENUM('x','y')")),
    "set-reordered": ("SET('r','s','t')", "SET('s','r','t')", ["r,t"], ("SET('r','s','t')", "SET('s','r','t')")),
    "enum-latin1-reordered": ("ENUM('é','ñ') CHARACTER SET latin1", "ENUM('ñ','é') CHARACTER SET latin1", ["é"],
                              ("ENUM('é','ñ')", "ENUM('ñ','é')")),
    "enum-other-case": ("ENUM('x','y')", "ENUM('X','y')", ["x"], ("ENUM('x','y')", "ENUM('X','y')")),
}
# (source column, target column, values): the target holds each value exactly
ALLOWED = {
    "unsigned-into-bigint": ("INT UNSIGNED", "BIGINT", [4294967295, 3000000000, 2147483648, 0]),
    "bigint-into-bigint": ("INT", "BIGINT", [-2147483648, -1, 2147483647]),
    "tinyint-unsigned-into-smallint": ("TINYINT UNSIGNED", "SMALLINT", [255, 128]),
    "mediumint-unsigned-into-int-unsigned": ("MEDIUMINT UNSIGNED", "INT UNSIGNED", [16777215]),
    "enum-appended": ("ENUM('x','y')", "ENUM('x','y','w')", ["x", "y"]),
    "set-appended": ("SET('r','s')", "SET('r','s','t','u')", ["r,s", "s", ""]),
    # members compare as text: the same members in another character set are the same
    "enum-latin1-into-utf8mb4": ("ENUM('é','ñ') CHARACTER SET latin1",
                                 "ENUM('é','ñ','ü') CHARACTER SET utf8mb4", ["ñ", "é"]),
}

FLAVORS = ["mariadb", "mysql"]


@pytest.fixture(params=FLAVORS)
def pair(request):
    if request.param == "mysql":
        return request.getfixturevalue("mysql_source"), request.getfixturevalue("mysql_target")
    return request.getfixturevalue("source"), request.getfixturevalue("target")


def _prepare(pair, db: str, tmp_path, source_type: str, target_type: str, values: list) -> Setup:
    """``db.t`` on both sides (each with its own column type), then the rows inserted on
    the source after the start position; a config that applies them."""
    source, target = pair
    for server, ctype in ((source, source_type), (target, target_type)):
        server.execute(f"CREATE DATABASE `{db}`")
        server.execute(f"CREATE TABLE `{db}`.t (id INT PRIMARY KEY, v {ctype} NOT NULL)")
    setup = Setup(source, target, db, tmp_path)  # starts at the source's current position
    conn = source.connect()
    try:
        cur = conn.cursor()
        cur.execute("BEGIN")
        for i, value in enumerate(values, 1):
            cur.execute(f"INSERT INTO `{db}`.t VALUES (%s, %s)", (i, value))
        cur.execute("COMMIT")
    finally:
        conn.close()
    return setup


def _rows(server, db: str) -> list[tuple]:
    return [(int(i), v) for i, v in server.query(f"SELECT id, CAST(v AS CHAR) FROM `{db}`.t ORDER BY id")]


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused(pair, dbname, tmp_path, case):
    source_type, target_type, values, names = REFUSED[case]
    setup = _prepare(pair, dbname, tmp_path, source_type, target_type, values)
    result = run_cli("run", "--config", setup.write(), "--stop-at-end")
    line = assert_clean_error(result, SchemaError.exit_code, f"table {dbname}.t", "column v", *names,
                              "ALTER the target column", secrets=setup.passwords)
    assert len(line) < 400, line
    assert _rows(pair[1], dbname) == [], "a row reached the target"


@pytest.mark.parametrize("case", sorted(ALLOWED))
def test_allowed(pair, dbname, tmp_path, case):
    source_type, target_type, values = ALLOWED[case]
    source, target = pair
    setup = _prepare(pair, dbname, tmp_path, source_type, target_type, values)
    result = run_cli("run", "--config", setup.write(), "--stop-at-end")
    assert result.returncode == 0, result.stderr
    expected = _rows(source, dbname)
    assert [v for _, v in expected] == [str(v) for v in values]  # the source holds what was inserted
    assert _rows(target, dbname) == expected

"""``[apply] databases``: only those databases reach the target. Row changes are
filtered by their table's database (also inside transactions that write both kinds);
statements (DDL) by the databases they name, where a qualified name counts rather than
the session's default database (``USE kept; CREATE TABLE other.t ...`` changes
``other``, and the target does not even have that database)."""

from __future__ import annotations

from tests.scenarios.helpers import rows
from tests.support import assert_same, make_config, run_applier


def test_filtered_databases(source, target, dbname):
    skip = f"{dbname}_skip"
    cfg = make_config(source, target, dbname, workers=4)
    src = source.connect()
    cur = src.cursor()
    cur.execute(f"CREATE DATABASE {dbname}")
    cur.execute(f"CREATE DATABASE {skip}")
    src.select_db(dbname)  # session default database: the replicated one
    cur = src.cursor()
    cur.execute("CREATE TABLE t (id INT PRIMARY KEY, n INT NOT NULL)")
    cur.execute(f"CREATE TABLE {skip}.s (id INT PRIMARY KEY, n INT NOT NULL)")  # qualified: filtered
    cur.execute(f"CREATE TABLE {skip}.s2 LIKE {skip}.s")
    cur.execute(f"ALTER TABLE {skip}.s ADD COLUMN extra INT")
    for i in range(50):
        cur.execute("BEGIN")
        cur.execute("INSERT INTO t VALUES (%s, 0)", (i,))
        cur.execute(f"INSERT INTO {skip}.s VALUES (%s, 0, NULL)", (i,))
        cur.execute(f"UPDATE {skip}.s SET n = n + 1 WHERE id <= %s", (i,))
        cur.execute("UPDATE t SET n = n + 1 WHERE id <= %s", (i,))
        cur.execute("COMMIT")
    cur.execute(f"TRUNCATE TABLE {skip}.s2")
    cur.execute(f"DROP TABLE {skip}.s2")
    src.select_db(skip)  # and the other way round: default database filtered
    cur = src.cursor()
    cur.execute(f"CREATE TABLE {dbname}.t2 (id INT PRIMARY KEY)")
    cur.execute(f"INSERT INTO {dbname}.t2 VALUES (1), (2)")
    cur.execute("CREATE TABLE s3 (id INT PRIMARY KEY)")  # unqualified, in the filtered one
    cur.execute("INSERT INTO s3 VALUES (1)")
    src.close()

    m = run_applier(cfg)
    assert m.skipped_filtered >= 5
    assert rows(target, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s",
                (skip,)) == [(0,)]
    assert rows(target, f"SELECT COUNT(*) FROM {dbname}.t2") == [(2,)]
    assert_same(source, target, dbname)

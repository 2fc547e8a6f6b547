"""``[apply] databases``: only those databases reach the target. Row changes are
filtered by their table's database (also inside transactions that write both kinds);
statements (DDL) by the databases they name, where a qualified name counts rather than
the session's default database (``USE kept; CREATE TABLE other.t ...`` changes
``other``, and the target does not even have that database). With table rules and a
rewrite too, under concurrent clients (pipeline/filters.py)."""

from __future__ import annotations

import pytest

from applier.ops.check import check
from tests.scenarios.helpers import in_txn, rows, run_clients
from tests.support import assert_same, make_config, run_applier

pytestmark = pytest.mark.flavors("mariadb", "mysql")  # MariaDB -> MariaDB, MySQL -> MySQL


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


@pytest.mark.parametrize("policy", ["writeset", "database"])
def test_table_rules_and_rewrite_under_concurrency(source, target, dbname, policy):
    """``[apply] rewrite_databases``, ``ignore_tables`` and a filtered database together,
    under four concurrent clients whose transactions touch all of them and a few hot
    rows: the workers (each with its own table cache, rewriting TableMaps) and the serial
    path apply exactly the kept tables into the target database, in an order that keeps
    the hot rows right (keys of the rewritten name), and ``applier check`` with the
    filters finds the two databases equal."""
    s, t, other = f"{dbname}_s", f"{dbname}_t", f"{dbname}_x"
    cfg = make_config(source, target, dbname, databases=(t,), rewrite_databases=(f"{s} -> {t}",),
                      ignore_tables=(f"{t}.log\\_%",), workers=4, batch_txns=16, policy=policy)
    target.execute(f"CREATE DATABASE {t}")
    src = source.connect()
    cur = src.cursor()
    for db in (s, other):
        cur.execute(f"CREATE DATABASE {db}")
    src.select_db(s)
    cur = src.cursor()
    cur.execute("CREATE TABLE acct (id INT PRIMARY KEY, bal INT NOT NULL)")
    cur.execute("CREATE TABLE item (id INT PRIMARY KEY, acct INT NOT NULL, v VARCHAR(20) NOT NULL, UNIQUE KEY (v))")
    cur.execute("CREATE TABLE log_a (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(20))")
    cur.execute("CREATE TABLE nokey (x INT)")  # a barrier: the serial path
    cur.execute(f"CREATE TABLE {other}.t (id INT AUTO_INCREMENT PRIMARY KEY, n INT)")
    cur.executemany("INSERT INTO acct VALUES (%s, 0)", [(i,) for i in range(5)])
    src.close()

    def client(idx: int, conn) -> None:
        conn.select_db(s)
        for i in range(60):
            n = idx * 1000 + i

            def body(c, n=n) -> None:
                c.execute("UPDATE acct SET bal = bal + 1 WHERE id = %s", (n % 5,))
                c.execute("INSERT INTO item VALUES (%s, %s, %s)", (n, n % 5, f"v{n}"))
                c.execute("INSERT INTO log_a (what) VALUES (%s)", (f"item {n}",))
                c.execute(f"INSERT INTO {other}.t (n) VALUES (%s)", (n,))
                if n % 17 == 0:
                    c.execute("INSERT INTO nokey VALUES (%s)", (n,))
                if n % 3 == 0:
                    c.execute("UPDATE item SET v = %s WHERE id = %s", (f"w{n}", n))

            in_txn(conn, body)

    run_clients(source, 4, client)
    run_applier(cfg)
    assert rows(target, f"SELECT COUNT(*), SUM(bal) FROM {t}.acct") == [(5, 240)]
    assert {r[0] for r in rows(target, "SELECT TABLE_NAME FROM information_schema.TABLES "
                                       "WHERE TABLE_SCHEMA = %s", (t,))} == {"acct", "item", "nokey"}
    assert rows(target, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME IN (%s, %s)",
                (s, other)) == [(0,)]
    report = check(cfg.source, cfg.target, databases=cfg.apply.databases,
                   ignore_databases=(*cfg.apply.ignore_databases, cfg.target.checkpoint_schema),
                   apply=cfg.apply)
    assert report.ok and report.tables_checked == 3, str(report)

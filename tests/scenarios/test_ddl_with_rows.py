"""Transactions mixing a statement and row changes:

* ``CREATE TABLE ... SELECT`` is logged as one transaction: the CREATE TABLE statement,
  then the rows for the new table. The table exists on the target only once that
  statement ran there, so its rows cannot be looked up while the transaction is
  still being read.
* ``SAVEPOINT`` is logged as a statement inside an ordinary transaction (the rows
  rolled back to it are not logged at all).
* a DDL while other tables are written concurrently from other connections, with
  the writes before and after it landing on cached metadata in workers.
"""

from __future__ import annotations

import pytest

from tests.scenarios.helpers import rows
from tests.support import assert_same, make_config, run_applier

pytestmark = pytest.mark.flavors("mariadb", "mysql")  # MariaDB -> MariaDB, MySQL -> MySQL


@pytest.mark.parametrize("workers", [1, 4])
def test_create_table_select(source, target, dbname, workers):
    cfg = make_config(source, target, dbname, workers=workers)
    src = source.connect()
    cur = src.cursor()
    cur.execute(f"CREATE DATABASE {dbname}")
    cur.execute(f"CREATE TABLE {dbname}.t (id INT PRIMARY KEY, v VARCHAR(10))")
    cur.executemany(f"INSERT INTO {dbname}.t VALUES (%s, %s)", [(i, f"v{i}") for i in range(50)])
    cur.execute(f"CREATE TABLE {dbname}.t2 (PRIMARY KEY (id)) SELECT * FROM {dbname}.t")
    cur.execute(f"CREATE TABLE {dbname}.t3 SELECT id, v FROM {dbname}.t WHERE id < 10")  # no key
    cur.execute(f"UPDATE {dbname}.t2 SET v = 'x' WHERE id < 25")
    cur.execute(f"INSERT INTO {dbname}.t3 VALUES (99, 'y')")
    src.close()

    run_applier(cfg)
    assert rows(target, f"SELECT COUNT(*) FROM {dbname}.t2") == [(50,)]
    assert rows(target, f"SELECT COUNT(*) FROM {dbname}.t3") == [(11,)]
    assert_same(source, target, dbname)


@pytest.mark.parametrize("workers", [1, 4])
def test_savepoints(source, target, dbname, workers):
    cfg = make_config(source, target, dbname, workers=workers)
    src = source.connect()
    cur = src.cursor()
    cur.execute(f"CREATE DATABASE {dbname}")
    cur.execute(f"CREATE TABLE {dbname}.t (id INT PRIMARY KEY, n INT NOT NULL)")
    for i in range(30):
        cur.execute("BEGIN")
        cur.execute(f"INSERT INTO {dbname}.t VALUES (%s, 0)", (i * 3,))
        cur.execute("SAVEPOINT a")
        cur.execute(f"INSERT INTO {dbname}.t VALUES (%s, 0)", (i * 3 + 1,))
        cur.execute("ROLLBACK TO SAVEPOINT a")
        cur.execute(f"INSERT INTO {dbname}.t VALUES (%s, 0)", (i * 3 + 2,))
        cur.execute(f"UPDATE {dbname}.t SET n = n + 1 WHERE id <= %s", (i * 3,))
        cur.execute("COMMIT")
    src.close()

    run_applier(cfg)
    assert rows(target, f"SELECT COUNT(*), SUM(n) FROM {dbname}.t") == rows(
        source, f"SELECT COUNT(*), SUM(n) FROM {dbname}.t")
    assert_same(source, target, dbname)


def test_savepoint_in_a_big_transaction(source, target, dbname):
    """A transaction above big_txn_rows is streamed; its SAVEPOINTs (logged once the
    transaction changed something) must be applied in place and must not turn it into
    a DDL transaction: its streamed rows were committed early, and the rows still held
    for compaction were lost."""
    cfg = make_config(source, target, dbname, workers=2, big_txn_rows=500)
    src = source.connect()
    src.cursor().execute(f"CREATE DATABASE {dbname}")
    src.select_db(dbname)  # SAVEPOINT is logged with the default database: not filtered out
    cur = src.cursor()
    cur.execute(f"CREATE TABLE {dbname}.t (id INT PRIMARY KEY, n INT NOT NULL)")
    cur.execute(f"CREATE TABLE {dbname}.u (id INT PRIMARY KEY, v INT, UNIQUE KEY (v))")
    cur.execute("BEGIN")
    for i in range(0, 1500, 100):  # 15 statements of 100 rows: streaming starts midway
        cur.execute(f"INSERT INTO {dbname}.u VALUES (%s, %s)", (i, i))  # applied in order
        cur.execute(f"INSERT INTO {dbname}.t VALUES " + ",".join(f"({j}, 0)" for j in range(i, i + 100)))  # compacted
        if i % 300 == 0:
            cur.execute(f"SAVEPOINT s{i}")
            cur.execute(f"UPDATE {dbname}.t SET n = n + 1 WHERE id < %s", (i + 50,))
            cur.execute(f"DELETE FROM {dbname}.t WHERE id = %s", (i + 7,))
            cur.execute(f"ROLLBACK TO SAVEPOINT s{i}")  # undone: not in the binlog
            cur.execute(f"UPDATE {dbname}.t SET n = n + 2 WHERE id %% 3 = 0 AND id < %s", (i + 50,))
    cur.execute("COMMIT")
    src.close()

    m = run_applier(cfg)
    assert m.big_transactions == 1
    q = f"SELECT COUNT(*), SUM(n) FROM {dbname}.t"
    assert rows(target, q) == rows(source, q)
    assert_same(source, target, dbname)

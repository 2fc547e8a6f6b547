"""End to end on real servers: DDL, inserts, updates, deletes, unique keys, tables
without keys, applied by the applier and compared with `check`."""

from __future__ import annotations

import pytest

from tests.support import assert_same, make_config, run_applier


@pytest.mark.parametrize("workers", [1, 4])
def test_mixed_dml_and_ddl(source, target, dbname, workers):
    cfg = make_config(source, target, dbname, workers=workers)
    src = source.connect()
    cur = src.cursor()
    cur.execute(f"CREATE DATABASE {dbname}")
    cur.execute(f"CREATE TABLE {dbname}.t (id INT PRIMARY KEY, v VARCHAR(20), n INT NOT NULL, u INT, UNIQUE KEY(u))")
    cur.execute(f"CREATE TABLE {dbname}.nopk (a INT, b TEXT)")
    for i in range(100):
        cur.execute(f"INSERT INTO {dbname}.t VALUES (%s, %s, 0, %s)", (i, f"v{i}", i))
    cur.execute(f"UPDATE {dbname}.t SET n = n + 1, v = 'x''y' WHERE id < 50")
    cur.execute(f"DELETE FROM {dbname}.t WHERE id >= 90")
    cur.execute(f"INSERT INTO {dbname}.nopk VALUES (1,'a'),(1,'a'),(2,NULL)")
    cur.execute(f"DELETE FROM {dbname}.nopk WHERE a=1 LIMIT 1")
    cur.execute(f"ALTER TABLE {dbname}.t ADD COLUMN w INT DEFAULT 7")
    cur.execute(f"UPDATE {dbname}.t SET w = id WHERE id % 3 = 0")
    cur.execute("BEGIN")
    cur.execute(f"UPDATE {dbname}.t SET u = NULL WHERE id = 1")
    cur.execute(f"UPDATE {dbname}.t SET u = 1 WHERE id = 2")  # unique value hand-over
    cur.execute("COMMIT")
    m = run_applier(cfg)
    assert m.transactions >= 100
    assert_same(source, target, dbname)

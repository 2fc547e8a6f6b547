"""Foreign keys: tables with them (child or parent) are barriers, applied serially by
the coordinator with foreign_key_checks on, so ON DELETE/UPDATE CASCADE, which the
source does not log (the cascaded rows are not in the binlog), happens on the target.

A source session with foreign_key_checks=0 changes that: its deletes cascade nothing
and it may write orphans. The binlog says so (the rows event flag
NO_FOREIGN_KEY_CHECKS_F; for statements, flags2 in the QUERY event), and the target
must apply those changes with the checks off too, or it cascades rows the source kept
(divergence) or refuses the orphans.
"""

from __future__ import annotations

import pytest

from tests.scenarios.helpers import rows
from tests.support import assert_same, make_config, run_applier

pytestmark = pytest.mark.flavors("mariadb", "mysql")  # MariaDB -> MariaDB, MySQL -> MySQL


def _tables(cur, db: str) -> None:
    cur.execute(f"CREATE DATABASE {db}")
    cur.execute(f"CREATE TABLE {db}.parent (id INT PRIMARY KEY, name VARCHAR(20) NOT NULL)")
    cur.execute(f"CREATE TABLE {db}.child (id INT PRIMARY KEY, pid INT, v INT NOT NULL, "
                f"FOREIGN KEY (pid) REFERENCES {db}.parent (id) ON DELETE CASCADE ON UPDATE CASCADE)")
    cur.executemany(f"INSERT INTO {db}.parent VALUES (%s, %s)", [(i, f"p{i}") for i in range(1, 11)])
    cur.executemany(f"INSERT INTO {db}.child VALUES (%s, %s, 0)", [(i, 1 + i % 10) for i in range(1, 51)])


@pytest.mark.parametrize("workers", [1, 4])
def test_cascades_happen_on_the_target(source, target, dbname, workers):
    cfg = make_config(source, target, dbname, workers=workers)
    src = source.connect()
    cur = src.cursor()
    _tables(cur, dbname)
    cur.execute(f"CREATE TABLE {dbname}.other (id INT PRIMARY KEY, n INT NOT NULL)")  # parallel work
    for i in range(1, 11):
        cur.execute(f"INSERT INTO {dbname}.other VALUES (%s, 0)", (i,))
        if i % 3 == 0:
            cur.execute(f"DELETE FROM {dbname}.parent WHERE id = %s", (i,))  # cascades
        elif i % 3 == 1:
            cur.execute(f"UPDATE {dbname}.parent SET id = %s WHERE id = %s", (100 + i, i))  # cascades
        cur.execute(f"UPDATE {dbname}.child SET v = v + 1 WHERE pid = %s", (100 + i,))
        cur.execute(f"UPDATE {dbname}.other SET n = n + 1 WHERE id <= %s", (i,))
    src.close()

    run_applier(cfg)
    q = f"SELECT pid, COUNT(*), SUM(v) FROM {dbname}.child GROUP BY pid ORDER BY pid"
    assert rows(target, q) == rows(source, q)
    assert_same(source, target, dbname)


@pytest.mark.parametrize("workers", [1, 4])
def test_source_session_without_foreign_key_checks(source, target, dbname, workers):
    cfg = make_config(source, target, dbname, workers=workers)
    src = source.connect()
    cur = src.cursor()
    _tables(cur, dbname)
    cur.execute("SET SESSION foreign_key_checks = 0")
    cur.execute(f"DELETE FROM {dbname}.parent WHERE id = 1")  # no cascade: children stay
    cur.execute(f"UPDATE {dbname}.parent SET id = 102 WHERE id = 2")  # no cascade either
    cur.execute(f"INSERT INTO {dbname}.child VALUES (1000, 999, 0)")  # an orphan
    cur.execute("SET SESSION foreign_key_checks = 1")
    cur.execute(f"DELETE FROM {dbname}.parent WHERE id = 3")  # cascades again
    src.close()

    run_applier(cfg)
    q = f"SELECT pid, COUNT(*) FROM {dbname}.child GROUP BY pid ORDER BY pid"
    assert rows(target, q) == rows(source, q)
    assert_same(source, target, dbname)


def test_ddl_without_foreign_key_checks(source, target, dbname):
    """mysqldump style: checks off, then tables created child first, parent dropped."""
    cfg = make_config(source, target, dbname, workers=2)
    src = source.connect()
    cur = src.cursor()
    cur.execute(f"CREATE DATABASE {dbname}")
    cur.execute("SET SESSION foreign_key_checks = 0")
    cur.execute(f"CREATE TABLE {dbname}.child (id INT PRIMARY KEY, pid INT, "
                f"FOREIGN KEY (pid) REFERENCES {dbname}.parent (id))")  # parent not there yet
    cur.execute(f"CREATE TABLE {dbname}.parent (id INT PRIMARY KEY)")
    cur.execute(f"INSERT INTO {dbname}.child VALUES (1, 1)")
    cur.execute(f"INSERT INTO {dbname}.parent VALUES (1)")
    cur.execute(f"CREATE TABLE {dbname}.old_parent (id INT PRIMARY KEY)")
    cur.execute(f"CREATE TABLE {dbname}.old_child (id INT PRIMARY KEY, pid INT, "
                f"FOREIGN KEY (pid) REFERENCES {dbname}.old_parent (id))")
    cur.execute(f"DROP TABLE {dbname}.old_parent")  # still referenced
    cur.execute("SET SESSION foreign_key_checks = 1")
    cur.execute(f"INSERT INTO {dbname}.parent VALUES (2)")
    cur.execute(f"INSERT INTO {dbname}.child VALUES (2, 2)")
    src.close()

    run_applier(cfg)
    assert_same(source, target, dbname)



@pytest.mark.parametrize("then", ["barrier", "big"])
def test_checks_follow_each_source_session_on_one_connection(source, target, dbname, then):
    """The coordinator's one target connection serves DDL, barriers and streamed
    transactions: foreign_key_checks as one of them left it must not leak into the
    next. A DDL logged with the checks off, then a barrier with them on (its delete must
    cascade); a barrier with them off, then a delete of 5 parents with them on (a
    barrier, or streamed when big); then a DDL that needs them off (dropping a parent
    still referenced)."""
    cfg = make_config(source, target, dbname, workers=2, big_txn_rows=3 if then == "big" else 10_000)
    src = source.connect()
    cur = src.cursor()
    _tables(cur, dbname)
    cur.execute("SET SESSION foreign_key_checks = 0")
    cur.execute(f"CREATE TABLE {dbname}.dumped (id INT PRIMARY KEY)")  # mysqldump style
    cur.execute("SET SESSION foreign_key_checks = 1")
    cur.execute(f"DELETE FROM {dbname}.parent WHERE id = 1")  # cascades: its children go
    cur.execute("SET SESSION foreign_key_checks = 0")
    cur.execute(f"DELETE FROM {dbname}.parent WHERE id = 9")  # no cascade: its children stay
    cur.execute("SET SESSION foreign_key_checks = 1")
    cur.execute(f"DELETE FROM {dbname}.parent WHERE id >= 4 AND id <= 8")  # cascades
    cur.execute("SET SESSION foreign_key_checks = 0")
    cur.execute(f"DROP TABLE {dbname}.parent")  # still referenced: needs the checks off
    cur.execute("SET SESSION foreign_key_checks = 1")
    src.close()

    run_applier(cfg)
    q = f"SELECT pid, COUNT(*) FROM {dbname}.child GROUP BY pid ORDER BY pid"
    assert rows(target, q) == rows(source, q)
    assert_same(source, target, dbname)

"""A random concurrent workload over every kind of table the applier treats
differently, applied with 1, 4 and 8 workers under every policy, then compared.

Tables (database ``db``):

* ``acct``   primary key only: compacted by workers; gets a column mid-stream
             (ALTER TABLE ... ADD COLUMN while the other connections keep writing)
             and one big transaction (every row updated: > big_txn_rows, streamed)
* ``uq``     a secondary UNIQUE key whose values change often, case-insensitive,
             from a small domain so values are handed over between rows all the time
* ``parent`` / ``child``  a foreign key with ON DELETE CASCADE (barriers, applied
             serially with foreign_key_checks on, so the target cascades too)
* ``nopk``   no key at all, duplicate rows (barrier, matched by every column)
* ``comp``   a composite primary key whose second part (case-insensitive) changes

Plus ``<db>_skip``, a database outside ``[apply] databases``, written inside the same
transactions: its rows and DDL must be filtered out.

Each parametrized case generates its own workload (fixed seeds; the interleaving of
the connections still varies from run to run) in its own database and replicates it.
"""

from __future__ import annotations

import random
import threading

import MySQLdb
import pytest

from applier.config import POLICIES
from applier.pipeline.writeset import native_scan
from tests.scenarios.helpers import in_txn, rows, run_clients
from tests.support import assert_same, make_config, run_applier

CLIENTS = 5
TXNS_PER_CLIENT = 80
ACCT_ROWS = 600  # > BIG_TXN_ROWS: "UPDATE every acct row" is a big transaction
BIG_TXN_ROWS = 500
CODES = 40  # uq.code domain: small, so values keep moving between rows
IGNORABLE = (1062, 1452, 1451)  # duplicate key, FK child without parent, FK parent in use


def _setup(cur, db: str) -> None:
    cur.execute(f"CREATE DATABASE {db}")
    cur.execute(f"CREATE DATABASE {db}_skip")
    cur.execute(f"CREATE TABLE {db}_skip.s (id INT PRIMARY KEY, n INT NOT NULL)")
    cur.execute(f"CREATE TABLE {db}.acct (id INT PRIMARY KEY, bal INT NOT NULL, note VARCHAR(30))")
    cur.execute(f"CREATE TABLE {db}.uq (id INT PRIMARY KEY, code VARCHAR(20) COLLATE utf8mb4_general_ci, "
                "n INT NOT NULL DEFAULT 0, UNIQUE KEY code (code)) DEFAULT CHARSET=utf8mb4")
    cur.execute(f"CREATE TABLE {db}.parent (id INT PRIMARY KEY, name VARCHAR(20) NOT NULL)")
    cur.execute(f"CREATE TABLE {db}.child (id INT PRIMARY KEY, pid INT NOT NULL, v INT NOT NULL, "
                f"FOREIGN KEY (pid) REFERENCES {db}.parent (id) ON DELETE CASCADE)")
    cur.execute(f"CREATE TABLE {db}.nopk (a INT, b VARCHAR(10))")
    cur.execute(f"CREATE TABLE {db}.comp (a INT NOT NULL, b VARCHAR(10) NOT NULL, c INT NOT NULL, "
                "PRIMARY KEY (a, b))")
    cur.executemany(f"INSERT INTO {db}.acct VALUES (%s, %s, NULL)", [(i, 100) for i in range(1, ACCT_ROWS + 1)])
    cur.executemany(f"INSERT INTO {db}.uq (id, code) VALUES (%s, %s)", [(i, f"k{i}") for i in range(1, 21)])
    cur.executemany(f"INSERT INTO {db}.parent VALUES (%s, %s)", [(i, f"p{i}") for i in range(1, 21)])
    cur.executemany(f"INSERT INTO {db}.child VALUES (%s, %s, 0)", [(i, 1 + i % 20) for i in range(1, 61)])
    cur.executemany(f"INSERT INTO {db}.nopk VALUES (%s, %s)", [(i % 5, f"b{i % 3}") for i in range(30)])
    cur.executemany(f"INSERT INTO {db}.comp VALUES (%s, %s, 0)", [(i % 10, f"x{i}") for i in range(40)])
    cur.executemany(f"INSERT INTO {db}_skip.s VALUES (%s, 0)", [(i,) for i in range(1, 11)])


def _op(rng: random.Random, db: str, idx: int, seq: int, ddl_done: bool) -> list[tuple[str, tuple]]:
    """One random statement group (all on one table) for client ``idx``."""
    new_id = (idx + 1) * 1_000_000 + seq * 10 + rng.randrange(10)
    kind = rng.randrange(14)
    if kind == 0:
        return [(f"INSERT INTO {db}.acct (id, bal, note) VALUES (%s, %s, %s)", (new_id, rng.randrange(1000), "new"))]
    if kind == 1:
        extra = ", extra = extra + 1" if ddl_done and rng.random() < 0.5 else ""
        return [(f"UPDATE {db}.acct SET bal = bal + %s, note = %s{extra} WHERE id = %s",
                 (rng.randrange(-5, 6), f"c{idx}s{seq}", rng.randrange(1, ACCT_ROWS + 1)))]
    if kind == 2:  # delete and re-insert the same key (compacts to a replace)
        i = rng.randrange(1, ACCT_ROWS + 1)
        return [(f"DELETE FROM {db}.acct WHERE id = %s", (i,)),
                (f"INSERT INTO {db}.acct (id, bal, note) VALUES (%s, %s, 'again')", (i, rng.randrange(1000)))]
    if kind == 3:  # primary key change
        return [(f"UPDATE {db}.acct SET id = %s WHERE id = %s", (new_id, rng.randrange(1, ACCT_ROWS + 1)))]
    if kind in (4, 5, 6):  # unique value moves: may collide on the source (skipped there)
        code = rng.choice([f"k{rng.randrange(CODES)}", f"K{rng.randrange(CODES)}", None])
        return [(f"UPDATE {db}.uq SET code = %s, n = n + 1 WHERE id = %s", (code, rng.randrange(1, 21)))]
    if kind == 7:
        return [(f"INSERT INTO {db}.uq (id, code) VALUES (%s, %s)", (new_id, f"k{rng.randrange(CODES)}")),
                (f"DELETE FROM {db}.uq WHERE id = %s", (rng.randrange(1, 21),)),
                (f"INSERT INTO {db}.uq (id, code) VALUES (%s, %s)", (rng.randrange(1, 21), f"K{rng.randrange(CODES)}"))]
    if kind == 8:
        p = rng.randrange(1, 26)
        return [(f"INSERT INTO {db}.parent VALUES (%s, %s) ON DUPLICATE KEY UPDATE name = VALUES(name)", (p, f"p{seq}")),
                (f"INSERT INTO {db}.child VALUES (%s, %s, %s)", (new_id, p, seq))]
    if kind == 9:
        if rng.random() < 0.3:  # cascades to its children (not logged: the target cascades)
            return [(f"DELETE FROM {db}.parent WHERE id = %s", (rng.randrange(1, 26),))]
        return [(f"UPDATE {db}.child SET v = v + 1 WHERE pid = %s", (rng.randrange(1, 26),))]
    if kind == 10:
        a = rng.randrange(5)
        return [(f"INSERT INTO {db}.nopk VALUES (%s, %s)", (a, f"b{rng.randrange(3)}")),
                (f"UPDATE {db}.nopk SET b = %s WHERE a = %s LIMIT 1", (f"b{rng.randrange(3)}", rng.randrange(5))),
                (f"DELETE FROM {db}.nopk WHERE a = %s LIMIT 1", (rng.randrange(5),))]
    if kind == 11:  # b is case-insensitive: 'x5' and 'X5' are the same key
        a = rng.randrange(10)
        return [(f"INSERT INTO {db}.comp VALUES (%s, %s, 1) ON DUPLICATE KEY UPDATE c = c + 1",
                 (a, rng.choice("xX") + str(rng.randrange(60)))),
                (f"UPDATE {db}.comp SET b = %s WHERE a = %s AND b = %s",
                 (rng.choice("yYxX") + str(rng.randrange(60)), a, f"x{rng.randrange(60)}"))]
    if kind == 12:
        return [(f"DELETE FROM {db}.comp WHERE a = %s AND b = %s", (rng.randrange(10), f"x{rng.randrange(60)}")),
                (f"UPDATE {db}.comp SET c = c + 1 WHERE a = %s", (rng.randrange(10),))]
    return [(f"UPDATE {db}_skip.s SET n = n + 1 WHERE id = %s", (rng.randrange(1, 11),))]


def _workload(source, db: str, seed: int) -> None:
    ddl_at = threading.Event()  # client 0 is halfway: run the ALTER now
    ddl_done = threading.Event()

    def client(idx: int, conn) -> None:
        rng = random.Random(seed * 100 + idx)
        if idx == CLIENTS:  # the DDL connection: ALTER while the others write
            ddl_at.wait(timeout=60)
            cur = conn.cursor()
            # A waiting ALTER blocks new readers of the table, and a client blocked so
            # may hold a row lock another client (that the ALTER waits for) needs: an
            # undetected deadlock until innodb_lock_wait_timeout. Give up soon, retry.
            cur.execute("SET SESSION lock_wait_timeout = 1")
            for attempt in range(100):
                try:
                    cur.execute(f"ALTER TABLE {db}.acct ADD COLUMN extra INT NOT NULL DEFAULT 5")
                    break
                except MySQLdb.OperationalError as e:
                    if e.args[0] != 1205 or attempt == 99:
                        raise
            cur.execute(f"CREATE TABLE {db}_skip.t2 (id INT PRIMARY KEY)")  # filtered DDL
            ddl_done.set()
            return
        for seq in range(TXNS_PER_CLIENT):
            if idx == 0 and seq == TXNS_PER_CLIENT // 2:
                ddl_at.set()
            big = idx == 1 and seq == TXNS_PER_CLIENT * 2 // 3
            groups = [_op(rng, db, idx, seq, ddl_done.is_set()) for _ in range(rng.randint(1, 4))]

            def body(cur, groups=groups, big=big) -> None:
                if big:  # one big transaction: every acct row, then more
                    cur.execute(f"UPDATE {db}.acct SET bal = bal + 1")
                for group in groups:
                    for sql, params in group:
                        try:
                            cur.execute(sql, params)
                        except MySQLdb.IntegrityError as e:  # statement rolled back, txn goes on
                            if e.args[0] not in IGNORABLE:
                                raise

            in_txn(conn, body)

    run_clients(source, CLIENTS + 1, client)


@pytest.mark.parametrize(
    "policy, preserve",
    [*((p, False) for p in POLICIES), ("writeset", True)],
    ids=[*POLICIES, "writeset-ordered"],
)
@pytest.mark.parametrize("workers", [1, 4, 8])
def test_random_workload(source, target, dbname, workers, policy, preserve):
    m = _replicate(source, target, dbname, workers, policy, preserve, native_scan=True)
    if native_scan is not None:  # plain row transactions took the native scanner
        assert m.scanned > 0
    assert m.scanned < m.transactions  # DDL, filtered, big and barrier ones did not


def test_random_workload_with_adaptive_workers(source, target, dbname):
    """[apply] adapt_workers (the default outside the tests): 4 workers, fed as many as
    commit fastest; the same exact result."""
    _replicate(source, target, dbname, 4, "writeset", False, native_scan=True, adapt_workers=True)


def test_random_workload_python_path(source, target, dbname):
    """The same with the native scanner off: the per-event Python path is the reference
    the scanner falls back to, and must stay correct on its own."""
    m = _replicate(source, target, dbname, 4, "writeset", False, native_scan=False)
    assert m.scanned == 0


@pytest.mark.parametrize("pair", ["mysql-mysql", "mysql-mariadb", "mariadb-mysql"])
def test_random_workload_across_flavors(pair, request, dbname):
    """The same workload MySQL 9.7 -> MySQL, and across the flavors both ways (a
    migration): 4 workers, writeset."""
    src_flavor, dst_flavor = pair.split("-")
    source = request.getfixturevalue(f"{src_flavor}_source")
    target = request.getfixturevalue(f"{dst_flavor}_target")
    _replicate(source, target, dbname, 4, "writeset", False, native_scan=True)


def _replicate(source, target, dbname, workers, policy, preserve, *, native_scan: bool,
               adapt_workers: bool = False):
    cfg = make_config(source, target, dbname, workers=workers, policy=policy, big_txn_rows=BIG_TXN_ROWS,
                      preserve_commit_order=preserve, native_scan=native_scan, adapt_workers=adapt_workers)
    src = source.connect()
    _setup(src.cursor(), dbname)
    src.close()
    _workload(source, dbname, seed=workers * 10 + POLICIES.index(policy) + 5 * preserve)

    m = run_applier(cfg)

    assert m.big_transactions >= 1
    assert m.barriers >= 3  # DDL, FK and no-key tables at least
    assert_same(source, target, dbname)
    # the filtered database never reached the target, not even its DDL
    assert rows(target, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s",
                (f"{dbname}_skip",)) == [(0,)]
    # the added column is there, and the cascade happened on the target
    assert rows(target, f"SELECT COUNT(*) FROM {dbname}.acct WHERE extra <> 5")[0][0] == rows(
        source, f"SELECT COUNT(*) FROM {dbname}.acct WHERE extra <> 5")[0][0]
    assert rows(target, f"SELECT COUNT(*) FROM {dbname}.child WHERE pid NOT IN (SELECT id FROM {dbname}.parent)"
                ) == [(0,)]
    for table in ("acct", "uq", "parent", "child", "nopk", "comp"):
        q = f"SELECT COUNT(*) FROM {dbname}.{table}"
        assert rows(target, q) == rows(source, q), table
    return m

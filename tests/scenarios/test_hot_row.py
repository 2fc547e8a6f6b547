"""Hot rows: 5,000 transactions from 16 source connections, all updating the same few
rows, must leave the target equal to the source.

Every transaction conflicts with most others, so the writeset scheduler keeps routing
onto the worker holding the rows (or waits until one worker holds them all), and
workers compact many updates of one row in a batch into its final image. Two hot
tables cover both apply paths: ``hot`` has only a primary key (compacted) and
``hot_u`` also has a secondary UNIQUE key (applied row by row in source order).
"""

from __future__ import annotations

import random
import threading

import pytest

from tests.scenarios.helpers import in_txn, rows, run_clients
from tests.support import assert_same, make_config, run_applier

pytestmark = pytest.mark.flavors("mariadb", "mysql")  # MariaDB -> MariaDB, MySQL -> MySQL

TRANSACTIONS = 5000
CONNECTIONS = 16
HOT_ROWS = 4


@pytest.mark.parametrize("workers", [4, 8])
def test_hot_rows(source, target, dbname, workers):
    cfg = make_config(source, target, dbname, workers=workers)
    src = source.connect()
    cur = src.cursor()
    cur.execute(f"CREATE DATABASE {dbname}")
    cur.execute(f"CREATE TABLE {dbname}.hot (id INT PRIMARY KEY, n INT NOT NULL, v VARCHAR(40) NOT NULL)")
    cur.execute(f"CREATE TABLE {dbname}.hot_u (id INT PRIMARY KEY, u INT NOT NULL UNIQUE, n INT NOT NULL, "
                "v VARCHAR(40) NOT NULL)")
    for i in range(1, HOT_ROWS + 1):
        cur.execute(f"INSERT INTO {dbname}.hot VALUES (%s, 0, '')", (i,))
        cur.execute(f"INSERT INTO {dbname}.hot_u VALUES (%s, %s, 0, '')", (i, 100 + i))
    src.close()

    updates = [0, 0]  # per table: committed row updates (each adds 1 to n)
    lock = threading.Lock()
    per_client = [TRANSACTIONS // CONNECTIONS + (i < TRANSACTIONS % CONNECTIONS) for i in range(CONNECTIONS)]

    def client(idx: int, conn) -> None:
        rng = random.Random(idx)
        for seq in range(per_client[idx]):
            # tables and ids sorted: fewer deadlocks on the source (they are retried anyway)
            plan = [(t, sorted(rng.sample(range(1, HOT_ROWS + 1), rng.randint(1, 3))))
                    for t in sorted(rng.sample(["hot", "hot_u"], rng.randint(1, 2)))]

            def body(c, plan=plan, seq=seq) -> None:
                for table, ids in plan:
                    for i in ids:
                        c.execute(f"UPDATE {dbname}.{table} SET n = n + 1, v = %s WHERE id = %s",
                                  (f"c{idx}-s{seq}", i))

            in_txn(conn, body)
            with lock:
                for table, ids in plan:
                    updates[table == "hot_u"] += len(ids)

    run_clients(source, CONNECTIONS, client)

    m = run_applier(cfg)
    assert m.transactions >= TRANSACTIONS
    for i, table in enumerate(("hot", "hot_u")):
        want = rows(source, f"SELECT * FROM {dbname}.{table} ORDER BY id")
        got = rows(target, f"SELECT * FROM {dbname}.{table} ORDER BY id")
        assert got == want
        assert sum(r[-2] for r in got) == updates[i]
    assert_same(source, target, dbname)

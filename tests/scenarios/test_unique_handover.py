"""Unique-key hand-over: transaction A frees a unique value (deletes its row or changes
it), transaction B, committed later on another connection, takes that value in another
row. B must be applied after A on the target (no duplicate-key error), whichever
workers they are routed to: their writesets share the hash of the freed value.

Cases, each repeated many times while filler connections keep the workers busy:

* delete:   A deletes the row holding v; B inserts v in a new row
* change:   A changes v to something else; B inserts v
* take:     A sets v to NULL (nullable unique); B updates another row to v
* swap:     three transactions swap two rows' values through a temporary value
* case:     A changes 'abc' to 'zzz'; B inserts 'ABC' (case-insensitive collation)
* accent:   A changes 'café' away; B inserts 'CAFE' (utf8mb4_general_ci: é = E)
* pad:      A changes 'pad' away; B inserts 'pad ' (PAD SPACE: equal for a unique key)
* pk:       A moves a primary key away (compacted table); B inserts that key
"""

from __future__ import annotations

import random
import threading

import pytest

from tests.scenarios.helpers import in_txn, rows, run_clients
from tests.support import assert_same, make_config, run_applier

pytestmark = pytest.mark.flavors("mariadb", "mysql")  # MariaDB -> MariaDB, MySQL -> MySQL

ROUNDS = 60  # hand-overs per case


def _schema(cur, db: str) -> None:
    cur.execute(f"CREATE DATABASE {db}")
    # the default collation of the servers' utf8mb4 is utf8mb4_general_ci (case and
    # accent insensitive, PAD SPACE); state it so the test does not depend on it
    cur.execute(f"CREATE TABLE {db}.u (id INT PRIMARY KEY, v VARCHAR(40) COLLATE utf8mb4_general_ci, "
                "n INT NOT NULL DEFAULT 0, UNIQUE KEY uv (v)) DEFAULT CHARSET=utf8mb4")
    cur.execute(f"CREATE TABLE {db}.p (id INT PRIMARY KEY, n INT NOT NULL DEFAULT 0)")
    cur.execute(f"CREATE TABLE {db}.filler (id INT PRIMARY KEY, u INT NOT NULL UNIQUE, n INT NOT NULL)")
    cur.executemany(f"INSERT INTO {db}.filler VALUES (%s, %s, 0)", [(i, i) for i in range(1, 201)])


# each case: (rows to create before the run, [transactions as lists of (sql, params)])
def _cases(db: str, r: int) -> dict[str, tuple[list[tuple], list[list[tuple[str, tuple]]]]]:
    base = 100_000 * (r + 1)
    t = f"{db}.u"
    return {
        "delete": ([(base + 1, f"d{r}")], [
            [(f"DELETE FROM {t} WHERE id = %s", (base + 1,))],
            [(f"INSERT INTO {t} (id, v) VALUES (%s, %s)", (base + 2, f"d{r}"))],
        ]),
        "change": ([(base + 11, f"c{r}")], [
            [(f"UPDATE {t} SET v = %s, n = n + 1 WHERE id = %s", (f"c{r}-moved", base + 11))],
            [(f"INSERT INTO {t} (id, v) VALUES (%s, %s)", (base + 12, f"c{r}"))],
        ]),
        "take": ([(base + 21, f"t{r}"), (base + 22, None)], [
            [(f"UPDATE {t} SET v = NULL WHERE id = %s", (base + 21,))],
            [(f"UPDATE {t} SET v = %s WHERE id = %s", (f"t{r}", base + 22))],
        ]),
        "swap": ([(base + 31, f"sx{r}"), (base + 32, f"sy{r}")], [
            [(f"UPDATE {t} SET v = %s WHERE id = %s", (f"tmp{r}", base + 31))],
            [(f"UPDATE {t} SET v = %s WHERE id = %s", (f"sx{r}", base + 32))],
            [(f"UPDATE {t} SET v = %s WHERE id = %s", (f"sy{r}", base + 31))],
        ]),
        "case": ([(base + 41, f"abc{r}")], [
            [(f"UPDATE {t} SET v = %s WHERE id = %s", (f"zzz{r}", base + 41))],
            [(f"INSERT INTO {t} (id, v) VALUES (%s, %s)", (base + 42, f"ABC{r}"))],
        ]),
        "accent": ([(base + 51, f"café{r}")], [
            [(f"UPDATE {t} SET v = %s WHERE id = %s", (f"tea{r}", base + 51))],
            [(f"INSERT INTO {t} (id, v) VALUES (%s, %s)", (base + 52, f"CAFE{r}"))],
        ]),
        "pad": ([(base + 61, f"pad{r}")], [
            [(f"UPDATE {t} SET v = %s WHERE id = %s", (f"nopad{r}", base + 61))],
            [(f"INSERT INTO {t} (id, v) VALUES (%s, %s)", (base + 62, f"pad{r} "))],
        ]),
        "pk": ([], [
            [(f"INSERT INTO {db}.p (id) VALUES (%s)", (base + 71,))],
            [(f"UPDATE {db}.p SET id = %s WHERE id = %s", (base + 72, base + 71))],
            [(f"INSERT INTO {db}.p (id, n) VALUES (%s, 5)", (base + 71,))],
        ]),
    }


@pytest.mark.parametrize("workers", [2, 8])
def test_unique_value_hand_over(source, target, dbname, workers):
    cfg = make_config(source, target, dbname, workers=workers, batch_txns=20)
    src = source.connect()
    cur = src.cursor()
    _schema(cur, dbname)
    for r in range(ROUNDS):
        for pre, _ in _cases(dbname, r).values():
            for pk, v in pre:
                cur.execute(f"INSERT INTO {dbname}.u (id, v) VALUES (%s, %s)", (pk, v))
    src.close()

    done = threading.Event()
    drivers = 2  # hand-over transactions alternate between these connections
    turn = threading.Condition()
    script = [steps for r in range(ROUNDS) for _, steps in _cases(dbname, r).values()]
    # one step per transaction, in the order to commit them: interleave the cases
    order = [(i, j) for i in range(len(script)) for j in range(len(script[i]))]
    order.sort(key=lambda ij: (ij[0] // 8, ij[1], ij[0]))
    next_step = [0]

    def client(idx: int, conn) -> None:
        if idx < drivers:
            # drivers take turns: step k runs on connection k % drivers, strictly after k-1
            while True:
                with turn:
                    turn.wait_for(lambda: next_step[0] >= len(order) or next_step[0] % drivers == idx)
                    k = next_step[0]
                if k >= len(order):
                    break
                i, j = order[k]

                def body(c, stmts=script[i][j]) -> None:
                    for sql, params in stmts:
                        c.execute(sql, params)

                in_txn(conn, body)
                with turn:
                    next_step[0] += 1
                    turn.notify_all()
            done.set()
            return
        rng = random.Random(idx)
        while not done.is_set():  # filler: keep every worker busy with unrelated rows
            ids = sorted(rng.sample(range(1, 201), 3))

            def fill(c, ids=ids) -> None:
                for i in ids:
                    c.execute(f"UPDATE {dbname}.filler SET n = n + 1 WHERE id = %s", (i,))

            in_txn(conn, fill)

    run_clients(source, drivers + 4, client)

    m = run_applier(cfg)  # raises TargetError on a duplicate key
    assert m.transactions >= len(order)
    got = dict(rows(target, f"SELECT id, v FROM {dbname}.u"))
    for r in range(ROUNDS):
        base = 100_000 * (r + 1)
        assert base + 1 not in got and got[base + 2] == f"d{r}"
        assert got[base + 11] == f"c{r}-moved" and got[base + 12] == f"c{r}"
        assert got[base + 21] is None and got[base + 22] == f"t{r}"
        assert got[base + 31] == f"sy{r}" and got[base + 32] == f"sx{r}"
        assert got[base + 41] == f"zzz{r}" and got[base + 42] == f"ABC{r}"
        assert got[base + 51] == f"tea{r}" and got[base + 52] == f"CAFE{r}"
        assert got[base + 61] == f"nopad{r}" and got[base + 62] == f"pad{r} "
    assert dict(rows(target, f"SELECT id, n FROM {dbname}.p")) == dict(
        rows(source, f"SELECT id, n FROM {dbname}.p"))
    assert_same(source, target, dbname)

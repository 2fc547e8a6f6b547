"""Built-in workloads for the demo, tests and benchmarks (no sysbench needed).

Tables are sysbench-like (``sbtestN``: id PK, k indexed, c CHAR(120), pad CHAR(60))
plus ``n``, a counter every transaction increments, and ``ledger``, an insert-only
table with one row per transaction: a transaction applied twice hits a duplicate key,
one never applied leaves a row missing, so `check` shows either.

Kinds: ``uniform`` (oltp_write_only-like: index update, non-index update, delete +
re-insert), ``hot`` (all connections update the same few rows), ``insert`` (inserts
only), ``big`` (uniform plus a few transactions of ``big_rows`` rows), ``updates``
(one UPDATE of two random rows' counters: the steady bench's default), ``fk`` (a row
inserted into ``child`` and its ``parent``'s counter incremented: tables with a foreign
key, which the applier applies serially, as barriers).
Every loop is bounded by the transaction count (``run``) or by time (``run_paced``:
a fixed rate, for ``applier bench --steady``).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass

import MySQLdb

from ..config import ServerConfig
from ..db import codes
from ..db.connect import connect

KINDS = ("uniform", "hot", "insert", "big", "big-insert", "big-delete", "updates", "fk")
PARENTS = 1000  # rows of ``parent`` (the fk kind)
BIG_ROWS = 20_000  # rows each big transaction changes (at least)


def big_sizes(kind: str, rows: int) -> tuple[int, int]:
    """(rows per table, rows per big transaction) of ``kind`` for ``rows`` asked: the big
    kinds' tables hold at least BIG_ROWS rows (big-delete: three times that, for the
    deletes to find rows); other kinds: (rows, BIG_ROWS)."""
    if not kind.startswith("big"):
        return rows, BIG_ROWS
    big = max(rows, BIG_ROWS)
    return (3 * big if kind == "big-delete" else big), big


def _filler(rng: random.Random, n: int) -> str:
    return "-".join(f"{rng.randrange(10**11):011d}" for _ in range(n // 12))[:n]


def prepare(server: ServerConfig, db: str, tables: int = 4, rows: int = 1000, seed: int = 1,
            fk: bool = False) -> None:
    """The tables (and ``parent``/``child`` too when ``fk``: the fk kind's)."""
    conn = connect(server, "source")
    cur = conn.cursor()
    rng = random.Random(seed)
    cur.execute(f"CREATE DATABASE IF NOT EXISTS `{db}`")
    for t in range(1, tables + 1):
        cur.execute(
            f"CREATE TABLE IF NOT EXISTS `{db}`.sbtest{t} (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, "
            "k INT NOT NULL DEFAULT 0, c CHAR(120) NOT NULL DEFAULT '', pad CHAR(60) NOT NULL DEFAULT '', "
            "n INT NOT NULL DEFAULT 0, KEY k_1 (k)) ENGINE=InnoDB"
        )
        for start in range(1, rows + 1, 500):
            values = [
                (i, rng.randrange(rows), _filler(rng, 120), _filler(rng, 60))
                for i in range(start, min(rows, start + 499) + 1)
            ]
            cur.executemany(f"INSERT INTO `{db}`.sbtest{t} (id, k, c, pad) VALUES (%s, %s, %s, %s)", values)
    cur.execute(
        f"CREATE TABLE IF NOT EXISTS `{db}`.ledger (run INT NOT NULL, conn INT NOT NULL, seq INT NOT NULL, "
        "PRIMARY KEY (run, conn, seq)) ENGINE=InnoDB"
    )
    if fk:
        cur.execute(f"CREATE TABLE IF NOT EXISTS `{db}`.parent (id INT NOT NULL PRIMARY KEY, "
                    "n INT NOT NULL DEFAULT 0) ENGINE=InnoDB")
        cur.execute(f"CREATE TABLE IF NOT EXISTS `{db}`.child (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, "
                    f"pid INT NOT NULL, v INT NOT NULL, FOREIGN KEY (pid) REFERENCES `{db}`.parent (id)) "
                    "ENGINE=InnoDB")
        cur.executemany(f"INSERT IGNORE INTO `{db}`.parent (id) VALUES (%s)", [(i,) for i in range(1, PARENTS + 1)])
    conn.close()


@dataclass(frozen=True)
class WorkloadResult:
    transactions: int
    seconds: float


def run(
    server: ServerConfig,
    db: str,
    kind: str = "uniform",
    transactions: int = 1000,
    connections: int = 4,
    tables: int = 4,
    rows: int = 1000,
    big_rows: int = 20_000,
    seed: int = 1,
) -> WorkloadResult:
    """Run ``transactions`` in total over ``connections`` threads."""
    import time

    if kind not in KINDS:
        raise ValueError(f"unknown workload {kind!r}; one of {', '.join(KINDS)}")
    per = [transactions // connections + (1 if i < transactions % connections else 0) for i in range(connections)]
    started = time.monotonic()
    run_id = random.SystemRandom().randrange(2**31)  # ledger rows of different runs never collide
    run_threads(
        lambda idx: _client(server, db, kind, run_id, idx, per[idx], tables, rows, big_rows,
                            random.Random(seed * 1000 + idx)),
        connections,
    )
    return WorkloadResult(transactions, time.monotonic() - started)


def run_threads(target: Callable[[int], None], count: int,
                on_error: Callable[[], None] | None = None) -> None:
    """Run ``target(i)`` for i in range(count) on as many threads; re-raise the first
    error (``on_error`` runs in the failing thread, e.g. to release the others)."""
    errors: list[BaseException] = []

    def main(idx: int) -> None:
        try:
            target(idx)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller
            errors.append(e)
            if on_error is not None:
                on_error()

    threads = [threading.Thread(target=main, args=(i,), name=f"client-{i}") for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def _client(server, db, kind, run_id, idx, count, tables, rows, big_rows, rng: random.Random) -> None:
    conn = connect(server, "source", autocommit=False)
    try:
        _transactions(conn, db, kind, run_id, idx, count, tables, rows, big_rows, rng)
    finally:
        conn.close()  # an error must not leave an open transaction holding row locks


def _transactions(conn, db, kind, run_id, idx, count, tables, rows, big_rows, rng: random.Random) -> None:
    cur = conn.cursor()
    for seq in range(count):
        big = kind.startswith("big") and seq % max(1, count // 2) == 0
        _transaction(conn, cur, db, kind, run_id, idx, seq, tables, rows, big_rows, big, rng)


def _transaction(conn, cur, db, kind, run_id, idx, seq, tables, rows, big_rows, big: bool,
                 rng: random.Random) -> None:
    """One transaction of ``kind`` and its ledger row, committed (retried on deadlock)."""
    q = f"`{db}`"
    state = rng.getstate()
    for attempt in range(20):  # the source itself may deadlock: retry like a client would
        try:
            t = rng.randrange(1, tables + 1)
            table = f"{q}.sbtest{t}"
            if kind == "hot":
                for _ in range(2):
                    cur.execute(f"UPDATE {table} SET n = n + 1, k = k + 1 WHERE id = %s", (rng.randrange(1, 4),))
            elif kind == "insert":
                cur.execute(f"INSERT INTO {table} (k, c, pad) VALUES (%s, %s, %s)",
                            (rng.randrange(rows), _filler(rng, 120), _filler(rng, 60)))
            elif kind == "fk":
                pid = rng.randrange(1, PARENTS + 1)
                cur.execute(f"INSERT INTO {q}.child (pid, v) VALUES (%s, %s)", (pid, seq))
                cur.execute(f"UPDATE {q}.parent SET n = n + 1 WHERE id = %s", (pid,))
            elif kind == "updates":
                a = rng.randrange(1, rows + 1)
                b = rng.randrange(1, rows)  # two distinct rows (rows >= 2)
                if b >= a:
                    b += 1
                # one statement: IN locks the two rows in key order, so clients never deadlock
                cur.execute(f"UPDATE {table} SET n = n + 1 WHERE id IN (%s, %s)", (a, b))
            else:
                cur.execute(f"UPDATE {table} SET k = k + 1, n = n + 1 WHERE id = %s", (rng.randrange(1, rows + 1),))
                cur.execute(f"UPDATE {table} SET c = %s WHERE id = %s", (_filler(rng, 120), rng.randrange(1, rows + 1)))
                rid = rng.randrange(1, rows + 1)
                cur.execute(f"DELETE FROM {table} WHERE id = %s", (rid,))
                cur.execute(f"INSERT INTO {table} (id, k, c, pad) VALUES (%s, %s, %s, %s)",
                            (rid, rng.randrange(rows), _filler(rng, 120), _filler(rng, 60)))
                if big and kind == "big-insert":  # new rows (new ids): copies of the first ones
                    cur.execute(f"INSERT INTO {table} (k, c, pad) SELECT k, c, pad FROM {table} "
                                f"ORDER BY id LIMIT {int(big_rows)}")
                elif big and kind == "big-delete":
                    cur.execute(f"DELETE FROM {table} ORDER BY id LIMIT {int(big_rows)}")
                elif big:
                    cur.execute(f"UPDATE {table} SET n = n + 1 WHERE id <= %s", (big_rows,))
            cur.execute(f"INSERT INTO {q}.ledger VALUES (%s, %s, %s)", (run_id, idx, seq))
            conn.commit()
            return
        except MySQLdb.OperationalError as e:
            conn.rollback()
            if codes.code_of(e) not in codes.RETRYABLE or attempt == 19:
                raise
            rng.setstate(state)


MAX_DEBT_SECONDS = 1.0  # a paced client this far behind its schedule drops the rest of the debt


def run_paced(
    server: ServerConfig,
    db: str,
    kind: str,
    rate: float,
    seconds: float,
    connections: int = 4,
    tables: int = 4,
    rows: int = 1000,
    big_rows: int = 20_000,
    seed: int = 1,
    stop: threading.Event | None = None,
    timeline: list[float] | None = None,
) -> WorkloadResult:
    """``rate`` transactions/s in total for ``seconds``, from ``connections`` threads, each
    on a fixed schedule (one transaction every ``connections / rate`` s, the threads
    staggered). A client that falls behind (the source is slower than the rate) goes on
    without sleeping, but never owes more than ``MAX_DEBT_SECONDS``: the result's
    transaction count over its seconds is the rate the source actually reached.
    ``stop`` ends it early; ``timeline`` gets the ``time.monotonic()`` of every commit."""
    import time

    if kind not in KINDS:
        raise ValueError(f"unknown workload {kind!r}; one of {', '.join(KINDS)}")
    if rate <= 0 or seconds <= 0 or connections < 1:
        raise ValueError("rate, seconds and connections must be positive")
    interval = connections / rate
    run_id = random.SystemRandom().randrange(2**31)
    big_every = max(1, int(rate * seconds / connections) // 2)
    done = [0] * connections
    started = time.monotonic()
    end = started + seconds
    halt = stop or threading.Event()

    def client(idx: int) -> None:
        rng = random.Random(seed * 1000 + idx)
        conn = connect(server, "source", autocommit=False)
        try:
            cur = conn.cursor()
            due = started + interval * idx / connections
            seq = 0
            while not halt.is_set():
                now = time.monotonic()
                if due > now:
                    if due >= end or halt.wait(due - now):
                        break
                elif now >= end:
                    break
                elif now - due > MAX_DEBT_SECONDS:
                    due = now
                _transaction(conn, cur, db, kind, run_id, idx, seq, tables, rows, big_rows,
                             kind == "big" and seq % big_every == 0, rng)
                seq += 1
                done[idx] = seq
                if timeline is not None:
                    timeline.append(time.monotonic())
                due += interval
        finally:
            conn.close()

    run_threads(client, connections, on_error=halt.set)
    return WorkloadResult(sum(done), time.monotonic() - started)

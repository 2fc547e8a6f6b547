"""Shared by the scenario tests: concurrent source clients and small SQL helpers.

A scenario writes to the source from several connections at once (threads, each with
its own connection), then runs the applier in catch-up mode from the binlog position
taken before the scenario's ``CREATE DATABASE`` and compares source and target.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import MySQLdb

from applier.harness.sandbox import LocalMariadb
from applier.harness.workload import run_threads
from tests.support import config_toml

RETRY_CODES = (1213, 1205)  # the source itself may deadlock: retry like a client would


def in_txn(conn: Any, body: Callable[[Any], None], attempts: int = 50) -> None:
    """Run ``body(cursor)`` as one source transaction, retried on deadlock/lock wait.

    ``body`` must be repeatable (it is run again from the start after a rollback)."""
    for attempt in range(attempts):
        cur = conn.cursor()
        try:
            cur.execute("BEGIN")
            body(cur)
            conn.commit()
            return
        except MySQLdb.OperationalError as e:
            conn.rollback()
            if e.args[0] not in RETRY_CODES or attempt == attempts - 1:
                raise
            time.sleep(0.001 * min(attempt + 1, 20))
        finally:
            cur.close()


def run_clients(source: LocalMariadb, clients: int, client: Callable[[int, Any], None]) -> None:
    """Run ``client(idx, conn)`` on ``clients`` threads at once, each with its own
    autocommit-off source connection; re-raise the first error."""
    start = threading.Barrier(clients)

    def main(idx: int) -> None:
        conn = source.connect(autocommit=False)
        try:
            start.wait()
            client(idx, conn)
        finally:
            conn.close()

    run_threads(main, clients, on_error=start.abort)


def rows(server: LocalMariadb, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    """All rows of a query on a fresh connection (not the cached one: threads)."""
    conn = server.connect()
    try:
        cur = conn.cursor()
        cur.execute(sql, params)
        return list(cur.fetchall())
    finally:
        conn.close()


toml_config = config_toml  # ``cfg`` as the TOML text ``applier run --config`` reads


APPLIER = Path(sys.prefix) / "bin" / "applier"  # the venv's console script

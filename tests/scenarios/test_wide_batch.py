"""Batches of many wide rows: a worker compacts a whole batch of transactions into one
DELETE and one INSERT per table, so without a size bound that statement grows with
batch_txns x rows x row width and hits the target's max_allowed_packet (16 MiB here)
even though every source transaction is small (below big_txn_rows, ~1 MiB each)."""

from __future__ import annotations

import pytest

from tests.scenarios.helpers import rows
from tests.support import assert_same, make_config, run_applier

pytestmark = pytest.mark.flavors("mariadb", "mysql")  # MariaDB -> MariaDB, MySQL -> MySQL

TXNS = 40
ROWS_PER_TXN = 1000
WIDTH = 1000  # bytes per row: ~1 MiB of row images per transaction


@pytest.mark.parametrize("workers", [1])
def test_wide_rows_in_big_batches(source, target, dbname, workers):
    cfg = make_config(source, target, dbname, workers=workers, batch_txns=100)
    conn = source.connect()
    cur = conn.cursor()
    cur.execute(f"CREATE DATABASE {dbname}")
    cur.execute(f"CREATE TABLE {dbname}.w (id INT PRIMARY KEY, pad VARCHAR({WIDTH}) NOT NULL)")
    for t in range(TXNS):  # inserts: one multi-row INSERT per batch and table
        first = t * ROWS_PER_TXN
        pad = f"REPEAT('{chr(97 + t % 26)}', {WIDTH})"
        cur.execute(f"INSERT INTO {dbname}.w VALUES "
                    + ",".join(f"({i}, {pad})" for i in range(first, first + ROWS_PER_TXN)))
    for t in range(TXNS):  # updates: replaced rows, one DELETE and one INSERT per batch
        cur.execute(f"UPDATE {dbname}.w SET pad = REPEAT(%s, {WIDTH}) WHERE id %% {TXNS} = %s",
                    (chr(65 + t % 26), t))
    conn.close()

    run_applier(cfg)
    assert rows(target, f"SELECT COUNT(*), SUM(CRC32(pad)) FROM {dbname}.w") == rows(
        source, f"SELECT COUNT(*), SUM(CRC32(pad)) FROM {dbname}.w")
    assert_same(source, target, dbname)

"""A table's binlog table_id changes without any DDL: ``FLUSH LOCAL TABLES`` (not
logged) or the source evicting the table from its table definition cache (any source
with more tables than ``table_definition_cache``). Transactions on one table before
and after the change carry different TableMap bytes, yet may land in one worker
batch; the batch must still apply them (in order) instead of failing."""

from __future__ import annotations

import pytest

from tests.scenarios.helpers import rows
from tests.support import assert_same, make_config, run_applier

pytestmark = pytest.mark.flavors("mariadb", "mysql")  # MariaDB -> MariaDB, MySQL -> MySQL


@pytest.mark.parametrize("workers", [1, 4])
def test_table_id_changes_inside_a_batch(source, target, dbname, workers):
    cfg = make_config(source, target, dbname, workers=workers)
    conn = source.connect()
    cur = conn.cursor()
    cur.execute(f"CREATE DATABASE {dbname}")
    cur.execute(f"CREATE TABLE {dbname}.t (id INT PRIMARY KEY, n INT NOT NULL)")
    cur.execute(f"CREATE TABLE {dbname}.u (id INT PRIMARY KEY, v INT, n INT NOT NULL, UNIQUE KEY (v))")
    for i in range(300):
        if i % 7 == 0:
            cur.execute("FLUSH LOCAL TABLES")  # new table_ids from here on, nothing logged
        cur.execute(f"INSERT INTO {dbname}.t VALUES (%s, 0) ON DUPLICATE KEY UPDATE n = n + 1", (i % 5,))
        if i % 10 == 0:  # a table applied in source order (no compaction) now and then
            cur.execute(f"INSERT INTO {dbname}.u VALUES (%s, %s, 0) ON DUPLICATE KEY UPDATE n = n + 1",
                        (i % 3, i % 3))
    conn.close()

    run_applier(cfg)
    assert rows(target, f"SELECT id, n FROM {dbname}.t ORDER BY id") == rows(
        source, f"SELECT id, n FROM {dbname}.t ORDER BY id")
    assert_same(source, target, dbname)

"""End to end on real servers: DDL, inserts, updates, deletes, unique keys, tables
without keys, applied by the applier and compared with `check`."""

from __future__ import annotations

import dataclasses
import signal
import time

import pytest

from applier.errors import TargetError
from tests.support import assert_same, make_config, run_applier

pytestmark = pytest.mark.flavors("mariadb", "mysql")  # MariaDB -> MariaDB, MySQL -> MySQL


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


def test_big_transactions_are_streamed_and_compacted(source, target, dbname):
    """Transactions above big_txn_rows go through the serial streaming path, where row
    changes to PK-only tables are compacted across rows events; a table with a
    secondary unique key in the same transaction keeps row-by-row source order."""
    cfg = make_config(source, target, dbname, workers=2, big_txn_rows=100)
    src = source.connect()
    cur = src.cursor()
    cur.execute(f"CREATE DATABASE {dbname}")
    cur.execute(f"CREATE TABLE {dbname}.t (id INT PRIMARY KEY, v INT NOT NULL, pad CHAR(100))")
    cur.execute(f"CREATE TABLE {dbname}.u (id INT PRIMARY KEY, code INT NOT NULL, UNIQUE KEY(code))")
    cur.execute(f"INSERT INTO {dbname}.u VALUES (1, 1), (2, 2)")
    cur.execute("BEGIN")
    cur.executemany(f"INSERT INTO {dbname}.t VALUES (%s, %s, REPEAT('x', 90))",
                    [(i, i % 7) for i in range(1, 3001)])
    cur.execute(f"UPDATE {dbname}.t SET v = v + 1 WHERE id % 2 = 0")
    cur.execute(f"UPDATE {dbname}.u SET code = 3 WHERE id = 1")  # hand-over of code 1 ...
    cur.execute(f"UPDATE {dbname}.u SET code = 1 WHERE id = 2")  # ... to another row
    cur.execute(f"DELETE FROM {dbname}.t WHERE id > 2500")
    cur.execute(f"UPDATE {dbname}.t SET id = id + 10000 WHERE id <= 10")  # primary key changes
    cur.execute("COMMIT")
    cur.execute(f"UPDATE {dbname}.t SET v = 0 WHERE id BETWEEN 100 AND 120")
    m = run_applier(cfg)
    assert m.big_transactions == 1
    assert_same(source, target, dbname)


@pytest.mark.parametrize("damage", ["missing", "already-new", "differs"])
def test_in_place_updates_stay_strict(source, target, dbname, damage):
    """Updates of rows the target holds go as INSERT ... ON DUPLICATE KEY UPDATE of the
    changed columns: a row the target lost, or one already holding the new values, is a
    divergence (affected rows != 2 per row) and rolls back the whole batch; a row that
    only differs in a column the update changes is updated, as the native replica would."""
    cfg = make_config(source, target, dbname, workers=1)
    src = source.connect()
    cur = src.cursor()
    cur.execute(f"CREATE DATABASE {dbname}")
    cur.execute(f"CREATE TABLE {dbname}.t (id INT PRIMARY KEY, n INT NOT NULL, note VARCHAR(10))")
    cur.execute(f"INSERT INTO {dbname}.t VALUES (1, 0, 'a'), (2, 0, 'b'), (3, 0, 'c')")
    run_applier(cfg)
    damage_sql = {
        "missing": f"DELETE FROM {dbname}.t WHERE id = 2",
        "already-new": f"UPDATE {dbname}.t SET n = 5 WHERE id = 2",
        "differs": f"UPDATE {dbname}.t SET n = 9 WHERE id = 2",
    }[damage]
    target.execute(damage_sql)
    cur.execute("BEGIN")
    cur.execute(f"UPDATE {dbname}.t SET n = 5 WHERE id IN (1, 2, 3)")
    cur.execute("COMMIT")
    src.close()
    cfg = make_config(source, target, dbname, workers=1)
    if damage == "differs":
        run_applier(cfg)
        assert_same(source, target, dbname)
        return
    with pytest.raises(TargetError, match=rf"diverged: update of {dbname}\.t affected \d rows, expected 6"):
        run_applier(cfg)
    # nothing of the batch reached the target
    assert sorted(target.query(f"SELECT id, n FROM {dbname}.t")) == sorted(
        [(1, 0), (3, 0)] + ([] if damage == "missing" else [(2, 5)]))


def test_row_changed_deleted_and_reinserted_as_it_was(source, target, dbname):
    """One batch updates a row, deletes it and inserts it again with the values the
    target holds: the compacted upsert must compare with the image the target holds
    (not the deleted one) and apply without a false divergence."""
    cfg = make_config(source, target, dbname, workers=1)
    src = source.connect()
    cur = src.cursor()
    cur.execute(f"CREATE DATABASE {dbname}")
    cur.execute(f"CREATE TABLE {dbname}.t (id INT PRIMARY KEY, n INT NOT NULL, note VARCHAR(10))")
    cur.execute(f"INSERT INTO {dbname}.t VALUES (1, 0, 'a'), (2, 0, 'b')")
    run_applier(cfg)
    cur.execute("BEGIN")
    cur.execute(f"UPDATE {dbname}.t SET n = 5 WHERE id = 1")
    cur.execute(f"DELETE FROM {dbname}.t WHERE id = 1")
    cur.execute(f"INSERT INTO {dbname}.t VALUES (1, 0, 'a')")
    cur.execute(f"UPDATE {dbname}.t SET n = 7 WHERE id = 2")
    cur.execute("COMMIT")
    src.close()
    run_applier(make_config(source, target, dbname, workers=1))
    assert_same(source, target, dbname)


@pytest.mark.parametrize("table", ["compacted", "in_order"])
@pytest.mark.parametrize("drift", ["number", "letter_case", "float", "null"])
def test_verify_before_image_stops_on_drift(source, target, dbname, table, drift):
    """[apply] verify_before_image: an UPDATE whose target row differs from the source's
    before image in any column (even only in letter case under a case-insensitive
    collation, or a FLOAT) stops the applier naming the table, nothing applied; rows
    that match apply, FLOAT and strings included; without the option the update writes
    the columns it changes and looks at nothing else."""
    unique = ", UNIQUE KEY (u)" if table == "in_order" else ""
    verified = make_config(source, target, dbname, workers=1, verify_before_image=True)
    src = source.connect()
    cur = src.cursor()
    cur.execute(f"CREATE DATABASE {dbname}")
    cur.execute(f"CREATE TABLE {dbname}.t (id INT PRIMARY KEY, u INT, n INT, s VARCHAR(10), "
                f"f FLOAT, z INT NULL{unique}) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci")
    cur.execute(f"INSERT INTO {dbname}.t VALUES (1, 1, 0, 'abc', 1.1, NULL), (2, 2, 0, 'x', 0.3, 5)")
    run_applier(verified)
    cur.execute(f"UPDATE {dbname}.t SET n = n + 1")  # rows as they are: verified, applied
    run_applier(verified)
    assert_same(source, target, dbname)
    target.execute({
        "number": f"UPDATE {dbname}.t SET n = 9 WHERE id = 1",
        "letter_case": f"UPDATE {dbname}.t SET s = 'ABC' WHERE id = 1",
        "float": f"UPDATE {dbname}.t SET f = 1.2 WHERE id = 1",
        "null": f"UPDATE {dbname}.t SET z = 0 WHERE id = 1",
    }[drift])
    cur.execute(f"UPDATE {dbname}.t SET u = u + 10")
    src.close()
    with pytest.raises(TargetError, match=rf"diverged: .*{dbname}\.t affected \d rows, expected"):
        run_applier(verified)
    assert sorted(target.query(f"SELECT id, u FROM {dbname}.t")) == [(1, 1), (2, 2)]
    run_applier(dataclasses.replace(verified, apply=dataclasses.replace(verified.apply,
                                                                    verify_before_image=False)))
    assert sorted(target.query(f"SELECT id, u FROM {dbname}.t")) == [(1, 11), (2, 12)]


def test_adaptive_width_starts_only_the_workers_it_feeds(source, target, dbname, tmp_path, spawn,
                                                         monkeypatch):
    """[apply] adapt_workers with 4 workers and a source that sets the pace (a trickle):
    the width stays at one, so only the first worker process is ever started (the
    others would cost a process and a target connection each for nothing); applied
    exactly, and a SIGTERM stops it cleanly."""
    from tests.support import config_toml

    monkeypatch.setenv("APPLIER_APPLY_ADAPT_WORKERS", "true")  # the tests' default is off
    cfg = make_config(source, target, dbname, workers=4, adapt_workers=True, stop_at_end=False)
    path = tmp_path / "applier.toml"
    path.write_text(config_toml(cfg))
    source.execute(f"CREATE DATABASE {dbname}")
    source.execute(f"CREATE TABLE {dbname}.t (id INT PRIMARY KEY, n INT NOT NULL)")
    app = spawn(path)
    for i in range(50):  # paced: one worker keeps up even on a busy machine (never saturated)
        source.execute(f"INSERT INTO {dbname}.t VALUES (%s, 0)", (i,))
        source.execute(f"UPDATE {dbname}.t SET n = n + 1 WHERE id = %s", (i // 2,))
        time.sleep(0.03)
    app.workers(1)
    deadline = time.monotonic() + 60
    while target.query(f"SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '{dbname}'")[0][0] == 0 \
            or target.query(f"SELECT COUNT(*) FROM {dbname}.t")[0][0] < 50:
        assert time.monotonic() < deadline and app.proc.poll() is None, app.describe()
        time.sleep(0.1)
    time.sleep(1)
    assert len(app.workers(1)) == 1, "workers that were never fed were started"
    app.signal(signal.SIGTERM, group=False)
    assert app.wait() == 0, app.describe()
    assert_same(source, target, dbname)


@pytest.mark.parametrize("kind", ["big", "big-insert", "big-delete"])
def test_big_updates_inserts_and_deletes_of_the_bench_workloads(source, target, dbname, kind):
    """The bench's big kinds (``applier bench --workload big|big-insert|big-delete``) in
    a small size: two transactions change 50 rows each among small ones; both are
    streamed (big_txn_rows = 40) and the target ends equal."""
    from applier.harness import workload

    cfg = make_config(source, target, dbname, workers=2, big_txn_rows=40)
    sc = source.server_config()
    workload.prepare(sc, dbname, tables=1, rows=300)
    run_applier(cfg)  # the tables and their rows
    workload.run(sc, dbname, kind, 4, 1, tables=1, rows=300, big_rows=50)
    (count,) = source.query(f"SELECT COUNT(*) FROM {dbname}.sbtest1")[0]
    if kind == "big-insert":
        assert 400 <= count <= 404
    elif kind == "big-delete":
        assert 200 <= count <= 204
    m = run_applier(cfg)
    assert m.big_transactions == 2
    assert_same(source, target, dbname)


def test_a_target_error_inside_a_streamed_transaction_applies_none_of_it(source, target, dbname):
    """A streamed transaction's statements run on a thread (pipeline/pipe.py): the first
    one the target refuses (a row it lost: diverged) stops the run with that one error,
    raised in the coordinator's thread, and nothing of the transaction commits, neither
    the statements before it nor any after; once the DBA puts the row back, a run
    applies the whole transaction."""
    cfg = make_config(source, target, dbname, workers=2, big_txn_rows=100)
    src = source.connect()
    cur = src.cursor()
    cur.execute(f"CREATE DATABASE {dbname}")
    cur.execute(f"CREATE TABLE {dbname}.t (id INT PRIMARY KEY, v INT NOT NULL)")
    for lo in range(0, 12_000, 2_000):
        cur.execute(f"INSERT INTO {dbname}.t VALUES " + ",".join(f"({i}, 0)" for i in range(lo, lo + 2_000)))
    run_applier(cfg)
    target.execute(f"DELETE FROM {dbname}.t WHERE id = 5")  # the first flush (5,000 rows) fails
    cur.execute(f"UPDATE {dbname}.t SET v = v + 1")  # 12,000 rows, one transaction: streamed
    src.close()
    with pytest.raises(TargetError, match=rf"diverged: .*{dbname}\.t affected \d+ rows, expected"):
        run_applier(cfg)
    assert target.query(f"SELECT COUNT(*), SUM(v) FROM {dbname}.t")[0] == (11_999, 0)  # none of it
    target.execute(f"INSERT INTO {dbname}.t VALUES (5, 0)")
    m = run_applier(cfg)
    assert m.big_transactions == 1
    assert target.query(f"SELECT COUNT(*), SUM(v) FROM {dbname}.t")[0] == (12_000, 12_000)
    assert_same(source, target, dbname)

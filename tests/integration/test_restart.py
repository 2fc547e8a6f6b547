"""Restart safety, end to end: the ``applier`` CLI is stopped mid-backlog (SIGKILL of the
whole process group, SIGKILL of the coordinator alone, SIGKILL of one worker, SIGTERM)
and started again; in the end the target equals the source and every transaction was
applied exactly once.

How a repeat or a loss would show: the backlog comes from ``applier.workload``, where
every transaction increments a counter column ``n`` and inserts one row into the
insert-only ``ledger`` table. A transaction applied twice hits a duplicate key in the
ledger (the applier stops with an error), one never applied leaves a ledger row missing
and ``n`` short (``check`` differs). On top of that, the checkpoint rows count the
transactions applied: their sum must equal the number of source transactions.

Every wait is bounded in time; the applier runs as a subprocess in its own process
group, so a test can kill it (and verify nothing of it survives) without touching pytest.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

import pytest

from applier.binlog.position import BinlogPosition
from applier.config import TargetConfig
from applier.errors import WorkerDied
from applier.harness import workload
from applier.harness.sandbox import LocalMariadb
from applier.pipeline import checkpoint
from applier.pipeline.session import Session
from tests.appliers import Applier, applied, wait_for
from tests.support import assert_same, render_toml, source_transactions

UNIFORM = 4000  # transactions of the "uniform" workload in the main database
HOT = 1200  # transactions of the "hot" workload (few rows, many conflicts) in <db>_hot
APPLY_SECONDS = 90  # bound on any wait for progress

pytestmark = pytest.mark.flavors("mariadb", "mysql")  # MariaDB -> MariaDB, MySQL -> MySQL


# ---- helpers ------------------------------------------------------------------------------


def _build_backlog(source: LocalMariadb, db: str, *, uniform: int = UNIFORM, hot: int = HOT,
                   between=None) -> tuple[str, int]:
    """Write the backlog on the source; return the binlog position before it.
    ``between`` (a callable) runs after the uniform part, before the hot part."""
    start = source.binlog_position()
    sc = source.server_config()
    workload.prepare(sc, db, tables=4, rows=1000)
    workload.run(sc, db, "uniform", uniform, connections=4, tables=4, rows=1000)
    if between is not None:
        between()
    # the ledger key is (connection, seq): a second workload needs its own database
    workload.prepare(sc, f"{db}_hot", tables=2, rows=20)
    workload.run(sc, f"{db}_hot", "hot", hot, connections=4, tables=2, rows=20, seed=7)
    return start


def write_config(path: Path, source: LocalMariadb, target: LocalMariadb, db: str,
                 start: tuple[str, int] | None, *, source_extra: dict | None = None,
                 **apply) -> Path:
    sc, tc = source.server_config(), target.server_config()
    src = {"host": sc.host, "port": sc.port, "user": sc.user, "password": sc.password,
           "reconnect_attempts": 2, "heartbeat_seconds": 1.0}
    if start is not None:
        src["start_file"], src["start_pos"] = start
    src.update(source_extra or {})
    tgt = {"host": tc.host, "port": tc.port, "user": tc.user, "password": tc.password,
           "checkpoint_schema": f"ckpt_{db}"}
    app = {"databases": [db, f"{db}_hot"], "workers": 4, "batch_txns": 8, **apply}
    path.write_text(render_toml({"source": src, "target": tgt, "apply": app}))
    return path


def wait_applied(app: Applier, target: LocalMariadb, schema: str, at_least: int,
                 timeout: float = APPLY_SECONDS) -> int:
    deadline = time.monotonic() + timeout
    while True:
        n = applied(target, schema)
        if n >= at_least:
            return n
        if app.proc.poll() is not None:
            raise AssertionError(f"applier exited before {at_least} applied (at {n}); {app.describe()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"only {n} of {at_least} transactions applied in {timeout:g}s")
        time.sleep(0.01)


def catch_up(spawn, config: Path) -> Applier:
    app = spawn(config, "--stop-at-end")
    rc = app.wait(APPLY_SECONDS)
    assert rc == 0, app.describe()
    app.assert_gone()
    return app


def assert_exactly_once(source: LocalMariadb, target: LocalMariadb, db: str,
                        backlog_transactions: int) -> None:
    """Same data; the counter and the ledger agree; every transaction counted once."""
    for d in (db, f"{db}_hot"):
        assert_same(source, target, d)
        tables = [r[0] for r in source.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
            "AND table_name LIKE 'sbtest%%'", (d,))]
        sums = []
        for server in (source, target):
            total = 0
            for t in tables:
                total += int(server.query(f"SELECT COALESCE(SUM(n), 0) FROM `{d}`.`{t}`")[0][0])
            ledger = int(server.query(f"SELECT COUNT(*) FROM `{d}`.ledger")[0][0])
            sums.append((total, ledger))
        assert sums[0] == sums[1], f"{d}: (SUM(n), ledger rows) source {sums[0]} != target {sums[1]}"
    assert applied(target, f"ckpt_{db}") == backlog_transactions


# ---- tests ----------------------------------------------------------------------------------


def _target_config(target: LocalMariadb, schema: str) -> TargetConfig:
    tc = target.server_config()
    return TargetConfig(host=tc.host, port=tc.port, user=tc.user, password=tc.password,
                        checkpoint_schema=schema)


def _commit_batch(session: Session, watermark: BinlogPosition, ends: list[BinlogPosition]) -> None:
    """What a worker does per batch, minus the data: the checkpoint UPDATE, committed."""
    session.conn.query(session.row.statement(watermark.ordinal, watermark.file, "",
                                             [e.ordinal for e in ends], "", len(ends), 0))
    session.conn.commit()
    session.row.committed()


def test_restarted_worker_keeps_the_done_entries_it_recovered(target, dbname):
    """Run 1: worker 1 commits T3 (end 300) while T2 (end 200, on another worker) is in
    flight; crash. Run 2 resumes at the watermark (100), skips T3, and worker 1 commits
    T2 with watermark 100. If worker 1's row forgot T3 there, a crash now would make
    run 3 apply T3 a second time."""
    schema = f"ckpt_{dbname}"
    tc = _target_config(target, schema)
    w0, t2, t3 = (BinlogPosition("mysql-bin.000001", p) for p in (100, 200, 300))
    conn = target.connect()  # what the coordinator does before starting workers
    checkpoint.ensure_table(conn, schema)
    checkpoint.CheckpointRow(schema, 1).insert_if_missing(conn, w0)
    run1 = Session(tc, 1)
    try:
        _commit_batch(run1, w0, [t3])
    finally:
        run1.conn.close()  # crash
    rec = checkpoint.load(conn, schema)
    assert (rec.start, rec.done) == (w0, frozenset({t3.ordinal}))

    run2 = Session(tc, 1)  # a new worker process after the restart
    try:
        _commit_batch(run2, rec.start, [t2])
    finally:
        run2.conn.close()  # crash again before any watermark passed T3
    rec = checkpoint.load(conn, schema)
    assert rec.start == w0
    conn.close()
    assert rec.done == frozenset({t2.ordinal, t3.ordinal}), "T3 would be applied twice"


# (what is killed, when): "first" = right after the first commits of a run, when the
# `done` entries recovered from the previous run are still needed; "mid" = after a
# random 300-800 more transactions.
KILL_MARGIN = 1500
KILLS = [
    ("SIGKILL process group", "mid"),
    ("SIGKILL process group", "first"),
    ("SIGKILL coordinator only", "mid"),
    ("SIGKILL coordinator only", "first"),
    ("SIGKILL one worker", "mid"),
    ("SIGTERM coordinator", "mid"),
    ("SIGKILL process group", "mid"),
]


def test_kill_at_several_points_then_restart_applies_every_transaction_once(
        source, target, dbname, tmp_path, spawn):
    seed = int(os.environ.get("RESTART_TEST_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    before = source_transactions(source)
    start = _build_backlog(source, dbname)
    backlog = source_transactions(source) - before
    config = write_config(tmp_path / "applier.toml", source, target, dbname, start)
    schema = f"ckpt_{dbname}"
    done = kills = 0
    for i, (how, when) in enumerate(KILLS):
        where = f"kill {i} ({how}, {when}, RESTART_TEST_SEED={seed})"
        goal = done + (1 if when == "first" else rng.randint(300, 800))
        # the kill lands some time after `goal` is seen: on a quiet machine the applier
        # can run ~1,500 transactions further, so keep that much backlog in reserve
        if goal + KILL_MARGIN >= backlog:
            break
        kills += 1
        app = spawn(config)
        workers = app.workers(4)
        done = wait_applied(app, target, schema, goal)
        if how == "SIGKILL one worker":
            os.kill(rng.choice(workers), signal.SIGKILL)
        else:
            sig = signal.SIGTERM if how.startswith("SIGTERM") else signal.SIGKILL
            app.signal(sig, group="group" in how)
        rc = app.wait()
        if how.startswith("SIGTERM"):
            assert rc == 0, f"{where}: {app.describe()}"
            json.loads(app.stdout.strip().splitlines()[-1])  # the summary line
        elif how == "SIGKILL one worker":
            assert rc == WorkerDied.exit_code, f"{where}: {app.describe()}"
        else:
            assert rc == -signal.SIGKILL, f"{where}: {app.describe()}"
        app.assert_gone()  # workers die with the coordinator (PR_SET_PDEATHSIG)
        done = applied(target, schema)
        time.sleep(0.3)
        assert applied(target, schema) == done, f"something still applies after {where}"
    assert kills >= 2, f"only {kills} kills: the backlog is too small for this test"
    assert done < backlog, "the backlog was too small to kill the applier mid-way"
    catch_up(spawn, config)
    assert_exactly_once(source, target, dbname, backlog)


def test_coordinator_killed_while_workers_start_leaves_no_orphan(
        source, target, dbname, tmp_path, spawn):
    """PR_SET_PDEATHSIG only covers a parent death *after* the worker set it: a worker
    still importing when the coordinator dies must notice and exit too, or it would
    apply the work already in its queue after a restart began."""
    start = _build_backlog(source, dbname, uniform=400, hot=100)
    config = write_config(tmp_path / "applier.toml", source, target, dbname, start)
    for _ in range(2):
        app = spawn(config)
        app.workers(4, timeout=30)  # they exist, most are still starting up
        app.signal(signal.SIGKILL, group=False)
        assert app.wait() == -signal.SIGKILL
        app.assert_gone(timeout=15)
    catch_up(spawn, config)
    for d in (dbname, f"{dbname}_hot"):
        assert_same(source, target, d)


def test_killed_worker_stops_the_applier_with_an_error_and_restart_completes(
        source, target, dbname, tmp_path, spawn):
    before = source_transactions(source)
    start = _build_backlog(source, dbname, uniform=2000, hot=600)
    backlog = source_transactions(source) - before
    config = write_config(tmp_path / "applier.toml", source, target, dbname, start)
    schema = f"ckpt_{dbname}"
    app = spawn(config)
    victim = app.workers(4)[1]
    wait_applied(app, target, schema, 800)
    os.kill(victim, signal.SIGKILL)
    rc = app.wait()
    assert rc not in (0, -signal.SIGKILL), app.describe()
    lines = [line for line in app.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), app.describe()
    assert "worker" in lines[-1], app.describe()
    assert "Traceback" not in app.stderr, app.describe()
    app.assert_gone()
    assert applied(target, schema) < backlog
    catch_up(spawn, config)
    assert_exactly_once(source, target, dbname, backlog)


def test_worker_killed_while_idle_is_noticed(source, target, dbname, tmp_path, spawn):
    """Caught up, source quiet: a dead worker must stop the applier, not leave it
    looking healthy while the transactions routed to that worker never commit."""
    before = source_transactions(source)
    start = _build_backlog(source, dbname, uniform=200, hot=100)
    backlog = source_transactions(source) - before
    config = write_config(tmp_path / "applier.toml", source, target, dbname, start)
    app = spawn(config)
    victim = app.workers(4)[0]
    wait_applied(app, target, f"ckpt_{dbname}", backlog)
    os.kill(victim, signal.SIGKILL)
    rc = app.wait(15)  # heartbeat_seconds = 1
    assert rc not in (0, -signal.SIGKILL), app.describe()
    assert "worker" in app.stderr.strip().splitlines()[-1], app.describe()
    app.assert_gone()


@pytest.mark.parametrize("group", [False, True], ids=["coordinator", "process-group"])
def test_sigterm_stops_promptly_and_restart_finishes(source, target, dbname, tmp_path, spawn, group):
    """SIGTERM to the coordinator (docker stop) or to the whole group (systemd's default
    KillMode=control-group): a clean stop, exit 0 within 10 s, then a restart catches up."""
    before = source_transactions(source)
    start = _build_backlog(source, dbname, uniform=2400, hot=600)
    backlog = source_transactions(source) - before
    config = write_config(tmp_path / "applier.toml", source, target, dbname, start)
    schema = f"ckpt_{dbname}"
    app = spawn(config)
    app.workers(4)
    wait_applied(app, target, schema, 1000)
    sent = time.monotonic()
    app.signal(signal.SIGTERM, group=group)
    rc = app.wait(10)
    assert rc == 0, app.describe()
    assert time.monotonic() - sent < 10
    summary = json.loads(app.stdout.strip().splitlines()[-1])
    assert summary["transactions"] > 0
    app.assert_gone()
    assert applied(target, schema) < backlog
    catch_up(spawn, config)
    assert_exactly_once(source, target, dbname, backlog)


def _processlist_ids(server: LocalMariadb, like: str) -> list[int]:
    rows = server.query("SELECT id FROM information_schema.processlist "
                        "WHERE info LIKE %s AND id <> CONNECTION_ID()", (like,))
    return [int(r[0]) for r in rows]


def _wait_for(what: str, predicate, timeout: float = APPLY_SECONDS, app: Applier | None = None):
    return wait_for(what, predicate, timeout, app, pause=0.01)


def _has_column(server: LocalMariadb, db: str, table: str, column: str) -> bool:
    return bool(server.query("SELECT 1 FROM information_schema.columns WHERE table_schema = %s "
                             "AND table_name = %s AND column_name = %s", (db, table, column)))


@pytest.mark.flavors("mariadb")  # MySQL aborts an ALTER whose client is gone
def test_kill_while_a_ddl_runs_then_restart(source, target, dbname, tmp_path, spawn):
    """Two ALTERs in the middle of the backlog, each held up on the target by a metadata
    lock so the applier is killed exactly while it runs one. The first ALTER then
    completes on the target anyway (the server finishes it for the dead client): the
    restart re-runs it and must tolerate "duplicate column". The second never runs
    (its session is killed): the restart must run it."""
    def ddl() -> None:
        cur = source.connect().cursor()
        cur.execute(f"ALTER TABLE `{dbname}`.sbtest1 ADD COLUMN extra1 INT NOT NULL DEFAULT 1")
        cur.execute(f"UPDATE `{dbname}`.sbtest1 SET extra1 = id, n = n + 1 WHERE id <= 20")
        cur.execute(f"ALTER TABLE `{dbname}`.sbtest2 ADD COLUMN extra2 INT NOT NULL DEFAULT 2")
        cur.execute(f"UPDATE `{dbname}`.sbtest2 SET extra2 = id, n = n + 1 WHERE id <= 20")

    before = source_transactions(source)
    start = _build_backlog(source, dbname, uniform=3000, hot=500, between=ddl)
    backlog = source_transactions(source) - before
    config = write_config(tmp_path / "applier.toml", source, target, dbname, start)
    schema = f"ckpt_{dbname}"

    def ddl_pending() -> int:
        rows = target.query(f"SELECT ddl_pending FROM `{schema}`.checkpoint WHERE worker = 0")
        return int(rows[0][0]) if rows else 0

    app = spawn(config)
    holders = {}
    for table in ("sbtest1", "sbtest2"):  # as soon as the applier created the tables
        _wait_for(f"{table} on the target",
                  lambda t=table: target.query("SELECT 1 FROM information_schema.tables WHERE "
                                               "table_schema = %s AND table_name = %s", (dbname, t)),
                  app=app)
        conn = target.connect()
        conn.query("BEGIN")
        conn.query(f"SELECT 1 FROM `{dbname}`.`{table}` LIMIT 1")
        conn.store_result()
        holders[table] = conn
    assert not _has_column(target, dbname, "sbtest1", "extra1"), "the applier was too fast"
    try:
        # run 1: killed while its first ALTER waits for the lock
        alter1 = _wait_for("ALTER 1 on the target",
                           lambda: _processlist_ids(target, "ALTER TABLE%sbtest1%extra1%"), app=app)
        assert ddl_pending(), "the checkpoint must record the DDL before running it"
        app.signal(signal.SIGKILL, group=True)
        assert app.wait() == -signal.SIGKILL
        app.assert_gone()
        assert _processlist_ids(target, "ALTER TABLE%sbtest1%extra1%") == alter1  # orphaned
        holders.pop("sbtest1").query("COMMIT")  # the orphaned ALTER completes now
        _wait_for("ALTER 1 to finish", lambda: not _processlist_ids(target, "ALTER TABLE%sbtest1%"))
        assert _has_column(target, dbname, "sbtest1", "extra1")

        # run 2: re-runs ALTER 1 (already done), killed while ALTER 2 waits for the lock
        app = spawn(config)
        alter2 = _wait_for("ALTER 2 on the target",
                           lambda: _processlist_ids(target, "ALTER TABLE%sbtest2%extra2%"), app=app)
        assert ddl_pending()
        app.signal(signal.SIGKILL, group=True)
        assert app.wait() == -signal.SIGKILL
        app.assert_gone()
        for session in alter2:
            target.execute(f"KILL {session}")  # this time the orphaned ALTER never runs
        _wait_for("ALTER 2 to be gone", lambda: not _processlist_ids(target, "ALTER TABLE%sbtest2%"))
        holders.pop("sbtest2").query("COMMIT")
        assert not _has_column(target, dbname, "sbtest2", "extra2")
    finally:
        for conn in holders.values():
            conn.close()

    # run 3: runs ALTER 2 and catches up
    catch_up(spawn, config)
    assert_exactly_once(source, target, dbname, backlog)


def test_kill_while_a_rename_runs_then_restart(source, target, dbname, tmp_path, spawn):
    """A RENAME TABLE held up on the target by a metadata lock, the applier killed while
    it waits; the orphaned RENAME then completes on the target. The restart re-runs it:
    "table doesn't exist" (1146) for a re-run DDL means it already ran, as "duplicate
    column" does for an ALTER."""
    def ddl() -> None:
        cur = source.connect().cursor()
        cur.execute(f"RENAME TABLE `{dbname}`.sbtest1 TO `{dbname}`.renamed")
        cur.execute(f"UPDATE `{dbname}`.renamed SET n = n + 1 WHERE id <= 20")

    before = source_transactions(source)
    start = _build_backlog(source, dbname, uniform=1000, hot=0, between=ddl)
    backlog = source_transactions(source) - before
    config = write_config(tmp_path / "applier.toml", source, target, dbname, start)
    app = spawn(config)
    _wait_for("sbtest1 on the target",
              lambda: target.query("SELECT 1 FROM information_schema.tables WHERE table_schema = %s "
                                   "AND table_name = 'sbtest1'", (dbname,)), app=app)
    holder = target.connect()
    try:
        holder.query("BEGIN")
        holder.query(f"SELECT 1 FROM `{dbname}`.sbtest1 LIMIT 1")
        holder.store_result()
        _wait_for("the RENAME on the target",
                  lambda: _processlist_ids(target, "RENAME TABLE%sbtest1%"), app=app)
        app.signal(signal.SIGKILL, group=True)
        assert app.wait() == -signal.SIGKILL
        app.assert_gone()
        holder.query("COMMIT")  # the orphaned RENAME completes now
        _wait_for("the RENAME to finish", lambda: not _processlist_ids(target, "RENAME TABLE%"))
    finally:
        holder.close()
    catch_up(spawn, config)
    assert_exactly_once(source, target, dbname, backlog)


def test_sighup_reloads_nothing_and_changes_nothing(source, target, dbname, tmp_path, spawn):
    """SIGHUP (`systemctl reload`, a closed terminal: the whole process group) neither
    stops the applier nor a worker: one warning that nothing is reloaded, and the run
    goes on to the end, every transaction once."""
    before = source_transactions(source)
    start = _build_backlog(source, dbname, uniform=2400, hot=600)
    backlog = source_transactions(source) - before
    config = write_config(tmp_path / "applier.toml", source, target, dbname, start)
    schema = f"ckpt_{dbname}"
    app = spawn(config, "--stop-at-end")
    app.workers(4)
    wait_applied(app, target, schema, 300)
    app.signal(signal.SIGHUP, group=True)
    assert app.wait() == 0, app.describe()
    assert "SIGHUP: the applier reloads nothing" in app.stderr, app.describe()
    app.assert_gone()
    assert_exactly_once(source, target, dbname, backlog)

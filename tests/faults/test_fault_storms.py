"""Kill storms: ``kill -9`` of the applier again and again at random moments, restarting
it after each kill, over a backlog with hot rows, DDL in the stream (ALTER TABLE between
row transactions) and streamed big transactions (above ``big_txn_rows`` = 500). Kills
alternate at random between the whole process group, the coordinator alone and one
worker. Every storm ends equal: per-row counters, ledger, ``applier check``, every
source transaction counted once in the checkpoint, the checkpoint at the source's end.

``FAULT_KILLS`` (environment) is the number of kills over both storms together (default
8, for CI; the issue's full size is 50: ``FAULT_KILLS=50``); ``FAULT_SEED`` fixes the
random moments. The backlog grows with the number of kills so that kills land mid-way.

A kill's moment: whichever comes first of a random delay after the start (0.3-3 s: it
may be while the coordinator starts, recovers or spawns workers) and a random number
(1-400) of further transactions committed; every third kill instead waits (up to 8 s)
for the target to run an ALTER, or a streamed big transaction (alternately), and lands
in it. With
``-s`` each storm prints what every kill met. Session servers: only the applier is
killed.
"""

from __future__ import annotations

import os
import random
import signal
import time

from applier.errors import WorkerDied
from applier.harness import workload
from tests.appliers import Applier, applied
from tests.faults import faultlib as fl

KINDS = ("process group", "coordinator", "worker")
PER_KILL = 500  # backlog transactions per kill: a kill consumes at most ~400 + overshoot
PER_SEGMENT = 800  # uniform + hot transactions per segment; each segment adds DDL + a big one
# rows of each big transaction (big_txn_rows = 500): more than the 5,000 rows a streamed
# transaction holds for compaction, so it is written in several steps (a kill can land in it)
BIG_ROWS = 8_000
AIMED_SECONDS = 8.0  # an aimed kill waits this long at most for a DDL or big transaction
WORKERS = 4


def _seed() -> int:
    raw = os.environ.get("FAULT_SEED", "").strip()
    return int(raw) if raw else time.time_ns() % 1_000_000


def _storm_backlog(source, db: str, transactions: int, rng: random.Random) -> int:
    """``transactions`` (about) in segments: uniform, hot rows, an ALTER TABLE, a big
    transaction (with its ledger row), more uniform. Returns how many segments."""
    sc = source.server_config()
    workload.prepare(sc, db, tables=4, rows=1000)
    segments = max(1, -(-transactions // PER_SEGMENT))
    conn = source.connect()
    try:
        cur = conn.cursor()
        cur.execute(f"CREATE TABLE `{db}`.sbtest_big (id INT PRIMARY KEY, n INT NOT NULL DEFAULT 0)")
        cur.execute(f"INSERT INTO `{db}`.sbtest_big (id) SELECT seq FROM `{db}`.seq_1_to_{BIG_ROWS}")
        for i in range(segments):
            part = PER_SEGMENT // 3
            workload.run(sc, db, "uniform", part, connections=4, tables=4, rows=1000,
                         seed=rng.randrange(10**6))
            workload.run(sc, db, "hot", part, connections=4, tables=2, rows=1000,
                         seed=rng.randrange(10**6))
            cur.execute(f"ALTER TABLE `{db}`.sbtest3 ADD COLUMN x{i} INT NOT NULL DEFAULT {i}")
            cur.execute("BEGIN")  # a big transaction (big_txn_rows = 500)
            cur.execute(f"UPDATE `{db}`.sbtest_big SET n = n + 1")
            cur.execute(f"UPDATE `{db}`.sbtest4 SET n = n + 1, k = k + 1 WHERE id <= 100")
            cur.execute(f"INSERT INTO `{db}`.ledger VALUES (-1, %s, 0)", (i,))
            cur.execute("COMMIT")
            workload.run(sc, db, "uniform", PER_SEGMENT - 2 * part, connections=4, tables=4,
                         rows=1000, seed=rng.randrange(10**6))
    finally:
        conn.close()
    return segments


def _moment(target, schema: str) -> str:
    """What the target was doing when a kill came (for the storm's summary). From the
    process list (innodb_trx is a cache refreshed at most every 0.1 s, and not at all
    while it is read more often than that)."""
    running = [str(r[0]) for r in target.query(
        "SELECT info FROM information_schema.processlist WHERE id <> CONNECTION_ID() "
        "AND (info LIKE 'ALTER TABLE%%' OR info LIKE '%%sbtest\\_big%%')")]
    if any(q.startswith("ALTER TABLE") for q in running):
        return "DDL"
    if running:  # only the big transactions write sbtest_big
        return "big transaction"
    return "rows" if applied(target, schema) else "startup"


def _kill_at_a_random_moment(app: Applier, target, schema: str, kind: str,
                             rng: random.Random, aim: str) -> str:
    """Kill as said in the module docstring (``aim``: as soon as the target runs a "DDL"
    or a "big transaction", within AIMED_SECONDS); what the target was doing then."""
    aimed = bool(aim)
    workers = app.workers(WORKERS) if kind == "worker" else []
    done = applied(target, schema)
    budget = rng.randint(1, 400)
    deadline = time.monotonic() + (AIMED_SECONDS if aimed else rng.uniform(0.3, 3.0))
    moment = ""
    while time.monotonic() < deadline and app.proc.poll() is None:
        if aimed:
            moment = _moment(target, schema)
            if moment == aim:
                break
        elif applied(target, schema) >= done + budget:
            break
        time.sleep(0.005 if aimed else 0.01)
    assert app.proc.poll() is None, f"the applier exited before its kill; {app.describe()}"
    moment = moment if aimed else _moment(target, schema)
    if kind == "worker":
        os.kill(rng.choice(workers), signal.SIGKILL)
    else:
        app.signal(signal.SIGKILL, group=kind == "process group")
    return moment


def _storm(source, target, dbname, tmp_path, spawn, kills: int, aims: tuple[str, str],
           **apply) -> None:
    """``aims``: what every third kill waits for, alternately."""
    seed = _seed()
    rng = random.Random(seed)
    schema = f"ckpt_{dbname}"
    before = fl.source_transactions(source)
    start = source.binlog_position()
    aimed_kills = kills // 3  # each may go through up to a segment to find its moment
    _storm_backlog(source, dbname, PER_KILL * kills + PER_SEGMENT * aimed_kills + 1000, rng)
    total = fl.source_transactions(source) - before
    secs = fl.sections(source, target, [dbname], start=start, schema=schema,
                       workers=WORKERS, big_txn_rows=500, **apply)
    config = fl.write(tmp_path / "applier.toml", secs)
    kinds = list(KINDS) * (kills // len(KINDS) + 1)
    rng.shuffle(kinds)
    moments: list[str] = []
    for i, kind in enumerate(kinds[:kills]):
        app = spawn(config)
        aim = aims[(i // 3) % 2] if i % 3 == 2 else ""  # every third kill is aimed
        moments.append(f"{kind} at {_kill_at_a_random_moment(app, target, schema, kind, rng, aim)}")
        where = f"kill {i + 1} of {kills} ({moments[-1]}), FAULT_SEED={seed}"
        rc = app.wait()
        if kind == "worker":
            assert rc == WorkerDied.exit_code, f"{where}: {app.describe()}"
            fl.app_error(app, WorkerDied.exit_code, "worker")
        else:
            assert rc == -signal.SIGKILL, f"{where}: {app.describe()}"
        app.assert_gone()
        settled = applied(target, schema)
        time.sleep(0.2)
        assert applied(target, schema) == settled, f"something still applies after {where}"
    print(f"storm FAULT_SEED={seed}: {kills} kills: {'; '.join(moments)}")  # shown with -s
    assert applied(target, schema) < total, f"the backlog was too small for the storm (FAULT_SEED={seed})"
    fl.catch_up(spawn, config, timeout=2 * fl.APPLY_SECONDS)
    fl.assert_equal(source, target, [dbname], schema, total)
    assert fl.checkpoint_position(target, schema) == source.binlog_position()


def _kills(first: bool) -> int:
    total = fl.fault_kills()
    return (total + 1) // 2 if first else total // 2


def test_kill_storm(source, target, dbname, tmp_path, spawn):
    _storm(source, target, dbname, tmp_path, spawn, _kills(True), ("big transaction", "DDL"))


def test_kill_storm_preserving_commit_order(source, target, dbname, tmp_path, spawn):
    _storm(source, target, dbname, tmp_path, spawn, _kills(False), ("DDL", "big transaction"),
           preserve_commit_order=True)

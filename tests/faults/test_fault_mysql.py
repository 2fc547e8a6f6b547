"""The fault suite on MySQL 9.7 (source and target): kill storms of the applier, source
connection cuts through the fault proxy (mid-backlog, and inside the handshake: TLS,
and caching_sha2_password's RSA exchange over a plain connection), a target killed -9
and restarted mid-run, and bad inputs. Every run ends equal (per-row counters, ledger,
``applier check``, every source transaction counted once, the checkpoint at the
source's end) or with one ``error:`` line, a non-zero exit and nothing applied.

Bad inputs: one session with binlog_row_image=MINIMAL or binlog_format=STATEMENT (the
scenario of test_fault_inputs.py), a source user without REPLICATION SLAVE / REPLICATION
CLIENT, a start (GTID set or file) in purged binlogs, compressed transactions
(binlog_transaction_compression in one session: supported, applied exactly through a
kill -9, on both scanner paths) and a target login with caching_sha2_password over a
plain connection to a server without RSA keys.

MySQL offers TLS, so every connection of the applier (``ssl_mode = "preferred"``) is on
TLS: the proxy is faultlib's ``TlsFaultProxy`` (``FaultProxy`` reads the stream as MySQL
packets and holds TLS records back). Two of them found bugs, fixed since: a cut inside
the TLS handshake of a reconnect ended the applier instead of a retry, and a target
killed under TLS connections (error 2026) was not taken for a lost connection.

Servers: this module's own MySQL source and target (``mysql_pair``): the target is
killed and restarted with other settings, the source's binlogs are purged and its
users changed. ``FAULT_KILLS`` sets the storm's kills (default 4 here), ``FAULT_SEED``
its random moments.
"""

from __future__ import annotations

import os
import random
import secrets
import signal
import time

import pytest

from applier.errors import BinlogPurgedError, ConnectError, SourceError, WorkerDied
from applier.harness import sandbox, workload
from tests.appliers import Applier, applied
from tests.faults import faultlib as fl
from tests.faults.test_fault_inputs import _source_side
from tests.integration.test_cli_errors import run_cli
from tests.support import assert_same

pytestmark = pytest.mark.integration

WORKERS = 4
LOST = "source connection lost"  # the applier's log line for each reconnect


@pytest.fixture(scope="module")
def mysql_pair(mysql_available, tmp_path_factory):
    """A MySQL source and target for this module alone."""
    source, target = sandbox.start_pair(tmp_path_factory.mktemp("mysql-faults"), flavor="mysql")
    try:
        yield source, target
    finally:
        target.stop()
        source.stop()


@pytest.fixture
def pair(mysql_pair):
    """``mysql_pair``, each started again if an earlier test left it down."""
    source, target = mysql_pair
    source.start()
    target.start()
    return source, target


@pytest.fixture
def proxies():
    """``make(server) -> TlsFaultProxy`` in front of ``server`` (TLS passes: MySQL offers
    it); all closed at the end."""
    made: list[fl.TlsFaultProxy] = []

    def make(server, seed: int | None = None) -> fl.TlsFaultProxy:
        proxy = fl.TlsFaultProxy("127.0.0.1", server.port, seed=seed)
        made.append(proxy)
        return proxy

    try:
        yield make
    finally:
        for proxy in made:
            proxy.close()


def _seed() -> int:
    raw = os.environ.get("FAULT_SEED", "").strip()
    return int(raw) if raw else time.time_ns() % 1_000_000


def _assert_done(source, target, db: str, total: int, app: Applier | None = None) -> None:
    schema = f"ckpt_{db}"
    fl.assert_equal(source, target, [db], schema, total)
    assert fl.checkpoint_position(target, schema) == source.binlog_position()
    if app is not None:
        assert "Traceback" not in app.stderr, app.describe()


def _exists(server, db: str) -> bool:
    return bool(server.query("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (db,)))


# ---- (a) kill storm ----------------------------------------------------------------------------

KINDS = ("process group", "coordinator", "worker")
PER_KILL = 500  # backlog transactions per kill: a kill consumes at most ~400 + a batch
PER_SEGMENT = 600  # uniform + hot transactions per segment, each with an ALTER and a big one
BIG_ROWS = 6000  # rows of sbtest_big: its updates are streamed (big_txn_rows = 500)
AIMED_SECONDS = 6.0  # an aimed kill waits this long at most for the big transaction


def _storm_backlog(source, db: str, transactions: int, rng: random.Random) -> None:
    """About ``transactions`` in segments: uniform, hot rows, an ALTER TABLE, a big
    transaction (with its ledger row), more uniform."""
    sc = source.server_config()
    workload.prepare(sc, db, tables=4, rows=1000)
    conn = source.connect()
    try:
        cur = conn.cursor()
        cur.execute(f"CREATE TABLE `{db}`.sbtest_big (id INT PRIMARY KEY, n INT NOT NULL DEFAULT 0)")
        cur.execute("SET SESSION cte_max_recursion_depth = %s", (BIG_ROWS,))
        cur.execute(f"INSERT INTO `{db}`.sbtest_big (id) WITH RECURSIVE s (i) AS (SELECT 1 UNION ALL "
                    f"SELECT i + 1 FROM s WHERE i < {BIG_ROWS}) SELECT i FROM s")
        for i in range(max(1, -(-transactions // PER_SEGMENT))):
            part = PER_SEGMENT // 3
            workload.run(sc, db, "uniform", part, connections=4, tables=4, rows=1000,
                         seed=rng.randrange(10**6))
            workload.run(sc, db, "hot", part, connections=4, tables=2, rows=1000,
                         seed=rng.randrange(10**6))
            cur.execute(f"ALTER TABLE `{db}`.sbtest3 ADD COLUMN x{i} INT NOT NULL DEFAULT {i}")
            cur.execute("BEGIN")
            cur.execute(f"UPDATE `{db}`.sbtest_big SET n = n + 1")
            cur.execute(f"UPDATE `{db}`.sbtest4 SET n = n + 1, k = k + 1 WHERE id <= 100")
            cur.execute(f"INSERT INTO `{db}`.ledger VALUES (-1, %s, 0)", (i,))
            cur.execute("COMMIT")
            workload.run(sc, db, "uniform", PER_SEGMENT - 2 * part, connections=4, tables=4,
                         rows=1000, seed=rng.randrange(10**6))
    finally:
        conn.close()


def _in_big_transaction(target) -> bool:
    return bool(target.query(
        "SELECT 1 FROM performance_schema.processlist WHERE id <> CONNECTION_ID() "
        "AND info LIKE '%%sbtest\\_big%%'"))


def _kill(app: Applier, target, schema: str, kind: str, rng: random.Random, aimed: bool) -> str:
    """``kill -9`` of ``kind`` after a random delay (0.3-2.5 s) or a random number
    (1-400) of further transactions applied, whichever comes first; ``aimed``: as soon
    as the target runs the big transaction (within AIMED_SECONDS). What it met."""
    workers = app.workers(WORKERS) if kind == "worker" else []
    done = applied(target, schema)
    budget = rng.randint(1, 400)
    deadline = time.monotonic() + (AIMED_SECONDS if aimed else rng.uniform(0.3, 2.5))
    met = ""
    while time.monotonic() < deadline and app.proc.poll() is None:
        if aimed and _in_big_transaction(target):
            met = "big transaction"
            break
        if not aimed and applied(target, schema) >= done + budget:
            break
        time.sleep(0.005 if aimed else 0.01)
    assert app.proc.poll() is None, f"the applier exited before its kill; {app.describe()}"
    met = met or ("rows" if applied(target, schema) > done else "startup")
    if kind == "worker":
        os.kill(rng.choice(workers), signal.SIGKILL)
    else:
        app.signal(signal.SIGKILL, group=kind == "process group")
    return met


def test_kill_storm(pair, dbname, tmp_path, spawn):
    """Coordinator, worker or the whole process group killed -9 at random moments
    (every third aimed at a streamed big transaction), restarted after each kill."""
    source, target = pair
    kills = fl.fault_kills(4)
    seed = _seed()
    rng = random.Random(seed)
    schema = f"ckpt_{dbname}"
    before = fl.source_transactions(source)
    start = source.binlog_position()
    _storm_backlog(source, dbname, PER_KILL * kills + 1000, rng)
    total = fl.source_transactions(source) - before
    secs = fl.sections(source, target, [dbname], start=start, schema=schema, workers=WORKERS,
                       big_txn_rows=500)
    config = fl.write(tmp_path / "applier.toml", secs)
    kinds = list(KINDS) * (kills // len(KINDS) + 1)
    rng.shuffle(kinds)
    moments: list[str] = []
    for i, kind in enumerate(kinds[:kills]):
        app = spawn(config)
        moments.append(f"{kind} at {_kill(app, target, schema, kind, rng, aimed=i % 3 == 2)}")
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
    print(f"mysql storm FAULT_SEED={seed}: {kills} kills: {'; '.join(moments)}")  # shown with -s
    assert applied(target, schema) < total, f"the backlog was too small for the storm (FAULT_SEED={seed})"
    fl.catch_up(spawn, config, timeout=2 * fl.APPLY_SECONDS)
    _assert_done(source, target, dbname, total)


# ---- (b) source connection cuts through the proxy ----------------------------------------------

# server->client bytes of a new dump connection to MySQL 9.7 (measured through a relay),
# with TLS (ssl_mode preferred: MySQL offers TLS): the greeting ends at 79, the TLS
# ServerHello at 178, the certificate flight at 2373, the session tickets at 2851, the
# authentication OK at 2879, then the OKs and results of PyMySQL's SET AUTOCOMMIT, the
# binlog checksum queries and COM_REGISTER_SLAVE up to ~3149, then the events. One cut
# in each phase:
TLS_BUDGETS = (40, 120, 1200, 2600, 2865, 3000)
# Without TLS (ssl_mode disabled) and nothing cached for the user on the source (FLUSH
# PRIVILEGES): greeting 79, "perform full authentication" 85, the RSA public key the
# client asks for 541, the OK after the RSA-encrypted password 552 (the source has
# cached the password then, so the next logins take the fast path: greeting 79, OK 96,
# the queries' answers up to 223). One cut in each:
RSA_BUDGETS = (40, 82, 300, 546, 100, 150, 205)
HOLD = 1_000_000
RATE = 2_000_000


def _proxied(source, target, dbname, tmp_path, proxy, *, uniform: int, hot: int = 0,
             rate: int = RATE, hold: int = HOLD, workers: int = 4, **source_extra):
    """A backlog in ``dbname`` and the config replicating it through ``proxy``; the
    source transactions of the backlog."""
    proxy.rate, proxy.hold = rate, hold
    before = fl.source_transactions(source)
    start = source.binlog_position()
    fl.backlog(source, dbname, uniform=uniform, hot=hot, tables=4, rows=500)
    total = fl.source_transactions(source) - before
    secs = fl.sections(source, target, [dbname], start=start, schema=f"ckpt_{dbname}",
                       source_addr=(proxy.host, proxy.port), source_extra=source_extra,
                       workers=workers, queue_size=2)
    return fl.write(tmp_path / "applier.toml", secs), total


def test_random_cuts_during_a_backlog(pair, dbname, tmp_path, spawn, proxies):
    """The dump connection (TLS) cut every 0.1-0.5 s past its handshake."""
    source, target = pair
    proxy = proxies(source, seed=11)
    config, total = _proxied(source, target, dbname, tmp_path, proxy, uniform=2400, hot=600,
                             reconnect_attempts=50, reconnect_backoff_seconds=0.05)
    app = spawn(config, "--stop-at-end")
    fl.wait_applied(app, target, f"ckpt_{dbname}", 50)
    proxy.cut_randomly(0.1, 0.5, min_bytes=4096)  # past the TLS handshake (~3,150 bytes)
    proxy.hold = None
    try:
        rc = app.wait(fl.APPLY_SECONDS)
    finally:
        proxy.stop_cutting()
    assert rc == 0, app.describe()
    app.assert_gone()
    assert fl.log_count(app, LOST) >= 3, f"only {proxy.cuts} cuts; {app.describe()}"
    _assert_done(source, target, dbname, total, app)


@pytest.mark.parametrize("ssl_mode, budgets", [
    pytest.param("preferred", TLS_BUDGETS, id="tls"),
    pytest.param("disabled", RSA_BUDGETS, id="plain-rsa"),
])
def test_cuts_during_the_handshake(pair, dbname, tmp_path, spawn, proxies, ssl_mode, budgets):
    """Each reconnect dies in its handshake (one cut per phase), then they pass."""
    source, target = pair
    proxy = proxies(source)
    config, total = _proxied(source, target, dbname, tmp_path, proxy, uniform=1500, rate=0,
                             hold=600_000, workers=2, ssl_mode=ssl_mode,
                             reconnect_attempts=len(budgets) + 2, reconnect_backoff_seconds=0.01)
    app = spawn(config, "--stop-at-end")
    fl.wait_applied(app, target, f"ckpt_{dbname}", 50)
    source.execute("FLUSH PRIVILEGES")  # nothing cached: the next login is a full authentication
    proxy.handshake_cuts(budgets=budgets)
    assert proxy.cut_all(min_bytes=1) >= 1  # the dump connection: reconnect now
    proxy.hold = None
    rc = app.wait(fl.APPLY_SECONDS)
    assert rc == 0, app.describe()
    app.assert_gone()
    assert proxy.handshake_kills == len(budgets), proxy.counters
    assert fl.log_count(app, LOST) >= len(budgets), app.describe()
    _assert_done(source, target, dbname, total, app)


# ---- (c) the target killed -9 and restarted -----------------------------------------------------


@pytest.mark.parametrize("ssl_mode", [pytest.param("preferred", id="tls"),
                                      pytest.param("disabled", id="plain")])
def test_target_killed_mid_run_and_restarted(pair, dbname, tmp_path, spawn, ssl_mode):
    """The target killed -9 and restarted mid-run: the applier reconnects and resumes
    from its checkpoint. ``[target] ssl_mode`` preferred: every worker's connection is
    on TLS (MySQL offers it); disabled: plain (caching_sha2_password's RSA exchange)."""
    source, target = pair
    schema = f"ckpt_{dbname}"
    before = fl.source_transactions(source)
    start = source.binlog_position()
    fl.backlog(source, dbname, uniform=4000, tables=2, rows=500)
    total = fl.source_transactions(source) - before
    secs = fl.sections(source, target, [dbname], start=start, schema=schema, workers=2, batch_txns=4,
                       target_extra={"reconnect_attempts": 10, "reconnect_backoff_seconds": 0.2,
                                     "ssl_mode": ssl_mode})
    config = fl.write(tmp_path / "applier.toml", secs)
    app = spawn(config, "--stop-at-end")
    fl.wait_applied(app, target, schema, 300)
    assert applied(target, schema) < total, "the run ended before the kill: make the backlog bigger"
    target.kill()
    target.start()
    rc = app.wait(fl.APPLY_SECONDS)
    assert rc == 0, app.describe()
    app.assert_gone()
    assert fl.log_count(app, "reconnecting to the target") >= 1, app.describe()
    _assert_done(source, target, dbname, total, app)


# ---- (d) bad inputs ----------------------------------------------------------------------------


def _session(source, **settings):
    conn = source.connect()
    cur = conn.cursor()
    for key, value in settings.items():
        cur.execute(f"SET SESSION {key} = %s", (value,))
    return conn, cur


def test_minimal_row_image_in_one_session(pair, dbname, tmp_path, spawn):
    source, _ = pair

    def bad() -> None:
        conn, cur = _session(source, binlog_row_image="MINIMAL")
        try:
            cur.execute("BEGIN")
            cur.execute(f"UPDATE `{dbname}`.doc SET n = n + 1, note = 'partial' WHERE id <= 5")
            cur.execute(f"INSERT INTO `{dbname}`.marks VALUES (1, 'in the partial-image transaction')")
            cur.execute("COMMIT")
        finally:
            conn.close()

    _source_side(pair, dbname, tmp_path, spawn, bad, ("binlog_row_image",))


@pytest.mark.parametrize("how", ["rand", "user variable"])
def test_statement_format_in_one_session(pair, dbname, tmp_path, spawn, how):
    source, _ = pair

    def bad() -> None:
        conn, cur = _session(source, binlog_format="STATEMENT")
        try:
            cur.execute("BEGIN")
            if how == "rand":
                cur.execute(f"INSERT INTO `{dbname}`.marks VALUES (1, CONCAT('rand ', RAND()))")
            else:
                cur.execute("SET @mark = CONCAT('variable ', CONNECTION_ID())")
                cur.execute(f"INSERT INTO `{dbname}`.marks VALUES (1, @mark)")
            cur.execute(f"UPDATE `{dbname}`.doc SET n = n + 1 WHERE id <= 5")
            cur.execute("COMMIT")
        finally:
            conn.close()

    _source_side(pair, dbname, tmp_path, spawn, bad, ("binlog_format",))


def _small_backlog(source, db: str) -> None:
    source.execute(f"CREATE DATABASE `{db}`")
    source.execute(f"CREATE TABLE `{db}`.t (id INT PRIMARY KEY, n INT NOT NULL)")
    source.execute(f"INSERT INTO `{db}`.t VALUES (1, 1), (2, 2), (3, 3)")


def _nothing_applied(target, db: str) -> None:
    assert not _exists(target, db), f"{db} was created on the target"
    assert applied(target, f"ckpt_{db}") == 0, "a checkpoint was written"


@pytest.mark.parametrize("grants, missing", [
    ("REPLICATION CLIENT", "REPLICATION SLAVE"),
    ("REPLICATION SLAVE", "REPLICATION CLIENT"),
    ("SELECT", "REPLICATION SLAVE"),
], ids=["no-replication-slave", "no-replication-client", "neither"])
def test_source_user_without_a_replication_grant(pair, dbname, tmp_path, spawn, grants, missing):
    source, target = pair
    user, password = f"lim_{dbname[2:10]}", secrets.token_urlsafe(12)
    conn, cur = _session(source, sql_log_bin=0)
    try:
        cur.execute(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY %s", (password,))
        cur.execute(f"GRANT {grants} ON *.* TO '{user}'@'127.0.0.1'")
        before = fl.source_transactions(source)
        start = source.binlog_position()
        _small_backlog(source, dbname)
        total = fl.source_transactions(source) - before
        secs = fl.sections(source, target, [dbname], start=start, schema=f"ckpt_{dbname}",
                           source_extra={"user": user, "password": password}, workers=2)
        config = fl.write(tmp_path / "applier.toml", secs)
        out = run_cli("run", "--config", str(config), "--stop-at-end")
        line = fl.error_line(out.stderr, out.returncode, SourceError.exit_code, missing, user,
                             secrets=(password, source.password, target.password), stdout=out.stdout)
        assert "GRANT" in line, line
        _nothing_applied(target, dbname)
        cur.execute(f"GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '{user}'@'127.0.0.1'")
        app = fl.catch_up(spawn, config)  # granted: it applies
    finally:
        cur.execute(f"DROP USER IF EXISTS '{user}'@'127.0.0.1'")
        conn.close()
    assert_same(source, target, dbname)
    assert applied(target, f"ckpt_{dbname}") == total
    assert fl.checkpoint_position(target, f"ckpt_{dbname}") == source.binlog_position()
    assert "Traceback" not in app.stderr


@pytest.mark.parametrize("start_by", ["gtid", "file"])
def test_start_in_purged_binlogs(pair, dbname, tmp_path, spawn, start_by):
    """PURGE BINARY LOGS, then a start (a GTID set or a file) from before the purge."""
    source, target = pair
    gtid = source.gtid_position()
    start = source.binlog_position()
    _small_backlog(source, dbname)
    source.execute("FLUSH BINARY LOGS")
    current = source.binlog_position()[0]
    source.execute(f"PURGE BINARY LOGS TO '{current}'")
    assert source.query("SHOW BINARY LOGS")[0][0] == current
    if start_by == "gtid":
        secs = fl.sections(source, target, [dbname], start=None, schema=f"ckpt_{dbname}",
                           source_extra={"start_gtid": gtid}, workers=2)
        fragments: tuple[str, ...] = ("start_gtid", "purged")
    else:
        secs = fl.sections(source, target, [dbname], start=start, schema=f"ckpt_{dbname}", workers=2)
        fragments = (start[0], "purged")
    config = fl.write(tmp_path / "applier.toml", secs)
    out = run_cli("run", "--config", str(config), "--stop-at-end")
    fl.error_line(out.stderr, out.returncode, BinlogPurgedError.exit_code, *fragments,
                  secrets=(source.password, target.password), stdout=out.stdout)
    _nothing_applied(target, dbname)


@pytest.mark.parametrize("native_scan", [False, True], ids=["python", "native"])
def test_compressed_transactions_with_a_kill(pair, dbname, tmp_path, spawn, native_scan):
    """binlog_transaction_compression in one session mid-stream (small, big and DDL
    transactions as TRANSACTION_PAYLOAD events), the applier killed -9 in the middle of
    them and restarted: applied exactly, every transaction once."""
    source, target = pair
    schema = f"ckpt_{dbname}"
    before = fl.source_transactions(source)
    start = source.binlog_position()
    workload.prepare(source.server_config(), dbname, tables=2, rows=500)
    workload.run(source.server_config(), dbname, "uniform", 300, connections=2, tables=2, rows=500)
    conn, cur = _session(source, binlog_transaction_compression="ON")
    try:
        for i in range(400):
            cur.execute(f"UPDATE `{dbname}`.sbtest1 SET n = n + 1 WHERE id = %s", (i % 500 + 1,))
            cur.execute(f"INSERT INTO `{dbname}`.ledger VALUES (-2, 0, %s)", (i,))
            conn.commit()
            if i % 100 == 50:
                cur.execute(f"ALTER TABLE `{dbname}`.sbtest2 ADD COLUMN z{i} INT NOT NULL DEFAULT {i}")
                cur.execute(f"UPDATE `{dbname}`.sbtest2 SET n = n + 1")  # 500 rows: streamed
                cur.execute(f"INSERT INTO `{dbname}`.ledger VALUES (-3, 0, %s)", (i,))
                conn.commit()
    finally:
        conn.close()
    workload.run(source.server_config(), dbname, "uniform", 1000, connections=2, tables=2, rows=500)
    total = fl.source_transactions(source) - before
    events = source.query(f"SHOW BINLOG EVENTS IN '{start[0]}' FROM {start[1]}")
    assert sum(1 for e in events if e[2] == "Transaction_payload") >= 400
    secs = fl.sections(source, target, [dbname], start=start, schema=schema, workers=3,
                       big_txn_rows=100, native_scan=native_scan, batch_txns=4)
    config = fl.write(tmp_path / "applier.toml", secs)
    app = spawn(config)
    fl.wait_applied(app, target, schema, 500)  # into the compressed ones
    app.signal(signal.SIGKILL, group=True)
    app.wait()
    app.assert_gone()
    assert applied(target, schema) < total
    app = fl.catch_up(spawn, config)
    _assert_done(source, target, dbname, total, app)


NO_RSA = {  # caching_sha2_password without an RSA key pair: a plain connection cannot log in
    "caching_sha2_password_auto_generate_rsa_keys": "OFF",
    "caching_sha2_password_private_key_path": "/nonexistent/private_key.pem",
    "caching_sha2_password_public_key_path": "/nonexistent/public_key.pem",
}


@pytest.mark.parametrize("role", ["target", "source"])
def test_login_over_a_plain_connection_without_rsa(pair, dbname, tmp_path, spawn, role):
    """The ``role`` user's first login (nothing cached) with caching_sha2_password over a
    connection without TLS (``ssl_mode = "disabled"``) to a server without RSA keys: one
    line naming the section, caching_sha2_password, RSA and ssl_mode, exit 4, nothing
    applied; with ``ssl_mode = "preferred"`` (TLS) it applies."""
    source, target = pair
    server = target if role == "target" else source
    start = source.binlog_position()
    _small_backlog(source, dbname)
    server.stop()
    saved = dict(server.options)
    server.options.update(NO_RSA)
    server.client_options = {"ssl_mode": "REQUIRED"}  # the harness's own connections: TLS
    try:
        server.start()
        assert server.query("SHOW STATUS LIKE 'Caching_sha2_password_rsa_public_key'")[0][1] == ""
        server.execute("FLUSH PRIVILEGES")
        secs = fl.sections(source, target, [dbname], start=start, schema=f"ckpt_{dbname}", workers=2,
                           **{f"{role}_extra": {"ssl_mode": "disabled"}})
        config = fl.write(tmp_path / "applier.toml", secs)
        out = run_cli("run", "--config", str(config), "--stop-at-end")
        fl.error_line(out.stderr, out.returncode, ConnectError.exit_code, f"[{role}]",
                      "caching_sha2_password", "RSA", "ssl_mode", secrets=(source.password, target.password),
                      stdout=out.stdout)
        _nothing_applied(target, dbname)
        secs[role]["ssl_mode"] = "preferred"
        fl.write(config, secs)
        app = fl.catch_up(spawn, config)
        assert target.query(f"SELECT * FROM `{dbname}`.t ORDER BY id") == [(1, 1), (2, 2), (3, 3)]
        assert_same(source, target, dbname)
        assert "Traceback" not in app.stderr
    finally:
        server.stop()
        server.options.clear()
        server.options.update(saved)
        server.client_options = {}
        server.start()

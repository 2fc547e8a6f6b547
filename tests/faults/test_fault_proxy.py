"""The network between the applier and its source breaks: ``[source]`` points at a
``FaultProxy`` in front of the session source, which cuts the dump connection at random
intervals, cuts each new connection inside its handshake, or refuses connections.

Expected: the applier reconnects (``[source] reconnect_attempts``), resumes at its
watermark and ends equal: exit 0, per-row counters and ledger equal, ``applier check``
equal, every source transaction counted once in the checkpoint, the checkpoint at the
source's end. With the attempts exhausted: one ``error:`` line (exit 3, SourceError),
nothing half-applied, and a restart once the network is back resumes.

The session source and target are used (the proxy breaks connections, never a
server); each test replicates its own database into its own checkpoint schema.
"""

from __future__ import annotations

import time

import pymysql
import pytest

from applier.errors import SourceError
from tests.faults import faultlib as fl

# server->client bytes of a new dump connection on MariaDB 10.11 (measured through the
# proxy): the greeting ends near 108, the authentication OK near 119, the result of
# SELECT @@global.binlog_checksum near 213, the SET statements near 246, the OK of
# COM_REGISTER_SLAVE near 257, then the binlog events. One cut in each phase:
HANDSHAKE_BUDGETS = (40, 112, 160, 230, 252, 450)

LOST = "source connection lost"  # the applier's log line for each reconnect
# Until the fault is set, the applier gets only the first HOLD bytes of the dump (the
# tables and a few hundred transactions), however slowly it starts on a busy machine: the
# fault always meets it mid-backlog. The random cuts also go on over a slow network
# (RATE bytes/s): reading the rest of the backlog takes seconds, cut after cut.
HOLD = 1_000_000
RATE = 2_000_000
SMALL = {"uniform": 1500, "tables": 2, "rows": 500, "rate": 0, "hold": 600_000, "workers": 2}


def _start(source, target, dbname, tmp_path, proxy, *, uniform: int, hot: int = 0,
           rate: int = RATE, hold: int = HOLD, tables: int = 4, rows: int = 500,
           workers: int = 4, **source_extra):
    """A backlog in ``dbname`` and the config replicating it through ``proxy``; the
    source transactions of the backlog, and how many of them made the tables."""
    proxy.rate, proxy.hold = rate, hold
    before = fl.source_transactions(source)
    start = source.binlog_position()
    prepared = fl.backlog(source, dbname, uniform=uniform, hot=hot, tables=tables, rows=rows)
    total = fl.source_transactions(source) - before
    secs = fl.sections(source, target, [dbname], start=start, schema=f"ckpt_{dbname}",
                       source_addr=(proxy.host, proxy.port), source_extra=source_extra,
                       workers=workers, queue_size=2)  # the coordinator reads at the workers' pace
    return fl.write(tmp_path / "applier.toml", secs), total, prepared


def _assert_done(app, source, target, dbname, total) -> None:
    schema = f"ckpt_{dbname}"
    fl.assert_equal(source, target, [dbname], schema, total)
    assert fl.checkpoint_position(target, schema) == source.binlog_position()
    assert "Traceback" not in app.stderr, app.describe()


def test_random_cuts_during_a_backlog(source, target, dbname, tmp_path, spawn, proxies):
    """3,000 transactions (uniform + hot rows), 4 workers; the dump connection is cut
    every 0.1-0.5 s once it is past its handshake (cuts inside the handshake:
    ``test_cuts_during_the_handshake``)."""
    proxy = proxies(source, seed=11)
    config, total, _ = _start(source, target, dbname, tmp_path, proxy, uniform=2400, hot=600,
                           reconnect_attempts=50, reconnect_backoff_seconds=0.05)
    app = spawn(config, "--stop-at-end")
    fl.wait_applied(app, target, f"ckpt_{dbname}", 50)
    proxy.cut_randomly(0.1, 0.5, min_bytes=2048)
    proxy.hold = None
    try:
        rc = app.wait(fl.APPLY_SECONDS)
    finally:
        proxy.stop_cutting()
    assert rc == 0, app.describe()
    app.assert_gone()
    assert fl.log_count(app, LOST) >= 3, f"only {proxy.cuts} cuts; {app.describe()}"
    _assert_done(app, source, target, dbname, total)


def test_cuts_during_the_handshake(source, target, dbname, tmp_path, spawn, proxies):
    """Each reconnect dies in its first packets (one cut per handshake phase), then the
    connections pass."""
    proxy = proxies(source)
    config, total, _ = _start(source, target, dbname, tmp_path, proxy, **SMALL,
                              reconnect_attempts=len(HANDSHAKE_BUDGETS) + 2,
                              reconnect_backoff_seconds=0.05)
    app = spawn(config, "--stop-at-end")
    fl.wait_applied(app, target, f"ckpt_{dbname}", 50)
    proxy.handshake_cuts(budgets=HANDSHAKE_BUDGETS)
    assert proxy.cut_all(min_bytes=1) >= 1  # the dump connection: reconnect now
    proxy.hold = None
    rc = app.wait(fl.APPLY_SECONDS)
    assert rc == 0, app.describe()
    app.assert_gone()
    assert proxy.handshake_kills == len(HANDSHAKE_BUDGETS), proxy.counters
    _assert_done(app, source, target, dbname, total)


def test_connections_refused_for_a_few_seconds(source, target, dbname, tmp_path, spawn, proxies):
    proxy = proxies(source)
    config, total, _ = _start(source, target, dbname, tmp_path, proxy, **SMALL,
                              reconnect_attempts=10, reconnect_backoff_seconds=0.1)
    app = spawn(config, "--stop-at-end")
    fl.wait_applied(app, target, f"ckpt_{dbname}", 50)
    proxy.refuse(3.0)
    assert proxy.cut_all() >= 1
    proxy.hold = None
    rc = app.wait(fl.APPLY_SECONDS)
    assert rc == 0, app.describe()
    app.assert_gone()
    assert fl.log_count(app, "not reachable") >= 2, app.describe()  # refused, then retried
    _assert_done(app, source, target, dbname, total)


def test_reconnect_attempts_exhausted_then_a_restart_resumes(source, target, dbname, tmp_path,
                                                             spawn, proxies):
    proxy = proxies(source)
    config, total, prepared = _start(source, target, dbname, tmp_path, proxy, **SMALL,
                                     reconnect_attempts=3, reconnect_backoff_seconds=0.05)
    schema = f"ckpt_{dbname}"
    app = spawn(config, "--stop-at-end")
    fl.wait_applied(app, target, schema, 50)
    proxy.refuse(None)
    assert proxy.cut_all() >= 1
    app.wait(fl.APPLY_SECONDS)
    app.assert_gone()
    fl.app_error(app, SourceError.exit_code, "unreachable after 3 reconnect attempts",
                 "run again", secrets=(source.password, target.password))
    done = fl.assert_not_half_applied(target, dbname, schema, prepared)
    assert done < total

    proxy.accept_again()
    proxy.hold = None
    app = fl.catch_up(spawn, config)
    _assert_done(app, source, target, dbname, total)


def test_the_proxy_itself(source, proxies):
    """The helper does what the tests above rely on (pymysql through it, no applier)."""
    proxy = proxies(source)

    def connect():
        return pymysql.connect(host=proxy.host, port=proxy.port, user=source.user,
                               password=source.password, connect_timeout=5)

    def select(conn, sql: str):
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()

    conn = connect()
    assert select(conn, "SELECT 1") == ((1,),)
    assert proxy.cut_all() == 1
    with pytest.raises(pymysql.err.OperationalError):
        select(conn, "SELECT 1")

    proxy.refuse(None)
    with pytest.raises(pymysql.err.OperationalError) as refused:
        connect()
    assert refused.value.args[0] == 2003  # connection refused
    proxy.accept_again()
    assert select(connect(), "SELECT 2") == ((2,),)

    proxy.handshake_cuts(budgets=[50])  # inside the greeting
    with pytest.raises(pymysql.err.OperationalError):
        connect()
    assert proxy.handshake_kills == 1
    conn = connect()  # the next one passes

    proxy.cut_before(lambda payload: b"cut-this-row" in payload)
    with pytest.raises(pymysql.err.OperationalError):
        select(conn, "SELECT 'cut-this-row'")
    assert proxy.matched_cuts == 1 and not proxy.armed
    conn = connect()
    assert select(conn, "SELECT 'cut-this-row'") == (("cut-this-row",),)  # once only

    proxy.rate = 1_000_000
    began = time.monotonic()
    assert len(select(conn, "SELECT REPEAT('x', 500000)")[0][0]) == 500_000
    assert time.monotonic() - began >= 0.3
    conn.close()

    proxy.rate, proxy.hold = 0, 2000  # a new connection gets its first 2,000 bytes, then waits
    conn = pymysql.connect(host=proxy.host, port=proxy.port, user=source.user,
                           password=source.password, connect_timeout=5, read_timeout=1)
    with pytest.raises(pymysql.err.OperationalError):
        select(conn, "SELECT REPEAT('h', 100000)")  # held: the read times out
    proxy.hold = None
    assert select(connect(), "SELECT REPEAT('h', 100000)")[0][0] == "h" * 100_000

"""What the fault tests share: config files, bounded waits, the end-of-test comparisons
(per-row counters, ledger, ``applier check``, exactly-once count, checkpoint position)
and the shape of a refusal (one ``error:`` line, exit code, no traceback); and
``TlsFaultProxy``, the fault proxy for TLS connections (a MySQL source).

Data: ``applier.harness.workload`` tables (``sbtestN`` with a counter ``n`` every
transaction increments, ``ledger`` with one row per transaction). A transaction applied
twice collides in the ledger, one lost leaves ``SUM(n)`` and the ledger short.
"""

from __future__ import annotations

import os
import re
import socket
import time
from pathlib import Path

from applier.harness import workload
from applier.pipeline import checkpoint
from tests import appliers
from tests.appliers import Applier, applied
from tests.faults import proxy as _proxy
from tests.support import assert_same, render_toml, source_transactions  # noqa: F401 - for the fault tests

APPLY_SECONDS = 75  # bound on any wait for the applier to make progress or exit
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) ")
# Python's multiprocessing may warn about a semaphore of the stopped worker pool after the
# applier printed its error (seen now and then, not every run): noise, not a second error.
NOISE_LINE = re.compile(r"multiprocessing/resource_tracker\.py:\d+: UserWarning|^\s+warnings\.warn\(")


def fault_kills(default: int = 8) -> int:
    """``FAULT_KILLS``: kills in total over the storm tests (CI default: 8)."""
    raw = os.environ.get("FAULT_KILLS", "").strip()
    return max(2, int(raw)) if raw else default


# ---- configs ----------------------------------------------------------------------------


def sections(source, target, dbs: list[str], *, start: tuple[str, int] | None,
             schema: str, source_addr: tuple[str, int] | None = None,
             source_extra: dict | None = None, target_extra: dict | None = None,
             **apply) -> dict[str, dict]:
    """Config sections: ``source_addr`` (a proxy) instead of the source's own port."""
    sc, tc = source.server_config(), target.server_config()
    host, port = source_addr or (sc.host, sc.port)
    src = {"host": host, "port": port, "user": sc.user, "password": sc.password,
           "reconnect_attempts": 2, "reconnect_backoff_seconds": 0.1, "heartbeat_seconds": 1.0}
    if start is not None:
        src["start_file"], src["start_pos"] = start
    src.update(source_extra or {})
    tgt = {"host": tc.host, "port": tc.port, "user": tc.user, "password": tc.password,
           "checkpoint_schema": schema, "reconnect_attempts": 2, "reconnect_backoff_seconds": 0.1}
    tgt.update(target_extra or {})
    app = {"databases": list(dbs), "workers": 4, "batch_txns": 8, **apply}
    return {"source": src, "target": tgt, "apply": app}


def write(path: Path, secs: dict[str, dict]) -> Path:
    path.write_text(render_toml(secs))
    return path


# ---- waits ------------------------------------------------------------------------------


def wait_for(what: str, predicate, timeout: float = APPLY_SECONDS, app: Applier | None = None,
             pause: float = 0.02):
    """``tests.appliers.wait_for`` bounded by APPLY_SECONDS."""
    return appliers.wait_for(what, predicate, timeout, app, pause)


def wait_applied(app: Applier, target, schema: str, at_least: int,
                 timeout: float = APPLY_SECONDS) -> int:
    return wait_for(f"{at_least} transactions applied",
                    lambda: (n := applied(target, schema)) >= at_least and n, timeout, app, 0.01)


def catch_up(spawn, config: Path, timeout: float = APPLY_SECONDS) -> Applier:
    """``applier run --stop-at-end``: must exit 0 and leave nothing running."""
    app = spawn(config, "--stop-at-end")
    rc = app.wait(timeout)
    assert rc == 0, app.describe()
    app.assert_gone()
    return app


# ---- the source's transactions ----------------------------------------------------------


def backlog(source, db: str, *, uniform: int, hot: int = 0, tables: int = 4, rows: int = 1000,
            connections: int = 4, seed: int = 1) -> int:
    """Workload tables in ``db`` and ``uniform`` + ``hot`` transactions on them; the
    number of source transactions the tables took (before the first ledger row)."""
    sc = source.server_config()
    before = source_transactions(source)
    workload.prepare(sc, db, tables=tables, rows=rows)
    prepared = source_transactions(source) - before
    if uniform:
        workload.run(sc, db, "uniform", uniform, connections=connections, tables=tables, rows=rows,
                     seed=seed)
    if hot:
        workload.run(sc, db, "hot", hot, connections=connections, tables=min(tables, 2), rows=rows,
                     seed=seed + 7)
    return prepared


# ---- the end of every test: the same data, every transaction once -------------------------


def assert_not_half_applied(target, db: str, schema: str, prepared: int) -> int:
    """Every ledger row on the target came with its transaction's checkpoint count (one
    commit): transactions counted - the ``prepared`` ones = ledger rows. The count."""
    done = applied(target, schema)
    ledger = int(target.query(f"SELECT COUNT(*) FROM `{db}`.ledger")[0][0])
    assert done - prepared == ledger, f"{done} transactions counted ({prepared} before the " \
        f"ledger), {ledger} ledger rows: a transaction was half applied"
    return done


def counters(server, db: str) -> tuple[int, int]:
    """(SUM(n) over the sbtest tables, ledger rows)."""
    tables = [r[0] for r in server.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
        "AND table_name LIKE 'sbtest%%'", (db,))]
    total = sum(int(server.query(f"SELECT COALESCE(SUM(n), 0) FROM `{db}`.`{t}`")[0][0])
                for t in tables)
    ledger = int(server.query(f"SELECT COUNT(*) FROM `{db}`.ledger")[0][0])
    return total, ledger


def assert_equal(source, target, dbs: list[str], schema: str | None = None,
                 transactions: int | None = None) -> None:
    """Per-row counters and ledger equal, ``applier check`` equal; with ``transactions``,
    the checkpoint rows counted exactly that many (each applied once)."""
    for db in dbs:
        assert counters(source, db) == counters(target, db), (
            f"{db}: (SUM(n), ledger rows) differ: source {counters(source, db)} "
            f"!= target {counters(target, db)}")
        assert_same(source, target, db)
    if transactions is not None:
        assert schema is not None
        assert applied(target, schema) == transactions, (
            f"checkpoint counts {applied(target, schema)} transactions, the source wrote {transactions}")


def checkpoint_position(target, schema: str) -> tuple[str, int]:
    """Where a restart would resume: the highest watermark of the checkpoint rows."""
    conn = target.connect()
    try:
        rec = checkpoint.load(conn, schema)
    finally:
        conn.close()
    assert rec.start is not None, f"no checkpoint position in {schema}"
    return rec.start.file, rec.start.pos


# ---- refusals ---------------------------------------------------------------------------


def error_line(stderr: str, rc: int, exit_code: int | None, *fragments: str,
               secrets: tuple[str, ...] = (), stdout: str = "") -> str:
    """The one ``error:`` line of a refusal: the last line of stderr, the only one that
    is not a log line (or ``NOISE_LINE``), naming ``fragments``; exit ``exit_code`` (None: any non-zero);
    no traceback, nothing on stdout, no secret anywhere."""
    shown = f"exit {rc}\nstdout: {stdout[-1500:]!r}\nstderr: {stderr[-3000:]!r}"
    assert rc != 0 and rc > 0, shown
    if exit_code is not None:
        assert rc == exit_code, shown
    assert "Traceback" not in stderr, shown
    lines = [x for x in stderr.strip().splitlines() if x.strip() and not NOISE_LINE.search(x)]
    assert lines, shown
    line = lines[-1]
    assert line.startswith("error: "), shown
    others = [x for x in lines[:-1] if not LOG_LINE.match(x)]
    assert not others, f"stderr has more than log lines and the error line: {others!r}; {shown}"
    for fragment in fragments:
        assert fragment.lower() in line.lower(), f"{fragment!r} not in the error line; {shown}"
    assert stdout.strip() == "", shown
    for secret in secrets:
        assert secret not in stdout and secret not in stderr, "a password was printed"
    return line


def app_error(app: Applier, exit_code: int | None, *fragments: str,
              secrets: tuple[str, ...] = ()) -> str:
    return error_line(app.stderr, app.proc.returncode, exit_code, *fragments, secrets=secrets,
                      stdout=app.stdout)


def log_count(app: Applier, fragment: str) -> int:
    return sum(1 for line in app.stderr.splitlines() if fragment in line)


# ---- a fault proxy for TLS connections -------------------------------------------------------


class _RawConn(_proxy._Conn):
    def _from_server(self, data: bytes) -> bool:
        """The server's bytes as they come (no packet framing); a handshake budget cuts
        at its exact byte."""
        if self.budget is not None and self.received + len(data) >= self.budget:
            self._queue_down(data[: max(self.budget - self.received, 0)])
            self.proxy._count("handshake_kills")
            return False
        self.received += len(data)
        self._queue_down(data)
        return True


class TlsFaultProxy(_proxy.FaultProxy):
    """A ``FaultProxy`` that passes the server's bytes on unframed, for connections that
    go over TLS (a MySQL source offers it, and ``ssl_mode = "preferred"`` takes it):
    ``FaultProxy`` splits the server's stream into MySQL packets, which TLS records are
    not (their header read as a packet length, the bytes wait for a packet that never
    ends: the connection hangs). Everything but ``cut_before``/``stall_before`` (which
    need the packets) works as there: cuts, handshake budgets (bytes, TLS included),
    ``rate``, ``hold``, refusals."""

    def cut_before(self, *matchers) -> None:
        raise NotImplementedError("TlsFaultProxy does not see packets")

    def stall_before(self, matcher) -> None:
        raise NotImplementedError("TlsFaultProxy does not see packets")

    def _start_conn(self, client: socket.socket) -> None:  # FaultProxy's, with _RawConn
        client.setblocking(True)
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self.counters["accepted"] += 1
            over = len(self._conns) >= self.max_connections
            budget = self._budgets.pop(0) if self._budgets else None
            if budget is None and self._handshake is not None:
                max_bytes, deadline = self._handshake
                if time.monotonic() < deadline:
                    budget = self.rng.randint(0, max_bytes)
                else:
                    self._handshake = None
        if over:
            self._count("over_limit")
            _proxy._abort(client)
            return
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            _proxy._abort(client)
            return
        upstream.settimeout(None)
        upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = _RawConn(self, client, upstream, budget)
        with self._lock:
            self._conns.add(conn)
        conn.thread.start()

"""Prometheus metrics of a running applier, scraped on real servers.

A backlog is written on the source, then the applier starts (3 workers) while a lock on
the target holds every transaction back: the scrapes show it exactly (transactions and
bytes behind, pending, per-worker queues, lag growing each second, nothing applied);
once the lock goes the figures come back to 0. The same for `applier replay`, and for
the work the coordinator does itself (a streamed big transaction, a held barrier): lag
and pending never read 0 while something read is uncommitted. Every metric the README
documents is exported with its type, and the Grafana dashboard queries only those.
`--log-format json` gives one JSON object per log line."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import signal
import time
import urllib.request
from pathlib import Path

import MySQLdb
import pytest

from applier.harness import sandbox, workload
from tests.appliers import REPO, Applier, wait_for
from tests.integration.test_cli_errors import run_cli
from tests.support import make_config, render_toml

BACKLOG = 1200  # source transactions written before the applier starts
WORKERS = 3
BIG_ROWS = 12_000  # a streamed transaction: more than NET_FLUSH_ROWS (written before its end)
CATCH_UP = 120  # seconds to apply the backlog once the lock is gone
STALL = 40  # seconds to see a held back applier: below the target's innodb_lock_wait_timeout (50)
ZERO = ("applier_lag_seconds", "applier_pending_transactions", "applier_behind_transactions",
        "applier_behind_bytes", "applier_waiting_transactions")


class Scrape:
    """One scrape of /metrics: each sample by name and labels, and each # TYPE line."""

    def __init__(self, text: str) -> None:
        from prometheus_client.parser import text_string_to_metric_families

        self.text = text
        self.types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
        self.samples = [(s.name, s.labels, s.value) for f in text_string_to_metric_families(text)
                        for s in f.samples]

    def get(self, name: str, **labels: str) -> float | None:
        for n, have, value in self.samples:
            if n == name and all(have.get(k) == v for k, v in labels.items()):
                return value
        return None

    def labels(self, name: str) -> dict[str, str]:
        return next(have for n, have, _ in self.samples if n == name)

    def workers(self) -> list[float]:
        found = [(int(have["worker"]), v) for n, have, v in self.samples if n == "applier_worker_in_flight"]
        return [v for _, v in sorted(found)]

    def __repr__(self) -> str:
        return "\n".join(line for line in self.text.splitlines() if not line.startswith("#"))


def scrape(port: int) -> Scrape | None:
    """The metrics, or None when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            return Scrape(r.read().decode())
    except OSError:
        return None


def documented() -> dict[str, str]:
    """README's metrics table: {name as exported: type}."""
    rows = re.findall(r"^\| `(applier_[a-z_]+)` +\| (counter|gauge|histogram|info) +\|",
                      (REPO / "README.md").read_text(), re.M)
    assert len(rows) >= 15, rows
    return dict(rows)


def assert_documented_types(s: Scrape, *, without: tuple[str, ...] = ()) -> None:
    """Every documented metric is exported with its type (an info metric is a gauge of 1
    in the text format), and nothing else is."""
    want = {name: ("gauge" if kind == "info" else kind) for name, kind in documented().items()
            if name not in without}
    assert s.types == want, s.text


def config_file(tmp_path: Path, source, target, db: str, port: int, *, replay: bool = False,
                **apply) -> Path:
    """The applier's config: from the source's current position (a replay: from the
    first file given), ``WORKERS`` workers, metrics on ``port``."""
    cfg = make_config(source, target, db, stop_at_end=False)
    sc, tc = cfg.source, cfg.target
    start = {} if replay else {"start_file": sc.start_file, "start_pos": sc.start_pos}
    path = tmp_path / "metrics.toml"
    path.write_text(render_toml({
        "source": {"host": sc.host, "port": sc.port, "user": sc.user, "password": sc.password,
                   **start, "heartbeat_seconds": 1.0},
        "target": {"host": tc.host, "port": tc.port, "user": tc.user, "password": tc.password,
                   "checkpoint_schema": tc.checkpoint_schema},
        "apply": {"databases": [db], "workers": WORKERS, **apply},
        "metrics": {"listen": f"127.0.0.1:{port}"},
    }))
    return path


class Lock:
    """A locking read on the target, held until ``release()``: the applier's writes to
    those rows (and, REPEATABLE READ, inserts into the gaps) wait."""

    def __init__(self, target, sql: str) -> None:
        self.conn = target.connect()
        cur = self.conn.cursor()
        cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cur.execute("START TRANSACTION")
        cur.execute(sql)
        cur.fetchall()
        cur.close()

    def release(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(MySQLdb.Error):
                self.conn.rollback()
            self.conn.close()
            self.conn = None


def until(what: str, port: int, app: Applier, timeout: float, check) -> Scrape:
    """Scrape until ``check(scrape)`` holds; the last scrape in the failure."""
    last: list[Scrape | None] = [None]

    def probe():
        s = last[0] = scrape(port)
        return s if s is not None and check(s) else None

    try:
        return wait_for(what, probe, timeout, app, pause=0.1)
    except AssertionError as e:
        raise AssertionError(f"{e}\nlast scrape:\n{last[0]!r}") from None


def stop(app: Applier) -> None:
    """SIGTERM: the applier commits what it was given and exits 0."""
    if app.proc.poll() is None:
        app.signal(signal.SIGTERM, group=False)
    assert app.wait() == 0, app.describe()


def caught_up(s: Scrape) -> bool:
    return all(s.get(name) == 0 for name in ZERO) and not any(s.workers())


def dashboard_metrics() -> set[str]:
    panels = json.loads((REPO / "examples" / "grafana-dashboard.json").read_text())["panels"]
    exprs = [t["expr"] for p in panels for t in p.get("targets", [])]
    assert len(exprs) >= 8, exprs
    return {re.sub(r"_(bucket|count|sum)$", "", n) for e in exprs for n in re.findall(r"\bapplier_[a-z_]+", e)}


@pytest.mark.flavors("mariadb", "mysql")
def test_a_backlog_shows_in_every_figure_and_they_return_to_0(source, target, dbname, tmp_path):
    source.execute("FLUSH BINARY LOGS")  # GTIDs of other tests are in this file's start list
    port = sandbox.free_port()
    path = config_file(tmp_path, source, target, dbname, port)
    sc = source.server_config()
    workload.prepare(sc, dbname, tables=2, rows=300)
    first = run_cli("run", "--stop-at-end", "--config", str(path))  # the tables: then a backlog
    assert first.returncode == 0, first.stderr
    workload.run(sc, dbname, "uniform", BACKLOG, 4, tables=2, rows=300)
    end_file, end_pos = source.binlog_position()
    # every transaction inserts a ledger row: with its rows and gaps locked none commits
    lock = Lock(target, f"SELECT COUNT(*) FROM `{dbname}`.ledger FOR UPDATE")
    app = Applier(path, log_dir=tmp_path, name="metrics")
    try:
        stalled = until("the backlog in the metrics", port, app, STALL, lambda s: (
            s.get("applier_behind_transactions") == BACKLOG and (s.get("applier_pending_transactions") or 0) > 0
            and sum(s.workers()) > 0 and (s.get("applier_lag_seconds") or 0) > 0))
        assert stalled.get("applier_transactions_total") == 0
        assert stalled.get("applier_read_transactions_total") > 0
        assert len(stalled.workers()) == WORKERS
        assert stalled.get("applier_behind_bytes") > 0
        # `applier status` of the running applier: from the checkpoint and its live figures
        out = run_cli("status", "--json", "--config", str(path))
        assert out.returncode == 0, out.stderr
        st = json.loads(out.stdout)
        assert st["lag_bytes"] == stalled.get("applier_behind_bytes"), (st, stalled)
        live = st["live"]
        assert live["listen"] == f"127.0.0.1:{port}" and not live["error"], live
        assert live["rate"] == 0 and live["lag_seconds"] > 0 and sum(live["in_flight"]) > 0, live
        assert len(live["in_flight"]) == WORKERS and live["transactions"] == 0, live
        out = run_cli("status", "--config", str(path))
        assert f"live (127.0.0.1:{port}):  0 transactions/s" in out.stdout, out.stdout
        # the lag moves while the oldest transaction waits: a second per second
        time.sleep(1.2)
        later = scrape(port)
        assert later.get("applier_lag_seconds") >= stalled.get("applier_lag_seconds") + 1, (stalled, later)
        assert later.get("applier_behind_transactions") == BACKLOG and later.get("applier_transactions_total") == 0
        lock.release()
        done = until("caught up", port, app, CATCH_UP, lambda s: s.get("applier_transactions_total") == BACKLOG and caught_up(s))
        assert done.get("applier_read_transactions_total") == BACKLOG
        assert done.get("applier_rows_total") > BACKLOG
        assert done.get("applier_batch_transactions_sum") == BACKLOG  # all by workers
        assert done.get("applier_batch_transactions_count") == done.get('applier_batch_transactions_bucket', le="+Inf") > 0
        assert done.get("applier_barriers_total") == 0 and done.get("applier_big_transactions_total") == 0
        at = done.labels("applier_position_info")
        assert (at["file"], at["pos"]) == (end_file, str(end_pos)), at
        assert_documented_types(done)
        assert dashboard_metrics() <= set(done.types), dashboard_metrics() - set(done.types)
    finally:
        lock.release()
        stop(app)
    out = run_cli("status", "--config", str(path))  # stopped: no live figures to read
    assert "not running" in out.stdout and "live (" not in out.stdout, out.stdout


def test_replay_serves_the_metrics(source, target, dbname, tmp_path):
    sc = source.server_config()
    source.execute("FLUSH BINARY LOGS")
    workload.prepare(sc, dbname, tables=2, rows=300)
    source.execute("FLUSH BINARY LOGS")
    workload.run(sc, dbname, "uniform", BACKLOG, 4, tables=2, rows=300)
    source.execute("FLUSH BINARY LOGS")
    names = [r[0] for r in source.query("SHOW BINARY LOGS")][-3:-1]
    files = []
    for name in names:
        files.append(tmp_path / name)
        shutil.copy(source.datadir / name, files[-1])
    port = sandbox.free_port()
    path = config_file(tmp_path, source, target, dbname, port, replay=True)
    first = run_cli("replay", "--config", str(path), str(files[0]))  # the tables
    assert first.returncode == 0, first.stderr
    lock = Lock(target, f"SELECT COUNT(*) FROM `{dbname}`.ledger FOR UPDATE")
    app = Applier(path, *map(str, files), log_dir=tmp_path, name="replay", command="replay")
    try:
        stalled = until("the replay's metrics", port, app, STALL, lambda s: (
            (s.get("applier_pending_transactions") or 0) > 0 and sum(s.workers()) > 0
            and (s.get("applier_lag_seconds") or 0) > 0))
        assert stalled.get("applier_transactions_total") == 0 and len(stalled.workers()) == WORKERS
        at = stalled.labels("applier_position_info")
        assert at["file"] == names[0], at
        size = [f.stat().st_size for f in files]
        assert stalled.get("applier_behind_bytes") == size[0] - int(at["pos"]) + size[1]
        assert_documented_types(stalled, without=("applier_behind_transactions",))  # no source to ask
        time.sleep(1.2)
        later = scrape(port)
        assert later.get("applier_lag_seconds") >= stalled.get("applier_lag_seconds") + 1, (stalled, later)
        lock.release()
        assert app.wait(120) == 0, app.describe()
    finally:
        lock.release()
        app.kill_all()
    assert json.loads(app.stdout.strip().splitlines()[-1])["transactions"] == BACKLOG
    assert scrape(port) is None  # the endpoint went with the replay


def test_the_coordinators_own_work_is_never_lag_0(source, target, dbname, tmp_path):
    """A streamed big transaction (its end not read yet) and a barrier held for its batch
    run on the coordinator's connection: while they wait, lag and pending say so."""
    source.execute("FLUSH BINARY LOGS")
    port = sandbox.free_port()
    path = config_file(tmp_path, source, target, dbname, port, big_txn_rows=100)
    sc = source.server_config()
    workload.prepare(sc, dbname, tables=1, rows=BIG_ROWS)
    source.execute(f"CREATE TABLE `{dbname}`.nokey (v INT) ENGINE=InnoDB")
    first = run_cli("run", "--stop-at-end", "--config", str(path))
    assert first.returncode == 0, first.stderr
    source.execute(f"UPDATE `{dbname}`.sbtest1 SET n = n + 1")  # streamed, written as it is read
    source.execute(f"INSERT INTO `{dbname}`.nokey VALUES (1)")  # no key: a barrier
    # an early row: the stream waits before its end is read (the first NET_FLUSH_ROWS are written)
    row = Lock(target, f"SELECT * FROM `{dbname}`.sbtest1 WHERE id = 100 FOR UPDATE")
    table = Lock(target, f"SELECT * FROM `{dbname}`.nokey FOR UPDATE")
    app = Applier(path, log_dir=tmp_path, name="coordinator")
    try:
        s = until("the stream waiting", port, app, STALL, lambda s: (
            s.get("applier_pending_transactions") == 1 and s.get("applier_behind_transactions") == 2
            and (s.get("applier_lag_seconds") or 0) > 0))
        assert s.get("applier_big_transactions_total") == 1  # begun
        # (its end may be read already: its statements wait in the pipe, pipeline/pipe.py)
        assert s.get("applier_read_transactions_total") in (0, 1) and s.get("applier_transactions_total") == 0
        row.release()
        s = until("the barrier waiting", port, app, STALL, lambda s: (
            s.get("applier_transactions_total") == 1 and s.get("applier_read_transactions_total") == 2
            and s.get("applier_pending_transactions") == 1 and s.get("applier_behind_transactions") == 1))
        assert s.get("applier_lag_seconds") > 0 and s.get("applier_barriers_total") == 1
        table.release()
        s = until("caught up", port, app, CATCH_UP, lambda s: s.get("applier_transactions_total") == 2 and caught_up(s))
        assert s.get("applier_barriers_total") == 2 and s.get("applier_big_transactions_total") == 1
        assert s.get("applier_rows_total") == BIG_ROWS + 1
    finally:
        row.release()
        table.release()
        stop(app)


def test_json_log_lines(source, target, dbname, tmp_path):
    cfg = make_config(source, target, dbname)
    path = tmp_path / "json.toml"
    from tests.support import config_toml

    path.write_text(config_toml(cfg))
    source.execute(f"CREATE DATABASE {dbname}")
    out = run_cli("--log-format", "json", "-v", "run", "--config", str(path))
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stderr.splitlines() if line.strip()]
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    assert source.password not in out.stderr

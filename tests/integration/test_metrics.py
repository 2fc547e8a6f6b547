"""Prometheus metrics of a running applier, scraped under load on real servers: the
counters move, lag and the workers' queues show the backlog and come back to 0 once
caught up; `--log-format json` gives one JSON object per log line."""

from __future__ import annotations

import json
import re
import signal
import time
import urllib.request

from applier.harness import sandbox, workload
from tests.appliers import Applier
from tests.integration.test_cli_errors import run_cli
from tests.support import make_config, render_toml

_SAMPLE = re.compile(r'^([a-z_]+)(\{[^}]*\})? ([-0-9.e+]+)$')


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m:
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def config_file(tmp_path, source, target, db, port):
    cfg = make_config(source, target, db, workers=3, stop_at_end=False)
    sc, tc = cfg.source, cfg.target
    path = tmp_path / "metrics.toml"
    path.write_text(render_toml({
        "source": {"host": sc.host, "port": sc.port, "user": sc.user, "password": sc.password,
                   "start_file": sc.start_file, "start_pos": sc.start_pos, "heartbeat_seconds": 1.0},
        "target": {"host": tc.host, "port": tc.port, "user": tc.user, "password": tc.password,
                   "checkpoint_schema": tc.checkpoint_schema},
        "apply": {"databases": [db], "workers": 3},
        "metrics": {"listen": f"127.0.0.1:{port}"},
    }))
    return path


def test_metrics_move_under_load_and_settle_when_caught_up(source, target, dbname, tmp_path):
    port = sandbox.free_port()
    path = config_file(tmp_path, source, target, dbname, port)
    sc = source.server_config()
    workload.prepare(sc, dbname, tables=2, rows=300)
    app = Applier(path, log_dir=tmp_path, name="metrics")
    try:
        deadline = time.monotonic() + 60
        while True:  # the endpoint answers once the applier started
            try:
                first = scrape(port)
                break
            except OSError:
                assert time.monotonic() < deadline and app.proc.poll() is None, app.describe()
                time.sleep(0.2)
        workload.run(sc, dbname, "uniform", 1500, 4, tables=2, rows=300)
        # `applier status` of a running applier with [metrics] listen: its live figures
        out = run_cli("status", "--json", "--config", str(path))
        assert out.returncode == 0, out.stderr
        live = json.loads(out.stdout)["live"]
        assert live["listen"] == f"127.0.0.1:{port}" and not live["error"], live
        assert len(live["in_flight"]) == 3 and live["rate"] is not None and live["rate"] >= 0, live
        assert live["waiting"] is not None and live["transactions"] is not None, live
        out = run_cli("status", "--config", str(path))
        assert f"live (127.0.0.1:{port}):  " in out.stdout and "transactions/s" in out.stdout, out.stdout
        seen_lag = seen_queue = False
        deadline = time.monotonic() + 120
        while True:
            m = scrape(port)
            seen_lag |= m.get("applier_lag_seconds", 0) > 0
            seen_queue |= any(v > 0 for k, v in m.items() if k.startswith("applier_worker_in_flight"))
            if m.get("applier_transactions_total", 0) >= 1500 + first.get("applier_transactions_total", 0):
                break
            assert time.monotonic() < deadline, m
            time.sleep(0.05)
        time.sleep(1.5)  # idle: caught up
        m = scrape(port)
        assert m["applier_lag_seconds"] == 0
        assert all(v == 0 for k, v in m.items() if k.startswith("applier_worker_in_flight"))
        assert m["applier_waiting_transactions"] == 0
        assert m["applier_rows_total"] > m["applier_transactions_total"] > 0
        assert m['applier_batch_transactions_bucket{le="+Inf"}'] > 0
        assert m.get("applier_behind_bytes", 0) == 0
        assert any(k.startswith("applier_position_info{") for k in m)
        assert seen_lag or seen_queue, "the backlog never showed"
    finally:
        app.signal(signal.SIGTERM, group=False)
        assert app.wait() == 0, app.describe()
    out = run_cli("status", "--config", str(path))  # stopped: no live figures to read
    assert "not running" in out.stdout and "live (" not in out.stdout, out.stdout


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

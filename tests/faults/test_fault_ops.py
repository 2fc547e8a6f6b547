"""Faults around the commands besides the data path, on servers of this module's own
(global settings change; connections are cut):

* the checkpoint lock outlives the server's ``wait_timeout`` (its keep-alive), where an
  idle connection does not;
* ``status``, ``takeover``, ``handback`` (and ``run`` taking the lock) with a target that
  refuses connections (stopped), or whose connection the fault proxy cuts in the middle
  of a command, and ``status`` with the source cut: one ``error:`` line, exit 4, nothing
  changed, never a traceback;
* every connection the applier opens has TCP keepalive: a silent network partition (the
  peer's kernel answers nothing: a private network namespace whose loopback goes down)
  fails a blocked read within the dead-peer time, while a statement that runs longer
  than that on a healthy network is not cut. (The fault proxy's ``hold`` cannot show
  this: its kernel acknowledges every probe, exactly like a server busy with a long
  statement, so no client can tell the two apart, and none should cut it.)
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from applier.config import TargetConfig
from applier.db import connect as connect_mod
from applier.errors import Busy, ConnectError, TargetLost
from applier.pipeline import lock as lock_mod
from applier.pipeline.lock import CheckpointLock
from tests.faults import faultlib as fl
from tests.integration.test_cli_errors import run_cli

REPO = Path(__file__).resolve().parents[2]
SCHEMA = "ckpt_ops"


def _target_cfg(target, schema: str) -> TargetConfig:
    tc = target.server_config()
    return TargetConfig(host=tc.host, port=tc.port, user=tc.user, password=tc.password,
                        checkpoint_schema=schema, ssl_mode="disabled")


# ---- the lock and the server's wait_timeout -----------------------------------------------


def test_the_lock_outlives_the_servers_wait_timeout(running_target):
    target = running_target
    cfg = _target_cfg(target, "ckpt_idle")
    name = lock_mod.lock_name(cfg.checkpoint_schema)
    target.execute("SET GLOBAL wait_timeout = 2")
    try:
        idle = target.connect()  # the control: an ordinary idle connection is dropped
        lock = CheckpointLock(cfg)
        try:
            time.sleep(6)  # three times the server's wait_timeout
            holder = target.query("SELECT IS_USED_LOCK(%s)", (name,))[0][0]
            assert holder is not None and int(holder) == lock.conn.thread_id(), \
                "the server dropped the lock's connection: a second applier could start"
            lock.check()
            with pytest.raises(Busy):
                CheckpointLock(cfg, "applier handback")
        finally:
            lock.release()
        with pytest.raises(Exception) as dropped:
            idle.cursor().execute("SELECT 1")
        assert dropped.value.args[0] in (2006, 2013, 4031), dropped.value
    finally:
        target.execute("SET GLOBAL wait_timeout = 28800")


# ---- commands with a target or source that fails --------------------------------------------


@pytest.fixture(scope="module")
def applied(own_pair, tmp_path_factory):
    """A small backlog applied by ``applier run --stop-at-end`` into checkpoint schema
    SCHEMA: (source, target, config sections)."""
    source, target = own_pair
    db = "ops_db"
    start = source.binlog_position()
    source.execute(f"CREATE DATABASE {db}")
    source.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT)")
    source.execute(f"INSERT INTO {db}.t VALUES (1, 1), (2, 2)")
    secs = fl.sections(source, target, [db], start=start, schema=SCHEMA, workers=2)
    config = fl.write(tmp_path_factory.mktemp("ops") / "applier.toml", secs)
    out = run_cli("run", "--config", str(config), "--stop-at-end")
    assert out.returncode == 0, out.stderr
    return source, target, secs


def _rows(target):
    return target.query(f"SELECT worker, watermark, watermark_file, done, state FROM `{SCHEMA}`.checkpoint "
                        "ORDER BY worker")


def _through(secs: dict, role: str, proxy) -> dict:
    out = {k: dict(v) for k, v in secs.items()}
    out[role].update(host="127.0.0.1", port=proxy.port, ssl_mode="disabled")
    return out


def _column(name: bytes):
    """A matcher for the column definition packet of a result set naming ``name``."""
    return lambda payload: name in payload and payload[:4] == b"\x03def"


def test_commands_with_a_target_that_refuses_connections(applied, proxies, tmp_path):
    source, target, secs = applied
    proxy = proxies(target)
    proxy.refuse(None)  # as a stopped server: ECONNREFUSED
    config = fl.write(tmp_path / "refused.toml", _through(secs, "target", proxy))
    before = _rows(target)
    for command in ("status", "takeover", "handback"):
        out = run_cli(command, "--config", str(config))
        fl.error_line(out.stderr, out.returncode, ConnectError.exit_code, "target server at",
                      "not reachable", "[target] host/port", secrets=(source.password, target.password),
                      stdout=out.stdout)
    assert _rows(target) == before


CUTS = [
    (["status"], b"watermark_file", 1, ("lost the connection to the target", "applier status")),
    (["takeover"], b"Slave_IO_Running", 1, ("lost the connection to the target", "SHOW SLAVE STATUS",
                                            "run the command again")),
    (["takeover"], b"GET_LOCK(", 1, ("lost the connection to the target", "checkpoint lock")),
    (["handback"], b"watermark_file", 1, ("lost the connection to the target", "applier handback")),
    # run: the coordinator reconnects ([target] reconnect_attempts = 2): a third cut ends it
    (["run", "--stop-at-end"], b"GET_LOCK(", 3, ("lost the connection to the target", "checkpoint lock")),
]


@pytest.mark.parametrize(("command", "column", "cuts", "fragments"), CUTS,
                         ids=[f"{c[0][0]}-{c[1].decode().strip('(')}" for c in CUTS])
def test_a_target_connection_cut_midway_is_one_line(applied, proxies, tmp_path, command, column, cuts,
                                                    fragments):
    source, target, secs = applied
    proxy = proxies(target)
    proxy.cut_before(*[_column(column)] * cuts)
    config = fl.write(tmp_path / "cut.toml", _through(secs, "target", proxy))
    before = _rows(target)
    out = run_cli(*command, "--config", str(config))
    assert proxy.matched_cuts == cuts, (proxy.counters, out.stderr)
    fl.error_line(out.stderr, out.returncode, TargetLost.exit_code, *fragments,
                  secrets=(source.password, target.password), stdout=out.stdout)
    assert _rows(target) == before, f"{command} changed the checkpoint"


def test_status_with_the_source_cut_midway_is_one_line(applied, proxies, tmp_path):
    source, target, secs = applied
    proxy = proxies(source)
    proxy.cut_before(_column(b"File_size"))  # SHOW BINARY LOGS
    config = fl.write(tmp_path / "source-cut.toml", _through(secs, "source", proxy))
    out = run_cli("status", "--config", str(config))
    assert proxy.matched_cuts == 1, (proxy.counters, out.stderr)
    fl.error_line(out.stderr, out.returncode, ConnectError.exit_code, "lost the connection to the source",
                  "applier status", secrets=(source.password, target.password), stdout=out.stdout)
    healthy = run_cli("status", "--config", str(fl.write(tmp_path / "direct.toml", secs)))
    assert healthy.returncode == 0, healthy.stderr


# ---- TCP keepalive: a dead peer, a long statement ---------------------------------------------


def test_connections_have_tcp_keepalive(running_target):
    conn = connect_mod.connect(_target_cfg(running_target, SCHEMA), "target")
    try:
        sock = socket.socket(fileno=os.dup(conn.fileno()))
        with sock:
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == connect_mod.KEEPALIVE_IDLE
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == connect_mod.KEEPALIVE_INTERVAL
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == connect_mod.KEEPALIVE_COUNT
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == \
                connect_mod.DEAD_PEER_SECONDS * 1000
        assert connect_mod.KEEPALIVE_IDLE + connect_mod.KEEPALIVE_INTERVAL * connect_mod.KEEPALIVE_COUNT <= 120
    finally:
        conn.close()


# The helper process: two connections to the server are opened, then the process moves
# into a network namespace of its own (CLONE_NEWNET) with a forwarder on its loopback;
# ``connect()`` goes through the forwarder. The keepalive times are shortened (the
# mechanism is the subject here; test_connections_have_tcp_keepalive checks the real
# values). First a statement that runs longer than the dead-peer time completes; then
# the namespace's loopback goes down under a blocked statement: nothing answers any more.
PARTITION = """
    import ctypes, json, os, socket, subprocess, sys, threading, time
    from applier.config import TargetConfig
    from applier.db import connect as c
    c.KEEPALIVE_IDLE, c.KEEPALIVE_INTERVAL, c.KEEPALIVE_COUNT, c.DEAD_PEER_SECONDS = 2, 1, 3, 6
    port = int(sys.argv[1])
    upstream = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
    if ctypes.CDLL(None, use_errno=True).unshare(0x40000000) != 0:  # CLONE_NEWNET
        print(json.dumps({"unshare": os.strerror(ctypes.get_errno())}))
        sys.exit(0)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)

    def pump(a, b):
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass

    def serve():
        for up in upstream:
            client, _ = listener.accept()
            for a, b in ((client, up), (up, client)):
                threading.Thread(target=pump, args=(a, b), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    cfg = TargetConfig(host="127.0.0.1", port=listener.getsockname()[1], user=os.environ["T_USER"],
                       password=os.environ["T_PASSWORD"], ssl_mode="disabled")
    out = {}

    def timed(conn, sql, key):
        began = time.monotonic()
        try:
            conn.cursor().execute(sql)
            out[key] = "ok"
        except Exception as e:
            out[key] = f"{type(e).__name__}: {e}"
        out[key + "_seconds"] = round(time.monotonic() - began, 1)

    timed(c.connect(cfg, "target"), "SELECT SLEEP(9)", "long")  # longer than the dead-peer time
    blocked = c.connect(cfg, "target")
    worker = threading.Thread(target=timed, args=(blocked, "SELECT SLEEP(120)", "partitioned"), daemon=True)
    worker.start()
    time.sleep(1)
    subprocess.run(["ip", "link", "set", "lo", "down"], check=True)
    worker.join(40)
    if worker.is_alive():
        out["partitioned"] = "still blocked after 40 s"
    print(json.dumps(out), flush=True)
"""


def test_a_silent_partition_fails_a_blocked_read_and_a_long_statement_is_not_cut(running_target):
    env = {**os.environ, "T_USER": running_target.user, "T_PASSWORD": running_target.password}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(PARTITION), str(running_target.port)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if "unshare" in out:  # no private network namespace here (not root, or no CAP_SYS_ADMIN)
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
            pytest.fail(f"cannot make a network namespace ({out['unshare']}) under CI")
        pytest.skip(f"cannot make a network namespace: {out['unshare']}")
    assert out["long"] == "ok", out
    assert out["long_seconds"] >= 9, out
    assert "2013" in out["partitioned"], out  # "Lost connection to server during query"
    assert out["partitioned_seconds"] < 20, out

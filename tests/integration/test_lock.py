"""The one-applier-per-target lock (``lock_mod.CheckpointLock``) on a real server: a
live holder is refused promptly, a lost lock is noticed by its holder (``check()``
raises), and a lock whose holder cannot use it any more (frozen, cut off) is taken once
the server ends that session, without an exit 9, within a bounded wait.

Session ``target`` (nothing global changes; each test has its own checkpoint schema);
helpers run as subprocesses: a lock holder that freezes itself (SIGSTOP), and a fault
proxy that freezes (a silent network: the server never learns that the client left).
The server's global wait_timeout is the business of tests/faults/test_fault_ops.py.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from applier.config import TargetConfig
from applier.errors import Busy, TargetLost
from applier.pipeline import lock as lock_mod
from applier.pipeline.lock import CheckpointLock

pytestmark = pytest.mark.flavors("mariadb", "mysql")  # MariaDB -> MariaDB, MySQL -> MySQL

REPO = Path(__file__).resolve().parents[2]
WAIT = 40.0


def _cfg(target, dbname: str, port: int | None = None) -> TargetConfig:
    tc = target.server_config()
    return TargetConfig(host=tc.host, port=port or tc.port, user=tc.user, password=tc.password,
                        checkpoint_schema=f"ckpt_{dbname}", ssl_mode="disabled")


def _holder(target, cfg: TargetConfig) -> int | None:
    value = target.query("SELECT IS_USED_LOCK(%s)", (lock_mod.lock_name(cfg.checkpoint_schema),))[0][0]
    return None if value is None else int(value)


def _wait(what: str, predicate, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out after {timeout:g}s waiting for {what}"
        time.sleep(0.05)
    return value


def _python(script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), *args], cwd=REPO,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, **(env or {})})


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


def test_a_live_holder_is_refused_promptly_and_its_release_frees_the_lock(target, dbname):
    cfg = _cfg(target, dbname)
    first = CheckpointLock(cfg)
    try:
        assert _holder(target, cfg) == first.conn.thread_id()
        began = time.monotonic()
        with pytest.raises(Busy) as refused:
            CheckpointLock(cfg, "applier takeover")
        assert time.monotonic() - began < 10, "a second applier beside a live one waited too long"
        message = str(refused.value)
        assert f"connection {first.conn.thread_id()}" in message and "applier takeover" in message, message
        assert cfg.password not in message
        first.check()  # still ours
    finally:
        first.release()
    began = time.monotonic()
    with CheckpointLock(cfg) as second:
        assert time.monotonic() - began < 5
        assert _holder(target, cfg) == second.conn.thread_id()


def test_a_lock_whose_connection_is_killed_is_noticed_by_its_holder(target, dbname):
    """The server drops the lock's connection (KILL here; wait_timeout, a restart): the
    holder's ``check()`` raises TargetLost (exit 4: a restart resumes from the
    checkpoint) within a few seconds, instead of going on unprotected."""
    cfg = _cfg(target, dbname)
    lock = CheckpointLock(cfg)
    try:
        target.execute(f"KILL CONNECTION {lock.conn.thread_id()}")
        _wait("the holder to notice its lost lock", lambda: lock.lost is not None,
              lock_mod.KEEPALIVE_SECONDS + lock_mod.LOCK_READ_SECONDS + 5)
        with pytest.raises(TargetLost) as lost:
            lock.check()
        message = str(lost.value)
        assert lost.value.exit_code == 4
        assert "checkpoint lock" in message and cfg.describe() in message, message
        assert cfg.password not in message
    finally:
        lock.release()
    with CheckpointLock(cfg) as again:  # a reconnect takes it again at once
        assert _holder(target, cfg) == again.conn.thread_id()


HOLDER = """
    import os, signal, sys, time
    from applier.config import TargetConfig
    from applier.pipeline import lock as lock_mod
    lock_mod.LOCK_SESSION_SECONDS = int(sys.argv[4])  # a short life for the test
    host, port, schema = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    cfg = TargetConfig(host=host, port=port, user=os.environ["LOCK_USER"],
                       password=os.environ["LOCK_PASSWORD"], checkpoint_schema=schema,
                       ssl_mode="disabled")
    lock = lock_mod.CheckpointLock(cfg)
    print(lock.conn.thread_id(), flush=True)
    os.kill(os.getpid(), signal.SIGSTOP)  # frozen: the keep-alive stops too
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            lock.check()
        except Exception as e:
            print(type(e).__name__, e.exit_code, e, flush=True)
            sys.exit(0)
        time.sleep(0.1)
    print("the lost lock was not noticed", flush=True)
    sys.exit(1)
"""


def test_a_frozen_holders_lock_is_taken_once_its_session_ends(target, dbname):
    """An applier that stopped using its lock (frozen here; a partition looks the same
    to the server) holds it until the server ends its session (the lock session's own
    wait_timeout, 60 s; 6 s for this holder). The next applier waits for that (bounded)
    rather than exit 9, and the frozen one, when it wakes, stops (TargetLost)."""
    cfg = _cfg(target, dbname)
    session_seconds = 6
    holder = _python(HOLDER, cfg.host, str(cfg.port), cfg.checkpoint_schema, str(session_seconds),
                     env={"LOCK_USER": cfg.user, "LOCK_PASSWORD": cfg.password})
    try:
        first_id = int(holder.stdout.readline() or 0)
        assert first_id, holder.stderr.read()
        assert _holder(target, cfg) == first_id
        began = time.monotonic()
        with CheckpointLock(cfg) as lock:
            took = time.monotonic() - began
            assert _holder(target, cfg) == lock.conn.thread_id()
        assert 2 < took < session_seconds + lock_mod.STALE_SECONDS + 10, took
        holder.send_signal(signal.SIGCONT)
        out, err = holder.communicate(timeout=WAIT)
        assert holder.returncode == 0, (out, err)
        assert out.startswith("TargetLost 4 lost the connection to the target"), (out, err)
        assert cfg.password not in out + err
    finally:
        if holder.poll() is None:
            holder.send_signal(signal.SIGCONT)
        _stop(holder)


FORWARDER = """
    import sys, time
    from tests.faults.proxy import FaultProxy
    proxy = FaultProxy("127.0.0.1", int(sys.argv[1]))
    print(proxy.port, flush=True)
    time.sleep(300)
"""


def test_a_lock_session_this_process_gave_up_is_ended_when_it_takes_the_lock_again(target, dbname):
    """A silent network between the applier and the target (a forwarder that freezes):
    the lock's keep-alive gets no answer, the lock counts as lost, the applier gives its
    session up; the server never learns it (it still holds the lock). Taking the lock
    again (the coordinator's reconnect) ends that session of its own at once instead of
    waiting up to a minute for the server to drop it, or exiting 9."""
    forwarder = _python(FORWARDER, str(target.port))
    try:
        port = int(forwarder.stdout.readline() or 0)
        assert port, forwarder.stderr.read()
        cut_off = dataclasses.replace(_cfg(target, dbname), port=port)
        first = CheckpointLock(cut_off)
        first_id = first.conn.thread_id()
        forwarder.send_signal(signal.SIGSTOP)
        _wait("the lost lock to be noticed", lambda: first.lost is not None,
              2 * lock_mod.KEEPALIVE_SECONDS + lock_mod.LOCK_READ_SECONDS + 10)
        with pytest.raises(TargetLost):
            first.check()
        first.release()
        assert _holder(target, cut_off) == first_id, "the server should still hold the old session"
        began = time.monotonic()
        with CheckpointLock(_cfg(target, dbname)) as again:
            assert time.monotonic() - began < 8, "waited for the server instead of ending its own session"
            assert _holder(target, cut_off) == again.conn.thread_id()
        ids = [int(r[0]) for r in target.query("SELECT ID FROM information_schema.PROCESSLIST")]
        assert first_id not in ids
    finally:
        forwarder.send_signal(signal.SIGCONT)
        _stop(forwarder)

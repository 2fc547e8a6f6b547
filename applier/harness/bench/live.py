"""The contenders of `applier bench --steady`, applying live on one shared target.

The target is a native replica of the source throughout; a contender takes it over and
gives it back, so no data is copied between contenders:

* ``NativeLive``: ``STOP SLAVE``, ``SET GLOBAL slave_parallel_threads`` /
  ``slave_parallel_mode``, ``START SLAVE``. Giving back: nothing (it keeps running).
* ``ApplierLive``: ``applier takeover`` (stops the native threads, records their exact
  position as the applier's start), ``applier run`` as a child process until told to
  stop (SIGTERM: it lets its workers commit and exits 0), then ``applier handback``
  (points the native replica at the applier's exact position and starts it). The
  commands are the project's own CLI, run as subprocesses, so the applier's CPU and
  memory are its own; its CPU is read from ``/proc`` (the live process tree), its peak
  RSS sampled every 0.2 s.

A killed bench leaves nothing running: ``applier run`` is started through ``setpriv
--pdeathsig TERM`` from the main thread (like the sandbox's servers), so it stops when
the bench process dies, and its workers die with it (their own PDEATHSIG).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import MySQLdb

from ... import config
from ...db.replica import Replica
from ...errors import ApplierError
from ...pipeline import checkpoint
from .. import sandbox
from ..configfile import config_toml, private_file
from .contenders import _proc_cpu, _tree_rss, point_native

STOP_SECONDS = 120.0  # for `applier run` to stop cleanly after SIGTERM


def spawn(cmd: list[str], out: Path) -> subprocess.Popen:
    """Start ``cmd`` with stdout+stderr to ``out``; when this process dies, it gets
    SIGTERM (setpriv --pdeathsig, when available and called from the main thread)."""
    wrap = shutil.which("setpriv")
    if wrap and threading.current_thread() is threading.main_thread():
        cmd = [wrap, "--pdeathsig", "TERM", "--", *cmd]
    with open(out, "ab") as f:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT)


def tree_cpu(pid: int) -> float:
    """user+sys seconds of ``pid`` and its live descendants."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += _proc_cpu(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total


def change_master(target: sandbox.LocalServer, source: sandbox.LocalServer, at: tuple[str, int]) -> None:
    """Make ``target`` a (stopped) native replica of ``source`` from ``at``, by file/position."""
    conn = target.connect()
    try:
        point_native(source, Replica(conn, target.flavor, f"target {target.name}"), at)
    finally:
        conn.close()


def _slave_status(target: sandbox.LocalServer) -> dict[str, Any]:
    cur = target._cached().cursor(MySQLdb.cursors.DictCursor)  # noqa: SLF001
    try:
        cur.execute("SHOW SLAVE STATUS")
        row = cur.fetchone() or {}
    finally:
        cur.close()
    return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in row.items()}


def native_health(target: sandbox.LocalServer) -> None:
    """Raise if the native replica stopped on an error."""
    st = _slave_status(target)
    if st.get("Last_SQL_Errno") or st.get("Last_IO_Errno"):
        raise ApplierError(f"native replica stopped: {st.get('Last_SQL_Error') or st.get('Last_IO_Error')}")


def stop_native(target: sandbox.LocalServer, timeout: float = 120.0) -> dict:
    """STOP SLAVE and wait until both threads stopped; the status after."""
    target.execute("STOP SLAVE")
    deadline = time.monotonic() + timeout
    while True:
        st = _slave_status(target)
        if st.get("Slave_SQL_Running") != "Yes" and st.get("Slave_IO_Running") != "Yes":
            return st
        if time.monotonic() > deadline:
            raise ApplierError(f"the native replica did not stop within {timeout:g}s")
        time.sleep(0.05)


def start_native(target: sandbox.LocalServer, threads: int, mode: str) -> None:
    """(Re)start the native replica with ``threads`` parallel threads (0: single)."""
    stop_native(target)
    target.execute(f"SET GLOBAL slave_parallel_threads = {int(threads)}")
    target.execute("SET GLOBAL slave_parallel_mode = %s", (mode if threads else "conservative",))
    target.execute("START SLAVE")
    deadline = time.monotonic() + 30
    while _slave_status(target).get("Slave_SQL_Running") != "Yes":
        native_health(target)
        if time.monotonic() > deadline:
            raise ApplierError("the native replica's SQL thread did not start within 30s")
        time.sleep(0.05)


class NativeLive:
    """The server's own replica, single-threaded or with N parallel threads."""

    def __init__(self, target: sandbox.LocalServer, threads: int, mode: str) -> None:
        self.target, self.threads, self.mode = target, threads, mode

    def activate(self) -> None:
        start_native(self.target, self.threads, self.mode)

    def health(self) -> None:
        native_health(self.target)

    def cpu(self) -> float | None:
        return None  # the replica's threads are the target's: counted in its CPU

    def coordinator_cpu(self) -> float | None:
        return None

    def peak_rss(self) -> int | None:
        return None

    def applied(self, end: tuple[str, int]) -> bool:
        """The SQL thread executed everything up to ``end`` (the source's binlog position)."""
        st = _slave_status(self.target)
        return (st.get("Relay_Master_Log_File") or "", int(st.get("Exec_Master_Log_Pos") or 0)) >= end

    def deactivate(self) -> None:
        pass

    def kill(self) -> None:
        pass


class ApplierLive:
    """``applier takeover`` / ``run`` / ``handback`` with N workers and a policy."""

    def __init__(self, source: sandbox.LocalServer, target: sandbox.LocalServer, workers: int,
                 policy: str, workdir: Path, *, ordered: bool = False, verify: bool = False) -> None:
        self.target = target
        self._conn = None  # for applied(): the checkpoint table
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        sc, tc = source.server_config(), target.server_config()
        self.cfg = config.Config(
            source=config.SourceConfig(host=sc.host, port=sc.port, user=sc.user, password=sc.password),
            target=config.TargetConfig(host=tc.host, port=tc.port, user=tc.user, password=tc.password),
            apply=config.ApplyConfig(workers=workers, policy=policy, preserve_commit_order=ordered,
                                     verify_before_image=verify),
        )
        self.path = self.workdir / "applier.toml"
        private_file(config_toml(self.cfg), self.path)
        self.log = self.workdir / "applier.log"
        self.proc: subprocess.Popen | None = None
        self._peak = 0
        self._stop_sampler = threading.Event()
        self._sampler: threading.Thread | None = None

    def cli(self, *args: str, timeout: float = 300.0) -> str:
        """``applier ARGS --config F``, to completion; its output (an error if it failed)."""
        out = subprocess.run([sys.executable, "-m", "applier.cli", *args, "-c", str(self.path)],
                             capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if out.returncode != 0:
            raise ApplierError(f"applier {args[0]} exited with {out.returncode}: "
                               f"{(out.stdout + out.stderr).strip()[-2000:]}")
        return out.stdout.strip()

    def activate(self) -> None:
        self.cli("takeover")
        self.proc = spawn([sys.executable, "-m", "applier.cli", "run", "-c", str(self.path)], self.log)
        self._sampler = threading.Thread(target=self._sample, name="applier-rss", daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        while not self._stop_sampler.is_set() and self.proc is not None:
            self._peak = max(self._peak, _tree_rss(self.proc.pid))
            self._stop_sampler.wait(0.2)

    def _log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace").strip()[-2000:]
        except OSError:
            return ""

    def health(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise ApplierError(f"applier run exited with {self.proc.returncode}: {self._log_tail()}")

    def cpu(self) -> float | None:
        return tree_cpu(self.proc.pid) if self.proc is not None else None

    def coordinator_cpu(self) -> float | None:
        """The coordinator process alone (``cpu`` minus this: its workers)."""
        return _proc_cpu(self.proc.pid) if self.proc is not None else None

    def peak_rss(self) -> int | None:
        return self._peak

    def applied(self, end: tuple[str, int]) -> bool:
        """Every transaction up to ``end`` committed: the checkpoint's exact position (the
        coordinator records it once every worker has committed, when idle) is there, with
        nothing committed beyond it out of order."""
        if self._conn is None:
            self._conn = self.target.connect()
        rec = checkpoint.load(self._conn, self.cfg.target.checkpoint_schema)
        return rec.start is not None and not rec.done and (rec.start.file, rec.start.pos) >= end

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(MySQLdb.Error):
                conn.close()

    def deactivate(self) -> None:
        """Stop ``applier run`` cleanly (SIGTERM, exit 0), then ``applier handback``."""
        self._close()
        proc, self.proc = self.proc, None
        self._stop_sampler.set()
        if self._sampler is not None:
            self._sampler.join()
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise ApplierError(f"applier run did not stop within {STOP_SECONDS:g}s of SIGTERM") from None
        if proc.returncode != 0:
            raise ApplierError(f"applier run exited with {proc.returncode}: {self._log_tail()}")
        self.cli("handback")

    def kill(self) -> None:
        """Cleanup after an error: stop ``applier run`` whatever state it is in."""
        self._close()
        proc, self.proc = self.proc, None
        self._stop_sampler.set()
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

"""Running ``applier`` as a subprocess in tests: its own process group, kill it, wait
for it, make sure nothing of it survives; and read how much it applied."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import MySQLdb

from tests.support import proc_stats

APPLIER = [sys.executable, "-m", "applier.cli"]
EXIT_SECONDS = 30  # bound on any wait for an applier process to exit
REPO = Path(__file__).resolve().parents[1]


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        with contextlib.suppress(OSError):
            out += [int(x) for x in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
    return out


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _live_in_group(pgid: int) -> list[int]:
    """Processes of process group ``pgid`` that are still running (zombies excluded)."""
    return [pid for pid, fields in proc_stats() if int(fields[2]) == pgid and fields[0] not in ("Z", "X")]


class Applier:
    """``applier run`` (or ``command``) as a subprocess in its own process group (pgid = pid)."""

    def __init__(self, config: Path, *args: str, log_dir: Path, name: str, command: str = "run",
                 verbose: bool = False) -> None:
        self.out_path = log_dir / f"{name}.out"
        self.err_path = log_dir / f"{name}.err"
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                [*APPLIER, *(["-v"] if verbose else []), command, "--config", str(config), *args],
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True,
                cwd=REPO,
            )
        self.pid = self.proc.pid

    @property
    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def workers(self, expected: int, timeout: float = 30) -> list[int]:
        """The worker processes' pids, once ``expected`` of them run."""
        deadline = time.monotonic() + timeout
        while True:
            found = [c for c in _children(self.pid) if b"spawn_main" in _cmdline(c)]
            if len(found) >= expected:
                return found
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"expected {expected} workers, found {found}; {self.describe()}")
            time.sleep(0.05)

    def signal(self, sig: int, *, group: bool) -> None:
        if group:
            os.killpg(self.pid, sig)
        else:
            os.kill(self.pid, sig)

    def wait(self, timeout: float = EXIT_SECONDS) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill_all()
            raise AssertionError(f"applier did not exit within {timeout:g}s; {self.describe()}") from None

    def kill_all(self) -> None:
        """SIGKILL the whole group and reap the coordinator (cleanup; idempotent)."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)

    def assert_gone(self, timeout: float = 10) -> None:
        """Nothing of this applier runs any more: no orphan worker can commit later."""
        deadline = time.monotonic() + timeout
        while True:
            alive = _live_in_group(self.pid)
            if not alive:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"processes of the applier survive: {alive}")
            time.sleep(0.05)

    def describe(self) -> str:
        return f"exit {self.proc.poll()}, stdout {self.stdout[-1500:]!r}, stderr {self.stderr[-3000:]!r}"


def applied(target, schema: str) -> int:
    """Transactions applied so far according to the checkpoint rows (0 before any)."""
    try:
        rows = target.query(f"SELECT COALESCE(SUM(transactions), 0) FROM `{schema}`.checkpoint")
    except (MySQLdb.ProgrammingError, MySQLdb.OperationalError) as e:
        if e.args[0] in (1049, 1146):  # no checkpoint schema/table yet (MySQL: OperationalError)
            return 0
        raise
    return int(rows[0][0])


def wait_for(what: str, predicate, timeout: float, app: Applier | None = None, pause: float = 0.02):
    """Poll ``predicate`` until it is truthy (its value) or ``timeout`` seconds are up; an
    ``app`` that exits meanwhile fails the wait at once, with its output."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if app is not None and app.proc.poll() is not None:
            raise AssertionError(f"applier exited while waiting for {what}; {app.describe()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}"
                                 + (f"; {app.describe()}" if app is not None else ""))
        time.sleep(pause)

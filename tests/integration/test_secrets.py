"""Passwords from the environment, from a file and from ``APPLIER_*_PASSWORD``, against the
real session servers: ``applier -vv run`` / ``status`` / ``check`` work, and the password
appears nowhere: not in stdout or stderr (logs at debug level, the JSON summary, error
lines), not in the command line (``/proc/<pid>/cmdline``) of the applier or its workers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from applier.errors import ConfigError, ConnectError
from tests import appliers
from tests.appliers import applied
from tests.support import assert_same, proc_stats
from tests.support import render_toml as render

pytestmark = pytest.mark.flavors("mariadb", "mysql")  # MariaDB -> MariaDB, MySQL -> MySQL

APPLIER = [sys.executable, "-m", "applier.cli"]
TIMEOUT = 120  # seconds: any one CLI call
REPO = Path(__file__).resolve().parents[2]
WRONG = "Wr0ng-Pa55word-kT4z"  # in the file when the environment must win over it
MODES = ["password_env", "password_file", "APPLIER_ROLE_PASSWORD"]


def clean_environ(**extra: str) -> dict[str, str]:
    """This process's environment without APPLIER_* variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIER_")}
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*APPLIER, *args], capture_output=True, text=True, timeout=TIMEOUT,
                          stdin=subprocess.DEVNULL, cwd=REPO, env=env)


def assert_hidden(text: str, secrets: tuple[str, ...], what: str) -> None:
    for secret in secrets:
        assert secret not in text, f"a password appears in {what}"


class Setup:
    """A config for database ``db`` whose passwords come the way ``mode`` says."""

    def __init__(self, source, target, db: str, tmp_path: Path, mode: str) -> None:
        self.source, self.target, self.db, self.tmp_path = source, target, db, tmp_path
        self.schema = f"ckpt_{db}"
        sc, tc = source.server_config(), target.server_config()
        file, pos = source.binlog_position()
        self.sections: dict[str, dict] = {
            "source": {"host": sc.host, "port": sc.port, "user": sc.user,
                       "start_file": file, "start_pos": pos, "reconnect_attempts": 1,
                       "reconnect_backoff_seconds": 0.1},
            "target": {"host": tc.host, "port": tc.port, "user": tc.user,
                       "checkpoint_schema": self.schema},
            "apply": {"databases": [db], "workers": 2, "adapt_workers": False},  # both started
        }
        self.secrets: tuple[str, ...] = (sc.password, tc.password, WRONG)
        self.env: dict[str, str] = {}
        for role, password in (("source", sc.password), ("target", tc.password)):
            section = self.sections[role]
            if mode == "password_env":
                var = f"MTS_TEST_{role.upper()}_PW"
                section["password_env"] = var
                self.env[var] = password
            elif mode == "password_file":
                path = tmp_path / f"{role}.password"
                path.write_text(password + "\n")
                path.chmod(0o600)
                section["password_file"] = str(path)
            else:  # the environment overrides a (wrong) password in the file
                section["password"] = WRONG
                self.env[f"APPLIER_{role.upper()}_PASSWORD"] = password
        self.path = tmp_path / "applier.toml"
        self.write()

    def write(self) -> None:
        self.path.write_text(render(self.sections))
        self.path.chmod(0o600)

    def environ(self, **extra: str) -> dict[str, str]:
        return clean_environ(**{**self.env, **extra})

    def backlog(self, rows: int = 30) -> None:
        cur = self.source.connect().cursor()
        cur.execute(f"CREATE DATABASE IF NOT EXISTS `{self.db}`")
        cur.execute(f"CREATE TABLE IF NOT EXISTS `{self.db}`.t (id INT PRIMARY KEY, v VARCHAR(20))")
        for _ in range(rows):
            cur.execute(f"INSERT INTO `{self.db}`.t (id, v) SELECT COALESCE(MAX(id), 0) + 1, 'x' "
                        f"FROM `{self.db}`.t")


@pytest.fixture(params=MODES)
def setup(request, source, target, dbname, tmp_path) -> Setup:
    return Setup(source, target, dbname, tmp_path, request.param)


def test_run_status_check_with_hidden_password(setup):
    setup.backlog()
    env = setup.environ()
    result = run_cli("-vv", "run", "--config", str(setup.path), "--stop-at-end", env=env)
    shown = f"exit {result.returncode}\nstdout: {result.stdout[-2000:]!r}\nstderr: {result.stderr[-3000:]!r}"
    assert result.returncode == 0, shown
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["transactions"] >= 30, shown
    assert_hidden(result.stdout + result.stderr, setup.secrets, "`applier -vv run` output")

    setup.backlog(5)  # a second run resumes from the checkpoint, and logs (INFO) that it does
    result = run_cli("-vv", "run", "--config", str(setup.path), "--stop-at-end", env=env)
    shown = f"exit {result.returncode}\nstdout: {result.stdout[-2000:]!r}\nstderr: {result.stderr[-3000:]!r}"
    assert result.returncode == 0, shown
    assert " INFO " in result.stderr and "resuming from checkpoint" in result.stderr, shown
    assert json.loads(result.stdout.strip().splitlines()[-1])["rows"] == 5, shown
    assert_hidden(result.stdout + result.stderr, setup.secrets, "`applier -vv run` output")
    assert_same(setup.source, setup.target, setup.db)

    for args in (("status",), ("status", "--json"), ("check", "-d", setup.db)):
        result = run_cli("-vv", args[0], "--config", str(setup.path), *args[1:], env=env)
        assert result.returncode == 0, f"{args}: {result.stdout!r} {result.stderr[-3000:]!r}"
        assert result.stdout.strip(), args
        assert_hidden(result.stdout + result.stderr, setup.secrets, f"`applier -vv {' '.join(args)}` output")


def _group_cmdlines(pgid: int) -> dict[int, bytes]:
    out = {}
    for pid, fields in proc_stats():
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            try:
                out[pid] = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue  # exited meanwhile
    return out


def test_password_never_on_a_command_line(setup, spawn, monkeypatch):
    setup.backlog(10)
    for key, value in setup.env.items():  # the Applier subprocess inherits os.environ
        monkeypatch.setenv(key, value)
    for key in [k for k in os.environ if k.startswith("APPLIER_") and k not in setup.env]:
        monkeypatch.delenv(key)
    monkeypatch.setattr(appliers, "APPLIER", [*appliers.APPLIER, "-vv"])  # debug logging
    app = spawn(setup.path)  # no --stop-at-end: it keeps running
    workers = app.workers(2)
    deadline = time.monotonic() + 60
    while applied(setup.target, setup.schema) < 10:  # workers logged in and committed
        assert app.proc.poll() is None, app.describe()
        assert time.monotonic() < deadline, app.describe()
        time.sleep(0.1)
    setup.backlog(5)  # more while it runs: the workers keep using their connections
    cmdlines = _group_cmdlines(app.pid)
    assert app.pid in cmdlines and set(workers) <= set(cmdlines), (cmdlines, workers)
    for pid, cmdline in cmdlines.items():
        text = cmdline.decode(errors="replace")
        assert_hidden(text, setup.secrets, f"the command line of pid {pid} ({text[:200]!r})")
    app.signal(signal.SIGTERM, group=False)  # as systemd's KillMode=mixed does
    assert app.wait() == 0, app.describe()
    app.assert_gone()
    assert_hidden(app.stdout + app.stderr, setup.secrets, "the applier's output")


# ---- failures: one line naming the key or variable, never the password -----------------------


def assert_clean_error(result, exit_code: int, *fragments: str, secrets: tuple[str, ...]) -> None:
    shown = f"exit {result.returncode}\nstdout: {result.stdout!r}\nstderr: {result.stderr!r}"
    assert result.returncode == exit_code, shown
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), shown
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in the error; {shown}"
    assert result.stdout == "", shown
    assert_hidden(result.stdout + result.stderr, secrets, "an error message")


@pytest.mark.parametrize("mode", ["password_env"])
def test_missing_password_variable(source, target, dbname, tmp_path, mode):
    s = Setup(source, target, dbname, tmp_path, mode)
    result = run_cli("run", "--config", str(s.path), env=clean_environ())  # the variables unset
    assert_clean_error(result, ConfigError.exit_code, "[source] password_env", "not set",
                       secrets=s.secrets)


@pytest.mark.parametrize("mode", ["password_file"])
def test_missing_password_file(source, target, dbname, tmp_path, mode):
    s = Setup(source, target, dbname, tmp_path, mode)
    (tmp_path / "target.password").unlink()
    result = run_cli("status", "--config", str(s.path), env=s.environ())
    assert_clean_error(result, ConfigError.exit_code, "[target] password_file", "No such file",
                       secrets=s.secrets)


@pytest.mark.parametrize("mode", ["password_file"])
def test_group_readable_password_file_warns(source, target, dbname, tmp_path, mode):
    s = Setup(source, target, dbname, tmp_path, mode)
    (tmp_path / "source.password").chmod(0o644)
    result = run_cli("status", "--config", str(s.path), env=s.environ())
    assert result.returncode == 0, result.stderr
    assert "WARNING" in result.stderr and "[source] password_file" in result.stderr, result.stderr
    assert str(tmp_path / "source.password") not in result.stderr
    assert_hidden(result.stdout + result.stderr, s.secrets, "`applier status` output")


@pytest.mark.parametrize("mode", ["APPLIER_ROLE_PASSWORD"])
def test_wrong_password_from_environment(source, target, dbname, tmp_path, mode):
    s = Setup(source, target, dbname, tmp_path, mode)
    wrong = "An0ther-Wr0ng-pw-Zq8"
    env = s.environ(APPLIER_TARGET_PASSWORD=wrong)
    result = run_cli("-vv", "status", "--config", str(s.path), env=env)
    assert result.returncode == ConnectError.exit_code, result.stderr
    assert "access denied" in result.stderr and "[target]" in result.stderr
    assert_hidden(result.stdout + result.stderr, (*s.secrets, wrong), "`applier -vv status` output")


@pytest.mark.parametrize(
    "extra, fragments",
    [({"APPLIER_APPLY_WOKERS": "4"}, ("APPLIER_APPLY_WOKERS", "no key 'wokers'")),
     ({"APPLIER_APPLY_WORKERS": "0"}, ("[apply] workers = 0 (from APPLIER_APPLY_WORKERS)", "at least 1")),
     ({"APPLIER_SOURCE_PASSWORD_FILE": "/nonexistent/pw"},
      ("[source] password_file (from APPLIER_SOURCE_PASSWORD_FILE)", "cannot read"))],
    ids=["unknown-variable", "bad-value", "missing-file"],
)
@pytest.mark.parametrize("mode", ["password_file"])
def test_bad_environment_override(source, target, dbname, tmp_path, mode, extra, fragments):
    s = Setup(source, target, dbname, tmp_path, mode)
    result = run_cli("-vv", "run", "--config", str(s.path), "--stop-at-end", env=s.environ(**extra))
    assert_clean_error(result, ConfigError.exit_code, *fragments, secrets=s.secrets)

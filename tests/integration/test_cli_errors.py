"""`applier run` with bad input, as an operator would meet it: the CLI must print one clear
``error: ...`` line on stderr (no traceback), exit non-zero, never print a password, and
leave nothing half-applied on the target.

Each test has a small backlog pending on the source (database, table, rows) so that an
applier that wrongly applied part of it would leave a trace on the target.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from applier.errors import BinlogPurgedError, ConfigError, ConnectError, SourceError, TargetError
from applier.harness import sandbox
from tests.support import assert_same
from tests.support import render_toml as render

pytestmark = pytest.mark.flavors("mariadb", "mysql")  # MariaDB -> MariaDB, MySQL -> MySQL

APPLIER = [sys.executable, "-m", "applier.cli"]
TIMEOUT = 60  # seconds: any one CLI call
REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*APPLIER, *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, cwd=REPO)


def assert_clean_error(result: subprocess.CompletedProcess[str], exit_code: int,
                       *fragments: str, secrets: tuple[str, ...] = ()) -> str:
    """One ``error:`` line naming ``fragments``; the exit code of the error class."""
    shown = f"exit {result.returncode}\nstdout: {result.stdout!r}\nstderr: {result.stderr!r}"
    assert result.returncode == exit_code, shown
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, shown
    line = lines[0]
    assert line.startswith("error: "), shown
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in the error; {shown}"
    assert "Traceback" not in result.stderr
    assert result.stdout == "", shown
    for secret in secrets:
        assert secret not in result.stdout and secret not in result.stderr, "a password was printed"
    return line


def _exists(server, db: str, table: str | None = None) -> bool:
    if table is None:
        rows = server.query("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = %s", (db,))
    else:
        rows = server.query("SELECT COUNT(*) FROM information_schema.tables "
                            "WHERE table_schema = %s AND table_name = %s", (db, table))
    return int(rows[0][0]) > 0


class Setup:
    """A pending backlog on the source and a config (as dicts) to apply it."""

    def __init__(self, source, target, db: str, tmp_path: Path) -> None:
        self.source, self.target, self.db, self.tmp_path = source, target, db, tmp_path
        self.checkpoint_schema = f"ckpt_{db}"
        sc, tc = source.server_config(), target.server_config()
        file, pos = source.binlog_position()
        self.sections = {
            "source": {"host": sc.host, "port": sc.port, "user": sc.user, "password": sc.password,
                       "start_file": file, "start_pos": pos, "reconnect_attempts": 1,
                       "reconnect_backoff_seconds": 0.1},
            "target": {"host": tc.host, "port": tc.port, "user": tc.user, "password": tc.password,
                       "checkpoint_schema": self.checkpoint_schema},
            "apply": {"databases": [db], "workers": 2, "stop_at_end": True},
        }
        self.passwords = (sc.password, tc.password)

    def write(self, text: str | None = None, name: str = "applier.toml") -> str:
        path = self.tmp_path / name
        path.write_text(render(self.sections) if text is None else text)
        return str(path)

    def backlog(self) -> None:
        cur = self.source.connect().cursor()
        cur.execute(f"CREATE DATABASE `{self.db}`")
        cur.execute(f"CREATE TABLE `{self.db}`.t (id INT PRIMARY KEY, v VARCHAR(20))")
        for i in range(20):
            cur.execute(f"INSERT INTO `{self.db}`.t VALUES (%s, 'x')", (i,))

    def assert_target_untouched(self) -> None:
        assert not _exists(self.target, self.db), "the backlog was (partly) applied"

    def assert_no_checkpoint(self) -> None:
        assert not _exists(self.target, self.checkpoint_schema)


@pytest.fixture
def setup(source, target, dbname, tmp_path) -> Setup:
    s = Setup(source, target, dbname, tmp_path)
    s.backlog()
    return s


# ---- credentials and reachability ------------------------------------------------------------


@pytest.mark.parametrize("role", ["source", "target"])
def test_wrong_password(setup, role):
    wrong = "Wr0ng-Pa55word-7Hq2"
    setup.sections[role]["password"] = wrong
    result = run_cli("run", "--config", setup.write())
    assert_clean_error(result, ConnectError.exit_code, "access denied", f"[{role}]",
                       secrets=(wrong, *setup.passwords))
    setup.assert_target_untouched()
    setup.assert_no_checkpoint()


@pytest.mark.parametrize("role", ["source", "target"])
def test_unreachable_server(setup, role):
    port = sandbox.free_port()  # nothing listens there
    setup.sections[role]["port"] = port
    result = run_cli("run", "--config", setup.write())
    assert_clean_error(result, ConnectError.exit_code, "not reachable", f"127.0.0.1:{port}",
                       f"[{role}]", secrets=setup.passwords)
    setup.assert_target_untouched()
    setup.assert_no_checkpoint()


def test_source_without_binlog(setup, target):
    """The target server has no binary log: pointing [source] at it must say so."""
    tc = target.server_config()
    setup.sections["source"].update(port=tc.port, password=tc.password)
    result = run_cli("run", "--config", setup.write())
    assert_clean_error(result, SourceError.exit_code, "binary logging disabled", "--log-bin",
                       secrets=setup.passwords)
    setup.assert_target_untouched()
    setup.assert_no_checkpoint()


# ---- positions -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "start_file, fragments",
    [("mysql-bin.999999", ("mysql-bin.999999", "is not on", "start_file")),
     ("mysql-bin.000000", ("mysql-bin.000000", "purged"))],
    ids=["not-yet", "older-than-oldest"],
)
def test_missing_start_file(setup, start_file, fragments):
    setup.sections["source"].update(start_file=start_file, start_pos=4)
    result = run_cli("run", "--config", setup.write())
    assert_clean_error(result, SourceError.exit_code, *fragments, secrets=setup.passwords)
    setup.assert_target_untouched()


def test_no_start_position(setup):
    del setup.sections["source"]["start_file"], setup.sections["source"]["start_pos"]
    result = run_cli("run", "--config", setup.write())
    assert_clean_error(result, ConfigError.exit_code, "no start position", "start_file", "start_gtid")
    setup.assert_target_untouched()


def test_purged_binlog(tmp_path, target, dbname):
    """A source of our own (purging the shared one would hurt other tests): the
    checkpoint's binlog file, then the configured start file, purged on the source."""
    own = sandbox.make_source(tmp_path / "own-source")
    own.start()
    try:
        s = Setup(own, target, dbname, tmp_path)
        s.backlog()
        assert run_cli("run", "--config", s.write()).returncode == 0
        assert_same(own, target, dbname)
        old_file = s.sections["source"]["start_file"]
        own.execute("FLUSH BINARY LOGS")
        own.execute(f"INSERT INTO `{dbname}`.t VALUES (100, 'after the purge')")
        new_file = own.binlog_position()[0]
        deadline = time.monotonic() + 20
        while True:  # MariaDB keeps a file until its binlog checkpoint moved past it
            own.execute(f"PURGE BINARY LOGS TO '{new_file}'")
            if own.query("SHOW BINARY LOGS")[0][0] == new_file:
                break
            assert time.monotonic() < deadline, "the source would not purge its old binlog"
            time.sleep(0.2)

        # resuming from the checkpoint, which is in the purged file
        result = run_cli("run", "--config", s.write())
        assert_clean_error(result, BinlogPurgedError.exit_code, "purged", secrets=s.passwords)
        assert not target.query(f"SELECT * FROM `{dbname}`.t WHERE id = 100")

        # no checkpoint: the configured start file is gone
        s.sections["target"]["checkpoint_schema"] = f"ckpt2_{dbname}"
        result = run_cli("run", "--config", s.write())
        assert_clean_error(result, BinlogPurgedError.exit_code, old_file, "purged",
                           f"oldest is {new_file}", secrets=s.passwords)
        assert not target.query(f"SELECT * FROM `{dbname}`.t WHERE id = 100")
    finally:
        own.stop()


# ---- the target does not match the binlog ------------------------------------------------------


def test_unknown_table_on_target_then_fixed(setup, source, target, dbname):
    """A table created on the source without binlog: its rows reach the applier, the
    table is not on the target. The transaction that also wrote a known table must not
    be half-applied; after creating the table on the target, a rerun completes."""
    cur = source.connect().cursor()
    cur.execute("SET SESSION sql_log_bin = 0")
    cur.execute(f"CREATE TABLE `{dbname}`.missing (id INT PRIMARY KEY, note VARCHAR(20))")
    cur.execute("SET SESSION sql_log_bin = 1")
    cur.execute("BEGIN")
    cur.execute(f"INSERT INTO `{dbname}`.t VALUES (1000, 'same txn')")
    cur.execute(f"INSERT INTO `{dbname}`.missing VALUES (1, 'lost')")
    cur.execute("COMMIT")
    config = setup.write()
    result = run_cli("run", "--config", config)
    assert_clean_error(result, TargetError.exit_code, f"{dbname}.missing", "not on the target",
                       secrets=setup.passwords)
    assert not target.query(f"SELECT * FROM `{dbname}`.t WHERE id = 1000"), "half-applied"

    target.execute(f"CREATE TABLE `{dbname}`.missing (id INT PRIMARY KEY, note VARCHAR(20))")
    result = run_cli("run", "--config", config)
    assert result.returncode == 0, result.stderr
    assert_same(source, target, dbname)


def test_conflicting_row_on_target_is_reported_by_the_worker(setup, source, target, dbname):
    """A row already on the target (divergence): the worker's error, naming the table and
    the duplicate key, must reach the user (not only "worker exited with code 1"), and
    the failing transaction must not be half-applied."""
    config = setup.write()
    assert run_cli("run", "--config", config).returncode == 0
    target.execute(f"INSERT INTO `{dbname}`.t VALUES (500, 'only on target')")
    cur = source.connect().cursor()
    cur.execute(f"CREATE TABLE `{dbname}`.u (id INT PRIMARY KEY)")
    cur.execute("BEGIN")
    cur.execute(f"INSERT INTO `{dbname}`.u VALUES (1)")
    cur.execute(f"INSERT INTO `{dbname}`.t VALUES (500, 'from source')")
    cur.execute("COMMIT")
    result = run_cli("run", "--config", config)
    assert_clean_error(result, TargetError.exit_code, f"{dbname}.t", "1062", "Duplicate",
                       secrets=setup.passwords)
    assert not target.query(f"SELECT * FROM `{dbname}`.u"), "half-applied"

    target.execute(f"DELETE FROM `{dbname}`.t WHERE id = 500")
    result = run_cli("run", "--config", config)
    assert result.returncode == 0, result.stderr
    assert_same(source, target, dbname)


# ---- config --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "section, key, value, fragments",
    [
        ("apply", "wrokers", 4, ("unknown config key", "[apply]", "'wrokers'", "workers")),
        ("source", "hots", "127.0.0.1", ("unknown config key", "[source]", "'hots'")),
        ("apply", "workers", "x", ("[apply] workers", "integer", "'x'")),
        ("apply", "workers", 0, ("[apply] workers", "at least 1")),
        ("apply", "policy", "nope", ("[apply] policy", "'nope'", "writeset")),
        ("source", "port", 70000, ("[source] port", "65535")),
        ("source", "flavor", "oracle", ("[source] flavor", "mariadb")),
        ("apply", "databases", 5, ("[apply] databases", "list")),
        ("target", "password", 1234, ("[target] password", "string")),
    ],
    ids=["unknown-apply-key", "unknown-source-key", "workers-not-int", "workers-zero",
         "bad-policy", "bad-port", "bad-flavor", "databases-not-list", "password-not-string"],
)
def test_bad_config_value(setup, section, key, value, fragments):
    setup.sections[section][key] = value
    result = run_cli("run", "--config", setup.write())
    assert_clean_error(result, ConfigError.exit_code, *fragments, secrets=setup.passwords)
    setup.assert_target_untouched()
    setup.assert_no_checkpoint()


@pytest.mark.parametrize(
    "text, fragments",
    [("[apply\nworkers = 4\n", ("not valid TOML",)),
     ("[replica]\nx = 1\n", ("unknown config section", "[replica]")),
     ("source = 3\n", ("[source] must be a table",))],
    ids=["invalid-toml", "unknown-section", "section-not-table"],
)
def test_bad_config_file(setup, text, fragments):
    result = run_cli("run", "--config", setup.write(text))
    assert_clean_error(result, ConfigError.exit_code, *fragments)
    setup.assert_target_untouched()


def test_missing_config_file(setup, tmp_path):
    missing = tmp_path / "nope.toml"
    result = run_cli("run", "--config", str(missing))
    assert_clean_error(result, ConfigError.exit_code, str(missing), "not found")


def test_bad_override_flag(setup):
    result = run_cli("run", "--config", setup.write(), "--workers", "0")
    assert_clean_error(result, ConfigError.exit_code, "[apply] workers", "at least 1")
    setup.assert_target_untouched()

"""Throwaway local ``mariadbd`` servers for tests, ``applier demo`` and benchmarks.

Why: the applier is only meaningful against a real ROW binlog, and Docker is not always
there. Each ``LocalMariadb`` owns one directory (``data/``, socket, pid file,
``error.log``) and at most one ``mariadbd`` child bound to 127.0.0.1 on a free port.

Access: ``mariadb-install-db --auth-root-authentication-method=normal`` leaves
``root@localhost`` without a password; we only use it over the unix socket to wait for
readiness and to create the ``mts`` user (random password, never logged). The TCP-only
root accounts install-db also creates are dropped. User management runs with
``sql_log_bin=0`` so a fresh source's binlog holds no CREATE USER/GRANT events.

Cleanup: every started server is stopped at interpreter exit (``atexit``); when ``setpriv``
is available and ``start()`` runs on the main thread, the server also gets SIGTERM if
this process dies without running atexit (SIGKILL, OOM). It is limited to the main
thread because the kernel signals on the death of the parent *thread*.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import MySQLdb

from ..config import ServerConfig
from ..db import codes
from ..errors import ApplierError, ConnectError

INSTALL_HINT = "install with `apt-get install -y mariadb-server mariadb-client`"
_SEARCH_DIRS = (Path("/usr/sbin"), Path("/usr/bin"))
_INSTALLED_MARKER = ".installed"  # written after mariadb-install-db succeeded
_MAX_SOCKET_PATH = 100  # AF_UNIX paths are limited to 107 bytes
_POLL_SECONDS = 0.1
_PORT_ATTEMPTS = 3  # free_port() can race with other processes; retry the first start
_issued_ports: set[int] = set()
_MANAGED = ("datadir", "port", "socket", "pid-file", "log-error", "bind-address", "user")


def _new_password() -> str:
    return secrets.token_urlsafe(18)


def _norm(key: str) -> str:
    """mariadbd treats ``-`` and ``_`` alike in option names; so do we when merging."""
    return key.lstrip("-").replace("_", "-")


def find_mariadb_binaries() -> tuple[Path, Path]:
    """``(mariadbd, mariadb-install-db)``; the error says how to install them."""
    found = []
    for name in ("mariadbd", "mariadb-install-db"):
        hit = shutil.which(name)
        candidates = [Path(hit)] if hit else []
        candidates += [d / name for d in _SEARCH_DIRS]
        path = next((p for p in candidates if p.is_file() and os.access(p, os.X_OK)), None)
        if path is None:
            raise ApplierError(f"MariaDB server not found: {INSTALL_HINT}")
        found.append(path)
    return found[0], found[1]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now, never one this process handed out before."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _issued_ports:
            _issued_ports.add(port)
            return port
    raise ApplierError("could not find a free TCP port on 127.0.0.1")


def source_options() -> dict[str, str]:
    """What the applier needs from a source: full ROW images with metadata, GTIDs."""
    return {
        "log-bin": "mysql-bin",
        "binlog_format": "ROW",
        "binlog_row_image": "FULL",
        "binlog_row_metadata": "FULL",
        "server-id": "1",
        "log_slave_updates": "ON",
        "gtid_strict_mode": "1",
        **_common_options(),
        "sync_binlog": "0",
    }


def target_options() -> dict[str, str]:
    """A target needs no binlog; durability is relaxed because the data is throwaway."""
    return _common_options()


def _common_options() -> dict[str, str]:
    return {
        "innodb_flush_log_at_trx_commit": "2",
        "innodb_buffer_pool_size": "256M",
        "max_connections": "500",
        "character-set-server": "utf8mb4",
    }


@dataclass(eq=False)
class LocalMariadb:
    """One throwaway server. Not thread-safe: give each thread its own ``connect()``."""

    name: str
    basedir: Path
    port: int
    server_id: int
    log_bin: bool
    options: dict[str, str] = field(default_factory=dict)
    user: str = "mts"
    password: str = field(default_factory=_new_password, repr=False)
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _conn: Any = field(default=None, init=False, repr=False)
    _provisioned: bool = field(default=False, init=False, repr=False)
    _started_once: bool = field(default=False, init=False, repr=False)
    _socket_path: Path = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.basedir = Path(self.basedir).absolute()
        self._socket_path = self.basedir / "mysqld.sock"
        if len(str(self._socket_path)) > _MAX_SOCKET_PATH:  # deep tmp dirs: keep it short
            self._socket_path = Path(_short_tmpdir()) / "mysqld.sock"

    @property
    def datadir(self) -> Path:
        return self.basedir / "data"

    @property
    def socket(self) -> Path:
        return self._socket_path

    @property
    def error_log(self) -> Path:
        return self.basedir / "error.log"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, timeout: float = 60) -> None:
        """Start (installing the datadir on first use); return once it answers queries."""
        if self.running:
            return
        mariadbd, install_db = find_mariadb_binaries()
        self.basedir.mkdir(parents=True, exist_ok=True)
        if not (self.basedir / _INSTALLED_MARKER).exists():
            self._install(install_db, timeout)
        # Only a first start may move to another port: later, callers hold server_config().
        attempts = 1 if self._started_once else _PORT_ATTEMPTS
        for attempt in range(attempts):
            log_offset = self.error_log.stat().st_size if self.error_log.exists() else 0
            self._spawn(mariadbd)
            if self._wait_ready(timeout, log_offset):
                break
            if attempt + 1 == attempts:
                raise self._failure(f"port {self.port} is in use", log_offset)
            self.port = free_port()
        self._started_once = True
        if not self._provisioned:
            self._provision()
            self._provisioned = True

    def stop(self, timeout: float = 30) -> None:
        """Clean shutdown (SIGTERM, wait), SIGKILL if it takes too long. Idempotent."""
        self._drop_cached()
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)

    def kill(self) -> None:
        """SIGKILL now and reap it: a crash, for recovery tests."""
        self._drop_cached()
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(30)

    def _tmpdir(self) -> Path:
        path = self.basedir / "tmp"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _install(self, install_db: Path, timeout: float) -> None:
        if self.datadir.exists() and any(self.datadir.iterdir()):
            raise ApplierError(
                f"{self.datadir} exists but was not created by the sandbox; remove it"
            )
        cmd = [
            str(install_db),
            "--no-defaults",
            f"--datadir={self.datadir}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            f"--tmpdir={self._tmpdir()}",  # private: parallel installs must not share /tmp files
            *_as_root(),
        ]
        try:
            out = subprocess.run(
                cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=max(timeout, 60)
            )
        except subprocess.TimeoutExpired:
            shutil.rmtree(self.datadir, ignore_errors=True)
            raise ApplierError(f"mariadb-install-db for {self.name} timed out") from None
        if out.returncode != 0:
            shutil.rmtree(self.datadir, ignore_errors=True)
            text = (out.stdout + out.stderr).decode(errors="replace")
            raise ApplierError(
                f"mariadb-install-db for {self.name} failed (exit {out.returncode}):\n"
                + _tail(text)
            )
        (self.basedir / _INSTALLED_MARKER).write_text("")

    def _command(self, mariadbd: Path) -> list[str]:
        opts = {_norm(k): v for k, v in self.options.items()}
        opts["server-id"] = str(self.server_id)
        if self.log_bin:
            opts.setdefault("log-bin", "mysql-bin")
        else:
            opts.pop("log-bin", None)
            opts["skip-log-bin"] = ""
        for key in _MANAGED:
            opts.pop(key, None)
        cmd = [str(mariadbd), "--no-defaults", *_as_root()]
        cmd += [f"--{k}={v}" if v != "" else f"--{k}" for k, v in opts.items()]
        cmd += [
            f"--datadir={self.datadir}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--socket={self.socket}",
            f"--pid-file={self.basedir / 'mysqld.pid'}",
            f"--log-error={self.error_log}",
            f"--tmpdir={self._tmpdir()}",
        ]
        pdeathsig = shutil.which("setpriv")
        if pdeathsig and threading.current_thread() is threading.main_thread():
            cmd = [pdeathsig, "--pdeathsig", "TERM", "--", *cmd]
        return cmd

    def _spawn(self, mariadbd: Path) -> None:
        # stderr goes to error.log too: messages before --log-error is opened land there.
        with open(self.error_log, "ab") as err:
            self._proc = subprocess.Popen(
                self._command(mariadbd),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,  # a terminal Ctrl-C reaches us, we stop it cleanly
            )
        _register_atexit(self)

    def _wait_ready(self, timeout: float, log_offset: int) -> bool:
        """True once root answers on the socket; False if the TCP port was taken."""
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout / _POLL_SECONDS) + 10):
            assert self._proc is not None
            if self._proc.poll() is not None:
                if _port_clash(self._read_log(log_offset)):
                    self._proc = None
                    return False
                code = self._proc.returncode
                self._proc = None
                raise self._failure(f"mariadbd exited with code {code}", log_offset)
            try:
                self._root_connect(connect_timeout=2).close()
                return True
            except MySQLdb.OperationalError:
                pass
            if time.monotonic() > deadline:
                break
            time.sleep(_POLL_SECONDS)
        self.kill()
        raise self._failure(f"no answer within {timeout:g}s", log_offset)

    def _provision(self) -> None:
        conn = self._root_connect(connect_timeout=10)
        try:
            cur = conn.cursor()
            cur.execute("SET SESSION sql_log_bin = 0")
            cur.execute("SELECT host FROM mysql.user WHERE user = 'root' AND host <> 'localhost'")
            for (host,) in cur.fetchall():
                cur.execute("DROP USER 'root'@%s", (host,))
            for host in ("127.0.0.1", "localhost"):
                cur.execute(
                    "CREATE OR REPLACE USER %s@%s IDENTIFIED BY %s",
                    (self.user, host, self.password),
                )
                cur.execute(
                    "GRANT ALL PRIVILEGES ON *.* TO %s@%s WITH GRANT OPTION", (self.user, host)
                )
        finally:
            conn.close()

    def _root_connect(self, connect_timeout: int) -> Any:
        return MySQLdb.connect(
            unix_socket=str(self.socket), user="root", connect_timeout=connect_timeout
        )

    def _read_log(self, offset: int) -> str:
        try:
            with open(self.error_log, "rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def _failure(self, why: str, log_offset: int) -> ApplierError:
        return ApplierError(
            f"MariaDB sandbox {self.name!r} (port {self.port}, {self.basedir}) did not start: "
            f"{why}. Tail of {self.error_log}:\n{_tail(self._read_log(log_offset))}"
        )

    # -- client helpers ----------------------------------------------------------------

    def server_config(self) -> ServerConfig:
        return ServerConfig(
            host="127.0.0.1", port=self.port, user=self.user, password=self.password
        )

    def connect(self, db: str | None = None, **kw: Any) -> Any:
        """A new MySQLdb connection over TCP as ``mts``: autocommit, utf8mb4."""
        args: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "charset": "utf8mb4",
            "autocommit": True,
            "connect_timeout": 10,
        }
        if db is not None:
            args["database"] = db
        args.update(kw)
        try:
            return MySQLdb.connect(**args)
        except MySQLdb.OperationalError as e:
            raise ConnectError(
                f"cannot connect to sandbox {self.name!r} as {self.user}@127.0.0.1:{self.port}: {e}"
            ) from e

    def query(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Run one statement on the cached connection; the rows (empty if none)."""
        with self._cached().cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall() or ())

    def execute(self, sql: str, params: Any = None) -> int:
        """Run one statement on the cached connection; the affected row count."""
        with self._cached().cursor() as cur:
            return int(cur.execute(sql, params))

    def binlog_position(self) -> tuple[str, int]:
        rows = self.query("SHOW MASTER STATUS")
        if not rows:
            raise ApplierError(f"sandbox {self.name!r} has no binary log (log_bin is off)")
        return str(rows[0][0]), int(rows[0][1])

    def gtid_position(self) -> str:
        value = self.query("SELECT @@gtid_binlog_pos")[0][0]
        return value.decode() if isinstance(value, bytes) else str(value or "")

    def _cached(self) -> Any:
        """The cached connection, reopened if the server restarted since (ping fails)."""
        if self._conn is not None:
            try:
                self._conn.ping()
                return self._conn
            except MySQLdb.OperationalError as e:
                if codes.code_of(e) not in codes.GONE:
                    raise
                self._drop_cached()
        self._conn = self.connect()
        return self._conn

    def _drop_cached(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(MySQLdb.Error):
                conn.close()


def make_source(basedir: Path, name: str = "source") -> LocalMariadb:
    """An unstarted source (server_id 1, ROW binlog) under ``basedir``."""
    return LocalMariadb(name, Path(basedir), free_port(), 1, True, source_options())


def make_target(basedir: Path, name: str = "target") -> LocalMariadb:
    """An unstarted target (server_id 2, no binlog) under ``basedir``."""
    return LocalMariadb(name, Path(basedir), free_port(), 2, False, target_options())


def start_pair(basedir: Path) -> tuple[LocalMariadb, LocalMariadb]:
    """A started source (``basedir/source``) and target (``basedir/target``)."""
    source = make_source(Path(basedir) / "source")
    target = make_target(Path(basedir) / "target")
    source.start()
    try:
        target.start()
    except BaseException:
        source.stop()
        raise
    return source, target


def _as_root() -> list[str]:
    """mariadbd refuses to run as root unless told so explicitly."""
    return ["--user=root"] if os.geteuid() == 0 else []


def _port_clash(log: str) -> bool:
    return "Address already in use" in log or "Do you already have another" in log


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:]) or "(empty)"


def _short_tmpdir() -> str:
    return tempfile.mkdtemp(prefix="mts-sock-")


_atexit_servers: list[LocalMariadb] = []
_atexit_lock = threading.Lock()


def _register_atexit(server: LocalMariadb) -> None:
    with _atexit_lock:
        if not _atexit_servers:
            atexit.register(_stop_all)
        if server not in _atexit_servers:
            _atexit_servers.append(server)


def _stop_all() -> None:
    """A crashed or interrupted run must not leave servers behind."""
    for server in reversed(_atexit_servers):
        try:
            server.stop(timeout=15)
        except Exception:  # best effort at exit: try harder, never raise
            with contextlib.suppress(Exception):
                server.kill()

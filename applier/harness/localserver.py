"""What every throwaway local server of the sandbox shares, whatever its flavor.

A ``LocalServer`` owns one directory (``home``: ``data/``, socket, pid file,
``error.log``, ``tmp/``) and at most one server child bound to 127.0.0.1 on a free
port. Subclasses (``mariadb.LocalMariadb``, ``mysql.LocalMysql``) say how to find the
binaries, initialize a datadir, build the server's command line and provision the
``mts`` user; everything else lives here: install-once marker, start with retry on a
port clash, bounded readiness wait, stop/kill, atexit cleanup, the cached connection
and the query helpers.

Access: the flavor's installer leaves ``root@localhost`` without a password; we only
use it over the unix socket to wait for readiness and to create the ``mts`` user
(random password, never logged). User management runs with ``sql_log_bin=0`` so a
fresh source's binlog holds no CREATE USER/GRANT events.

Cleanup: every started server is stopped at interpreter exit (``atexit``); when
``setpriv`` is available and ``start()`` runs on the main thread, the server also gets
SIGTERM if this process dies without running atexit (SIGKILL, OOM). It is limited to
the main thread because the kernel signals on the death of the parent *thread*.
``setpriv`` (and ``chroot``/``unshare`` for MySQL) exec the server, so ``_proc.pid``
is the server's own pid.
"""

from __future__ import annotations

import atexit
import contextlib
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import MySQLdb

from ..config import ServerConfig
from ..db import codes
from ..errors import ApplierError, ConnectError

INSTALLED_MARKER = ".installed"  # written after the datadir was initialized
MAX_SOCKET_PATH = 100  # AF_UNIX paths are limited to 107 bytes
_POLL_SECONDS = 0.1
_PORT_ATTEMPTS = 3  # free_port() can race with other processes; retry the first start
_issued_ports: set[int] = set()


def new_password() -> str:
    return secrets.token_urlsafe(18)


def norm(key: str) -> str:
    """Servers treat ``-`` and ``_`` alike in option names; so do we when merging."""
    return key.lstrip("-").replace("_", "-")


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


def common_options() -> dict[str, str]:
    """Settings both flavors get: throwaway durability, room for many connections."""
    return {
        "innodb_flush_log_at_trx_commit": "2",
        "innodb_buffer_pool_size": "256M",
        "max_connections": "500",
        "character-set-server": "utf8mb4",
    }


def option_args(opts: dict[str, str]) -> list[str]:
    return [f"--{k}={v}" if v != "" else f"--{k}" for k, v in opts.items()]


def tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:]) or "(empty)"


def short_tmpdir() -> str:
    return tempfile.mkdtemp(prefix="mts-sock-")


@dataclass(eq=False)
class LocalServer:
    """One throwaway server. Not thread-safe: give each thread its own ``connect()``."""

    flavor: ClassVar[str] = ""  # "mariadb" | "mysql"
    product: ClassVar[str] = ""  # for messages: "MariaDB" | "MySQL"
    daemon: ClassVar[str] = ""  # for messages: "mariadbd" | "mysqld"
    installer: ClassVar[str] = ""  # for messages: what initializes a datadir
    install_timeout: ClassVar[float] = 60  # at least this long for the installer
    binlog_status_sql: ClassVar[str] = ""
    gtid_sql: ClassVar[str] = ""

    name: str
    basedir: Path
    port: int
    server_id: int
    log_bin: bool
    options: dict[str, str] = field(default_factory=dict)
    user: str = "mts"
    password: str = field(default_factory=new_password, repr=False)
    # more MySQLdb.connect arguments of connect()/query(), e.g. {"ssl": {"ca": path}} for a
    # server started with require_secure_transport=ON
    client_options: dict[str, Any] = field(default_factory=dict)
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _conn: Any = field(default=None, init=False, repr=False)
    _provisioned: bool = field(default=False, init=False, repr=False)
    _started_once: bool = field(default=False, init=False, repr=False)
    _socket_path: Path = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.basedir = Path(self.basedir).absolute()
        self._socket_path = self._client_socket()

    # -- flavor hooks ------------------------------------------------------------------

    @property
    def home(self) -> Path:
        """The directory (on this host) holding the datadir, socket, pid file and logs."""
        return self.basedir

    def _client_socket(self) -> Path:
        """Where this process connects to the server's unix socket."""
        raise NotImplementedError

    def _prepare(self) -> None:
        """Check the binaries and create directories; raise ``ApplierError`` if missing."""
        raise NotImplementedError

    def _install_command(self) -> list[str]:
        raise NotImplementedError

    def _command(self) -> list[str]:
        """The server's command line, without the ``setpriv`` wrapper."""
        raise NotImplementedError

    def _create_user(self, cur: Any) -> None:
        """Create ``user``@127.0.0.1/localhost with ``password`` and every privilege."""
        raise NotImplementedError

    # -- paths -------------------------------------------------------------------------

    @property
    def datadir(self) -> Path:
        return self.home / "data"

    @property
    def socket(self) -> Path:
        return self._socket_path

    @property
    def error_log(self) -> Path:
        return self.home / "error.log"

    @property
    def pid_file(self) -> Path:
        return self.home / "mysqld.pid"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _tmpdir(self) -> Path:
        path = self.home / "tmp"
        path.mkdir(parents=True, exist_ok=True)
        return path

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, timeout: float = 60) -> None:
        """Start (initializing the datadir on first use); return once it answers queries."""
        if self.running:
            return
        self._prepare()
        if not (self.home / INSTALLED_MARKER).exists():
            self._install(timeout)
        # Only a first start may move to another port: later, callers hold server_config().
        attempts = 1 if self._started_once else _PORT_ATTEMPTS
        for attempt in range(attempts):
            log_offset = self.error_log.stat().st_size if self.error_log.exists() else 0
            self._spawn()
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

    def clone(self, name: str, basedir: Path, options: dict[str, str], *,
              log_bin: bool = False) -> LocalServer:
        """A new server (not started, server_id 2, a binlog only with ``log_bin``) whose datadir is a copy of
        this stopped one's: a snapshot restored. It gets a server UUID of its own (MySQL's
        auto.cnf is not copied) and its own ``mts`` password at its first start."""
        if self.running:
            raise ApplierError(f"{self.name} must be stopped before its datadir is copied")
        other = replace(self, name=name, basedir=Path(basedir), port=free_port(), server_id=2,
                        log_bin=log_bin, options=options, password=new_password())
        other._prepare()
        shutil.copytree(self.datadir, other.datadir, symlinks=True, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("auto.cnf"))
        (other.home / INSTALLED_MARKER).write_text("")
        return other

    def _install(self, timeout: float) -> None:
        if self.datadir.exists() and any(self.datadir.iterdir()):
            raise ApplierError(
                f"{self.datadir} exists but was not created by the sandbox; remove it"
            )
        try:
            out = subprocess.run(
                self._install_command(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=max(timeout, self.install_timeout),
            )
        except subprocess.TimeoutExpired:
            shutil.rmtree(self.datadir, ignore_errors=True)
            raise ApplierError(f"{self.installer} for {self.name} timed out") from None
        if out.returncode != 0:
            shutil.rmtree(self.datadir, ignore_errors=True)
            text = (out.stdout + out.stderr).decode(errors="replace")
            raise ApplierError(
                f"{self.installer} for {self.name} failed (exit {out.returncode}):\n" + tail(text)
            )
        (self.home / INSTALLED_MARKER).write_text("")

    def _spawn(self) -> None:
        cmd = self._command()
        pdeathsig = shutil.which("setpriv")
        if pdeathsig and threading.current_thread() is threading.main_thread():
            cmd = [pdeathsig, "--pdeathsig", "TERM", "--", *cmd]
        # stderr goes to error.log too: messages before --log-error is opened land there.
        with open(self.error_log, "ab") as err:
            self._proc = subprocess.Popen(
                cmd,
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
                raise self._failure(f"{self.daemon} exited with code {code}", log_offset)
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
            self._create_user(cur)
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
            f"{self.product} sandbox {self.name!r} (port {self.port}, {self.basedir}) did not "
            f"start: {why}. Tail of {self.error_log}:\n{tail(self._read_log(log_offset))}"
        )

    # -- client helpers ----------------------------------------------------------------

    def server_config(self) -> ServerConfig:
        return ServerConfig(
            host="127.0.0.1", port=self.port, user=self.user, password=self.password
        )

    def connect(self, db: str | None = None, **kw: Any) -> Any:
        """A new MySQLdb connection over TCP as ``mts``: autocommit, utf8mb4 (and
        ``client_options``; ``kw`` wins)."""
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
        args.update(self.client_options)
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
        """``(file, position)`` where the binary log ends now."""
        rows = self.query(self.binlog_status_sql)
        if not rows:
            raise ApplierError(f"sandbox {self.name!r} has no binary log (log_bin is off)")
        return str(rows[0][0]), int(rows[0][1])

    def gtid_position(self) -> str:
        """MariaDB: ``@@gtid_binlog_pos``; MySQL: ``@@GLOBAL.gtid_executed`` (one line)."""
        value = self.query(self.gtid_sql)[0][0]
        text = value.decode() if isinstance(value, bytes) else str(value or "")
        return text.replace("\n", "")

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


def _port_clash(log: str) -> bool:
    return "Address already in use" in log or "Do you already have another" in log


_atexit_servers: list[LocalServer] = []
_atexit_lock = threading.Lock()


def _register_atexit(server: LocalServer) -> None:
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

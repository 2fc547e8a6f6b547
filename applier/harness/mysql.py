"""Throwaway local Oracle MySQL 9.7 servers, run from a Debian *sid* chroot.

Why a chroot: Debian 12 does not package MySQL and sid's binaries need a newer glibc
than the host's, so ``scripts/bootstrap.sh`` (as root) debootstraps sid into
``$MTS_MYSQL_CHROOT`` (default ``/opt/mts-mysql-sid``) and installs
``mysql-server-core`` there. ``mysqld`` runs as ``chroot DIR /usr/sbin/mysqld ...``
(root), or under ``unshare --user --map-root-user`` for other users. It shares the
network, so it listens on 127.0.0.1 like the MariaDB servers.

Where the files are: mysqld only sees the chroot, so each server's ``home`` is
``DIR/var/lib/mts-sandbox/<name>-<hash of basedir>`` (mysqld is given the same path
without the ``DIR`` prefix). ``basedir`` on the host gets a symlink ``chroot-home`` to
it, and ``home/owner`` names ``basedir``: a home whose owner directory is gone (pytest
removed its old temporary directories) and whose server is not running is deleted by
the next ``start()`` of any LocalMysql, so throwaway datadirs do not pile up in the
chroot.

MySQL specifics: ``mysqld --initialize-insecure`` (~5 s) leaves ``root@localhost``
without a password (caching_sha2_password, fine over the socket); ``mts`` uses
caching_sha2_password too (``mysql_native_password`` is gone in 9.x), so PyMySQL needs
TLS (its default here: mysqld makes certificates at initialize) or the ``cryptography``
package for the RSA exchange over plain TCP. The X plugin is off (its port 33060 would
clash between servers), ``secure_file_priv`` points inside ``home``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from ..errors import ApplierError
from .localserver import (
    MAX_SOCKET_PATH,
    LocalServer,
    common_options,
    norm,
    option_args,
    short_tmpdir,
)

DEFAULT_CHROOT = Path("/opt/mts-mysql-sid")
CHROOT_ENV = "MTS_MYSQL_CHROOT"
MYSQLD = "/usr/sbin/mysqld"  # inside the chroot
SANDBOX_AREA = "var/lib/mts-sandbox"  # inside the chroot; homes of the servers
_BOOTSTRAP = Path(__file__).resolve().parents[2] / "scripts" / "bootstrap.sh"
_MANAGED = (
    "datadir", "port", "socket", "pid-file", "log-error", "bind-address", "user",
    "tmpdir", "secure-file-priv", "mysqlx", "no-defaults", "initialize", "initialize-insecure",
)  # fmt: skip
_ORPHAN_GRACE_SECONDS = 3600  # a home without an owner file may be being created
_swept: set[Path] = set()


def chroot_dir() -> Path:
    """The configured chroot (``$MTS_MYSQL_CHROOT`` or the default), not checked."""
    return Path(os.environ.get(CHROOT_ENV) or DEFAULT_CHROOT).absolute()


def find_mysql(chroot: Path | None = None) -> Path:
    """The chroot holding ``/usr/sbin/mysqld``; the error says how to create it."""
    root = Path(chroot).absolute() if chroot is not None else chroot_dir()
    if not (root / MYSQLD.lstrip("/")).is_file():
        script = _BOOTSTRAP if _BOOTSTRAP.is_file() else Path("scripts/bootstrap.sh")
        raise ApplierError(
            f"MySQL 9.7 not found: {root}{MYSQLD} is missing (a Debian sid chroot; "
            f"${CHROOT_ENV} overrides {DEFAULT_CHROOT}). Create it as root with "
            f"`{CHROOT_ENV}={root} bash {script}` (debootstrap sid + mysql-server-core: "
            "about a minute and 560 MB)"
        )
    if os.geteuid() != 0 and not _userns_works():
        raise ApplierError(
            f"running mysqld in the chroot {root} needs root, or `unshare --user "
            "--map-root-user` (unprivileged user namespaces), which does not work here"
        )
    return root


def source_options() -> dict[str, str]:
    """A MySQL source: full ROW images with metadata, GTIDs on, no compression."""
    return {
        "log-bin": "mysql-bin",
        "binlog_format": "ROW",
        "binlog_row_image": "FULL",
        "binlog_row_metadata": "FULL",
        "server-id": "1",
        "log_replica_updates": "ON",
        "gtid_mode": "ON",
        "enforce_gtid_consistency": "ON",
        "binlog_transaction_compression": "OFF",
        **target_options(),
        "sync_binlog": "0",
    }


def binlog_options() -> dict[str, str]:
    return {"binlog_format": "ROW", "log_replica_updates": "ON", "sync_binlog": "1",
            "gtid_mode": "ON", "enforce_gtid_consistency": "ON"}


def target_options() -> dict[str, str]:
    """No binlog (the server adds ``--skip-log-bin``); IP accounts only, no DNS."""
    return {**common_options(), "skip-name-resolve": ""}


@dataclass(eq=False)
class LocalMysql(LocalServer):
    """A ``mysqld`` in the chroot, child of this process (``chroot`` execs it)."""

    flavor = "mysql"
    product = "MySQL"
    daemon = "mysqld"
    installer = "mysqld --initialize-insecure"
    install_timeout = 180
    binlog_status_sql = "SHOW BINARY LOG STATUS"
    gtid_sql = "SELECT @@GLOBAL.gtid_executed"

    chroot: Path | None = None  # None: $MTS_MYSQL_CHROOT or /opt/mts-mysql-sid

    def __post_init__(self) -> None:
        self.chroot = Path(self.chroot).absolute() if self.chroot else chroot_dir()
        super().__post_init__()

    @property
    def home(self) -> Path:
        assert self.chroot is not None
        tag = re.sub(r"[^A-Za-z0-9_-]", "_", self.name)[:20]
        digest = hashlib.sha1(str(self.basedir).encode()).hexdigest()[:10]
        return self.chroot / SANDBOX_AREA / f"{tag}-{digest}"

    def inside(self, path: Path) -> str:
        """``path`` (under the chroot, on this host) as mysqld in the chroot sees it."""
        assert self.chroot is not None
        return "/" + str(path.relative_to(self.chroot))

    def _client_socket(self) -> Path:
        path = self.home / "mysqld.sock"
        if len(str(path)) > MAX_SOCKET_PATH:  # connect() follows a short symlink
            link = Path(short_tmpdir()) / "mysqld.sock"
            link.symlink_to(path)
            return link
        return path

    def _prepare(self) -> None:
        assert self.chroot is not None
        find_mysql(self.chroot)
        area = self.chroot / SANDBOX_AREA
        if area not in _swept:
            _swept.add(area)
            _sweep_orphans(area)
        self.basedir.mkdir(parents=True, exist_ok=True)
        try:
            self.home.mkdir(parents=True, exist_ok=True)
        except PermissionError:
            raise ApplierError(
                f"cannot create {self.home}: as root, `mkdir -p {area} && chmod 1777 {area}`"
            ) from None
        owner = self.home / "owner"
        if not owner.exists():
            owner.write_text(f"{self.basedir}\n")
        link = self.basedir / "chroot-home"
        if not link.is_symlink() and not link.exists():
            link.symlink_to(self.home)
        (self.home / "files").mkdir(exist_ok=True)

    def _prefix(self) -> list[str]:
        """``chroot DIR`` (root) or ``unshare ... chroot DIR`` (others): both exec mysqld."""
        assert self.chroot is not None
        chroot = shutil.which("chroot") or "/usr/sbin/chroot"
        cmd = [chroot, str(self.chroot)]
        if os.geteuid() != 0:
            cmd = [shutil.which("unshare") or "unshare", "--user", "--map-root-user", *cmd]
        return cmd

    def _install_command(self) -> list[str]:
        return [
            *self._prefix(),
            MYSQLD,
            "--no-defaults",
            "--initialize-insecure",
            "--user=root",  # inside, we are root (or mapped to it)
            f"--datadir={self.inside(self.datadir)}",
            f"--tmpdir={self.inside(self._tmpdir())}",
            f"--secure-file-priv={self.inside(self.home / 'files')}",
        ]

    def _command(self) -> list[str]:
        opts = {norm(k): v for k, v in self.options.items()}
        opts["server-id"] = str(self.server_id)
        if self.log_bin:
            opts.setdefault("log-bin", "mysql-bin")
            opts.pop("skip-log-bin", None)
        else:
            opts.pop("log-bin", None)
            opts["skip-log-bin"] = ""
        for key in _MANAGED:
            opts.pop(key, None)
        return [
            *self._prefix(),
            MYSQLD,
            "--no-defaults",
            "--user=root",
            *option_args(opts),
            f"--datadir={self.inside(self.datadir)}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--socket={self.inside(self.home / 'mysqld.sock')}",
            f"--pid-file={self.inside(self.pid_file)}",
            f"--log-error={self.inside(self.error_log)}",
            f"--tmpdir={self.inside(self._tmpdir())}",
            f"--secure-file-priv={self.inside(self.home / 'files')}",
            "--mysqlx=OFF",
        ]

    def _create_user(self, cur: Any) -> None:
        cur.execute("SELECT @@GLOBAL.super_read_only")
        (read_only,) = cur.fetchone()
        if read_only:  # even root cannot manage users then; restore it afterwards
            cur.execute("SET GLOBAL super_read_only = OFF")
        try:
            for host in ("127.0.0.1", "localhost"):
                cur.execute("DROP USER IF EXISTS %s@%s", (self.user, host))
                cur.execute(
                    "CREATE USER %s@%s IDENTIFIED WITH caching_sha2_password BY %s",
                    (self.user, host, self.password),
                )
                cur.execute(
                    "GRANT ALL PRIVILEGES ON *.* TO %s@%s WITH GRANT OPTION", (self.user, host)
                )
        finally:
            if read_only:
                cur.execute("SET GLOBAL super_read_only = ON")

    def remove(self) -> None:
        """Stop, then delete ``home`` (datadir, logs) and the ``chroot-home`` link."""
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)
        link = self.basedir / "chroot-home"
        if link.is_symlink():
            link.unlink()


@cache
def _userns_works() -> bool:
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    try:
        probe = [unshare, "--user", "--map-root-user", "true"]
        return subprocess.run(probe, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _sweep_orphans(area: Path) -> None:
    """Delete homes whose owner directory is gone and whose server is not running."""
    if not area.is_dir():
        return
    now = time.time()
    for home in area.iterdir():
        try:
            owner = (home / "owner").read_text().strip()
        except OSError:
            owner = ""
        with contextlib.suppress(OSError):
            if owner and Path(owner).exists():
                continue
            if not owner and now - home.stat().st_mtime < _ORPHAN_GRACE_SECONDS:
                continue
            if _pid_alive(home / "mysqld.pid"):
                continue
            shutil.rmtree(home, ignore_errors=True)


def _pid_alive(pid_file: Path) -> bool:
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

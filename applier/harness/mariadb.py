"""Throwaway local ``mariadbd`` servers (the host's MariaDB 10.11 packages).

``mariadb-install-db --auth-root-authentication-method=normal`` leaves ``root@localhost``
without a password; the TCP-only root accounts install-db also creates are dropped.
Everything (datadir, socket, pid file, ``error.log``) lives under ``basedir``; the
socket moves to a short temporary directory when ``basedir`` is too deep for AF_UNIX.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
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

INSTALL_HINT = "install with `apt-get install -y mariadb-server mariadb-client`"
_SEARCH_DIRS = (Path("/usr/sbin"), Path("/usr/bin"))
_MANAGED = ("datadir", "port", "socket", "pid-file", "log-error", "bind-address", "user")


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
        **common_options(),
        "sync_binlog": "0",
    }


def binlog_options() -> dict[str, str]:
    return {"binlog_format": "ROW", "log_slave_updates": "ON", "sync_binlog": "1"}


def target_options() -> dict[str, str]:
    """A target needs no binlog; durability is relaxed because the data is throwaway."""
    return common_options()


@dataclass(eq=False)
class LocalMariadb(LocalServer):
    """A ``mariadbd`` child of this process, everything under ``basedir``."""

    flavor = "mariadb"
    product = "MariaDB"
    daemon = "mariadbd"
    installer = "mariadb-install-db"
    binlog_status_sql = "SHOW MASTER STATUS"
    gtid_sql = "SELECT @@gtid_binlog_pos"

    def _client_socket(self) -> Path:
        path = self.basedir / "mysqld.sock"
        if len(str(path)) > MAX_SOCKET_PATH:  # deep tmp dirs: keep it short
            path = Path(short_tmpdir()) / "mysqld.sock"
        return path

    def _prepare(self) -> None:
        find_mariadb_binaries()
        self.basedir.mkdir(parents=True, exist_ok=True)

    def _install_command(self) -> list[str]:
        return [
            str(find_mariadb_binaries()[1]),
            "--no-defaults",
            f"--datadir={self.datadir}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            f"--tmpdir={self._tmpdir()}",  # private: parallel installs must not share /tmp files
            *_as_root(),
        ]

    def _command(self) -> list[str]:
        opts = {norm(k): v for k, v in self.options.items()}
        opts["server-id"] = str(self.server_id)
        if self.log_bin:
            opts.setdefault("log-bin", "mysql-bin")
        else:
            opts.pop("log-bin", None)
            opts["skip-log-bin"] = ""
        for key in _MANAGED:
            opts.pop(key, None)
        return [
            str(find_mariadb_binaries()[0]),
            "--no-defaults",
            *_as_root(),
            *option_args(opts),
            f"--datadir={self.datadir}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--socket={self.socket}",
            f"--pid-file={self.pid_file}",
            f"--log-error={self.error_log}",
            f"--tmpdir={self._tmpdir()}",
        ]

    def _create_user(self, cur: Any) -> None:
        for host in ("127.0.0.1", "localhost"):
            cur.execute(
                "CREATE OR REPLACE USER %s@%s IDENTIFIED BY %s", (self.user, host, self.password)
            )
            cur.execute(
                "GRANT ALL PRIVILEGES ON *.* TO %s@%s WITH GRANT OPTION", (self.user, host)
            )


def _as_root() -> list[str]:
    """mariadbd refuses to run as root unless told so explicitly."""
    return ["--user=root"] if os.geteuid() == 0 else []

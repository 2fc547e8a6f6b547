"""The one place that opens MySQLdb connections to a configured server.

``connect`` turns the driver's connect-time failures into ``ConnectError`` messages that
name the role (``source``/``target``), the server and what to check. The password is
never put into a message, a repr or a log line.
"""

from __future__ import annotations

import math
import re

import MySQLdb
from MySQLdb.constants import CLIENT

from ..config import ServerConfig
from ..errors import ConnectError, Unreachable
from . import codes

_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)")


def _address(server: ServerConfig) -> str:
    return server.socket or f"{server.host}:{server.port}"


def connect(
    server: ServerConfig,
    role: str,
    *,
    db: str | None = None,
    autocommit: bool = True,
    found_rows: bool = False,
    charset: str = "utf8mb4",
    connect_timeout: float = 10,
    read_timeout: float | None = None,
) -> MySQLdb.Connection:
    """Open a connection to ``server``; ``role`` ("source"/"target") names it in errors.

    ``found_rows`` makes UPDATE report matched rather than changed rows.
    Raises ``ConnectError`` when the server is unreachable, refuses the credentials or
    lacks the database.
    """
    kwargs: dict = {
        "user": server.user,
        "passwd": server.password,
        "charset": charset,
        "autocommit": autocommit,
        "connect_timeout": max(1, math.ceil(connect_timeout)),
        "client_flag": CLIENT.FOUND_ROWS if found_rows else 0,
    }
    if server.socket:
        # libmariadb only uses the socket when the host is "localhost".
        kwargs["host"] = "localhost"
        kwargs["unix_socket"] = server.socket
    else:
        kwargs["host"] = server.host
        kwargs["port"] = server.port
    if db is not None:
        kwargs["db"] = db
    if read_timeout is not None:
        kwargs["read_timeout"] = max(1, math.ceil(read_timeout))
    try:
        return MySQLdb.connect(**kwargs)
    except MySQLdb.Error as e:
        raise _connect_error(server, role, db, e) from None


def _connect_error(
    server: ServerConfig, role: str, db: str | None, e: MySQLdb.Error
) -> ConnectError:
    code = codes.code_of(e)
    detail = codes.message_of(e)
    where = f"{role} {server.describe()}"
    address = _address(server)
    if code in codes.ACCESS_DENIED:
        return ConnectError(
            f"{where}: access denied for user {server.user!r}: check [{role}] user/password"
        )
    if code in codes.UNREACHABLE:
        what = "socket" if server.socket else "host/port"
        return Unreachable(
            f"{role} server at {address} is not reachable ({code}: {detail}): "
            f"check [{role}] {what} and that the server is running"
        )
    if code == codes.ER_BAD_DB_ERROR:
        return ConnectError(f"{where}: unknown database {db!r}: create it on the {role} first")
    if code == codes.ER_DBACCESS_DENIED_ERROR:
        return ConnectError(
            f"{where}: user {server.user!r} may not use database {db!r}: grant it access"
        )
    if code in codes.HOST_NOT_ALLOWED:
        return ConnectError(
            f"{where}: the server refuses connections from this host ({code}: {detail}): "
            f"create the user for this host or run FLUSH HOSTS"
        )
    if code == codes.ER_CON_COUNT_ERROR:
        return ConnectError(f"{where}: too many connections: raise max_connections or retry later")
    if code in codes.AUTH_PLUGIN:
        return ConnectError(
            f"{where}: authentication plugin not supported by the client ({code}: {detail}): "
            f"use mysql_native_password or install the client plugin"
        )
    return ConnectError(f"{where}: cannot connect ({code}: {detail})")


def flavor_and_version(conn: MySQLdb.Connection) -> tuple[str, tuple[int, int, int]]:
    """("mariadb" | "mysql", (major, minor, patch)) from ``SELECT VERSION()``."""
    cur = conn.cursor()
    try:
        cur.execute("SELECT VERSION()")
        (text,) = cur.fetchone()
    finally:
        cur.close()
    if isinstance(text, bytes):
        text = text.decode()
    flavor = "mariadb" if "mariadb" in text.lower() else "mysql"
    m = _VERSION.match(text)
    version = (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else (0, 0, 0)
    return flavor, version

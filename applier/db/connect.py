"""The one place that opens connections to a configured server: MySQLdb (``connect``:
everything but the binlog dump) and PyMySQL (``connect_pymysql``: the dump connection
of ``pipeline/source.py``).

Both turn connect-time failures into ``ConnectError`` messages that name the role
(``source``/``target``), the server, the setting at fault and what to do. The password
is never put into a message, a repr or a log line.

TLS. ``[source]``/``[target] ssl_mode`` means what the MySQL client's ``--ssl-mode``
means, whichever driver connects:

================  ============================================================
disabled          no TLS
preferred         TLS when the server offers it, unencrypted otherwise; the
                  server's certificate is not verified
required          TLS or fail; the certificate is not verified
verify_ca         TLS, the certificate must be signed by ``ssl_ca``
verify_identity   as verify_ca, and the certificate must name the host we
                  connect to (``host``: a DNS name or an IP address in its
                  subjectAltName, or its CN)
================  ============================================================

``ssl_ca`` serves the two verify modes only (``config.py`` refuses it with preferred
or required, which would not check it); ``ssl_cert``/``ssl_key`` (a client
certificate, for accounts with ``REQUIRE X509``) are sent in every mode but ``disabled``. A unix socket (``socket``) never uses TLS: the
connection is local, and servers count it as secure transport. How each mode is
spelled for each driver (mysqlclient 2.2+ built on MariaDB Connector/C 3.3, as on
Debian 12, does not have the MySQL client's modes: it emulates them with two switches):

================  =========================================  ==========================================
mode              MySQLdb (libmariadb)                       PyMySQL
================  =========================================  ==========================================
disabled          ``ssl_mode=DISABLED``, no ``ssl`` dict     ``ssl_disabled=True``
                  (with one, libmariadb uses TLS anyway)
preferred         ``ssl_mode=REQUIRED`` (+ cert/key):        nothing (PyMySQL 1.2+: TLS when offered,
                  libmariadb 3.3 then uses TLS when          not verified; 1.1: ``ssl=`` a context that
                  offered and goes on unencrypted when not   does not verify); with a client
                  (a library that refuses instead: again     certificate ``ssl_cert``/``ssl_key``, and
                  with ``DISABLED``)                         again with ``ssl_disabled`` when the
                                                             server offers no TLS
required          ``ssl_mode=REQUIRED`` (+ cert/key), then   ``ssl=`` a context that does not verify
                  checked: libmariadb 3.3 goes on            (PyMySQL has no keyword for it) or
                  unencrypted when the server offers no TLS  ``ssl_cert``/``ssl_key``; then checked
verify_ca         ``ssl_mode=REQUIRED`` + ``ssl={"ca": ...}``  ``ssl_ca``, ``ssl_verify_cert=True``,
                  (libmariadb verifies the chain whenever    ``ssl_verify_identity=False``; checked
                  it has a CA; its ``VERIFY_CA`` also
                  checks the host name); checked
verify_identity   ``ssl_mode=VERIFY_IDENTITY`` + ``ssl``     ``ssl_ca``, ``ssl_verify_cert=True``,
                  (chain and host name); checked             ``ssl_verify_identity=True``; checked
================  =========================================  ==========================================

"checked": once connected, ``SHOW SESSION STATUS LIKE 'Ssl_cipher'`` must name a
cipher, else the connection is closed and the error says the server offers no TLS.
Built on Oracle's libmysqlclient, mysqlclient has the modes themselves: each is passed
as is (and checked the same way).

Refusals explained in one line: a certificate that does not verify (names ``ssl_ca``,
or the host name for verify_identity), a server without TLS for a mode that needs it,
and a server that requires TLS of a connection with ``ssl_mode = "disabled"`` (MySQL
says so, error 3159; MariaDB answers "access denied" as for a wrong password, so after
an access denied without TLS we try once more over TLS: if that gets in, TLS is what
the server wants).

Dead peers. A TCP connection opened here has keepalive probes (``TCP_KEEPIDLE`` /
``TCP_KEEPINTVL`` / ``TCP_KEEPCNT``) and ``TCP_USER_TIMEOUT``: when the server's host
stops answering (a silent network partition, a host that froze or lost power), a
blocked read or write fails with "lost connection" after about ``DEAD_PEER_SECONDS``
instead of waiting forever (the kernel default: probes after 2 hours). There is no read
timeout on target connections: a statement may legitimately run for hours (a big
ALTER), and the native SQL thread has none either; a server that is busy answers the
probes from its kernel, so a long statement is never cut.

Driver errors after connecting. ``driver_errors(server, role, what, again)`` turns any
MySQLdb error into the applier's families, one line each: a lost connection is
``TargetLost`` (target) or ``Unreachable`` (source), both exit 4; a refused statement
``TargetError`` (5) or ``SourceError`` (3), with what to grant when it is a privilege.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import re
import socket
import ssl
from collections.abc import Callable, Iterator
from typing import Any

import MySQLdb
from MySQLdb.constants import CLIENT

from ..config import ServerConfig
from ..errors import ApplierError, ConnectError, SourceError, TargetError, TargetLost, Unreachable
from . import codes

_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)")

CR_SSL_CONNECTION_ERROR = codes.CR_SSL_CONNECTION_ERROR
CR_AUTH_PLUGIN_ERR = 2061  # libmysqlclient: "Authentication requires secure connection" (caching_sha2)
_PLUGIN_NOT_LOADED = "could not be loaded"  # libmariadb: "Plugin caching_sha2_password could not be loaded"
ER_SECURE_TRANSPORT_REQUIRED = 3159  # MySQL; MariaDB answers 1045 (access denied)
ENCRYPTED = ("required", "verify_ca", "verify_identity")  # modes that must end up on TLS
_X509_HOST_MISMATCH = frozenset({62, 64})  # X509_V_ERR_HOSTNAME_MISMATCH, _IP_ADDRESS_MISMATCH

# TCP keepalive of every connection: probes after KEEPALIVE_IDLE s of silence, one every
# KEEPALIVE_INTERVAL s; unanswered (or data unacknowledged) for DEAD_PEER_SECONDS: lost.
KEEPALIVE_IDLE = 20
KEEPALIVE_INTERVAL = 10
KEEPALIVE_COUNT = 4
DEAD_PEER_SECONDS = 60
# The session wait_timeout of the applier's long-lived target connections (the largest
# both flavors take): a quiet source must not let the target end them as idle clients,
# as it never ends the native SQL thread. A dead applier's sessions still end: its
# sockets close, or the server's own checks find the peer gone.
STAY_OPEN_SECONDS = 31536000


def _address(server: ServerConfig) -> str:
    return server.socket or f"{server.host}:{server.port}"


def tls_mode(server: ServerConfig) -> str:
    """The ``ssl_mode`` a connection to ``server`` uses: "disabled" over a unix socket."""
    return "disabled" if server.socket else server.ssl_mode


# ---- MySQLdb ------------------------------------------------------------------------------------


def _libmariadb() -> bool:
    """Is mysqlclient built on MariaDB Connector/C (versions 2.x/3.x, or 10.x+ when it
    comes with the server) rather than Oracle's libmysqlclient (5.x to 9.x)?"""
    info = MySQLdb._mysql.get_client_info()  # noqa: SLF001 - the one way to ask
    m = _VERSION.match(info)
    major = int(m.group(1)) if m else 3
    return major < 5 or major >= 10


_LIBMARIADB = _libmariadb()


def mysqldb_tls(server: ServerConfig, mode: str) -> dict[str, Any]:
    """``MySQLdb.connect`` arguments for ``mode`` (see the table above)."""
    files = {"cert": server.ssl_cert, "key": server.ssl_key} if server.ssl_cert else {}
    if mode == "disabled":
        return {"ssl_mode": "DISABLED"}
    if mode in ("verify_ca", "verify_identity"):
        files = {"ca": server.ssl_ca, **files}
    if _LIBMARIADB:
        spelled = "VERIFY_IDENTITY" if mode == "verify_identity" else "REQUIRED"
    else:
        spelled = mode.upper()
    return {"ssl_mode": spelled, **({"ssl": files} if files else {})}


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
    stay_open: bool = False,
) -> MySQLdb.Connection:
    """Open a connection to ``server``; ``role`` ("source"/"target") names it in errors.

    ``found_rows`` makes UPDATE report matched rather than changed rows. ``stay_open``:
    a long-lived connection the server must not end for idling (STAY_OPEN_SECONDS).
    Raises ``ConnectError`` when the server is unreachable, refuses the credentials,
    lacks the database or the TLS that ``ssl_mode`` asks for fails (see the module
    docstring).
    """
    kwargs: dict = {
        "user": server.user,
        "passwd": server.password,
        "charset": charset,
        "autocommit": True,  # the TLS check runs first; then ``autocommit`` as asked
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
    mode = tls_mode(server)

    def attempt(m: str) -> MySQLdb.Connection:
        return MySQLdb.connect(**kwargs, **mysqldb_tls(server, m))

    try:
        conn = _open(attempt, mode, _mysqldb_no_tls)
    except MySQLdb.Error as e:
        raise _connect_error(server, role, db, e, mode, attempt) from None
    _require_tls(conn, server, role, mode, MySQLdb.Error)
    if not server.socket:
        keepalive(conn.fileno())
    if stay_open:
        with driver_errors(server, role, "setting the session's wait_timeout"):
            conn.query(f"SET SESSION wait_timeout = {STAY_OPEN_SECONDS}".encode())
    if not autocommit:
        conn.autocommit(False)
    return conn


def keepalive(fd: int) -> None:
    """TCP keepalive and a user timeout on the socket ``fd`` (see the module docstring);
    nothing for a unix socket or where the platform lacks an option."""
    try:
        sock = socket.socket(fileno=os.dup(fd))  # closing it closes the copy, not the connection
    except OSError:
        return
    with contextlib.suppress(OSError), sock:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in (("TCP_KEEPIDLE", KEEPALIVE_IDLE), ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
                            ("TCP_KEEPCNT", KEEPALIVE_COUNT), ("TCP_USER_TIMEOUT", DEAD_PEER_SECONDS * 1000)):
            option = getattr(socket, name, None)
            if option is not None:
                sock.setsockopt(socket.IPPROTO_TCP, option, value)


def driver_error(e: Exception, server: ServerConfig, role: str, what: str, again: str = "") -> ApplierError:
    """One line for a driver error of a connection to ``server`` (``role``: "source" /
    "target") while doing ``what``; ``again``: the command to run again once fixed."""
    code = codes.code_of(e)
    detail = codes.message_of(e) or type(e).__name__
    rerun = f", then run `{again}` again" if again else ", then run the command again"
    if code in codes.GONE or code in codes.UNREACHABLE or isinstance(e, MySQLdb.InterfaceError):
        what_to_check = "socket" if server.socket else "host/port"
        msg = (f"lost the connection to the {role} {server.describe()} while {what} ({code}: {detail}): "
               f"check that the server runs and is reachable ([{role}] {what_to_check}){rerun}")
        return TargetLost(msg) if role == "target" else Unreachable(msg)
    family = TargetError if role == "target" else SourceError
    if code in codes.PRIVILEGE:
        return family(f"{role} {server.describe()} refused {what} ({code}: {detail}): grant the "
                      f"[{role}] user {server.user!r} the privilege the message names{rerun}")
    return family(f"{role} {server.describe()}: {what} failed ({code}: {detail}){rerun}")


@contextlib.contextmanager
def driver_errors(server: ServerConfig, role: str, what: str, again: str = "") -> Iterator[None]:
    """Driver errors inside the block become ``driver_error`` (applier errors pass)."""
    try:
        yield
    except MySQLdb.Error as e:
        raise driver_error(e, server, role, what, again) from None


def _mysqldb_no_tls(e: Exception) -> bool:
    """The library refused because the server offers no TLS."""
    return codes.code_of(e) == CR_SSL_CONNECTION_ERROR and "not support" in codes.message_of(e)


def _connect_error(
    server: ServerConfig, role: str, db: str | None, e: MySQLdb.Error, mode: str = "disabled",
    attempt: Callable[[str], Any] | None = None,
) -> ConnectError:
    code = codes.code_of(e)
    detail = codes.message_of(e)
    where = f"{role} {server.describe()}"
    address = _address(server)
    if code in codes.AUTH_PLUGIN or code == CR_AUTH_PLUGIN_ERR or _PLUGIN_NOT_LOADED in detail:
        # libmariadb reports a client plugin it cannot load as 1045 "access denied"
        return _auth_plugin_error(server, role, code, detail)
    if code == CR_SSL_CONNECTION_ERROR:
        return _tls_error(server, role, mode, detail, host_mismatch="Validation of SSL server" in detail,
                          no_tls="not support" in detail,
                          certificate="certificate" in detail.lower())
    if code == ER_SECURE_TRANSPORT_REQUIRED or (
        code in codes.ACCESS_DENIED and attempt is not None and _tls_gets_in(server, mode, attempt)
    ):
        return _tls_required(server, role)
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
    return ConnectError(f"{where}: cannot connect ({code}: {detail})")


def _auth_plugin_error(server: ServerConfig, role: str, code: int, detail: str) -> ConnectError:
    """The account's authentication plugin (MySQL 8+/9: caching_sha2_password; 9.x has no
    mysql_native_password) is one the client cannot use as it connects."""
    where = f"{role} {server.describe()}"
    if code == CR_AUTH_PLUGIN_ERR or "secure connection" in detail:
        # caching_sha2_password's first login (nothing cached on the server) sends the
        # password: over TLS, or RSA-encrypted with the server's public key
        return ConnectError(
            f"{where}: caching_sha2_password needs a secure connection for this login ({code}: "
            f"{detail}): connect over TLS, [{role}] ssl_mode = \"required\" (or verify_ca/"
            f"verify_identity with ssl_ca) with TLS on the server, or use mysqlclient built on "
            f"MariaDB Connector/C, which fetches the server's RSA public key by itself"
        )
    return ConnectError(
        f"{where}: the client cannot use the authentication plugin of the account {server.user!r} "
        f"({code}: {detail}): install the client plugin it names where the client library looks "
        f"(MariaDB Connector/C: package libmariadb3, e.g. caching_sha2_password.so in its plugin "
        f"directory; MARIADB_PLUGIN_DIR overrides that directory), or ALTER USER to a plugin the "
        f"client has (on MySQL 9: caching_sha2_password; on MariaDB: ed25519)"
    )


# ---- PyMySQL (the binlog dump) ------------------------------------------------------------------


@functools.cache
def _unverified_context() -> ssl.SSLContext:
    """TLS that checks no certificate (``preferred``, ``required``): one per process. It
    needs no CA list: PyMySQL's own default context loads the system's for nothing,
    about 50 ms per connection."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


@functools.cache
def _pymysql_connection() -> type:
    """PyMySQL's connection class, its ``preferred`` mode (no TLS options: TLS when the
    server offers it, nothing verified, PyMySQL 1.2+) on the shared unverified context.
    PyMySQL (and the cryptography it loads) is imported only where a dump connection is
    made: worker processes never need it."""
    import pymysql

    class _PyMysql(pymysql.connections.Connection):
        def _create_ssl_ctx(self, sslp):
            if not sslp:
                return _unverified_context()
            return super()._create_ssl_ctx(sslp)

    return _PyMysql


def pymysql_tls(server: ServerConfig, mode: str) -> dict[str, Any]:
    """``pymysql.connect`` arguments for ``mode`` (see the table above)."""
    if mode == "disabled":
        return {"ssl_disabled": True}
    files = {"ssl_cert": server.ssl_cert, "ssl_key": server.ssl_key} if server.ssl_cert else {}
    if mode in ("verify_ca", "verify_identity"):
        return {"ssl_ca": server.ssl_ca, "ssl_verify_cert": True,
                "ssl_verify_identity": mode == "verify_identity", **files}
    if files:
        return files  # required, or preferred with a fallback (connect_pymysql)
    import pymysql

    if mode == "preferred" and pymysql.VERSION >= (1, 2):
        return {}  # PyMySQL's own default: TLS when the server offers it
    return {"ssl": _unverified_context()}  # PyMySQL 1.1 uses it only when offered


def connect_pymysql(server: ServerConfig, role: str, **kwargs: Any) -> Any:
    """``pymysql.connect(**kwargs)`` with the TLS of ``server``'s ``ssl_mode``. TLS failures
    (a certificate that does not verify, no TLS where the mode needs it, a server that
    requires TLS of a ``disabled`` connection) are ``ConnectError``; any other error of
    the driver is raised as it is, for the caller to judge (retry or not)."""
    import pymysql

    mode = tls_mode(server)
    connection = _pymysql_connection()

    def attempt(m: str) -> Any:
        return connection(**kwargs, **pymysql_tls(server, m))

    try:
        conn = _open(attempt, mode, _pymysql_no_tls)
    except pymysql.err.OperationalError as e:
        code = e.args[0] if e.args else 0
        original = getattr(e, "original_exception", None) or e.__context__
        if isinstance(original, ssl.SSLCertVerificationError):
            raise _tls_error(server, role, mode, original.verify_message or str(original),
                             host_mismatch=original.verify_code in _X509_HOST_MISMATCH,
                             certificate=True) from None
        if isinstance(original, ssl.SSLEOFError | ssl.SSLZeroReturnError | ConnectionError):
            raise  # the connection broke (in the TLS handshake or after): the caller retries
        if isinstance(original, ssl.SSLError):
            raise _tls_error(server, role, mode, str(original)) from None
        if code == CR_SSL_CONNECTION_ERROR:
            raise _tls_error(server, role, mode, str(e.args[-1]), no_tls=_pymysql_no_tls(e)) from None
        if code == ER_SECURE_TRANSPORT_REQUIRED or (
            code in codes.ACCESS_DENIED and _tls_gets_in(server, mode, attempt)
        ):
            raise _tls_required(server, role) from None
        raise
    except (ssl.SSLError, OSError) as e:  # building the TLS context: the files
        raise ConnectError(
            f"{role} {server.describe()}: cannot use the TLS files [{role}] ssl_ca/ssl_cert/ssl_key "
            f"({getattr(e, 'reason', None) or e.strerror or type(e).__name__}): check them"
        ) from None
    _require_tls(conn, server, role, mode, pymysql.err.Error)
    return conn


def _pymysql_no_tls(e: Exception) -> bool:
    args = getattr(e, "args", ())
    return bool(args) and args[0] == CR_SSL_CONNECTION_ERROR and "support" in str(args[-1])


# ---- both drivers -------------------------------------------------------------------------------


def _open(attempt: Callable[[str], Any], mode: str, no_tls: Callable[[Exception], bool]) -> Any:
    """``attempt(mode)``; for "preferred", once more without TLS when the driver refused
    because the server offers none."""
    try:
        return attempt(mode)
    except Exception as e:
        if mode != "preferred" or not no_tls(e):
            raise
    return attempt("disabled")


def _cipher(conn: Any) -> str:
    cur = conn.cursor()
    try:
        cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        row = cur.fetchone()
    finally:
        cur.close()
    value = row[1] if row else ""
    return (value.decode() if isinstance(value, bytes) else str(value or "")).strip()


def encrypted(conn: Any) -> bool:
    """Is this connection on TLS (``Ssl_cipher`` names a cipher)?"""
    return bool(_cipher(conn))


def _require_tls(conn: Any, server: ServerConfig, role: str, mode: str, errors: type[Exception]) -> None:
    """The modes that need TLS: is this connection encrypted? (libmariadb 3.3 and
    PyMySQL 1.1 go on unencrypted when the server offers no TLS.)"""
    if mode not in ENCRYPTED:
        return
    try:
        encrypted = bool(_cipher(conn))
    except errors as e:
        with contextlib.suppress(Exception):
            conn.close()
        raise ConnectError(f"{role} {server.describe()}: cannot read the connection's TLS status "
                           f"(SHOW SESSION STATUS LIKE 'Ssl_cipher': {e.args[-1] if e.args else e})") from None
    if not encrypted:
        with contextlib.suppress(Exception):
            conn.close()
        raise _tls_error(server, role, mode, "the connection is not encrypted", no_tls=True)


def _tls_gets_in(server: ServerConfig, mode: str, attempt: Callable[[str], Any]) -> bool:
    """After an access denied without TLS: does the same login get in over TLS (not
    verified; nothing is done on that connection)? Then the server requires TLS
    (MariaDB's require_secure_transport, an account's REQUIRE SSL)."""
    if mode != "disabled" or server.socket:
        return False
    try:
        conn = attempt("required")
    except Exception:
        return False
    with contextlib.suppress(Exception):
        conn.close()
    return True


def _tls_required(server: ServerConfig, role: str) -> ConnectError:
    return ConnectError(
        f"{role} {server.describe()}: the server requires TLS (require_secure_transport=ON or "
        f"the account's REQUIRE SSL) and [{role}] ssl_mode = 'disabled' connects without it: "
        f"set [{role}] ssl_mode = \"verify_identity\" with ssl_ca (or \"required\")"
    )


def _tls_error(server: ServerConfig, role: str, mode: str, detail: str, *, host_mismatch: bool = False,
               no_tls: bool = False, certificate: bool = False) -> ConnectError:
    """One line for a TLS failure of ``server``: what failed, which key, what to do."""
    where = f"{role} {server.describe()}"
    detail = detail.removeprefix("TLS/SSL error: ").strip()
    if no_tls:
        return ConnectError(
            f"{where}: [{role}] ssl_mode = {mode!r} needs TLS but the server offers none ({detail}): "
            f"enable TLS on the server (its ssl_cert/ssl_key), or set [{role}] ssl_mode = \"preferred\" "
            f"to allow an unencrypted connection"
        )
    if host_mismatch and mode == "verify_identity":
        return ConnectError(
            f"{where}: the server's TLS certificate is not issued for host {server.host!r} ({detail}): "
            f"set [{role}] host to a name or address the certificate lists (its subjectAltName), "
            f"or set [{role}] ssl_mode = \"verify_ca\" to check only the CA that signed it"
        )
    if certificate and mode in ("verify_ca", "verify_identity"):
        return ConnectError(
            f"{where}: the server's TLS certificate does not verify against [{role}] ssl_ca = "
            f"{server.ssl_ca!r} ({detail}): set [{role}] ssl_ca to the CA certificate that signed "
            f"the server's certificate"
        )
    return ConnectError(
        f"{where}: TLS with the server failed ({detail}): check [{role}] ssl_mode, ssl_ca, "
        f"ssl_cert and ssl_key against the server's TLS settings"
    )


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

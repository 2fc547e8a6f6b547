"""The target's own replication (the native IO and SQL threads), in either flavor: read
its status, stop and start it, point it at a position. Used by `takeover`, `handback`
and the preflight that refuses to run beside a running SQL thread.

MariaDB: SHOW SLAVE STATUS (default connection; SHOW ALL SLAVES STATUS for the
preflight), STOP/START SLAVE, CHANGE MASTER TO, gtid_slave_pos. MySQL 8.0.22+: SHOW
REPLICA STATUS, STOP/START REPLICA, CHANGE REPLICATION SOURCE TO, gtid_executed.
"""

from __future__ import annotations

import glob
import socket
import time
from dataclasses import dataclass

import MySQLdb
import MySQLdb.cursors

from ..config import ServerConfig
from ..db import codes
from ..db.sql import text
from ..errors import ConfigError, TargetError, TargetLost

STOP_SECONDS = 120.0  # how long STOP SLAVE may take to finish the group it applies
CONNECT_SECONDS = 15.0  # how long a started IO thread may take to connect to its source
ERROR_GRACE_SECONDS = 5.0  # an IO error older than START: how long it may stay before it counts


def _failed(e: MySQLdb.Error, where: str, sql: str) -> TargetError:
    """A driver error of a replication statement, in the applier's families."""
    code, detail = codes.code_of(e), codes.message_of(e)
    head = sql.split(" TO ")[0]
    if code in codes.GONE or code in codes.UNREACHABLE or isinstance(e, MySQLdb.InterfaceError):
        return TargetLost(f"lost the connection to the {where} during {head} ({code}: {detail}): check "
                          "that it runs and is reachable ([target] host/port), then run the command again")
    return TargetError(f"{where}: {head} failed: {code}: {detail}")


@dataclass(frozen=True)
class ReplicaStatus:
    io_running: bool
    sql_running: bool
    host: str
    port: int
    user: str
    exec_file: str  # the source's binlog coordinates of the last executed transaction
    exec_pos: int
    sql_errno: int
    sql_error: str
    auto_position: bool  # MariaDB Using_Gtid != No; MySQL Auto_Position = 1
    name: str = ""  # MariaDB multi-source connection name
    io_error: str = ""  # Last_IO_Error
    io_errno: int = 0  # Last_IO_Errno
    io_connecting: bool = False  # the IO thread runs but is not connected (yet)
    io_state: str = ""  # Slave_IO_State / Replica_IO_State

    @property
    def io_streaming(self) -> bool:
        """The IO thread is past connecting, checking the source and registering (where a
        bad setting, e.g. equal server ids, stops it): it waits for or queues the
        source's events. ``Slave_IO_Running = Yes`` alone comes before those checks."""
        state = self.io_state.lower()
        return self.io_running and ("to send event" in state or "queueing" in state
                                    or "relay log space" in state)


class Replica:
    """The replication of one target server (``conn``: a MySQLdb connection)."""

    def __init__(self, conn, flavor: str, where: str) -> None:
        self.conn = conn
        self.flavor = flavor
        self.where = where
        self.mariadb = flavor == "mariadb"

    def _rows(self, sql: str) -> list[dict]:
        cur = self.conn.cursor(MySQLdb.cursors.DictCursor)
        try:
            cur.execute(sql)
            return [{k: text(v) if isinstance(v, bytes | bytearray) else v for k, v in r.items()}
                    for r in cur.fetchall()]
        except MySQLdb.Error as e:
            if codes.code_of(e) in codes.PRIVILEGE:
                raise TargetError(
                    f"{self.where}: {sql} was refused ({codes.message_of(e)}): grant the applier's "
                    f"target user {'SLAVE MONITOR' if self.mariadb else 'REPLICATION CLIENT'} "
                    "(and REPLICATION SLAVE ADMIN / SUPER to stop and start it)"
                ) from None
            raise _failed(e, self.where, sql) from None
        finally:
            cur.close()

    def status(self) -> ReplicaStatus | None:
        """The default replication channel, or None when the server is not a replica."""
        rows = self._rows("SHOW SLAVE STATUS" if self.mariadb else "SHOW REPLICA STATUS")
        return _status(rows[0], self.mariadb) if rows else None

    def running_sql_threads(self) -> list[str]:
        """Names of channels whose SQL thread runs ("" for the default one)."""
        rows = self._rows("SHOW ALL SLAVES STATUS" if self.mariadb else "SHOW REPLICA STATUS")
        out = []
        for r in rows:
            st = _status(r, self.mariadb)
            if st.sql_running:
                out.append(st.name)
        return out

    def execute(self, sql: str, params: tuple | None = None) -> None:
        cur = self.conn.cursor()
        try:
            cur.execute(sql, params)
        except MySQLdb.Error as e:
            raise _failed(e, self.where, sql) from None
        finally:
            cur.close()

    def stop(self, thread: str = "") -> ReplicaStatus:
        """Stop both threads (or ``thread``: "IO_THREAD", "SQL_THREAD") and wait until
        they have; the status after."""
        self.execute(("STOP SLAVE" if self.mariadb else "STOP REPLICA") + (f" {thread}" if thread else ""))
        deadline = time.monotonic() + STOP_SECONDS
        while True:
            st = self._status_after_start()
            running = {"IO_THREAD": st.io_running, "SQL_THREAD": st.sql_running}.get(
                thread, st.sql_running or st.io_running)
            if not running:
                return st
            if time.monotonic() > deadline:
                raise TargetError(f"{self.where}: the replica threads did not stop within "
                                  f"{STOP_SECONDS:g}s: look at SHOW PROCESSLIST")
            time.sleep(0.1)

    def start(self, thread: str = "", wait: float = 30.0, *, connected: bool = False) -> ReplicaStatus:
        """Start both threads (or ``thread``); the status once it runs (an SQL thread that
        stopped on an error is an error). ``connected``: also wait (at most
        ``CONNECT_SECONDS``) until the IO thread is connected to its source, and raise
        its ``Last_IO_Error`` in one line when it is not."""
        self.execute(("START SLAVE" if self.mariadb else "START REPLICA") + (f" {thread}" if thread else ""))
        deadline = time.monotonic() + wait
        while True:
            st = self._status_after_start()
            if st.sql_errno:
                raise TargetError(f"{self.where}: the native replica stopped on error {st.sql_errno}: "
                                  f"{st.sql_error}")
            if st.io_running if thread == "IO_THREAD" else st.sql_running:
                break
            if time.monotonic() > deadline:
                raise TargetError(f"{self.where}: the native replica's {thread or 'SQL thread'} did "
                                  f"not start within {wait:g}s: look at SHOW {self._word} STATUS")
            time.sleep(0.1)
        return self.wait_connected() if connected else st

    @property
    def _word(self) -> str:
        return "SLAVE" if self.mariadb else "REPLICA"

    def _status_after_start(self) -> ReplicaStatus:
        st = self.status()
        if st is None:
            raise TargetError(f"{self.where} is no longer a replica (SHOW {self._word} STATUS is empty)")
        return st

    def wait_connected(self, wait: float = CONNECT_SECONDS) -> ReplicaStatus:
        """The status once the IO thread is connected to its source and streams from it
        (``ReplicaStatus.io_streaming``); a ``TargetError`` naming its last error when it
        does not within ``wait`` seconds (stopped, or still connecting)."""
        began = time.monotonic()
        while True:
            st = self._status_after_start()
            if st.sql_errno:
                raise TargetError(f"{self.where}: the native replica stopped on error {st.sql_errno}: "
                                  f"{st.sql_error}")
            if st.io_streaming and not st.io_errno:
                return st
            elapsed = time.monotonic() - began
            # an error while it still tries: an attempt failed (the next one comes after
            # MASTER_CONNECT_RETRY, a minute); a few seconds first, in case it was an old one
            if (st.io_errno and (not st.io_connecting or elapsed > ERROR_GRACE_SECONDS)) or elapsed > wait:
                break
            time.sleep(0.2)
        state = "stopped" if not st.io_connecting else f"still connecting after {wait:g} s"
        error = (f"error {st.io_errno}: {st.io_error}" if st.io_errno
                 else "no error reported yet")
        raise TargetError(
            f"{self.where}: the native replica's IO thread cannot connect to its source "
            f"{st.host}:{st.port} as {st.user!r} ({state}; {error}): fix what the error names "
            f"(the source's user, password, TLS: CHANGE {'MASTER' if self.mariadb else 'REPLICATION SOURCE'} "
            f"TO ...) and START {self._word}, or run the command again"
        )

    def point_at(self, file: str, pos: int, gtid: str, *, use_gtid: bool,
                 source: tuple[str, tuple] = ("", ())) -> None:
        """Make the (stopped) replica continue after ``file``:``pos`` / the GTID position
        ``gtid`` (MariaDB: gtid_slave_pos with MASTER_USE_GTID=slave_pos; MySQL: its
        gtid_executed must already hold it, SOURCE_AUTO_POSITION=1), or by file/pos. Its
        relay logs are dropped and start anew. ``source``: the connection part of the
        CHANGE statement for a server that was never a replica."""
        head, params = source
        if self.mariadb:
            if use_gtid:
                self.execute("SET GLOBAL gtid_slave_pos = %s", (gtid,))
                self.execute(f"CHANGE MASTER TO {head}MASTER_USE_GTID = slave_pos", params)
            else:
                self.execute(f"CHANGE MASTER TO {head}MASTER_USE_GTID = no, MASTER_LOG_FILE = %s, "
                             "MASTER_LOG_POS = %s", (*params, file, pos))
        elif use_gtid:
            self.execute(f"CHANGE REPLICATION SOURCE TO {head}SOURCE_AUTO_POSITION = 1", params)
        else:
            self.execute(f"CHANGE REPLICATION SOURCE TO {head}SOURCE_AUTO_POSITION = 0, "
                         "SOURCE_LOG_FILE = %s, SOURCE_LOG_POS = %s", (*params, file, pos))

    def relay_log_index(self) -> tuple[str, int]:
        """(the relay log index file's path, this server's server_id)."""
        cur = self.conn.cursor()
        sql = "SELECT @@relay_log_index, @@datadir, @@server_id"
        try:
            cur.execute(sql)
            index, datadir, server_id = cur.fetchone()
        except MySQLdb.Error as e:
            raise _failed(e, self.where, sql) from None
        finally:
            cur.close()
        datadir = text(datadir).rstrip("/")
        if index:
            path = text(index)
            return (path if path.startswith("/") else f"{datadir}/{path}"), int(server_id)
        # relay_log not set: MariaDB reports NULL and names the files after its default
        # log base name (mysqld-relay-bin, or the host's name): the one index in datadir
        found = sorted(glob.glob(f"{glob.escape(datadir)}/*relay-bin.index"))
        if len(found) != 1:
            raise ConfigError(
                f"{self.where} has no relay_log setting and {len(found) or 'no'} relay log index files "
                f"in {datadir}{': ' + ', '.join(found) if found else ''}: set [source] relay_log_index")
        return found[0], int(server_id)

    def gtid_position(self) -> str:
        """MariaDB: gtid_slave_pos; MySQL: gtid_executed."""
        cur = self.conn.cursor()
        sql = "SELECT @@GLOBAL.gtid_slave_pos" if self.mariadb else "SELECT @@GLOBAL.gtid_executed"
        try:
            cur.execute(sql)
            return text(cur.fetchone()[0]).replace("\n", "")
        except MySQLdb.Error as e:
            raise _failed(e, self.where, sql) from None
        finally:
            cur.close()


def _status(r: dict, mariadb: bool) -> ReplicaStatus:
    if mariadb:
        return ReplicaStatus(
            r.get("Slave_IO_Running") == "Yes", r.get("Slave_SQL_Running") == "Yes",
            r.get("Master_Host") or "", int(r.get("Master_Port") or 0), r.get("Master_User") or "",
            r.get("Relay_Master_Log_File") or "", int(r.get("Exec_Master_Log_Pos") or 0),
            int(r.get("Last_SQL_Errno") or 0), r.get("Last_SQL_Error") or "",
            (r.get("Using_Gtid") or "No") != "No", r.get("Connection_name") or "",
            r.get("Last_IO_Error") or "", int(r.get("Last_IO_Errno") or 0),
            (r.get("Slave_IO_Running") or "No") not in ("Yes", "No"), r.get("Slave_IO_State") or "",
        )
    return ReplicaStatus(
        r.get("Replica_IO_Running") == "Yes", r.get("Replica_SQL_Running") == "Yes",
        r.get("Source_Host") or "", int(r.get("Source_Port") or 0), r.get("Source_User") or "",
        r.get("Relay_Source_Log_File") or "", int(r.get("Exec_Source_Log_Pos") or 0),
        int(r.get("Last_SQL_Errno") or 0), r.get("Last_SQL_Error") or "",
        str(r.get("Auto_Position")) == "1", r.get("Channel_Name") or "",
        r.get("Last_IO_Error") or "", int(r.get("Last_IO_Errno") or 0),
        (r.get("Replica_IO_Running") or "No") not in ("Yes", "No"), r.get("Replica_IO_State") or "",
    )


_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def same_server(host: str, port: int, server: ServerConfig) -> bool:
    """The replica's source (host, port) is the configured server."""
    if server.socket:
        return host in _LOOPBACK or not host
    if port != server.port:
        return False
    if host == server.host or {host, server.host} <= _LOOPBACK:
        return True
    try:
        mine = {a[4][0] for a in socket.getaddrinfo(server.host, port)}
        theirs = {a[4][0] for a in socket.getaddrinfo(host, port)}
    except OSError:
        return False
    return bool(mine & theirs)

"""Server and client error codes the applier acts on: the one home of these numbers.

Names follow the server's ``ER_*`` / client ``CR_*`` constants; the sets say what the
applier does with them.
"""

from __future__ import annotations

import MySQLdb

# -- retry the transaction ------------------------------------------------------------
ER_LOCK_WAIT_TIMEOUT = 1205
ER_LOCK_DEADLOCK = 1213
RETRYABLE = frozenset({ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT})

# -- the connection is gone: reconnect (and resume from the checkpoint) -----------------
CR_CONNECTION_ERROR = 2002
CR_CONN_HOST_ERROR = 2003
CR_UNKNOWN_HOST = 2005
CR_SERVER_GONE_ERROR = 2006
CR_SERVER_LOST = 2013
CR_SERVER_LOST_EXTENDED = 2055
CR_SSL_CONNECTION_ERROR = 2026
ER_SERVER_SHUTDOWN = 1053
ER_CONNECTION_KILLED = 1927  # MariaDB; MySQL reports a killed connection as 2013
ER_QUERY_INTERRUPTED = 1317
ER_CLIENT_INTERACTION_TIMEOUT = 4031  # MySQL 8.0.24+: the server ended an idle session (wait_timeout)
# (2026, a TLS connection that breaks under a statement: "TLS/SSL error: Connection reset
# by peer"; when connecting, db.connect tells a TLS set-up problem apart first)
GONE = frozenset({CR_SERVER_GONE_ERROR, CR_SERVER_LOST, CR_SERVER_LOST_EXTENDED,
                  ER_SERVER_SHUTDOWN, ER_CONNECTION_KILLED, CR_SSL_CONNECTION_ERROR,
                  ER_CLIENT_INTERACTION_TIMEOUT})
UNREACHABLE = frozenset({CR_CONNECTION_ERROR, CR_CONN_HOST_ERROR, CR_UNKNOWN_HOST, CR_SERVER_LOST})

# -- connecting ---------------------------------------------------------------------------
ER_CON_COUNT_ERROR = 1040
ER_DBACCESS_DENIED_ERROR = 1044
ER_ACCESS_DENIED_ERROR = 1045
ER_BAD_DB_ERROR = 1049
ER_HOST_IS_BLOCKED = 1129
ER_HOST_NOT_PRIVILEGED = 1130
ER_NOT_SUPPORTED_AUTH_MODE = 1251
ER_ACCESS_DENIED_NO_PASSWORD_ERROR = 1698
CR_AUTH_PLUGIN_CANNOT_LOAD = 2059
ACCESS_DENIED = frozenset({ER_ACCESS_DENIED_ERROR, ER_ACCESS_DENIED_NO_PASSWORD_ERROR})
HOST_NOT_ALLOWED = frozenset({ER_HOST_IS_BLOCKED, ER_HOST_NOT_PRIVILEGED})
AUTH_PLUGIN = frozenset({CR_AUTH_PLUGIN_CANNOT_LOAD, ER_NOT_SUPPORTED_AUTH_MODE})

# -- privileges and objects ---------------------------------------------------------------
ER_TABLEACCESS_DENIED_ERROR = 1142
ER_SPECIFIC_ACCESS_DENIED_ERROR = 1227
ER_NO_SUCH_TABLE = 1146
ER_BAD_TABLE_ERROR = 1051  # DROP TABLE/VIEW of an unknown one
PRIVILEGE = frozenset({ER_DBACCESS_DENIED_ERROR, ER_ACCESS_DENIED_ERROR,
                       ER_TABLEACCESS_DENIED_ERROR, ER_SPECIFIC_ACCESS_DENIED_ERROR})
ER_NET_PACKET_TOO_LARGE = 1153
CR_NET_PACKET_TOO_LARGE = 2020
PACKET_TOO_LARGE = frozenset({ER_NET_PACKET_TOO_LARGE, CR_NET_PACKET_TOO_LARGE})

# -- binlog --------------------------------------------------------------------------------
ER_NO_BINARY_LOGGING = 1381
ER_MASTER_FATAL_ERROR_READING_BINLOG = 1236
ER_SLAVE_SAME_ID = 4052  # MariaDB: a replica with this server_id already dumps the binlog

# -- DDL re-run after a crash: "already exists" / "already gone" -------------------------
DDL_ALREADY_DONE = frozenset({
    1007,  # ER_DB_CREATE_EXISTS
    1008,  # ER_DB_DROP_EXISTS
    1022,  # ER_DUP_KEY
    1050,  # ER_TABLE_EXISTS_ERROR
    ER_BAD_TABLE_ERROR,
    1060,  # ER_DUP_FIELDNAME
    1061,  # ER_DUP_KEYNAME
    1068,  # ER_MULTIPLE_PRI_KEY
    1091,  # ER_CANT_DROP_FIELD_OR_KEY
    1146,  # ER_NO_SUCH_TABLE
    1826,  # ER_FK_DUP_NAME
})


def code_of(e: BaseException) -> int:
    """The error number of a driver error (0 when it carries none)."""
    if isinstance(e, MySQLdb.Error) and e.args and isinstance(e.args[0], int):
        return e.args[0]
    return 0


def message_of(e: BaseException) -> str:
    """The server's message of a driver error, as text."""
    if isinstance(e, MySQLdb.Error) and len(e.args) > 1:
        msg = e.args[1]
        return msg.decode("utf-8", "replace") if isinstance(msg, bytes) else str(msg)
    return str(e)

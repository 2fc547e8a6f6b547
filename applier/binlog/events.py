"""Binlog event framing: the 19-byte common header and the event type codes we use.

Only what routing needs is parsed in the coordinator; row images are decoded later,
in the workers (``rowcodec``). Formats: MySQL's "Binlog Event" internals docs and
MariaDB's "Replication Protocol" pages.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

HEADER = struct.Struct("<IBIIIH")  # timestamp, type, server_id, event_size, log_pos, flags
HEADER_LEN = 19

QUERY = 2
STOP = 3
ROTATE = 4
INTVAR = 5
RAND = 13
USER_VAR = 14
FORMAT_DESCRIPTION = 15
XID = 16
TABLE_MAP = 19
WRITE_ROWS_V1 = 23
UPDATE_ROWS_V1 = 24
DELETE_ROWS_V1 = 25
HEARTBEAT = 27
WRITE_ROWS_V2 = 30
UPDATE_ROWS_V2 = 31
DELETE_ROWS_V2 = 32
MYSQL_GTID = 33
MYSQL_ANONYMOUS_GTID = 34
MYSQL_PREVIOUS_GTIDS = 35
MYSQL_XA_PREPARE = 38
MYSQL_PARTIAL_UPDATE_ROWS = 39
MYSQL_TRANSACTION_PAYLOAD = 40
MYSQL_HEARTBEAT_V2 = 41
MYSQL_GTID_TAGGED = 42
MYSQL_LARGE_TRANSACTION_HEADER = 43  # MySQL 9.x, LOG_EVENT_IGNORABLE_F: skipped
MARIADB_ANNOTATE_ROWS = 160
MARIADB_BINLOG_CHECKPOINT = 161
MARIADB_GTID = 162
MARIADB_GTID_LIST = 163
MARIADB_START_ENCRYPTION = 164
MARIADB_QUERY_COMPRESSED = 165
MARIADB_WRITE_ROWS_COMPRESSED_V1 = 169
MARIADB_UPDATE_ROWS_COMPRESSED_V1 = 170
MARIADB_DELETE_ROWS_COMPRESSED_V1 = 171
MARIADB_XA_PREPARE = 182  # not used by 10.11 binlogs but reserved

# Row operation kinds, as the rest of the applier names them.
INSERT, UPDATE, DELETE = 1, 2, 3
ROWS_EVENTS = {
    WRITE_ROWS_V1: (INSERT, 1),
    UPDATE_ROWS_V1: (UPDATE, 1),
    DELETE_ROWS_V1: (DELETE, 1),
    WRITE_ROWS_V2: (INSERT, 2),
    UPDATE_ROWS_V2: (UPDATE, 2),
    DELETE_ROWS_V2: (DELETE, 2),
}
UNSUPPORTED = {
    MYSQL_PARTIAL_UPDATE_ROWS: "binlog_row_value_options=PARTIAL_JSON (set it to '')",
    MARIADB_QUERY_COMPRESSED: "log_bin_compress=ON (set it OFF)",
    MARIADB_WRITE_ROWS_COMPRESSED_V1: "log_bin_compress=ON (set it OFF)",
    MARIADB_UPDATE_ROWS_COMPRESSED_V1: "log_bin_compress=ON (set it OFF)",
    MARIADB_DELETE_ROWS_COMPRESSED_V1: "log_bin_compress=ON (set it OFF)",
    # (over a dump connection the events after it come decrypted: source.PacketReader)
    MARIADB_START_ENCRYPTION: "encrypt_binlog=ON: the file's events are encrypted (read them through "
                              "the source's dump connection, which decrypts them)",
}

# Events that only come with statement-based logging: context for the statement that
# follows (auto-increment values, RAND seeds, user variables) and LOAD DATA's file.
APPEND_BLOCK, DELETE_FILE, BEGIN_LOAD_QUERY, EXECUTE_LOAD_QUERY = 9, 11, 17, 18
STATEMENT_ONLY = {
    INTVAR: "INTVAR",
    RAND: "RAND",
    USER_VAR: "USER_VAR",
    APPEND_BLOCK: "APPEND_BLOCK",
    DELETE_FILE: "DELETE_FILE",
    BEGIN_LOAD_QUERY: "BEGIN_LOAD_QUERY",
    EXECUTE_LOAD_QUERY: "EXECUTE_LOAD_QUERY",
}

# Flags in the MariaDB GTID event.
MARIADB_FL_STANDALONE = 0x01
MARIADB_FL_GROUP_COMMIT_ID = 0x02

LOG_EVENT_ARTIFICIAL_F = 0x20


@dataclass(slots=True)
class Event:
    """One binlog event with header fields split out and the checksum removed."""

    type: int
    timestamp: int
    server_id: int
    log_pos: int  # end offset of this event in its file (0 for artificial events)
    flags: int
    body: bytes  # bytes after the common header


def packed_int(buf: bytes, pos: int) -> tuple[int, int]:
    """A length-encoded integer at ``pos``: (value, new pos)."""
    first = buf[pos]
    if first < 251:
        return first, pos + 1
    if first == 252:
        return buf[pos + 1] | buf[pos + 2] << 8, pos + 3
    if first == 253:
        return int.from_bytes(buf[pos + 1 : pos + 4], "little"), pos + 4
    return int.from_bytes(buf[pos + 1 : pos + 9], "little"), pos + 9

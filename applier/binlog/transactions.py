"""Group binlog events into whole transactions.

A transaction starts at a GTID event (MariaDB: BEGIN is implied unless the GTID is
flagged standalone; MySQL: a QUERY "BEGIN" follows) or a bare QUERY "BEGIN", and ends
at XID, QUERY "COMMIT" or QUERY "ROLLBACK" (the latter only reaches the binlog when
non-transactional changes could not be undone, so it is applied like COMMIT). A QUERY
outside BEGIN ... COMMIT (DDL, account statements) is a transaction of its own.

Rows events stay undecoded bytes here; a transaction carries the TableMap bodies its
rows events refer to so it can be shipped whole to a worker process. Transactions the
native scanner (native/_scan.pyx) read carry the same as one ``payload`` bytes object
instead, expanded in the worker (``native.unpack_payload``): one bytes object pickles
far cheaper than a dict and a list of tuples.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

from . import events as ev
from .position import file_number

_QUERY_POST = struct.Struct("<IIBHH")  # thread_id, exec_time, db_len, error_code, status_len
Q_FLAGS2_CODE = 0
Q_SQL_MODE_CODE = 1
Q_CHARSET_CODE = 4
OPTION_NO_FOREIGN_KEY_CHECKS = 1 << 26  # in flags2: the session had foreign_key_checks=0


@dataclass(slots=True)
class RowsEvent:
    """One undecoded rows event: ``op`` is events.INSERT/UPDATE/DELETE."""

    op: int
    table_id: int
    version: int
    body: bytes


@dataclass(slots=True)
class Statement:
    """A QUERY event to execute as is (DDL, or SAVEPOINT inside a transaction)."""

    db: str
    sql: bytes
    charset_id: int | None  # collation id of character_set_client when logged
    no_fk_checks: bool = False  # logged with foreign_key_checks=0 (flags2)
    sql_mode: int | None = None  # the session's sql_mode bits (the source flavor's)
    collation_connection: int | None = None
    collation_server: int | None = None


@dataclass(slots=True)
class Transaction:
    seq: int
    gtid: str
    file: str  # binlog file holding the end of the transaction
    end_pos: int  # position after the transaction: where a restart resumes
    timestamp: int
    table_maps: dict[int, bytes] = field(default_factory=dict)
    items: list[RowsEvent | Statement] = field(default_factory=list)
    rows: int = 0  # filled by the writeset stage
    barrier: str = ""  # why this transaction must run alone ("" = parallel-safe)
    ticket: int = 0  # dispatch order number (the commit order with preserve_commit_order)
    payload: bytes = b""  # scanner transactions: table_maps + items, framed (see unpack_payload)

    @property
    def end_ordinal(self) -> int:
        return file_number(self.file) << 32 | self.end_pos

    @property
    def is_ddl(self) -> bool:
        return any(isinstance(i, Statement) for i in self.items)


def py_unpack_payload(payload: bytes, rows_event=RowsEvent) -> tuple[dict[int, bytes], list]:
    """A scanner payload -> (table_maps, rows events in order). The payload is each
    TableMap and rows event of the transaction as: type (1 byte), body length (4 bytes,
    little-endian), body (checksum removed). Same results as the native version."""
    maps: dict[int, bytes] = {}
    items = []
    pos, n = 0, len(payload)
    while pos < n:
        if n - pos < 5:
            raise ValueError("truncated scanner payload")
        etype = payload[pos]
        size = int.from_bytes(payload[pos + 1 : pos + 5], "little")
        pos += 5
        if size > n - pos or size < 6:
            raise ValueError("truncated scanner payload")
        body = payload[pos : pos + size]
        pos += size
        table_id = int.from_bytes(body[:6], "little")
        if etype == ev.TABLE_MAP:
            maps[table_id] = body
        elif etype in ev.ROWS_EVENTS:
            op, version = ev.ROWS_EVENTS[etype]
            items.append(rows_event(op, table_id, version, body))
        else:
            raise ValueError(f"unexpected event type {etype} in a scanner payload")
    return maps, items


def parse_query(body: bytes) -> Statement:
    _, _, db_len, _, status_len = _QUERY_POST.unpack_from(body, 0)
    status = _status_vars(body[13 : 13 + status_len])
    db_start = 13 + status_len
    db = body[db_start : db_start + db_len].decode("utf-8", "replace")
    sql = body[db_start + db_len + 1 :]
    flags2 = _int(status.get(Q_FLAGS2_CODE))
    charsets = status.get(Q_CHARSET_CODE)
    client = connection = server = None
    if charsets is not None and len(charsets) == 6:
        client, connection, server = struct.unpack("<HHH", charsets)
    return Statement(db, sql, client, bool(flags2 and flags2 & OPTION_NO_FOREIGN_KEY_CHECKS),
                     _int(status.get(Q_SQL_MODE_CODE)), connection, server)


def _int(raw: bytes | None) -> int | None:
    return None if raw is None else int.from_bytes(raw, "little")


# status variables of a Query event (MySQL's and MariaDB's Q_* codes): fixed sizes
_FIXED = {0: 4, 1: 8, 3: 4, 4: 6, 7: 2, 8: 2, 9: 8, 10: 4, 13: 3, 16: 1, 17: 8, 18: 2, 19: 1, 20: 1,
          128: 3, 129: 8, 130: 1}


def _status_vars(status: bytes) -> dict[int, bytes]:
    """The raw value of each status variable, up to the first code whose length is
    unknown (the ones applied come early in practice)."""
    out: dict[int, bytes] = {}
    i, n = 0, len(status)
    while i < n:
        code = status[i]
        i += 1
        if code in _FIXED:
            size = _FIXED[code]
        elif code == 2:  # catalog: length, bytes, NUL
            size = 1 + status[i] + 1
        elif code in (5, 6):  # time zone, catalog: length + bytes
            size = 1 + status[i]
        elif code == 11:  # invoker: user, host
            size = 1 + status[i]
            size += 1 + status[i + size]
        elif code == 12:  # updated databases: count, then NUL-terminated names
            count, j = status[i], i + 1
            if count != 254:  # OVER_MAX_DBS_IN_EVENT_MTS: no names follow
                for _ in range(count):
                    j = status.index(b"\0", j) + 1
            size = j - i
        else:
            break
        out[code] = status[i : i + size]
        i += size
    return out


_BEGIN = b"BEGIN"
_COMMIT = b"COMMIT"
_ROLLBACK = b"ROLLBACK"


class TransactionBuilder:
    """Feed events in binlog order; ``add`` returns each transaction once it is whole.

    ``current`` exposes the transaction being read so a caller can stream a big one
    (take its items as they arrive) instead of holding it all.
    """

    def __init__(self) -> None:
        self.current: Transaction | None = None
        self._in_group = False
        self._next_seq = 1
        self.file = ""
        self.pos = 4

    def at_boundary(self) -> bool:
        """Between transactions: no partly read one."""
        return self.current is None and not self._in_group

    def reset(self) -> None:
        """Forget a partly read transaction (after a disconnect); numbering goes on."""
        self.current = None
        self._in_group = False

    def _start(self, gtid: str, timestamp: int) -> Transaction:
        # numbered when whole (``_finish``): a transaction a disconnect drops takes no number
        txn = Transaction(0, gtid, self.file, self.pos, timestamp)
        self.current = txn
        return txn

    def whole(self, gtid: str, timestamp: int, end_pos: int, payload: bytes, rows: int) -> Transaction:
        """A whole transaction the native scanner read (it ends at ``end_pos`` in the
        current file); numbered like the ones ``add`` builds."""
        txn = Transaction(self._next_seq, gtid, self.file, end_pos, timestamp, payload=payload, rows=rows)
        self._next_seq += 1
        self.pos = end_pos
        return txn

    def _finish(self, e: ev.Event) -> Transaction:
        txn = self.current
        assert txn is not None
        txn.seq = self._next_seq
        self._next_seq += 1
        txn.file = self.file
        txn.end_pos = e.log_pos if e.log_pos else self.pos
        self.current = None
        self._in_group = False
        return txn

    def add(self, e: ev.Event, file: str) -> Transaction | None:
        self.file = file
        t = e.type
        result = None
        if t in ev.ROWS_EVENTS or t == ev.TABLE_MAP:
            txn = self.current or self._start("", e.timestamp)
            self._in_group = True
            if t == ev.TABLE_MAP:
                txn.table_maps[int.from_bytes(e.body[:6], "little")] = e.body
            else:
                op, version = ev.ROWS_EVENTS[t]
                txn.items.append(RowsEvent(op, int.from_bytes(e.body[:6], "little"), version, e.body))
        elif t == ev.XID:
            if self.current is not None:
                result = self._finish(e)
        elif t == ev.QUERY:
            result = self._query(e)
        elif t == ev.MARIADB_GTID:
            seq, domain, flags = struct.unpack_from("<QIB", e.body, 0)
            self._start(f"{domain}-{e.server_id}-{seq}", e.timestamp)
            self._in_group = not flags & ev.MARIADB_FL_STANDALONE
        elif t == ev.MYSQL_GTID:
            sid = e.body[1:17].hex()
            gno = int.from_bytes(e.body[17:25], "little")
            uuid = f"{sid[:8]}-{sid[8:12]}-{sid[12:16]}-{sid[16:20]}-{sid[20:]}"
            self._start(f"{uuid}:{gno}", e.timestamp)
        elif t == ev.MYSQL_ANONYMOUS_GTID:
            self._start("", e.timestamp)
        elif t == ev.ROTATE:
            self.file = e.body[8:].decode()
            self.pos = int.from_bytes(e.body[:8], "little")
            return None
        if e.log_pos:
            self.pos = e.log_pos
        return result

    def _query(self, e: ev.Event) -> Transaction | None:
        stmt = parse_query(e.body)
        head = stmt.sql[:8].upper()
        if head.startswith(_BEGIN) and stmt.sql.strip().upper() == _BEGIN:
            if self.current is None:
                self._start("", e.timestamp)
            self._in_group = True
            return None
        if self._in_group:
            if head.startswith(_COMMIT) or (head.startswith(_ROLLBACK) and b" TO " not in stmt.sql.upper()):
                return self._finish(e)
            assert self.current is not None
            self.current.items.append(stmt)  # SAVEPOINT / ROLLBACK TO inside a transaction
            return None
        txn = self.current or self._start("", e.timestamp)
        txn.items.append(stmt)
        return self._finish(e)


# ---- which databases a statement touches (for filters) ----------------------------------

_IDENT = r"(?:`(?:[^`]|``)+`|[\w$]+)"
_DB_STMT = re.compile(
    rb"^\s*(?:CREATE|DROP|ALTER)\s+(?:DATABASE|SCHEMA)\s+(?:IF\s+(?:NOT\s+)?EXISTS\s+)?(" + _IDENT.encode() + rb")",
    re.I,
)
_TABLE_REF = re.compile(
    rb"\b(?:TABLE|TABLES|VIEW|INDEX\s+\S+\s+ON|TRIGGER|PROCEDURE|FUNCTION|INTO|UPDATE|FROM|JOIN|TO)\s+"
    rb"(?:IF\s+(?:NOT\s+)?EXISTS\s+)?(" + _IDENT.encode() + rb")\s*\.\s*" + _IDENT.encode(),
    re.I,
)
_ACCOUNT = re.compile(
    rb"^\s*(?:CREATE|DROP|ALTER|RENAME)\s+(?:USER|ROLE)|^\s*(?:GRANT|REVOKE|SET\s+PASSWORD|FLUSH)\b", re.I
)


def _unquote(name: bytes) -> str:
    text = name.decode("utf-8", "replace")
    return text[1:-1].replace("``", "`") if text.startswith("`") else text


_ROW_CHANGE = re.compile(
    rb"^\s*(?:/\*.*?\*/\s*)*(?:INSERT|REPLACE|UPDATE|DELETE|LOAD\s+(?:DATA|XML)|CALL|DO)\b", re.I | re.S
)


def changes_rows(stmt: Statement) -> bool:
    """A statement that changes rows (logged as a statement, not as row events): what
    binlog_format=STATEMENT or MIXED writes. Applied as text it would not be exact."""
    return _ROW_CHANGE.match(stmt.sql) is not None


def is_database_statement(stmt: Statement) -> bool:
    return _DB_STMT.match(stmt.sql) is not None


def statement_databases(stmt: Statement) -> set[str]:
    """The databases a statement changes, as well as a regex can tell: the database of
    CREATE/DROP/ALTER DATABASE, qualified table references, else the session database.
    Account statements count as ``mysql``."""
    sql = stmt.sql
    m = _DB_STMT.match(sql)
    if m:
        return {_unquote(m.group(1))}
    if _ACCOUNT.match(sql):
        return {"mysql"}
    dbs = {_unquote(m.group(1)) for m in _TABLE_REF.finditer(sql)}
    if stmt.db and not dbs:  # `USE a; CREATE TABLE b.t ...` changes b only
        dbs.add(stmt.db)
    return dbs

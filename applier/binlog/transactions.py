"""Group binlog events into whole transactions.

A transaction starts at a GTID event (MariaDB: BEGIN is implied unless the GTID is
flagged standalone; MySQL: a QUERY "BEGIN" follows; MySQL 8.3+ tagged GTIDs come in
their own event type, ``uuid:tag:n``) or a bare QUERY "BEGIN", and ends
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

from ..errors import DecodeError
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
    headless: bool = False  # its start was not read: the tail of one from before the first event

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


# MySQL 8.0.21+ logs CREATE TABLE ... SELECT as "CREATE TABLE ... START TRANSACTION", the
# rows, then an XID (atomic CTAS). A server runs only BINLOG statements after that clause
# (error 3977) and MariaDB has none: the applier runs the CREATE TABLE plain.
_CTAS_START = re.compile(rb"\A(\s*CREATE\s+TABLE\b.*?)\s+START\s+TRANSACTION\s*\Z", re.I | re.S)


def parse_query(body: bytes) -> Statement:
    _, _, db_len, _, status_len = _QUERY_POST.unpack_from(body, 0)
    status = _status_vars(body[13 : 13 + status_len])
    db_start = 13 + status_len
    db = body[db_start : db_start + db_len].decode("utf-8", "replace")
    sql = body[db_start + db_len + 1 :]
    if ctas := _CTAS_START.match(sql):
        sql = ctas.group(1)
    flags2 = _int(status.get(Q_FLAGS2_CODE))
    charsets = status.get(Q_CHARSET_CODE)
    client = connection = server = None
    if charsets is not None and len(charsets) == 6:
        client, connection, server = struct.unpack("<HHH", charsets)
    return Statement(db, sql, client, bool(flags2 and flags2 & OPTION_NO_FOREIGN_KEY_CHECKS),
                     _int(status.get(Q_SQL_MODE_CODE)), connection, server)


def mysql_gtid(body: bytes) -> str:
    """``uuid:n`` of a MySQL GTID_LOG_EVENT (flags, 16-byte uuid, 8-byte gno, ...)."""
    sid = body[1:17].hex()
    gno = int.from_bytes(body[17:25], "little")
    return f"{sid[:8]}-{sid[8:12]}-{sid[12:16]}-{sid[16:20]}-{sid[20:]}:{gno}"


def _varlen(body: bytes, pos: int) -> tuple[int, int]:
    """An unsigned integer of MySQL's serialization library (libs/mysql/serialization):
    1-9 bytes little-endian, the number of trailing 1 bits of the first byte + 1 is the
    byte count; the value follows those bits (9 bytes: the next 8 bytes whole)."""
    first = body[pos]
    n = 1
    while n < 9 and first >> (n - 1) & 1:
        n += 1
    if pos + n > len(body):
        raise IndexError("varlen integer runs past the end")
    if n == 1:
        return first >> 1, pos + 1
    rest = int.from_bytes(body[pos + 1 : pos + n], "little")
    if n == 9:
        return rest, pos + 9
    return (first >> n) | rest << (8 - n), pos + n


def tagged_gtid(body: bytes) -> str:
    """``uuid:tag:n`` of a GTID_TAGGED_LOG_EVENT (type 42, MySQL 8.3+). Its body is a
    serialized message (mysql::serialization): a field id, the message size, the last
    non-ignorable field id, then fields as ``id, value``: 0 flags, 1 the uuid (16 bytes,
    each an integer), 2 the gno (signed: zigzag), 3 the tag (length, bytes), then
    commit timestamps and more that the applier does not need."""
    try:
        _, pos = _varlen(body, 0)
        size, pos = _varlen(body, pos)
        _, pos = _varlen(body, pos)
        end = min(size, len(body))
        uuid = b""
        gno = -1
        tag = ""
        while pos < end:
            field, pos = _varlen(body, pos)
            if field == 1:
                parts = bytearray()
                for _ in range(16):
                    b, pos = _varlen(body, pos)
                    parts.append(b)
                uuid = bytes(parts)
            elif field == 3:
                length, pos = _varlen(body, pos)
                tag = body[pos : pos + length].decode("ascii").lower()
                pos += length
                break  # the fields the applier needs are in
            elif field in (0, 2):
                value, pos = _varlen(body, pos)
                if field == 2:
                    gno = (value >> 1) ^ -(value & 1)
            else:
                break
    except (IndexError, UnicodeDecodeError, ValueError):
        raise DecodeError("a tagged GTID event (GTID_TAGGED_LOG_EVENT) is malformed") from None
    if len(uuid) != 16 or gno < 1:
        raise DecodeError("a tagged GTID event (GTID_TAGGED_LOG_EVENT) lacks its uuid or number")
    sid = uuid.hex()
    text = f"{sid[:8]}-{sid[8:12]}-{sid[12:16]}-{sid[16:20]}-{sid[20:]}"
    return f"{text}:{tag}:{gno}" if tag else f"{text}:{gno}"


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

    def _headless(self, e: ev.Event) -> Transaction:
        """A TableMap, rows event or COMMIT with no transaction started: the reading began
        inside a transaction (a relay log whose earlier file was deleted once applied)."""
        txn = self._start("", e.timestamp)
        txn.headless = True
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
            txn = self.current or self._headless(e)
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
            self._start(mysql_gtid(e.body), e.timestamp)
        elif t == ev.MYSQL_GTID_TAGGED:
            self._start(tagged_gtid(e.body), e.timestamp)
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
        ends = head.startswith(_COMMIT) or (head.startswith(_ROLLBACK) and b" TO " not in stmt.sql.upper())
        if self._in_group:
            if ends:
                return self._finish(e)
            assert self.current is not None
            self.current.items.append(stmt)  # SAVEPOINT / ROLLBACK TO inside a transaction
            return None
        if ends and self.current is None:  # the end of a transaction whose start was not read
            self._headless(e)
            return self._finish(e)
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
    """The databases a statement changes, as well as its text tells (``statement_changes``):
    the database of CREATE/DROP/ALTER DATABASE, the databases of the tables a table
    statement names (the session's default database for unqualified names), else
    qualified references or the default database. Account statements count as ``mysql``."""
    changes = statement_changes(stmt)
    if changes.kind == TABLE_STATEMENT:
        return {db or stmt.db for db, _ in changes.tables} - {""}
    dbs = set(changes.databases)
    if stmt.db and not dbs:  # `USE a; CREATE PROCEDURE b.p ...` changes b only
        dbs.add(stmt.db)
    return dbs


DATABASE_STATEMENT, TABLE_STATEMENT, OTHER_STATEMENT = "database", "tables", "other"


@dataclass(frozen=True, slots=True)
class Changes:
    """What a logged statement changes, as far as its text tells (for filters):

    * ``"database"``: CREATE/ALTER/DROP DATABASE (SCHEMA); ``databases`` holds its name;
    * ``"tables"``: a statement on named tables: CREATE/ALTER/DROP/RENAME/TRUNCATE TABLE
      (both names of a rename, ``ALTER TABLE .. RENAME TO`` too), CREATE/DROP INDEX (its
      table), CREATE/ALTER/DROP VIEW and SEQUENCE, CREATE TRIGGER (its table),
      OPTIMIZE/ANALYZE/REPAIR TABLE, and the row changes a STATEMENT-format session logs
      (INSERT/REPLACE/UPDATE/DELETE: the table written); ``tables`` holds one
      ``(database, table)`` per name, in order, database ``""`` for an unqualified name
      (the session's default database). Tables a statement only reads (``LIKE``,
      ``SELECT``, ``REFERENCES``) are not listed;
    * ``"other"`` (procedures, functions, events, DROP TRIGGER, account statements,
      SAVEPOINT, ...): ``databases`` holds the databases of its qualified names
      (``mysql`` for account statements), empty when it names none: then the default
      database is the one it changes.
    """

    kind: str
    databases: tuple[str, ...] = ()
    tables: tuple[tuple[str, str], ...] = ()


_TOKEN = re.compile(
    r"""(?P<skip>\s+|/\*(?!!|M!).*?\*/|--(?=\s|$)[^\n]*|\#[^\n]*|/\*M?!\d*|\*/)
      | (?P<quoted>`(?:[^`]|``)*`)
      | (?P<string>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*")
      | (?P<word>[\w$]+)
      | (?P<punct>.)""",
    re.S | re.X,
)
_DATABASE_OPTIONS = frozenset({"CHARACTER", "CHARSET", "DEFAULT", "COLLATE", "COMMENT", "UPGRADE"})
_NOT_A_RENAME = frozenset({"COLUMN", "INDEX", "KEY", "CONSTRAINT"})


class _Tokens:
    """The statement's words, quoted names, strings and punctuation; comments dropped
    (the text of executable comments ``/*!50001 ... */`` kept)."""

    def __init__(self, sql: str) -> None:
        self.toks: list[tuple[str, str]] = []
        for m in _TOKEN.finditer(sql):
            kind = m.lastgroup
            if kind == "skip":
                continue
            text = m.group()
            if kind == "quoted":
                text = text[1:-1].replace("``", "`")
            self.toks.append((kind, text))  # type: ignore[arg-type]
        self.i = 0

    def kw(self, *words: str) -> str | None:
        """The next token if it is one of ``words`` (an unquoted keyword): taken."""
        if self.i < len(self.toks):
            kind, text = self.toks[self.i]
            if kind == "word" and text.upper() in words:
                self.i += 1
                return text.upper()
        return None

    def punct(self, ch: str) -> bool:
        if self.i < len(self.toks) and self.toks[self.i] == ("punct", ch):
            self.i += 1
            return True
        return False

    def ident(self) -> str | None:
        if self.i < len(self.toks) and self.toks[self.i][0] in ("word", "quoted"):
            self.i += 1
            return self.toks[self.i - 1][1]
        return None

    def name(self) -> tuple[str, str] | None:
        """``[db.]name`` as ``(db or "", name)``."""
        first = self.ident()
        if first is None:
            return None
        if self.punct("."):
            second = self.ident()
            return (first, second) if second is not None else None
        return ("", first)

    def names(self) -> list[tuple[str, str]] | None:
        """``name [, name ...]``."""
        out = []
        while True:
            n = self.name()
            if n is None:
                return None
            out.append(n)
            if not self.punct(","):
                return out

    def if_exists(self) -> None:
        start = self.i
        if self.kw("IF") and (self.kw("NOT") or True) and self.kw("EXISTS"):
            return
        self.i = start

    def user(self) -> None:
        """A DEFINER value: ``user@host`` (names or strings), CURRENT_USER[()] or a role."""
        if self.kw("CURRENT_USER"):
            if self.punct("("):
                self.punct(")")
            return
        for _ in range(2):
            if self.i < len(self.toks) and self.toks[self.i][0] in ("word", "quoted", "string"):
                self.i += 1
            if not self.punct("@"):
                return

    def skip_to(self, word: str) -> bool:
        """Past the next unquoted ``word``; False when there is none."""
        while self.i < len(self.toks):
            kind, text = self.toks[self.i]
            self.i += 1
            if kind == "word" and text.upper() == word:
                return True
        return False

    def renames(self, db: str) -> list[tuple[str, str]]:
        """``RENAME [TO|AS] name`` clauses of an ALTER TABLE (an unqualified new name stays
        in the table's database ``db``)."""
        out = []
        while self.skip_to("RENAME"):
            if self.i < len(self.toks) and self.toks[self.i][0] == "word" \
                    and self.toks[self.i][1].upper() in _NOT_A_RENAME:
                continue
            self.kw("TO", "AS")
            n = self.name()
            if n is not None:
                out.append(n if n[0] else (db, n[1]))
        return out


def _modifiers(t: _Tokens) -> None:
    """What may stand between CREATE/ALTER and the kind of object."""
    while True:
        if t.kw("OR"):
            t.kw("REPLACE")
        elif t.kw("TEMPORARY", "ONLINE", "OFFLINE", "UNIQUE", "FULLTEXT", "SPATIAL", "AGGREGATE",
                  "IGNORE", "LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY", "QUICK", "CONCURRENT", "LOCAL",
                  "NO_WRITE_TO_BINLOG"):
            pass
        elif t.kw("ALGORITHM"):
            t.punct("=")
            t.ident()
        elif t.kw("DEFINER"):
            t.punct("=")
            t.user()
        elif t.kw("SQL"):
            t.kw("SECURITY")
            t.ident()
        else:
            return


def _table_changes(t: _Tokens, verb: str) -> list[tuple[str, str]] | None:
    """The tables a table statement changes (None: not one the parser knows)."""
    if verb == "RENAME":
        if not t.kw("TABLE", "TABLES"):
            return None
        t.if_exists()
        out = []
        while True:
            old = t.name()
            if old is None or not t.kw("TO"):
                return None
            new = t.name()
            if new is None:
                return None
            out += [old, new]
            if not t.punct(","):
                return out
    if verb == "TRUNCATE":
        t.kw("TABLE")
        n = t.name()
        return [n] if n is not None else None
    if verb in ("OPTIMIZE", "ANALYZE", "REPAIR"):
        _modifiers(t)
        return t.names() if t.kw("TABLE", "TABLES") else None
    if verb in ("INSERT", "REPLACE"):
        _modifiers(t)
        t.kw("INTO")
        n = t.name()
        return [n] if n is not None else None
    if verb == "UPDATE":
        _modifiers(t)
        n = t.name()
        return [n] if n is not None else None
    if verb == "DELETE":
        _modifiers(t)
        if not t.kw("FROM"):
            return None  # multi-table DELETE t1, t2 FROM ...
        n = t.name()
        return [n] if n is not None else None
    # CREATE / ALTER / DROP
    _modifiers(t)
    obj = t.kw("TABLE", "TABLES", "VIEW", "SEQUENCE", "INDEX", "TRIGGER")
    if obj is None:
        return None
    t.if_exists()
    if obj == "INDEX" or obj == "TRIGGER":
        if verb == "ALTER" or (obj == "TRIGGER" and verb == "DROP") or t.ident() is None:
            return None
        if not t.skip_to("ON"):
            return None
        n = t.name()
        return [n] if n is not None else None
    if verb == "DROP":
        return t.names()
    n = t.name()
    if n is None:
        return None
    if verb == "ALTER" and obj in ("TABLE", "TABLES"):
        return [n, *t.renames(n[0])]
    return [n]


def statement_changes(stmt: Statement) -> Changes:
    """What ``stmt`` changes (see ``Changes``): read from its first words, never executed."""
    sql = stmt.sql
    if _ACCOUNT.match(sql):
        return Changes(OTHER_STATEMENT, ("mysql",))
    t = _Tokens(sql.decode("utf-8", "replace"))
    verb = t.kw("CREATE", "ALTER", "DROP", "RENAME", "TRUNCATE", "OPTIMIZE", "ANALYZE", "REPAIR",
                "INSERT", "REPLACE", "UPDATE", "DELETE")
    if verb in ("CREATE", "ALTER", "DROP"):
        start = t.i
        _modifiers(t)
        if t.kw("DATABASE", "SCHEMA"):
            t.if_exists()
            if verb == "ALTER" and (t.i >= len(t.toks) or t.toks[t.i][0] == "word"
                                    and t.toks[t.i][1].upper() in _DATABASE_OPTIONS):
                return Changes(DATABASE_STATEMENT, (stmt.db,) if stmt.db else ())
            name = t.ident()
            if name is not None:
                return Changes(DATABASE_STATEMENT, (name,))
        t.i = start
    if verb is not None:
        tables = _table_changes(t, verb)
        if tables:
            return Changes(TABLE_STATEMENT, tables=tuple(tables))
    return Changes(OTHER_STATEMENT, tuple(dict.fromkeys(_unquote(m.group(1)) for m in _TABLE_REF.finditer(sql))))

"""Dump streams built byte by byte for the scanner and intake tests (test_scan.py,
test_intake.py): MySQL protocol packets around binlog events, with and without
checksums, and the tables they refer to (TableMap bytes + the target's schema).

No server and no native module needed here; rows-event encoders come from
binlog_encoders.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from applier.binlog import events as ev
from applier.binlog import rowcodec as rc
from applier.binlog import tablemap as s
from applier.binlog.events import INSERT
from applier.db import schema as dbs
from applier.errors import SchemaError
from applier.pipeline import writeset
from tests.unit.binlog_encoders import enc_bitmap, enc_image, enc_packed_int, rows_body

MAX_PACKET = 0xFFFFFF
FILE1 = "bin.000001"
SKIP_DB = "skip"  # the database the tests' Filter leaves out ([apply] ignore_databases)


def enc_int(v: int, size: int) -> bytes:
    return v.to_bytes(size, "little", signed=True)


# -- tables -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Col:
    btype: int
    meta: int = 0
    charset: str | None = None
    collation: str | None = None
    nullable: bool = False

    @property
    def data_type(self) -> str:
        return {s.T_LONG: "int", s.T_LONGLONG: "bigint", s.T_VARCHAR: "varchar",
                s.T_BLOB: "longblob", s.T_DOUBLE: "double"}[self.btype]

    def meta_bytes(self) -> bytes:
        if self.btype == s.T_VARCHAR:
            return self.meta.to_bytes(2, "little")
        if self.btype in (s.T_BLOB, s.T_DOUBLE):
            return bytes([self.meta])
        return b""

    def encode(self, v) -> bytes:
        if self.btype == s.T_LONG:
            return enc_int(v, 4)
        if self.btype == s.T_LONGLONG:
            return enc_int(v, 8)
        if self.btype == s.T_DOUBLE:
            return struct.pack("<d", v)
        size = 1 if self.btype == s.T_VARCHAR else self.meta
        return len(v).to_bytes(size, "little") + v


@dataclass(frozen=True)
class Template:
    name: str
    cols: tuple[Col, ...]
    keys: tuple[tuple, ...]  # (name, columns) or (name, columns, prefix lengths)
    foreign_keys: bool = False


U8 = "utf8mb4"
TEMPLATES = {
    "plain": Template("plain", (Col(s.T_LONG), Col(s.T_VARCHAR, 40, U8, None, True)),
                      (("PRIMARY", (0,)),)),
    "second": Template(
        "second",
        (Col(s.T_LONG), Col(s.T_LONG, nullable=True), Col(s.T_VARCHAR, 20, "binary", None, True)),
        (("PRIMARY", (0,)), ("uk_u", (1,)), ("uk_s", (2,))),
    ),
    "composite": Template(
        "composite",
        (Col(s.T_LONG), Col(s.T_VARCHAR, 16), Col(s.T_LONGLONG, nullable=True),
         Col(s.T_LONG, nullable=True)),
        (("PRIMARY", (0, 1)), ("uk_cd", (2, 3))),
    ),
    # a case-insensitive unique key: the scanner calls back into writeset (TableRoute.call)
    "folded": Template(
        "folded", (Col(s.T_LONG), Col(s.T_VARCHAR, 30, U8, "utf8mb4_general_ci", True)),
        (("PRIMARY", (0,)), ("uk_name", (1,))),
    ),
    # keys writeset canonicalises (-0.0 is 0.0; a prefix of the value): call routes too
    "floaty": Template("floaty", (Col(s.T_LONG), Col(s.T_DOUBLE, 8, nullable=True)),
                       (("PRIMARY", (0,)), ("uk_f", (1,)))),
    "prefix": Template("prefix", (Col(s.T_LONG), Col(s.T_VARCHAR, 20, "binary", None, True)),
                       (("PRIMARY", (0,)), ("uk_p", (1,), (2,)))),
    "narrow": Template("narrow", (Col(s.T_LONG), Col(s.T_LONG, nullable=True)),
                       (("PRIMARY", (0,)),)),
    # barrier tables: no primary or non-null unique key; foreign keys
    "nokey": Template("nokey", (Col(s.T_LONG, nullable=True), Col(s.T_LONG, nullable=True)),
                      (("uk_n", (0,)),)),
    "fk": Template("fk", (Col(s.T_LONG), Col(s.T_LONG, nullable=True)), (("PRIMARY", (0,)),),
                   foreign_keys=True),
}
BARRIER_TEMPLATES = frozenset({"nokey", "fk"})


class TableDef:
    """One table of a stream: its TableMap body and the target's schema of it."""

    def __init__(self, tpl: Template, table_id: int, db: str, name: str) -> None:
        self.tpl = tpl
        self.table_id = table_id
        self.db = db
        self.name = name
        cols = tpl.cols
        meta = b"".join(c.meta_bytes() for c in cols)
        self.map_body = (
            table_id.to_bytes(6, "little") + b"\x01\x00"
            + bytes([len(db)]) + db.encode() + b"\0" + bytes([len(name)]) + name.encode() + b"\0"
            + enc_packed_int(len(cols)) + bytes(c.btype for c in cols)
            + enc_packed_int(len(meta)) + meta + enc_bitmap([c.nullable for c in cols])
        )
        columns = tuple(
            dbs.Column(f"c{i}", c.data_type, False, c.charset, c.collation, c.nullable, False)
            for i, c in enumerate(cols)
        )
        keys = tuple(
            dbs.UniqueKey(k[0], k[1], k[2] if len(k) > 2 else (None,) * len(k[1]),
                          any(cols[i].nullable for i in k[1]))
            for k in tpl.keys
        )
        self.schema = dbs.TableSchema(db, name, columns, keys, tpl.foreign_keys)
        self.tmap = s.parse_table_map(self.map_body)
        assert (self.tmap.table_id, self.tmap.db, self.tmap.table) == (table_id, db, name)
        assert self.tmap.types == tuple(c.btype for c in cols)
        self.plan = rc.build_plan(self.tmap, self.schema)

    @property
    def filtered(self) -> bool:
        return self.db == SKIP_DB

    @property
    def barrier(self) -> bool:
        return bool(self.schema.barrier_reason)

    def table_keys(self) -> writeset.TableKeys:
        """Keys as the intake hashes them without a Weigher (local collation fold)."""
        return writeset.TableKeys(self.schema, self.plan)


# -- encoders: events and packets ---------------------------------------------------------


def event_bytes(etype: int, body: bytes, *, ts: int, server_id: int, log_pos: int, flags: int,
                checksum: bool) -> bytes:
    size = ev.HEADER_LEN + len(body) + (4 if checksum else 0)
    data = ev.HEADER.pack(ts, etype, server_id, size, log_pos, flags) + body
    if checksum:
        data += struct.pack("<I", zlib.crc32(data))
    return data


def packets(payload: bytes, seq: int = 1) -> bytes:
    """One protocol payload as packets: 3-byte length, sequence, data; a payload of 16 MiB
    or more is split (a 0xFFFFFF-long packet says "more follows")."""
    out = bytearray()
    while True:
        chunk, payload = payload[:MAX_PACKET], payload[MAX_PACKET:]
        out += len(chunk).to_bytes(3, "little") + bytes([seq & 0xFF]) + chunk
        seq += 1
        if len(chunk) < MAX_PACKET:
            return bytes(out)


def query_body(sql: bytes, db: bytes = b"db", status: bytes = b"") -> bytes:
    return struct.pack("<IIBHH", 7, 0, len(db), 0, len(status)) + status + db + b"\0" + sql


STATUS = struct.pack("<BI", 0, 0) + struct.pack("<BHHH", 4, 33, 33, 8)  # flags2, charset
SID = bytes(range(16))


class Stream:
    """A dump stream under construction: events with consistent log positions."""

    def __init__(self, checksum: bool) -> None:
        self.checksum = checksum
        self.data = bytearray()
        self.file = FILE1
        self.pos = 4
        self.seq = 1
        self.ts = 1_700_000_000
        self.gno = 0
        self.txn_start = 0

    def event(self, etype: int, body: bytes, *, log_pos: int | None = None, flags: int = 0,
              server_id: int = 1, ts: int | None = None) -> None:
        size = ev.HEADER_LEN + len(body) + (4 if self.checksum else 0)
        if log_pos is None:
            self.pos += size
            log_pos = self.pos
        self.ts += 1
        raw = event_bytes(etype, body, ts=self.ts if ts is None else ts, server_id=server_id,
                          log_pos=log_pos, flags=flags, checksum=self.checksum)
        self.data += packets(b"\0" + raw, self.seq)
        self.seq += 1

    # transaction starts
    def gtid(self, *, flags: int = 0, domain: int = 0, server_id: int = 1) -> None:
        self.txn_start = len(self.data)
        self.gno += 1
        body = struct.pack("<QIB", self.gno, domain, flags)
        if flags & ev.MARIADB_FL_GROUP_COMMIT_ID:
            body += struct.pack("<Q", self.gno * 10)
        self.event(ev.MARIADB_GTID, body, server_id=server_id)

    def mysql_gtid(self, sid: bytes = SID, begin: bool = True) -> None:
        self.txn_start = len(self.data)
        self.gno += 1
        self.event(ev.MYSQL_GTID, b"\x01" + sid + struct.pack("<Q", self.gno) + b"\x02" + bytes(16))
        if begin:
            self.query(b"BEGIN", STATUS)

    def anonymous_gtid(self) -> None:
        self.txn_start = len(self.data)
        self.event(ev.MYSQL_ANONYMOUS_GTID, b"\x01" + bytes(24) + b"\x02" + bytes(16))
        self.query(b"BEGIN")

    # inside
    def table_map(self, t: TableDef) -> None:
        self.event(ev.TABLE_MAP, t.map_body)

    def rows(self, op: int, version: int, body: bytes) -> None:
        base = ev.WRITE_ROWS_V2 if version == 2 else ev.WRITE_ROWS_V1
        self.event(base + op - 1, body)

    def annotate(self) -> None:
        self.event(ev.MARIADB_ANNOTATE_ROWS, b"INSERT INTO t VALUES (1)")

    def query(self, sql: bytes, status: bytes = b"", db: bytes = b"db") -> None:
        self.event(ev.QUERY, query_body(sql, db, status))

    def xid(self) -> None:
        self.event(ev.XID, struct.pack("<Q", self.gno))

    @property
    def txn_bytes(self) -> int:
        return len(self.data) - self.txn_start

    # between transactions
    def ddl(self, sql: bytes = b"ALTER TABLE t ADD COLUMN x INT") -> None:
        self.gtid(flags=ev.MARIADB_FL_STANDALONE | 0x20)
        self.query(sql, STATUS)

    def rotate(self, name: str, artificial: bool = False) -> None:
        body = struct.pack("<Q", 4) + name.encode()
        if artificial:
            self.event(ev.ROTATE, body, log_pos=0, flags=ev.LOG_EVENT_ARTIFICIAL_F, ts=0)
        else:
            self.event(ev.ROTATE, body)
        self.file = name
        self.pos = 4

    def format_description(self) -> None:
        self.event(ev.FORMAT_DESCRIPTION, b"\x04\x00" + b"10.11.6-MariaDB".ljust(50, b"\0"),
                   log_pos=0)

    def heartbeat(self) -> None:
        self.event(ev.HEARTBEAT, self.file.encode(), log_pos=self.pos, flags=0x20)

    def error(self, code: int, msg: bytes) -> None:
        self.data += packets(b"\xff" + struct.pack("<H", code) + b"#HY000" + msg, self.seq)

    def eof(self) -> None:
        self.data += packets(b"\xfe\x00\x00\x02\x00", self.seq)


def simple_insert(t: TableDef, ids: list[int], version: int = 2) -> bytes:
    """An INSERT rows event of ``t`` (every column present, later ones NULL or zero)."""
    present = [True] * len(t.tpl.cols)
    images = b""
    for i in ids:
        values = [t.tpl.cols[0].encode(i)]
        for c in t.tpl.cols[1:]:
            values.append(None if c.nullable else c.encode(b"k" if c.btype == s.T_VARCHAR else 0))
        images += enc_image(present, values)
    return rows_body(len(present), INSERT, version, present, None, images, table_id=t.table_id)


def dml(stream: Stream, t: TableDef, ids: list[int]) -> None:
    """One MariaDB transaction: GTID, TableMap, one INSERT of ``ids``, XID."""
    stream.gtid()
    stream.table_map(t)
    stream.rows(INSERT, 2, simple_insert(t, ids))
    stream.xid()


def fixed_tables() -> list[TableDef]:
    """Four tables the fixed-stream tests share (d has a case-insensitive unique key)."""
    return [TableDef(TEMPLATES["plain"], 10, "db", "a"),
            TableDef(TEMPLATES["second"], 2**40 + 3, "db", "b"),
            TableDef(TEMPLATES["composite"], 12, "db2", "c"),
            TableDef(TEMPLATES["folded"], 13, "db", "d")]


class Schemas:
    """The SchemaCache a TableCache asks: the tests' tables, by (db, table)."""

    def __init__(self, tables: list[TableDef]) -> None:
        self.by_name = {(t.db, t.name): t.schema for t in tables}
        self.asked: list[tuple[str, str]] = []

    def get(self, db: str, table: str):
        self.asked.append((db, table))
        schema = self.by_name.get((db, table))
        if schema is None:
            raise SchemaError(f"table {db}.{table} from the source binlog is not on the target")
        return schema

    def invalidate(self) -> None:
        pass

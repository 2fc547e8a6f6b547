"""The native binlog scanner (native/_scan.pyx) reads the same transactions, with the
same writeset keys, as the Python path it short-cuts.

Streams are built here byte by byte (MySQL protocol packets around binlog events, with
and without checksums) and fed through a fake socket in random-sized chunks. The
reference is ``BinlogSource.events()`` -> ``TransactionBuilder`` -> ``writeset`` keys;
``BinlogSource.read(scanner, ...)`` must give the same transactions, in the same order,
with records for the transactions the scanner can read and events for all others.
"""

from __future__ import annotations

import random
import socket
import struct
import zlib
from dataclasses import dataclass

import pytest
import xxhash
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from applier import events as ev
from applier import rowcodec as rc
from applier import schema as s
from applier import writeset
from applier.config import SourceConfig
from applier.errors import BinlogPurgedError, SchemaError, SourceError
from applier.events import DELETE, INSERT, UPDATE
from applier.source import BinlogSource, SourceDisconnected
from applier.transactions import (
    RowsEvent,
    Statement,
    TransactionBuilder,
    py_unpack_payload,
    unpack_payload,
)
from tests.unit.binlog_encoders import enc_bitmap, enc_image, enc_packed_int, rows_body

_scan = pytest.importorskip("applier.native._scan", reason="native scanner not built")

MAX_PACKET = 0xFFFFFF
FILE1 = "bin.000001"
_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# -- encoders: rows events (as in test_native.py) --------------------------------------


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
    policy: str = "writeset"  # writeset | table (extra keys only) | filtered (resolve None)


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
    "policy": Template("policy", (Col(s.T_LONG), Col(s.T_LONG, nullable=True)),
                       (("PRIMARY", (0,)),), "table"),
    "filtered": Template("filtered", (Col(s.T_LONG), Col(s.T_LONG, nullable=True)),
                         (("PRIMARY", (0,)),), "filtered"),
}


class Table:
    """One table of a stream: its TableMap body, target schema, plan and keys."""

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
            s.Column(f"c{i}", c.data_type, False, c.charset, c.collation, c.nullable, False)
            for i, c in enumerate(cols)
        )
        keys = tuple(
            s.UniqueKey(k[0], k[1], k[2] if len(k) > 2 else (None,) * len(k[1]),
                        any(cols[i].nullable for i in k[1]))
            for k in tpl.keys
        )
        self.schema = s.TableSchema(db, name, columns, keys, False)
        tmap = s.parse_table_map(self.map_body)
        assert (tmap.table_id, tmap.db, tmap.table) == (table_id, db, name)
        assert tmap.types == tuple(c.btype for c in cols)
        self.plan = rc.build_plan(tmap, self.schema)
        self.tkeys = writeset.TableKeys(self.schema, self.plan)
        self.extra = (writeset.table_key(db, name),) if tpl.policy == "table" else ()

    def route(self):
        """What the coordinator's _scan_route answers for this table."""
        if self.tpl.policy == "filtered":
            return None
        if self.tpl.policy == "table":
            return writeset.scan_route(None, self.plan, self.extra)
        return writeset.scan_route(self.tkeys, self.plan)

    def keys(self, item: RowsEvent, out: set[int]) -> int:
        """What the coordinator's _on_rows does for one rows event (the reference)."""
        if self.tpl.policy == "table":
            out.update(self.extra)
            return len(writeset.decode_keys(self.plan, item.op, item.body, item.version,
                                            frozenset()))
        return writeset.event_keys(self.tkeys, self.plan, item.op, item.body, item.version, out)


class Tables:
    def __init__(self, tables: list[Table]) -> None:
        self.by_name = {(t.db, t.name): t for t in tables}
        self.resolved: list[bytes] = []

    def of_body(self, body: bytes) -> Table:
        tmap = s.parse_table_map(body)
        return self.by_name[(tmap.db, tmap.table)]

    def resolve(self, body: bytes):
        self.resolved.append(body)
        return self.of_body(body).route()


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


_STATUS = struct.pack("<BI", 0, 0) + struct.pack("<BHHH", 4, 33, 33, 8)  # flags2, charset


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

    def mysql_gtid(self, sid: bytes, begin: bool = True) -> None:
        self.txn_start = len(self.data)
        self.gno += 1
        self.event(ev.MYSQL_GTID, b"\x01" + sid + struct.pack("<Q", self.gno) + b"\x02" + bytes(16))
        if begin:
            self.query(b"BEGIN", _STATUS)

    def anonymous_gtid(self) -> None:
        self.txn_start = len(self.data)
        self.event(ev.MYSQL_ANONYMOUS_GTID, b"\x01" + bytes(24) + b"\x02" + bytes(16))
        self.query(b"BEGIN")

    # inside
    def table_map(self, t: Table) -> None:
        self.event(ev.TABLE_MAP, t.map_body)

    def rows(self, t: Table, op: int, version: int, body: bytes) -> None:
        base = ev.WRITE_ROWS_V2 if version == 2 else ev.WRITE_ROWS_V1
        self.event(base + op - 1, body)

    def annotate(self) -> None:
        self.event(ev.MARIADB_ANNOTATE_ROWS, b"INSERT INTO t VALUES (1)")

    def query(self, sql: bytes, status: bytes = b"") -> None:
        self.event(ev.QUERY, query_body(sql, status=status))

    def xid(self) -> None:
        self.event(ev.XID, struct.pack("<Q", self.gno))

    @property
    def txn_bytes(self) -> int:
        return len(self.data) - self.txn_start

    # between transactions
    def ddl(self, sql: bytes = b"ALTER TABLE t ADD COLUMN x INT") -> None:
        self.gtid(flags=ev.MARIADB_FL_STANDALONE | 0x20)
        self.query(sql, _STATUS)

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


def simple_insert(t: Table, ids: list[int], version: int = 2) -> bytes:
    """An INSERT rows event of ``t`` (every column present, later ones NULL or zero)."""
    present = [True] * len(t.tpl.cols)
    images = b""
    for i in ids:
        values = [t.tpl.cols[0].encode(i)]
        for c in t.tpl.cols[1:]:
            values.append(None if c.nullable else c.encode(b"k" if c.btype == s.T_VARCHAR else 0))
        images += enc_image(present, values)
    return rows_body(len(present), INSERT, version, present, None, images, table_id=t.table_id)


def dml(stream: Stream, t: Table, ids: list[int]) -> None:
    stream.gtid()
    stream.table_map(t)
    stream.rows(t, INSERT, 2, simple_insert(t, ids))
    stream.xid()


# -- reading: a fake socket and the two consumers --------------------------------------


class FakeSocket:
    """``recv`` hands out the stream in random-sized chunks, then b"" (connection closed)."""

    def __init__(self, data: bytes, seed: int, max_chunk: int) -> None:
        self.data = bytes(data)
        self.pos = 0
        self.rnd = random.Random(seed)
        self.max_chunk = max_chunk
        self.calls = 0

    def recv(self, n: int) -> bytes:
        self.calls += 1
        assert self.calls <= len(self.data) + 5, "read() makes no progress"
        size = min(n, self.rnd.randint(1, self.max_chunk))
        chunk = self.data[self.pos : self.pos + size]
        self.pos += len(chunk)
        return chunk


def make_source(data: bytes, checksum: bool, seed: int = 0, max_chunk: int = 1 << 20,
                non_blocking: bool = False) -> BinlogSource:
    """A BinlogSource in the state ``open()`` leaves it, reading from a fake socket."""
    src = BinlogSource(SourceConfig(), "mariadb", non_blocking=non_blocking)
    src._sock = FakeSocket(data, seed, max_chunk)  # type: ignore[assignment]
    src._checksum = checksum
    src.file = FILE1
    src._buf = bytearray()
    src._off = 0
    return src


@dataclass
class Txn:
    """What the coordinator makes of one transaction, for comparison."""

    seq: int
    gtid: str
    file: str
    end_pos: int
    timestamp: int
    rows: int
    keys: frozenset[int]
    table_maps: dict[int, bytes]
    items: list
    via: str  # "native" (a scanner record) or "python" (events)

    def comparable(self) -> tuple:
        return (self.seq, self.gtid, self.file, self.end_pos, self.timestamp, self.rows,
                self.keys, self.table_maps, self.items)


class Consumer:
    """The coordinator's _on_event / _on_rows / _on_records, minus applying."""

    def __init__(self, tables: Tables) -> None:
        self.tables = tables
        self.builder = TransactionBuilder()
        self.out: list[Txn] = []
        self.cur = None  # (transaction, keys) of the one being read event by event
        self.items: list = []  # what read() yielded, in order

    def on_event(self, e: ev.Event, file: str) -> None:
        self.items.append(e)
        done = self.builder.add(e, file)
        if e.type in ev.ROWS_EVENTS:
            txn = self.builder.current
            assert txn is not None
            if self.cur is None or self.cur[0] is not txn:
                self.cur = (txn, set())
            item = txn.items[-1]
            table = self.tables.of_body(txn.table_maps[item.table_id])
            txn.rows += table.keys(item, self.cur[1])
        elif done is not None:
            keys = self.cur[1] if self.cur is not None and self.cur[0] is done else set()
            self.cur = None
            self.out.append(Txn(done.seq, done.gtid, done.file, done.end_pos, done.timestamp,
                                done.rows, frozenset(keys), dict(done.table_maps),
                                list(done.items), "python"))

    def on_records(self, records: list, file: str) -> None:
        assert records, "read() yields no empty record lists"
        self.items.append(records)
        assert self.builder.at_boundary()
        self.builder.file = file
        for gtid, timestamp, end_pos, payload, keys, rows in records:
            assert type(payload) is bytes and type(keys) is set and type(rows) is int
            txn = self.builder.whole(gtid, timestamp, end_pos, payload, rows)
            maps, items = unpack_payload(payload, RowsEvent)
            assert (maps, items) == py_unpack_payload(payload)
            self.out.append(Txn(txn.seq, gtid, txn.file, end_pos, timestamp, rows,
                                frozenset(keys), maps, items, "native"))


def outcome(exc: BaseException) -> tuple:
    return (type(exc), str(exc))


def run_events(data: bytes, checksum: bool, tables: Tables, seed: int = 0,
               max_chunk: int = 1 << 20) -> tuple[Consumer, tuple]:
    """The reference: every event through the Python path."""
    src = make_source(data, checksum, seed, max_chunk)
    con = Consumer(tables)
    try:
        for e in src.events():
            con.on_event(e, src.file)
    except (SourceDisconnected, SourceError) as exc:
        return con, outcome(exc)
    raise AssertionError("unreachable")


def run_read(data: bytes, checksum: bool, tables: Tables, scanner=None, seed: int = 0,
             max_chunk: int = 1 << 20, **kw) -> tuple[Consumer, tuple]:
    src = make_source(data, checksum, seed, max_chunk)
    if scanner is None:
        scanner = _scan.Scanner(tables.resolve, checksum=checksum, **kw)
    con = Consumer(tables)
    try:
        for item in src.read(scanner, con.builder.at_boundary):
            if type(item) is list:
                con.on_records(item, src.file)
            else:
                assert isinstance(item, ev.Event)
                con.on_event(item, src.file)
    except (SourceDisconnected, SourceError) as exc:
        return con, outcome(exc)
    raise AssertionError("unreachable")


def assert_same(got: Consumer, ref: Consumer) -> None:
    assert len(got.out) == len(ref.out)
    for a, b in zip(got.out, ref.out, strict=True):
        assert a.comparable() == b.comparable()
    assert all(t.via == "python" for t in ref.out)


def vias(con: Consumer) -> list[str]:
    return [t.via for t in con.out]


# -- 2. the property: read() == events() + TransactionBuilder ----------------------------

_INTS = st.integers(-3, 6) | st.sampled_from([2**31 - 1, -(2**31)])
_BIGINTS = st.integers(-3, 6) | st.sampled_from([2**63 - 1, -(2**63)])
_DOUBLES = st.sampled_from([0.0, -0.0, 1.5, -2.25, 1e300])
_STRS = st.lists(st.sampled_from([b"a", b"A", b"b", b" ", b"'", b"\\", b"\x00", b"\xc3\xa9"]),
                 max_size=5).map(b"".join)


def draw_value(data, col: Col) -> bytes | None:
    if col.nullable and data.draw(st.integers(0, 3)) == 0:
        return None
    if col.btype == s.T_LONG:
        return col.encode(data.draw(_INTS))
    if col.btype == s.T_LONGLONG:
        return col.encode(data.draw(_BIGINTS))
    if col.btype == s.T_DOUBLE:
        return col.encode(data.draw(_DOUBLES))
    return col.encode(data.draw(_STRS))


def draw_present(data, n: int) -> list[bool]:
    if data.draw(st.integers(0, 2)):
        return [True] * n
    bits = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    if not any(bits):
        bits[0] = True
    return bits


def draw_rows(data, t: Table) -> tuple[int, int, bytes, int]:
    """(op, version, body, row count) of one random rows event of ``t``."""
    cols = t.tpl.cols
    op = data.draw(st.sampled_from([INSERT, UPDATE, DELETE]))
    version = data.draw(st.sampled_from([2, 2, 1]))
    extra = data.draw(st.sampled_from([b"", b"", b"\x00\x03ab"])) if version == 2 else b""
    present1 = draw_present(data, len(cols))
    present2 = draw_present(data, len(cols)) if op == UPDATE else None
    nrows = data.draw(st.sampled_from([0, 1, 1, 2, 3]))
    images = b""
    for _ in range(nrows):
        for present in (present1, present2) if op == UPDATE else (present1,):
            assert present is not None
            images += enc_image(present, [draw_value(data, c) for c, p in zip(cols, present,
                                                                                strict=True) if p])
    body = rows_body(len(cols), op, version, present1, present2, images, extra, t.table_id)
    return op, version, body, nrows


def draw_tables(data) -> list[Table]:
    n = data.draw(st.integers(1, 3))
    names = data.draw(st.lists(
        st.sampled_from(["plain", "plain", "second", "second", "composite", "composite", "folded",
                         "floaty", "prefix", "policy", "filtered"]), min_size=n, max_size=n))
    ids = data.draw(st.lists(st.integers(1, 2**48 - 1) | st.integers(1, 300), min_size=n,
                             max_size=n, unique=True))
    return [Table(TEMPLATES[name], tid, data.draw(st.sampled_from(["db", "db2"])), f"{name}{i}")
            for i, (name, tid) in enumerate(zip(names, ids, strict=True))]


_SID = bytes(range(16))
_KINDS = ["dml"] * 8 + ["mysql", "anonymous", "empty", "ddl", "mysql_ddl", "rotate", "heartbeat",
                        "xa", "commit_query", "begin_commit", "savepoint", "create_select"]


def draw_dml(data, stream: Stream, tables: list[Table], kind: str) -> tuple[int, bool]:
    """One transaction with rows: returns (row count, any filtered table)."""
    if kind == "mysql":
        stream.mysql_gtid(_SID)
    elif kind == "anonymous":
        stream.anonymous_gtid()
    elif kind == "xa":
        stream.gtid(flags=0x40)
    elif kind == "begin_commit":
        stream.txn_start = len(stream.data)
        stream.query(b"BEGIN")
    else:
        flags = data.draw(st.sampled_from([0, 0, ev.MARIADB_FL_GROUP_COMMIT_ID, 4 | 8, 4 | 8 | 16]))
        stream.gtid(flags=flags, domain=data.draw(st.integers(0, 2)),
                    server_id=data.draw(st.integers(1, 3)))
    if kind == "create_select":
        stream.query(b"CREATE TABLE db.x SELECT * FROM db.y")
    if data.draw(st.booleans()):
        stream.annotate()
    rows, filtered, mapped = 0, False, set()
    for i in range(data.draw(st.integers(1, 4))):
        t = data.draw(st.sampled_from(tables))
        if t.table_id not in mapped or data.draw(st.integers(0, 4)) == 0:
            stream.table_map(t)
            mapped.add(t.table_id)
            filtered |= t.tpl.policy == "filtered"
        op, version, body, n = draw_rows(data, t)
        stream.rows(t, op, version, body)
        rows += n
        if kind == "savepoint" and i == 0:
            stream.query(b"SAVEPOINT `sp`")
    return rows, filtered


@_SETTINGS
@given(data=st.data())
def test_read_equals_python_path(data) -> None:
    checksum = data.draw(st.booleans(), label="checksum")
    tables = draw_tables(data)
    max_rows = data.draw(st.integers(1, 10) | st.just(1000), label="max_rows")
    max_bytes = data.draw(st.sampled_from([4 << 20] * 3 + [200, 400, 1000]), label="max_bytes")
    stream = Stream(checksum)
    if data.draw(st.booleans()):  # what a dump starts with
        stream.rotate(FILE1, artificial=True)
        stream.format_description()
    expected: list[str] = []
    for _ in range(data.draw(st.integers(1, 8))):
        kind = data.draw(st.sampled_from(_KINDS))
        if kind == "rotate":
            stream.rotate(f"bin.{int(stream.file[4:]) + 1:06d}")
            if data.draw(st.booleans()):
                stream.rotate(stream.file, artificial=True)
            stream.format_description()
            if data.draw(st.booleans()):  # MariaDB's GTID list and binlog checkpoint
                stream.event(ev.MARIADB_GTID_LIST, struct.pack("<I", 0))
                stream.event(ev.MARIADB_BINLOG_CHECKPOINT, b"\x0a\x00\x00\x00" + b"bin.000001")
            continue
        if kind == "heartbeat":
            stream.heartbeat()
            continue
        if kind == "ddl":
            stream.ddl()
            expected.append("python")
            continue
        if kind == "empty":
            stream.gtid()
            stream.xid()
            expected.append("native")
            continue
        if kind == "mysql_ddl":
            stream.mysql_gtid(_SID, begin=False)
            stream.query(b"DROP TABLE IF EXISTS db.gone", _STATUS)
            expected.append("python")
            continue
        rows, filtered = draw_dml(data, stream, tables, kind)
        native = (kind in ("dml", "mysql", "anonymous") and not filtered and rows <= max_rows
                  and stream.txn_bytes <= max_bytes)
        if kind in ("commit_query", "begin_commit"):
            stream.query(b"COMMIT")
        else:
            stream.xid()
        expected.append("native" if native else "python")
    tail = data.draw(st.sampled_from(["none", "none", "partial", "error", "error_mid", "eof"]))
    if tail in ("partial", "error_mid"):
        stream.gtid()
        t = tables[0]
        stream.table_map(t)
        stream.rows(t, INSERT, 2, simple_insert(t, [1]))
    if tail in ("error", "error_mid"):
        stream.error(data.draw(st.sampled_from([1236, 1032])), b"boom")
    elif tail == "eof":
        stream.eof()

    data_bytes = bytes(stream.data)
    ref, ref_end = run_events(data_bytes, checksum, Tables(tables))
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    max_chunk = data.draw(st.sampled_from([1, 5, 64, 700, 1 << 20]), label="max_chunk")
    got, got_end = run_read(data_bytes, checksum, Tables(tables), seed=seed, max_chunk=max_chunk,
                            max_rows=max_rows, max_bytes=max_bytes)
    assert got_end == ref_end
    assert_same(got, ref)
    assert vias(got) == expected
    native = [t for t in got.out if t.via == "native"]
    event(f"native transactions: {min(len(native), 3)}+, python: {min(len(expected) - len(native), 3)}+")
    event(f"native keys: {sum(len(t.keys) for t in native) > 0}, max_chunk: {max_chunk}")
    for txn in got.out:
        if any(isinstance(i, Statement) for i in txn.items):
            assert txn.via == "python"  # DDL is never read by the scanner


# -- records really occur; DDL, Rotate and friends come as events ------------------------


def _fixed_tables() -> list[Table]:
    return [Table(TEMPLATES["plain"], 10, "db", "a"), Table(TEMPLATES["second"], 2**40 + 3, "db", "b"),
            Table(TEMPLATES["composite"], 12, "db2", "c"), Table(TEMPLATES["folded"], 13, "db", "d")]


@pytest.mark.parametrize("checksum", [False, True])
def test_records_and_events_interleave(checksum: bool) -> None:
    a, b, c, d = _fixed_tables()
    st_ = Stream(checksum)
    st_.rotate(FILE1, artificial=True)
    st_.format_description()
    dml(st_, a, [1, 2])
    dml(st_, b, [3])
    st_.ddl()
    dml(st_, c, [4])
    dml(st_, d, [5])
    st_.rotate("bin.000002")
    st_.format_description()
    st_.heartbeat()
    dml(st_, a, [6])
    tables = Tables([a, b, c, d])
    ref, ref_end = run_events(bytes(st_.data), checksum, tables)
    got, got_end = run_read(bytes(st_.data), checksum, tables, max_rows=100)
    assert got_end == ref_end == (SourceDisconnected, "source closed the dump connection")
    assert_same(got, ref)
    assert vias(got) == ["native", "native", "python", "native", "native", "native"]
    assert [t.file for t in got.out] == [FILE1] * 5 + ["bin.000002"]
    # what read() yielded: events exactly where the scanner cannot read
    kinds = [("records", len(i)) if type(i) is list else i.type for i in got.items]
    assert kinds == [ev.ROTATE, ev.FORMAT_DESCRIPTION, ("records", 2), ev.MARIADB_GTID, ev.QUERY,
                     ("records", 2), ev.ROTATE, ev.FORMAT_DESCRIPTION, ev.HEARTBEAT,
                     ("records", 1)]
    # keys came from the scanner for the native tables, from writeset.call for "folded"
    assert all(t.keys for t in got.out if t.via == "native")


def test_read_with_on_idle() -> None:
    """With ``on_idle`` read() waits on a real socket: the callback runs whenever nothing
    is readable (here it sends the next piece, cut anywhere), and nothing is lost."""
    a, b, c, d = _fixed_tables()
    st_ = Stream(True)
    for i in range(6):
        dml(st_, (a, b, c, d)[i % 4], [i, i + 10])
        if i == 2:
            st_.ddl()
    data = bytes(st_.data)
    tables = Tables([a, b, c, d])
    ref, ref_end = run_events(data, True, tables)
    rnd = random.Random(3)
    cuts = sorted(rnd.sample(range(1, len(data)), 12))
    pieces = [data[i:j] for i, j in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    writer, reader = socket.socketpair()
    idle: list[int] = []
    total = len(pieces)

    def on_idle() -> None:
        idle.append(1)
        assert len(idle) <= total + 1
        if pieces:
            writer.sendall(pieces.pop(0))
        else:
            writer.close()

    src = make_source(b"", True)
    src._sock = reader
    con = Consumer(tables)
    scanner = _scan.Scanner(tables.resolve, checksum=True, max_rows=100)
    try:
        with pytest.raises(SourceDisconnected) as exc:
            for item in src.read(scanner, con.builder.at_boundary, on_idle):
                if type(item) is list:
                    con.on_records(item, src.file)
                else:
                    con.on_event(item, src.file)
    finally:
        reader.close()
        writer.close()
    assert outcome(exc.value) == ref_end
    assert_same(con, ref)
    assert vias(con) == ["native"] * 3 + ["python"] + ["native"] * 3
    assert len(idle) == total + 1  # once per piece, once more to close


def _scanner_failing_on_b(first, second) -> tuple[BinlogSource, _scan.Scanner]:
    """A stream of a one-row transaction on ``first`` then one on ``second``, and a
    scanner whose resolve fails for table b as the coordinator's does for a table missing
    on the target."""
    st_ = Stream(False)
    dml(st_, first, [1])
    dml(st_, second, [1])
    a = first if first.name == "a" else second

    def resolve(body: bytes):
        if s.parse_table_map(body).table == "b":
            raise SchemaError("table db.b from the source binlog is not on the target")
        return a.route()

    return make_source(bytes(st_.data), False), _scan.Scanner(resolve, checksum=False, max_rows=100)


def test_resolve_errors_propagate() -> None:
    """An exception from resolve comes out of read(), as it comes out of the Python
    path's _on_rows."""
    a, b, *_ = _fixed_tables()
    src, scanner = _scanner_failing_on_b(b, a)
    builder = TransactionBuilder()
    with pytest.raises(SchemaError):
        for _ in src.read(scanner, builder.at_boundary):
            pass


def test_error_after_whole_transactions_leaves_them_first() -> None:
    """Transactions read before the one whose table fails come out first; the failing one
    goes the Python path, which meets (and reports) the error itself, in source order."""
    a, b, *_ = _fixed_tables()
    src, scanner = _scanner_failing_on_b(a, b)
    builder = TransactionBuilder()
    items = []
    with pytest.raises(SourceDisconnected):  # the stream ends after the second transaction
        for item in src.read(scanner, builder.at_boundary):
            items.append(item)
            if not isinstance(item, list):
                builder.add(item, src.file)
    assert isinstance(items[0], list) and len(items[0]) == 1
    events = items[1:]
    assert events and all(isinstance(e, ev.Event) for e in events)
    assert events[0].type == ev.MARIADB_GTID
    tmaps = [e for e in events if e.type == ev.TABLE_MAP]
    assert tmaps and s.parse_table_map(tmaps[0].body).table == "b"


# -- 3. native key hashing == TableKeys.hashes ------------------------------------------


def _int_table(ncols: int, keys: list[tuple[int, ...]]) -> tuple[rc.RowPlan, writeset.TableKeys]:
    columns = tuple(s.Column(f"c{i}", "int", False, None, None, True, False) for i in range(ncols))
    uks = tuple(s.UniqueKey("PRIMARY" if n == 0 else f"uk{n}", k, (None,) * len(k), True)
                for n, k in enumerate(keys))
    schema = s.TableSchema("db", "t", columns, uks, False)
    tmap = s.TableMap(42, "db", "t", (s.T_LONG,) * ncols, (0,) * ncols, (True,) * ncols, None)
    plan = rc.build_plan(tmap, schema)
    return plan, writeset.TableKeys(schema, plan)


def _one_rows_txn(op: int = UPDATE, checksum: bool = False) -> tuple[bytes, bytes]:
    """A stream with one transaction of one rows event (its body is not decoded: the
    route's decoder is a stub) and the TableMap body."""
    tmap = b"\x2a\x00\x00\x00\x00\x00\x01\x00" + b"\x02db\x00\x01t\x00"
    st_ = Stream(checksum)
    st_.gtid()
    st_.event(ev.TABLE_MAP, tmap)
    st_.event(ev.WRITE_ROWS_V2 + op - 1, b"\x2a\x00\x00\x00\x00\x00\x01\x00\x02\x00\x01\x01")
    st_.xid()
    return bytes(st_.data), tmap


def _scan_keys(route, rows, op: int = UPDATE) -> tuple[set[int], int]:
    data, _ = _one_rows_txn(op)
    stub = _scan.TableRoute(decode=lambda plan, op_, body, version, wanted: rows, plan=route.plan,
                            wanted=route.wanted, heads=route.heads, cols=route.cols,
                            extra=route.extra)
    scanner = _scan.Scanner(lambda body: stub, checksum=False, max_rows=10**6)
    off, records, slow = scanner.scan(bytearray(data), 0)
    assert (off, slow) == (len(data), False)
    [(_, _, _, _, keys, nrows)] = records
    return keys, nrows


_LITERAL = st.one_of(st.none(), st.just(rc.NULL), st.binary(max_size=12),
                     st.sampled_from([b"1", b"-1", b"0", b"NULL ", b"'NULL'", b""]),
                     st.binary(min_size=300, max_size=700))


@_SETTINGS
@given(data=st.data())
def test_native_hashes_equal_table_keys(data) -> None:
    ncols = data.draw(st.integers(1, 5))
    keys = data.draw(st.lists(st.lists(st.integers(0, ncols - 1), min_size=1, max_size=3,
                                       unique=True).map(tuple), min_size=1, max_size=3))
    plan, tkeys = _int_table(ncols, keys)
    route = writeset.scan_route(tkeys, plan)
    assert route.native and len(route.heads) == len(keys)
    image = st.tuples(*[_LITERAL] * ncols)
    op = data.draw(st.sampled_from([INSERT, UPDATE, DELETE]))
    rows = data.draw(st.lists(st.tuples(image if op != INSERT else st.none(),
                                        image if op != DELETE else st.none()), max_size=4))
    got, nrows = _scan_keys(route, rows, op)
    want: set[int] = set()
    writeset.row_hashes(tkeys, rows, want)
    assert got == want
    assert nrows == len(rows)


def test_native_hashes_known_values() -> None:
    h = xxhash.xxh3_64_intdigest
    plan, tkeys = _int_table(4, [(0,), (1, 2), (3,)])
    route = writeset.scan_route(tkeys, plan)
    # an UPDATE changing the primary key: before and after keys; NULL parts skip a key
    rows = [((b"1", b"7", b"x", rc.NULL), (b"2", b"7", rc.NULL, None))]
    got, nrows = _scan_keys(route, rows)
    assert nrows == 1
    assert got == {h(b"db\0t\0PRIMARY\0" + b"1"), h(b"db\0t\0PRIMARY\0" + b"2"),
                   h(b"db\0t\0uk1\0" + b"7\0x")}
    want: set[int] = set()
    writeset.row_hashes(tkeys, rows, want)
    assert got == want
    # a unique key change: both values are keys; an empty literal is not NULL
    rows = [((b"1", b"", b"", b"5"), (b"1", b"", b"", b"6"))]
    got, _ = _scan_keys(route, rows)
    assert got == {h(b"db\0t\0PRIMARY\0" + b"1"), h(b"db\0t\0uk1\0" + b"\0"),
                   h(b"db\0t\0uk2\0" + b"5"), h(b"db\0t\0uk2\0" + b"6")}


def test_scan_route_kinds() -> None:
    a, b, c, d = _fixed_tables()
    for t in (a, b, c):
        route = t.route()
        assert route.native and route.heads == tuple(h for h, _ in t.tkeys.keys)
    assert not d.route().native  # collation-aware key: writeset computes it (call)
    for name in ("floaty", "prefix"):
        assert not Table(TEMPLATES[name], 15, "db", name).route().native
    policy = Table(TEMPLATES["policy"], 14, "db", "p").route()
    assert policy.native and policy.heads == () and policy.extra == (writeset.table_key("db", "p"),)
    with pytest.raises(ValueError):
        _scan.TableRoute()
    with pytest.raises(ValueError):
        _scan.TableRoute(decode=writeset.decode_keys, heads=[b"x"], cols=[])
    data, _ = _one_rows_txn()
    bad = _scan.Scanner(lambda body: "nonsense", checksum=False, max_rows=10)
    with pytest.raises(TypeError):
        bad.scan(bytearray(data), 0)


def test_bad_routes_and_images_raise_instead_of_reading_memory() -> None:
    """Column indexes past the image, negative ones, non-bytes literals and non-tuple
    images are errors (the scanner reads images with bounds checks off)."""
    data, _ = _one_rows_txn()
    with pytest.raises(ValueError):
        _scan.TableRoute(decode=writeset.decode_keys, heads=[b"h"], cols=[[-1]])
    cases = [
        ([((b"1",), None)], [[5]], ValueError),
        ([(("1",), None)], [[0]], TypeError),
        ([([b"1"], None)], [[0]], TypeError),
    ]
    for rows, cols, error in cases:
        route = _scan.TableRoute(decode=lambda *_a, rows=rows: rows, heads=[b"h"], cols=cols)
        scanner = _scan.Scanner(lambda body, route=route: route, checksum=False, max_rows=10)
        with pytest.raises(error):
            scanner.scan(bytearray(data), 0)


def test_transaction_arriving_in_small_reads_is_decoded_once() -> None:
    """Rows events are decoded only once their whole transaction is in the buffer, not
    again on every read that brings a bit more of it."""
    a, *_ = _fixed_tables()
    st_ = Stream(False)
    for i in range(20):
        dml(st_, a, list(range(i * 10, i * 10 + 10)))
    calls = 0
    route = a.route()

    def counting(*args):
        nonlocal calls
        calls += 1
        return writeset.decode_keys(*args)

    counted = _scan.TableRoute(decode=counting, plan=route.plan, wanted=route.wanted, heads=route.heads,
                               cols=route.cols)
    scanner = _scan.Scanner(lambda body: counted, checksum=False, max_rows=10**6)
    src = make_source(bytes(st_.data), False, seed=3, max_chunk=64)
    builder = TransactionBuilder()
    records = 0
    with pytest.raises(SourceDisconnected):
        for item in src.read(scanner, builder.at_boundary):
            assert isinstance(item, list)
            records += len(item)
    assert records == 20
    assert calls == 20  # one rows event per transaction, each decoded once


# -- 4. limits, split packets, errors ---------------------------------------------------


@pytest.mark.parametrize("checksum", [False, True])
def test_max_rows(checksum: bool) -> None:
    a, b, *_ = _fixed_tables()
    st_ = Stream(checksum)
    dml(st_, a, [1, 2, 3])  # exactly max_rows: native
    gtid_at = len(st_.data)
    st_.gtid()
    st_.table_map(b)
    st_.rows(b, INSERT, 2, simple_insert(b, [1, 2]))
    st_.table_map(a)
    st_.rows(a, INSERT, 1, simple_insert(a, [7, 8], version=1))  # 4 rows > 3
    st_.xid()
    dml(st_, b, [9])
    tables = Tables([a, b])
    data = bytes(st_.data)
    scanner = _scan.Scanner(tables.resolve, checksum=checksum, max_rows=3)
    off, records, slow = scanner.scan(bytearray(data), 0)
    assert (off, len(records), slow) == (gtid_at, 1, True)  # stopped at the GTID
    assert scanner.big  # ... because the transaction is big (the coordinator streams it)
    scanner.scan(bytearray(data[:gtid_at]), 0)  # only the first, small, transaction
    assert not scanner.big  # reset by every scan
    ref, ref_end = run_events(data, checksum, tables)
    got, got_end = run_read(data, checksum, tables, max_rows=3)
    assert got_end == ref_end
    assert_same(got, ref)
    assert vias(got) == ["native", "python", "native"]
    assert got.out[1].rows == 4
    kinds = [("records", len(i)) if type(i) is list else i.type for i in got.items]
    assert kinds == [("records", 1), ev.MARIADB_GTID, ev.TABLE_MAP, ev.WRITE_ROWS_V2,
                     ev.TABLE_MAP, ev.WRITE_ROWS_V1, ev.XID, ("records", 1)]


@pytest.mark.parametrize("checksum", [False, True])
def test_max_bytes(checksum: bool) -> None:
    a, *_ = _fixed_tables()
    st_ = Stream(checksum)
    dml(st_, a, [1])
    small = st_.txn_bytes
    dml(st_, a, list(range(40)))
    big = st_.txn_bytes
    dml(st_, a, [2])
    assert small < 200 < big
    tables = Tables([a])
    data = bytes(st_.data)
    ref, _ = run_events(data, checksum, tables)
    got, _ = run_read(data, checksum, tables, max_rows=1000, max_bytes=200)
    assert_same(got, ref)
    assert vias(got) == ["native", "python", "native"]
    got, _ = run_read(data, checksum, tables, max_rows=1000)  # default 4 MiB
    assert vias(got) == ["native"] * 3
    # max_bytes counts the packets before the XID, from the GTID's packet on
    st_ = Stream(checksum)
    dml(st_, a, [1])
    xid_len = 4 + 1 + ev.HEADER_LEN + 8 + (4 if checksum else 0)
    limit = st_.txn_bytes - xid_len
    for max_bytes, via in ((limit, "native"), (limit - 1, "python")):
        got, _ = run_read(bytes(st_.data), checksum, tables, max_rows=10, max_bytes=max_bytes)
        assert vias(got) == [via]


def test_split_packet_stops_the_scan() -> None:
    a, *_ = _fixed_tables()
    st_ = Stream(False)
    dml(st_, a, [1])
    first = len(st_.data)
    st_.gtid()
    st_.table_map(a)
    scanner = _scan.Scanner(Tables([a]).resolve, checksum=False, max_rows=10)
    # a 0xFFFFFF-long packet: the scanner does not wait for it, the Python path joins it
    head = MAX_PACKET.to_bytes(3, "little") + b"\x05" + b"\0" + bytes(100)
    off, records, slow = scanner.scan(bytearray(st_.data) + head, 0)
    assert (off, len(records), slow) == (first, 1, True)
    off, records, slow = scanner.scan(bytearray(head), 0)
    assert (off, records, slow) == (0, [], True)


@pytest.mark.parametrize("checksum", [False, True])
def test_split_packet_through_read(checksum: bool) -> None:
    """A rows event above 16 MiB arrives as several packets: Python path, same result."""
    blob = Template("blob", (Col(s.T_LONG), Col(s.T_BLOB, 4, None, None, True)),
                    (("PRIMARY", (0,)),))
    t = Table(blob, 77, "db", "blob")
    a, *_ = _fixed_tables()
    present = [True, True]
    value = t.tpl.cols[1].encode(b"z" * (MAX_PACKET + 1000))
    body = rows_body(2, INSERT, 2, present, None, enc_image(present, [enc_int(5, 4), value]),
                     table_id=77)
    st_ = Stream(checksum)
    dml(st_, a, [1])
    st_.gtid()
    st_.table_map(t)
    st_.rows(t, INSERT, 2, body)
    st_.xid()
    dml(st_, a, [2])
    data = bytes(st_.data)
    tables = Tables([a, t])
    ref, ref_end = run_events(data, checksum, tables)
    got, got_end = run_read(data, checksum, tables, max_rows=10, max_bytes=64 << 20)
    assert got_end == ref_end
    assert_same(got, ref)
    assert vias(got) == ["native", "python", "native"]
    assert got.out[1].rows == 1 and len(got.out[1].items[0].body) > MAX_PACKET


@pytest.mark.parametrize("max_chunk", [1, 7, 1 << 20])
@pytest.mark.parametrize("code", [1236, 1594])
def test_error_packet_mid_transaction(max_chunk: int, code: int) -> None:
    a, *_ = _fixed_tables()
    st_ = Stream(True)
    dml(st_, a, [1])
    st_.gtid()
    st_.table_map(a)
    st_.rows(a, INSERT, 2, simple_insert(a, [2]))
    st_.error(code, b"Could not read the binlog")
    data = bytes(st_.data)
    tables = Tables([a])
    ref, ref_end = run_events(data, True, tables)
    got, got_end = run_read(data, True, tables, max_chunk=max_chunk, max_rows=10)
    assert got_end == ref_end
    assert got_end[0] is (BinlogPurgedError if code == 1236 else SourceError)
    assert "Could not read the binlog" in got_end[1]
    assert_same(got, ref)
    assert vias(got) == ["native"]
    # the Python path read the partial transaction from its GTID
    assert [i.type for i in got.items[1:]] == [ev.MARIADB_GTID, ev.TABLE_MAP, ev.WRITE_ROWS_V2]


def test_unsupported_event_inside_a_transaction() -> None:
    """A compressed rows event: the Python path raises its SourceError, as without scanner."""
    a, *_ = _fixed_tables()
    st_ = Stream(False)
    st_.gtid()
    st_.table_map(a)
    st_.event(ev.MARIADB_WRITE_ROWS_COMPRESSED_V1, simple_insert(a, [1]))
    st_.xid()
    tables = Tables([a])
    _, ref_end = run_events(bytes(st_.data), False, tables)
    got, got_end = run_read(bytes(st_.data), False, tables, max_rows=10)
    assert got_end == ref_end and got_end[0] is SourceError and "log_bin_compress" in got_end[1]
    assert got.out == []


def test_eof_packet_non_blocking() -> None:
    from applier.source import EndOfBinlog

    a, *_ = _fixed_tables()
    st_ = Stream(False)
    dml(st_, a, [1])
    st_.eof()
    src = make_source(bytes(st_.data), False, non_blocking=True)
    scanner = _scan.Scanner(Tables([a]).resolve, checksum=False, max_rows=10)
    builder = TransactionBuilder()
    it = src.read(scanner, builder.at_boundary)
    assert len(next(it)) == 1
    with pytest.raises(EndOfBinlog):
        next(it)


# -- 5. unpack_payload ------------------------------------------------------------------


def _outcome(fn, *args):
    try:
        return ("ok", fn(*args))
    except Exception as e:
        return ("error", type(e), str(e))


def frame(etype: int, body: bytes) -> bytes:
    return bytes([etype]) + len(body).to_bytes(4, "little") + body


_PAYLOAD_TYPES = st.sampled_from([ev.TABLE_MAP, 23, 24, 25, 30, 31, 32])


@_SETTINGS
@given(parts=st.lists(st.tuples(_PAYLOAD_TYPES, st.binary(min_size=6, max_size=40)), max_size=6),
       flip=st.integers(0, 10**6), bits=st.integers(1, 255))
def test_unpack_payload_native_equals_python(parts, flip, bits) -> None:
    assert unpack_payload is _scan.unpack_payload
    payload = b"".join(frame(t, b) for t, b in parts)
    got = _scan.unpack_payload(payload, RowsEvent)
    assert got == py_unpack_payload(payload, RowsEvent)
    maps, items = got
    assert len(items) == sum(t != ev.TABLE_MAP for t, _ in parts)
    assert set(maps) == {int.from_bytes(b[:6], "little") for t, b in parts if t == ev.TABLE_MAP}
    # every truncation: a prefix of whole frames, or ValueError from both
    bounds = {0}
    for _, b in parts:
        bounds.add(max(bounds) + 5 + len(b))
    for n in range(len(payload)):
        short = payload[:n]
        nat, py = _outcome(_scan.unpack_payload, short, RowsEvent), _outcome(py_unpack_payload, short)
        assert nat == py
        if n not in bounds:
            assert nat[:2] == ("error", ValueError)
    # a corrupted byte: the same outcome
    if payload:
        bad = bytearray(payload)
        bad[flip % len(bad)] ^= bits
        bad = bytes(bad)
        assert _outcome(_scan.unpack_payload, bad, RowsEvent) == _outcome(py_unpack_payload, bad)


def test_unpack_payload_rejects() -> None:
    for bad in (frame(ev.XID, bytes(8)), frame(ev.TABLE_MAP, b"12345"), b"\x13\x00",
                frame(ev.WRITE_ROWS_V2, bytes(10))[:-1], b"\x13" + (2**32 - 1).to_bytes(4, "little")):
        for fn in (_scan.unpack_payload, py_unpack_payload):
            with pytest.raises(ValueError):
                fn(bad, RowsEvent)
    assert _scan.unpack_payload(b"", RowsEvent) == ({}, [])
    body = (2**48 - 1).to_bytes(6, "little") + b"xy"
    assert _scan.unpack_payload(frame(24, body) + frame(19, body), RowsEvent) == (
        {2**48 - 1: body}, [RowsEvent(UPDATE, 2**48 - 1, 1, body)]
    )


# -- 6. the TableMap cache --------------------------------------------------------------


def test_forget_tables_and_changed_table_map() -> None:
    a, b, *_ = _fixed_tables()
    tables = Tables([a, b])
    scanner = _scan.Scanner(tables.resolve, checksum=False, max_rows=100)

    def scan(t: Table) -> None:
        st_ = Stream(False)
        dml(st_, t, [1])
        dml(st_, t, [2])
        off, records, slow = scanner.scan(bytearray(st_.data), 0)
        assert (off, len(records), slow) == (len(st_.data), 2, False)

    scan(a)
    assert tables.resolved == [a.map_body]
    scan(a)
    assert tables.resolved == [a.map_body]  # cached by table id and body
    scanner.forget_tables()
    scan(a)
    assert tables.resolved == [a.map_body] * 2
    # the same table id with another TableMap body (another table, or after ALTER)
    b_same_id = Table(TEMPLATES["second"], a.table_id, "db", "b")
    tables.by_name[("db", "b")] = b_same_id
    scan(b_same_id)
    assert tables.resolved == [a.map_body] * 2 + [b_same_id.map_body]
    scan(a)
    assert tables.resolved[-1] == a.map_body and len(tables.resolved) == 4


def test_resolve_none_is_remembered() -> None:
    """A table resolve() turns down sends every transaction using it to the Python path,
    without asking again; other tables' transactions stay native."""
    a, *_ = _fixed_tables()
    f = Table(TEMPLATES["filtered"], 99, "db", "f")
    tables = Tables([a, f])
    st_ = Stream(False)
    dml(st_, a, [1])
    dml(st_, f, [1])
    dml(st_, a, [2])
    dml(st_, f, [2])
    ref, _ = run_events(bytes(st_.data), False, tables)
    got, _ = run_read(bytes(st_.data), False, tables, max_rows=10)
    assert_same(got, ref)
    assert vias(got) == ["native", "python", "native", "python"]
    assert tables.resolved.count(f.map_body) == 1


# -- 7. xxh3 ----------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=2000))
def test_xxh3_equals_xxhash(data: bytes) -> None:
    assert _scan.xxh3(data) == xxhash.xxh3_64_intdigest(data)


def test_xxh3_lengths() -> None:
    rnd = random.Random(5)
    for n in (0, 1, 2, 3, 4, 8, 9, 16, 17, 128, 129, 240, 241, 1024, 4096, 100_003):
        data = rnd.randbytes(n)
        assert _scan.xxh3(data) == xxhash.xxh3_64_intdigest(data)

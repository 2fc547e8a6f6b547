"""The intake (applier/pipeline/intake.py) reads the same transactions, with the same
keys, through the native scanner as through the per-event Python path it short-cuts.

Streams are built byte by byte (tests/unit/streams.py) and read by a real ``DumpSource``
from a fake socket that hands them out in random-sized chunks (its ``fileno`` is a real
socket that is always readable, so ``fill``'s select says "readable" at once and every
read is the fake's). The reference is ``Intake(ApplyConfig(native_scan=False))``:
``DumpSource.next_event`` -> ``TransactionBuilder`` -> ``writeset`` keys, event by event.
With ``native_scan=True`` the intake must yield the same items (whole transactions,
barriers, streamed pieces, IDLE), in the same order, and end with the same error:
scanner records for the transactions the scanner can read, the Python path for all
others.
"""

from __future__ import annotations

import contextlib
import random
import socket
import struct
import time
import types
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from applier.binlog import events as ev
from applier.binlog import native
from applier.binlog import tablemap as s
from applier.binlog.events import DELETE, INSERT, UPDATE
from applier.binlog.transactions import RowsEvent, Statement, py_unpack_payload
from applier.config import ApplyConfig, SourceConfig
from applier.errors import (
    ApplierError,
    BinlogPurgedError,
    DecodeError,
    SchemaError,
    SourceError,
)
from applier.pipeline import intake as intake_mod
from applier.pipeline import writeset
from applier.pipeline.intake import (
    IDLE,
    Barrier,
    Filter,
    Intake,
    Routed,
    Stream,
    StreamEnd,
)
from applier.pipeline.source import DumpSource, EndOfBinlog, SourceDisconnected
from applier.pipeline.tables import TableCache
from tests.unit.binlog_encoders import enc_image, rows_body
from tests.unit.streams import (
    BARRIER_TEMPLATES,
    FILE1,
    MAX_PACKET,
    SKIP_DB,
    STATUS,
    TEMPLATES,
    Col,
    Schemas,
    TableDef,
    Template,
    dml,
    enc_int,
    fixed_tables,
    simple_insert,
)
from tests.unit.streams import Stream as DumpStream

_scan = pytest.importorskip("applier.native._scan", reason="native scanner not built")

CHECKPOINT_SCHEMA = "mts_applier"
_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# -- reading: a fake socket, a fake schema source, the intake -----------------------------


_READABLE: list[socket.socket] = []


@pytest.fixture(autouse=True, scope="module")
def _always_readable() -> Iterator[None]:
    """One end of a socket pair with a byte waiting that nobody reads: what the fake
    sockets give ``select`` as their file descriptor."""
    a, b = socket.socketpair()
    b.sendall(b"x")
    _READABLE.append(a)
    yield
    _READABLE.clear()
    a.close()
    b.close()


class FakeSocket:
    """``recv`` hands out the stream in random-sized chunks, then b"" (connection closed)."""

    def __init__(self, data: bytes, seed: int, max_chunk: int) -> None:
        self.data = bytes(data)
        self.pos = 0
        self.rnd = random.Random(seed)
        self.max_chunk = max_chunk
        self.calls = 0

    def fileno(self) -> int:
        return _READABLE[0].fileno()

    def recv(self, n: int) -> bytes:
        self.calls += 1
        assert self.calls <= len(self.data) + 5, "the intake makes no progress"
        size = min(n, self.rnd.randint(1, self.max_chunk))
        chunk = self.data[self.pos : self.pos + size]
        self.pos += len(chunk)
        return chunk


def make_source(data: bytes, checksum: bool, seed: int = 0, max_chunk: int = 1 << 20,
                non_blocking: bool = False) -> DumpSource:
    """A DumpSource in the state ``open()`` leaves it, reading from a fake socket."""
    src = DumpSource(SourceConfig(), "mariadb", non_blocking=non_blocking)
    src._sock = FakeSocket(data, seed, max_chunk)  # type: ignore[assignment]
    src.checksum = checksum
    src.file = FILE1
    src._last_read = time.monotonic()
    return src


def make_intake(tables: list[TableDef], *, native_scan: bool, big_txn_rows: int = 10_000,
                policy: str = "writeset") -> Intake:
    cfg = ApplyConfig(native_scan=native_scan, big_txn_rows=big_txn_rows, policy=policy,
                      ignore_databases=(SKIP_DB,))
    return Intake(cfg, Filter(cfg, CHECKPOINT_SCHEMA), TableCache(Schemas(tables)), None)


@contextlib.contextmanager
def scanner_max_bytes(max_bytes: int | None) -> Iterator[None]:
    """The intake's scanners, with another ``max_bytes`` than the default 4 MiB (so that
    small streams reach it). The real Scanner class, only its limit changes."""
    if max_bytes is None:
        yield
        return
    real = intake_mod.scan
    assert real is _scan

    def scanner(*args, **kw):
        return _scan.Scanner(*args, max_bytes=max_bytes, **kw)

    intake_mod.scan = types.SimpleNamespace(Scanner=scanner)
    try:
        yield
    finally:
        intake_mod.scan = real


# -- what the intake yields, in comparable form ---------------------------------------------


@dataclass
class Run:
    """What one ``Intake.items`` run yielded, each item recorded when it came (a
    streamed transaction's pieces are joined into one entry at its ``StreamEnd``)."""

    intake: Intake
    entries: list[tuple] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)  # native | routed | barrier | stream | idle
    pieces: list[tuple[bool, int]] = field(default_factory=list)  # (first, items) per Stream
    first_rows: list[int] = field(default_factory=list)  # txn.rows when a Stream starts
    end: tuple = ()  # (type, text) of the exception that ended it
    _native: int = 0
    _streams: dict = field(default_factory=dict)  # id(txn) -> [txn, items so far]

    def record(self, item) -> None:
        t = type(item)
        if t is Routed:
            txn = item.txn
            assert type(item.keys) is set and type(txn.rows) is int
            native_txn = self.intake.scanned > self._native
            if native_txn:
                # records of one scan are yielded together, before any Python-path item
                self._native += 1
                assert txn.items == [] and txn.table_maps == {}
                maps, items = native.unpack_payload(txn.payload, RowsEvent)
                assert (maps, items) == py_unpack_payload(txn.payload, RowsEvent)
            else:
                assert txn.payload == b""
                maps, items = dict(txn.table_maps), list(txn.items)
            self.kinds.append("native" if native_txn else "routed")
            self.entries.append(("routed", txn.seq, txn.gtid, txn.file, txn.end_pos, txn.timestamp,
                                 txn.rows, frozenset(item.keys), maps, items))
        elif t is Barrier:
            txn = item.txn
            assert txn.payload == b"" and txn.items and (txn.barrier or txn.is_ddl)
            self.kinds.append("barrier")
            self.entries.append(("barrier", txn.seq, txn.gtid, txn.file, txn.end_pos,
                                 txn.timestamp, txn.rows, txn.barrier, dict(txn.table_maps),
                                 list(txn.items)))
        elif t is Stream:
            txn = item.txn
            assert item.items
            self.pieces.append((item.first, len(item.items)))
            if item.first:  # (numbered once whole: keyed by identity until then)
                assert id(txn) not in self._streams
                self._streams[id(txn)] = [txn, []]
                self.first_rows.append(txn.rows)
            entry = self._streams[id(txn)]
            assert entry[0] is txn
            entry[1].extend(item.items)
        elif t is StreamEnd:
            txn = item.txn
            streamed, items = self._streams.pop(id(txn))
            assert streamed is txn and txn.items == []
            self.kinds.append("stream")
            self.entries.append(("stream", txn.seq, txn.gtid, txn.file, txn.end_pos,
                                 txn.timestamp, txn.rows, dict(txn.table_maps), items))
        else:
            assert item is IDLE
            self.kinds.append("idle")
            self.entries.append(("idle",))

    @property
    def seen(self) -> list[tuple]:
        return [e for e in self.entries if e[0] != "idle"]


def outcome(exc: BaseException) -> tuple:
    return (type(exc), str(exc))


def run(data: bytes, checksum: bool, tables: list[TableDef], *, native_scan: bool,
        seed: int = 0, max_chunk: int = 1 << 20, big_txn_rows: int = 10_000,
        policy: str = "writeset", max_bytes: int | None = None,
        non_blocking: bool = False) -> Run:
    """Every item ``Intake.items`` yields for ``data`` until it raises."""
    src = make_source(data, checksum, seed, max_chunk, non_blocking)
    intake = make_intake(tables, native_scan=native_scan, big_txn_rows=big_txn_rows,
                         policy=policy)
    result = Run(intake)
    with scanner_max_bytes(max_bytes):
        try:
            for item in intake.items(src):
                result.record(item)
        except (SourceDisconnected, EndOfBinlog, ApplierError) as exc:
            result.end = outcome(exc)
            return result
    raise AssertionError("unreachable: items() only ends by raising")


def both(data: bytes, checksum: bool, tables: list[TableDef], **kw) -> tuple[Run, Run]:
    """(scanner path, Python path) over the same stream, which must agree."""
    ref_kw = {k: v for k, v in kw.items() if k not in ("seed", "max_chunk", "max_bytes")}
    ref = run(data, checksum, tables, native_scan=False, **ref_kw)
    got = run(data, checksum, tables, native_scan=True, **kw)
    assert got.end == ref.end
    assert got.entries == ref.entries
    assert got.first_rows == ref.first_rows
    assert "native" not in ref.kinds and ref.intake.scanned == 0
    assert got.intake.scanned == got.kinds.count("native")
    return got, ref


# -- 1. the property: native_scan=True == native_scan=False over random streams ------------

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
    """Full row images (binlog_row_image=FULL); partial ones are refused by both paths
    (test_partial_images_are_refused_alike)."""
    return [True] * n


def draw_rows(data, t: TableDef) -> tuple[int, int, bytes, int]:
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
            images += enc_image(present, [draw_value(data, c)
                                          for c, p in zip(cols, present, strict=True) if p])
    body = rows_body(len(cols), op, version, present1, present2, images, extra, t.table_id)
    return op, version, body, nrows


_TEMPLATE_NAMES = ["plain", "plain", "second", "second", "composite", "composite", "folded",
                   "floaty", "prefix", "narrow", "nokey", "fk"]


def draw_tables(data) -> list[TableDef]:
    n = data.draw(st.integers(1, 3))
    names = data.draw(st.lists(st.sampled_from(_TEMPLATE_NAMES), min_size=n, max_size=n))
    ids = data.draw(st.lists(st.integers(1, 2**48 - 1) | st.integers(1, 300), min_size=n,
                             max_size=n, unique=True))
    dbs = data.draw(st.lists(st.sampled_from(["db", "db", "db2", SKIP_DB]), min_size=n,
                             max_size=n))
    return [TableDef(TEMPLATES[name], tid, db, f"{name}{i}")
            for i, (name, tid, db) in enumerate(zip(names, ids, dbs, strict=True))]


_KINDS = ["dml"] * 8 + ["mysql", "anonymous", "empty", "ddl", "mysql_ddl", "rotate", "heartbeat",
                        "xa", "commit_query", "begin_commit", "savepoint", "create_select"]


@dataclass
class Drawn:
    """What a drawn transaction with rows holds, for the expected kinds."""

    rows: int = 0  # rows of tables the filter lets through
    total_rows: int = 0
    python_tables: bool = False  # a table the scanner leaves to Python (filtered, barrier)
    barrier: bool = False  # a rows event on a replicated barrier table


def draw_dml(data, stream: DumpStream, tables: list[TableDef], kind: str) -> Drawn:
    """One transaction with rows (its end is the caller's)."""
    if kind == "mysql":
        stream.mysql_gtid()
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
    drawn, mapped = Drawn(), set()
    for i in range(data.draw(st.integers(1, 4))):
        t = data.draw(st.sampled_from(tables))
        if t.table_id not in mapped or data.draw(st.integers(0, 4)) == 0:
            stream.table_map(t)
            mapped.add(t.table_id)
            drawn.python_tables |= t.filtered or t.barrier
        op, version, body, n = draw_rows(data, t)
        stream.rows(op, version, body)
        drawn.total_rows += n
        if not t.filtered:
            drawn.rows += n
            drawn.barrier |= t.barrier
        if kind == "savepoint" and i == 0:
            stream.query(b"SAVEPOINT `sp`")
        if data.draw(st.integers(0, 5)) == 0:
            # a TableMap without rows events (a trigger's table that changed nothing)
            t = data.draw(st.sampled_from(tables))
            stream.table_map(t)
            drawn.python_tables |= t.filtered or t.barrier
    return drawn


@_SETTINGS
@given(data=st.data())
def test_scanner_path_equals_python_path(data) -> None:
    checksum = data.draw(st.booleans(), label="checksum")
    tables = draw_tables(data)
    big_txn_rows = data.draw(st.integers(1, 10) | st.just(1000), label="big_txn_rows")
    max_bytes = data.draw(st.sampled_from([4 << 20] * 3 + [200, 400, 1000]), label="max_bytes")
    policy = data.draw(st.sampled_from(["writeset", "writeset", "table", "database"]),
                       label="policy")
    stream = DumpStream(checksum)
    if data.draw(st.booleans()):  # what a dump starts with
        stream.rotate(FILE1, artificial=True)
        stream.format_description()
    expected: list[str] = []  # kinds of the scanner path; the Python path: native -> routed
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
            expected.append("idle")
            continue
        if kind == "ddl":
            stream.ddl()
            expected.append("barrier")
            continue
        if kind == "empty":
            stream.gtid()
            stream.xid()
            expected.append("native")
            continue
        if kind == "mysql_ddl":
            stream.mysql_gtid(begin=False)
            stream.query(b"DROP TABLE IF EXISTS db.gone", STATUS)
            expected.append("barrier")
            continue
        drawn = draw_dml(data, stream, tables, kind)
        scannable = (kind in ("dml", "mysql", "anonymous") and not drawn.python_tables
                     and stream.txn_bytes <= max_bytes)
        if kind in ("commit_query", "begin_commit"):
            stream.query(b"COMMIT")
        else:
            stream.xid()
        if kind == "create_select":  # rows after the statement: not counted, not streamed
            expected.append("barrier")
        elif drawn.rows > big_txn_rows:
            expected.append("stream")
        elif scannable:
            expected.append("native")
        elif drawn.barrier or kind == "savepoint":
            expected.append("barrier")
        else:
            expected.append("routed")
    tail = data.draw(st.sampled_from(["none", "none", "partial", "error", "error_mid", "eof"]))
    non_blocking = data.draw(st.booleans(), label="non_blocking")
    if tail in ("partial", "error_mid"):
        stream.gtid()
        t = tables[0]
        stream.table_map(t)
        stream.rows(INSERT, 2, simple_insert(t, [1]))
    if tail in ("error", "error_mid"):
        code = data.draw(st.sampled_from([1236, 1032]))
        stream.error(code, b"boom")
        end_type = BinlogPurgedError if code == 1236 else SourceError
    elif tail == "eof":
        stream.eof()
        end_type = EndOfBinlog if non_blocking else SourceDisconnected
    else:
        end_type = SourceDisconnected

    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    max_chunk = data.draw(st.sampled_from([1, 5, 64, 700, 1 << 20]), label="max_chunk")
    got, ref = both(bytes(stream.data), checksum, tables, seed=seed, max_chunk=max_chunk,
                    big_txn_rows=big_txn_rows, policy=policy, max_bytes=max_bytes,
                    non_blocking=non_blocking)
    assert got.end[0] is end_type
    assert got.kinds == expected
    assert ref.kinds == ["routed" if k == "native" else k for k in expected]
    # the Python path holds a partly read transaction at the end; the scanner path only
    # when it had to read it (an error packet after it), as it waits for whole ones
    assert ref.intake.partial == (tail in ("partial", "error_mid"))
    assert got.intake.partial == (tail == "error_mid")
    natives = [e for e, k in zip(got.seen, (k for k in got.kinds if k != "idle"), strict=True)
               if k == "native"]
    event(f"native: {min(len(natives), 3)}+, other: {min(len(expected) - len(natives), 3)}+")
    event(f"native keys: {any(e[7] for e in natives)}, policy: {policy}, max_chunk: {max_chunk}")
    for entry in got.seen:  # DDL is never read by the scanner
        assert entry[0] != "routed" or not any(isinstance(i, Statement) for i in entry[9])


# -- 2. fixed streams: records really occur, in order with the rest -------------------------


@pytest.mark.parametrize("checksum", [False, True])
def test_records_and_python_items_interleave(checksum: bool) -> None:
    a, b, c, d = fixed_tables()
    st_ = DumpStream(checksum)
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
    got, ref = both(bytes(st_.data), checksum, [a, b, c, d])
    assert got.end == (SourceDisconnected, "source closed the dump connection")
    assert got.kinds == ["native", "native", "barrier", "native", "native", "idle", "native"]
    assert ref.kinds == ["routed", "routed", "barrier", "routed", "routed", "idle", "routed"]
    assert [e[3] for e in got.seen] == [FILE1] * 5 + ["bin.000002"]
    assert [e[1] for e in got.seen] == [1, 2, 3, 4, 5, 6]  # one numbering for both kinds
    # keys came from the scanner for a, b, c, from writeset (TableRoute.call) for d
    assert all(e[7] for e in got.seen if e[0] == "routed")
    barrier = got.seen[2]
    assert isinstance(barrier[-1][0], Statement) and barrier[-1][0].sql.startswith(b"ALTER")


@pytest.mark.parametrize("policy", ["table", "database"])
def test_policies_key_tables_or_databases(policy: str) -> None:
    """Policies table and database: the scanner's keys are the table's or the database's
    key only, as the Python path's."""
    a, b, c, _ = fixed_tables()
    st_ = DumpStream(True)
    dml(st_, a, [1, 2])
    dml(st_, b, [1])
    st_.gtid()
    st_.table_map(a)
    st_.rows(INSERT, 2, simple_insert(a, [3]))
    st_.table_map(c)
    st_.rows(INSERT, 1, simple_insert(c, [4], version=1))
    st_.xid()
    got, _ = both(bytes(st_.data), True, [a, b, c], policy=policy)
    assert got.kinds == ["native"] * 3
    if policy == "table":
        want = [{writeset.table_key("db", "a")}, {writeset.table_key("db", "b")},
                {writeset.table_key("db", "a"), writeset.table_key("db2", "c")}]
    else:
        want = [{writeset.database_key("db")}, {writeset.database_key("db")},
                {writeset.database_key("db"), writeset.database_key("db2")}]
    assert [set(e[7]) for e in got.seen] == want
    assert [e[6] for e in got.seen] == [2, 1, 2]


def test_filtered_tables_go_the_python_path() -> None:
    """A table in an ignored database sends every transaction using it to the Python
    path, which drops its rows; other tables' transactions stay native."""
    a, *_ = fixed_tables()
    f = TableDef(TEMPLATES["narrow"], 99, SKIP_DB, "f")
    st_ = DumpStream(False)
    dml(st_, a, [1])
    dml(st_, f, [1])
    dml(st_, a, [2])
    st_.gtid()
    st_.table_map(f)
    st_.rows(INSERT, 2, simple_insert(f, [2]))
    st_.table_map(a)
    st_.rows(INSERT, 2, simple_insert(a, [3]))
    st_.xid()
    got, ref = both(bytes(st_.data), False, [a, f])
    assert got.kinds == ["native", "routed", "native", "routed"]
    skipped, mixed = got.seen[1], got.seen[3]
    assert skipped[9] == [] and skipped[7] == frozenset() and skipped[6] == 0  # nothing to apply
    assert [i.table_id for i in mixed[9]] == [a.table_id] and mixed[6] == 1
    # the filter decides before any schema lookup: the target need not have skip.f
    assert (SKIP_DB, "f") not in got.intake.tables.schemas.asked
    assert (SKIP_DB, "f") not in ref.intake.tables.schemas.asked


@pytest.mark.parametrize("template", sorted(BARRIER_TEMPLATES))
def test_barrier_tables_come_as_barriers(template: str) -> None:
    """A table without a usable key (or with foreign keys) makes its transaction a
    Barrier, on both paths; the scanner leaves such transactions to Python."""
    a, *_ = fixed_tables()
    n = TableDef(TEMPLATES[template], 55, "db", "n")
    st_ = DumpStream(True)
    dml(st_, a, [1])
    dml(st_, n, [1, 2])
    st_.gtid()
    st_.table_map(a)
    st_.rows(INSERT, 2, simple_insert(a, [2]))
    st_.table_map(n)
    st_.rows(INSERT, 2, simple_insert(n, [3]))
    st_.xid()
    dml(st_, a, [4])
    got, _ = both(bytes(st_.data), True, [a, n])
    assert got.kinds == ["native", "barrier", "barrier", "native"]
    reason = n.schema.barrier_reason
    assert reason and [e[7] for e in got.seen if e[0] == "barrier"] == [reason, reason]
    assert [e[6] for e in got.seen] == [1, 2, 2, 1]


def test_changed_table_map_for_a_table_id() -> None:
    """The same table id maps another table later (or the same after ALTER): both paths
    key each transaction by the TableMap it carries."""
    a, b, *_ = fixed_tables()
    b_same_id = TableDef(TEMPLATES["second"], a.table_id, "db", "b")
    st_ = DumpStream(False)
    dml(st_, a, [1])
    dml(st_, b_same_id, [1])
    dml(st_, a, [1])
    got, _ = both(bytes(st_.data), False, [a, b_same_id])
    assert got.kinds == ["native"] * 3
    keys = [e[7] for e in got.seen]
    assert keys[0] == keys[2] and keys[0].isdisjoint(keys[1])


def test_idle_on_a_real_socket() -> None:
    """On a real socket the intake yields IDLE whenever nothing is readable (here the
    consumer then sends the next piece, cut anywhere), and nothing is lost."""
    a, b, c, d = fixed_tables()
    tables = [a, b, c, d]
    st_ = DumpStream(True)
    for i in range(6):
        dml(st_, tables[i % 4], [i, i + 10])
        if i == 2:
            st_.ddl()
    data = bytes(st_.data)
    ref = run(data, True, tables, native_scan=False)
    rnd = random.Random(3)
    cuts = sorted(rnd.sample(range(1, len(data)), 12))
    pieces = [data[i:j] for i, j in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    total = len(pieces)
    writer, reader = socket.socketpair()
    src = make_source(b"", True)
    src._sock = reader
    intake = make_intake(tables, native_scan=True)
    got = Run(intake)
    idle = 0
    started = time.monotonic()
    try:
        with pytest.raises(SourceDisconnected) as exc:
            for item in intake.items(src):
                assert time.monotonic() - started < 20, "the intake hangs"
                if item is IDLE:
                    idle += 1
                    assert idle <= total + 1
                    if pieces:
                        writer.sendall(pieces.pop(0))
                    else:
                        writer.close()
                else:
                    got.record(item)
    finally:
        reader.close()
        writer.close()
    assert outcome(exc.value) == ref.end
    assert got.entries == ref.entries
    assert got.kinds == ["native"] * 3 + ["barrier"] + ["native"] * 3
    assert idle == total + 1  # once before each piece, once more before the close


def test_idle_again_while_the_source_stays_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing readable: IDLE, then IDLE again every IDLE_SECONDS, not a busy loop."""
    monkeypatch.setattr(intake_mod, "IDLE_SECONDS", 0.02)
    a, *_ = fixed_tables()
    st_ = DumpStream(False)
    dml(st_, a, [1])
    writer, reader = socket.socketpair()
    src = make_source(b"", False)
    src._sock = reader
    intake = make_intake([a], native_scan=True)
    seen: list = []
    started = time.monotonic()
    try:
        writer.sendall(bytes(st_.data))
        items = intake.items(src)
        for item in items:
            seen.append(item)
            if len(seen) == 4:
                break
        elapsed = time.monotonic() - started
    finally:
        reader.close()
        writer.close()
    assert type(seen[0]) is Routed and intake.scanned == 1
    assert seen[1:] == [IDLE] * 3
    assert 0.03 <= elapsed < 5  # two waits of IDLE_SECONDS between the three IDLEs


# -- 3. errors: where and which ----------------------------------------------------------


@pytest.mark.parametrize("max_chunk", [7, 1 << 20])
def test_resolve_errors_propagate(max_chunk: int) -> None:
    """A table missing on the target: the scanner's lookup fails as the Python path's
    does (same error, same text), before anything else comes out."""
    a, b, *_ = fixed_tables()
    st_ = DumpStream(False)
    dml(st_, b, [1])
    dml(st_, a, [1])
    got, ref = both(bytes(st_.data), False, [a], max_chunk=max_chunk)
    assert got.end[0] is SchemaError and "db.b" in got.end[1]
    assert got.entries == []


@pytest.mark.parametrize("max_chunk", [7, 1 << 20])
def test_error_after_whole_transactions_leaves_them_first(max_chunk: int) -> None:
    """Transactions read before the one whose table fails come out first; the failing
    one goes the Python path, which meets (and reports) the error itself, in source
    order."""
    a, b, *_ = fixed_tables()
    st_ = DumpStream(False)
    dml(st_, a, [1])
    dml(st_, b, [1])
    dml(st_, a, [2])
    got, _ = both(bytes(st_.data), False, [a], max_chunk=max_chunk)
    assert got.kinds == ["native"]
    assert got.end[0] is SchemaError and "db.b" in got.end[1]
    if max_chunk > len(st_.data):
        # one scan saw both: it handed over a, then the Python path read b from its GTID
        assert got.intake.partial
        current = got.intake.builder.current
        assert current is not None and current.gtid == "0-1-2"
        assert list(current.table_maps.values()) == [b.map_body]


@pytest.mark.xfail(strict=True, reason=(
    "the scanner decodes a transaction only once it is whole in the buffer, so an error "
    "inside one that the connection cuts short (a table missing on the target, an "
    "unsupported event) never comes out of the scanner path: it ends with "
    "SourceDisconnected where the Python path raises SchemaError / SourceError"))
@pytest.mark.parametrize("case", ["missing_table", "unsupported_event"])
def test_error_in_a_transaction_cut_short(case: str) -> None:
    a, b, *_ = fixed_tables()
    st_ = DumpStream(False)
    dml(st_, a, [1])
    st_.gtid()
    if case == "missing_table":
        st_.table_map(b)
        st_.rows(INSERT, 2, simple_insert(b, [2]))
    else:
        st_.table_map(a)
        st_.event(ev.MARIADB_WRITE_ROWS_COMPRESSED_V1, simple_insert(a, [2]))
    # ... and the connection ends before the XID
    ref = run(bytes(st_.data), False, [a], native_scan=False)
    assert ref.end[0] is (SchemaError if case == "missing_table" else SourceError)
    both(bytes(st_.data), False, [a])


@pytest.mark.xfail(strict=True, reason=(
    "the scanner looks a table up at its TableMap, the Python path at its rows events: "
    "a TableMap without rows events (a trigger's table that changed nothing) of a table "
    "missing on the target makes the scanner path raise SchemaError where the Python "
    "path applies the transaction (or streams it, big, without looking later tables up)"))
@pytest.mark.parametrize("big_txn_rows", [10_000, 1])
def test_table_map_without_rows_of_a_missing_table(big_txn_rows: int) -> None:
    a, b, *_ = fixed_tables()
    st_ = DumpStream(False)
    st_.gtid()
    st_.table_map(a)
    st_.table_map(b)  # not on the target
    st_.rows(INSERT, 2, simple_insert(a, [1, 2]))
    if big_txn_rows == 1:  # streamed from here: b's rows are not looked up either
        st_.rows(INSERT, 2, simple_insert(b, [1, 2]))
    st_.xid()
    dml(st_, a, [3])
    ref = run(bytes(st_.data), False, [a], native_scan=False, big_txn_rows=big_txn_rows)
    assert ref.end[0] is SourceDisconnected and len(ref.seen) == 2
    both(bytes(st_.data), False, [a], big_txn_rows=big_txn_rows)


@pytest.mark.parametrize("first", [False, True])
def test_undecodable_rows(first: bool) -> None:
    """A rows event that does not decode: the scanner's decode error comes out as the
    Python path's (same type and text), after the transactions before it."""
    a, *_ = fixed_tables()
    st_ = DumpStream(False)
    if not first:
        dml(st_, a, [1])
    st_.gtid()
    st_.table_map(a)
    # a column count the TableMap does not have
    st_.rows(INSERT, 2, rows_body(3, INSERT, 2, [True] * 3, None, b"", table_id=a.table_id))
    st_.xid()
    dml(st_, a, [3])
    got, _ = both(bytes(st_.data), False, [a])
    assert got.kinds == ([] if first else ["native"])
    assert got.end[0] is DecodeError and "has 3 columns" in got.end[1]


@pytest.mark.parametrize("max_chunk", [1, 7, 1 << 20])
@pytest.mark.parametrize("code", [1236, 1594])
def test_error_packet_mid_transaction(max_chunk: int, code: int) -> None:
    a, *_ = fixed_tables()
    st_ = DumpStream(True)
    dml(st_, a, [1])
    st_.gtid()
    st_.table_map(a)
    st_.rows(INSERT, 2, simple_insert(a, [2]))
    st_.error(code, b"Could not read the binlog")
    got, ref = both(bytes(st_.data), True, [a], max_chunk=max_chunk)
    assert got.end[0] is (BinlogPurgedError if code == 1236 else SourceError)
    assert "Could not read the binlog" in got.end[1]
    assert got.kinds == ["native"]
    # the Python path read the partial transaction from its GTID
    for r in (got, ref):
        assert r.intake.partial
        current = r.intake.builder.current
        assert current is not None and current.gtid == "0-1-2"
        assert [i.table_id for i in current.items] == [a.table_id]


def test_unsupported_event_inside_a_transaction() -> None:
    """A compressed rows event: the Python path raises its SourceError, as without scanner."""
    a, *_ = fixed_tables()
    st_ = DumpStream(False)
    st_.gtid()
    st_.table_map(a)
    st_.event(ev.MARIADB_WRITE_ROWS_COMPRESSED_V1, simple_insert(a, [1]))
    st_.xid()
    got, _ = both(bytes(st_.data), False, [a])
    assert got.end[0] is SourceError and "log_bin_compress" in got.end[1]
    assert got.entries == []


def test_eof_packet_non_blocking() -> None:
    a, *_ = fixed_tables()
    st_ = DumpStream(False)
    dml(st_, a, [1])
    st_.eof()
    got, _ = both(bytes(st_.data), False, [a], non_blocking=True)
    assert got.kinds == ["native"]
    assert got.end == (EndOfBinlog, "")


# -- 4. big transactions: rows, bytes, split packets ------------------------------------------


def _streamed_rows_stream(checksum: bool) -> tuple[bytes, list[TableDef]]:
    a, b, *_ = fixed_tables()
    st_ = DumpStream(checksum)
    dml(st_, a, [1, 2, 3])  # exactly big_txn_rows: native
    st_.gtid()
    st_.table_map(b)
    st_.rows(INSERT, 2, simple_insert(b, [1, 2]))
    st_.table_map(a)
    st_.rows(INSERT, 1, simple_insert(a, [7, 8], version=1))  # 4 rows > 3
    st_.query(b"SAVEPOINT `sp`")
    st_.rows(INSERT, 2, simple_insert(a, [9]))
    st_.xid()
    dml(st_, b, [9])
    return bytes(st_.data), [a, b]


@pytest.mark.parametrize("checksum", [False, True])
def test_big_txn_rows(checksum: bool) -> None:
    """Above big_txn_rows rows a transaction is streamed: the scanner stops at it and the
    Python path streams it from its first rows event, the reference from where its
    count passes the threshold; the same items either way."""
    data, tables = _streamed_rows_stream(checksum)
    got, ref = both(data, checksum, tables, big_txn_rows=3)
    assert got.kinds == ["native", "stream", "native"]
    assert ref.kinds == ["routed", "stream", "routed"]
    streamed = got.seen[1]
    assert [type(i).__name__ for i in streamed[-1]] == ["RowsEvent", "RowsEvent", "Statement",
                                                      "RowsEvent"]
    assert got.pieces == [(True, 1), (False, 1), (False, 1), (False, 1)]
    assert ref.pieces == [(True, 2), (False, 1), (False, 1)]


@pytest.mark.parametrize("checksum", [False, True])
def test_streamed_rows_counted_alike(checksum: bool) -> None:
    """What ``Flow`` counts for a streamed transaction, ``txn.rows`` when its first piece
    comes plus the rows of every piece (``txn.rows += serial.stream(txn, items)``), is
    its row count (2 + 2 + 1 here), on either path."""
    data, tables = _streamed_rows_stream(checksum)
    got, ref = both(data, checksum, tables, big_txn_rows=3)
    plans = {t.table_id: t.plan for t in tables}

    def rows_of(item) -> int:  # what the serial applier's stream() returns for it
        if not isinstance(item, RowsEvent):
            return 0
        return len(native.decode_rows(plans[item.table_id], item.op, item.body, item.version))

    counted = []
    for r in (got, ref):
        [streamed] = [e for e in r.seen if e[0] == "stream"]
        [at_first] = r.first_rows
        counted.append(at_first + sum(rows_of(i) for i in streamed[-1]))
    assert counted == [5, 5]


@pytest.mark.parametrize("checksum", [False, True])
def test_max_bytes(checksum: bool) -> None:
    """A transaction above the scanner's max_bytes (4 MiB) goes the Python path whole
    (it is not streamed: few rows), the ones around it stay native."""
    blob = Template("blob", (Col(s.T_LONG), Col(s.T_BLOB, 4, None, None, True)), (("PRIMARY", (0,)),))
    t = TableDef(blob, 77, "db", "blob")
    a, *_ = fixed_tables()
    present = [True, True]
    value = t.tpl.cols[1].encode(b"z" * (4 << 20))
    body = rows_body(2, INSERT, 2, present, None, enc_image(present, [enc_int(5, 4), value]),
                     table_id=77)
    st_ = DumpStream(checksum)
    dml(st_, a, [1])
    st_.gtid()
    st_.table_map(t)
    st_.rows(INSERT, 2, body)
    st_.xid()
    dml(st_, a, [2])
    got, _ = both(bytes(st_.data), checksum, [a, t], max_chunk=1 << 20)
    assert got.kinds == ["native", "routed", "native"]
    assert got.seen[1][6] == 1 and len(got.seen[1][9][0].body) > 4 << 20


@pytest.mark.parametrize("checksum", [False, True])
def test_split_packet_through_the_intake(checksum: bool) -> None:
    """A rows event above 16 MiB arrives as several packets: Python path, same result."""
    blob = Template("blob", (Col(s.T_LONG), Col(s.T_BLOB, 4, None, None, True)), (("PRIMARY", (0,)),))
    t = TableDef(blob, 77, "db", "blob")
    a, *_ = fixed_tables()
    present = [True, True]
    value = t.tpl.cols[1].encode(b"z" * (MAX_PACKET + 1000))
    body = rows_body(2, INSERT, 2, present, None, enc_image(present, [enc_int(5, 4), value]),
                     table_id=77)
    st_ = DumpStream(checksum)
    dml(st_, a, [1])
    st_.gtid()
    st_.table_map(t)
    st_.rows(INSERT, 2, body)
    st_.xid()
    dml(st_, a, [2])
    got, _ = both(bytes(st_.data), checksum, [a, t], max_bytes=64 << 20)
    assert got.kinds == ["native", "routed", "native"]
    assert got.seen[1][6] == 1 and len(got.seen[1][9][0].body) > MAX_PACKET


# -- 5. decoding once -------------------------------------------------------------------------


class CountingIntake(Intake):
    """The real intake; its scanner's routes count the decodes they run."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.decodes = 0

    def _scan_route(self, body: bytes):
        route = super()._scan_route(body)
        assert route is not None and route.native

        def counting(*args):
            self.decodes += 1
            return route.decode(*args)

        return _scan.TableRoute(decode=counting, plan=route.plan, wanted=route.wanted,
                                heads=route.heads, cols=route.cols, extra=route.extra)


def test_transaction_arriving_in_small_reads_is_decoded_once() -> None:
    """Rows events are decoded only once their whole transaction is in the buffer, not
    again on every read that brings a bit more of it."""
    a, *_ = fixed_tables()
    st_ = DumpStream(False)
    for i in range(20):
        dml(st_, a, list(range(i * 10, i * 10 + 10)))
    data = bytes(st_.data)
    cfg = ApplyConfig(ignore_databases=(SKIP_DB,))
    intake = CountingIntake(cfg, Filter(cfg, CHECKPOINT_SCHEMA), TableCache(Schemas([a])), None)
    src = make_source(data, False, seed=3, max_chunk=64)
    got = Run(intake)
    with pytest.raises(SourceDisconnected):
        for item in intake.items(src):
            got.record(item)
    assert src._sock.calls > 20 * 2  # transactions came in several reads each
    assert got.kinds == ["native"] * 20
    assert intake.decodes == 20  # one rows event per transaction, each decoded once
    ref = run(data, False, [a], native_scan=False)
    assert got.entries == ref.entries


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("op", [INSERT, UPDATE, DELETE])
def test_partial_images_are_refused_alike(native, op) -> None:
    """A rows event without every column (a session with binlog_row_image=NOBLOB or
    MINIMAL) stops the intake with one error naming the setting, before any item of its
    transaction, on either path; the transactions before it come out first."""
    a = fixed_tables()[0]
    stream = DumpStream(False)
    dml(stream, a, [1])
    stream.gtid()
    stream.table_map(a)
    cols = a.tpl.cols
    present = [True] * (len(cols) - 1) + [False]
    values = [c.encode(7 if c.btype != s.T_VARCHAR else b"k") for c in cols[:-1]]
    images = enc_image(present, values) * (2 if op == UPDATE else 1)
    stream.rows(op, 2, rows_body(len(cols), op, 2, present, present if op == UPDATE else None,
                                 images, b"", a.table_id))
    stream.xid()
    dml(stream, a, [2])
    got = run(bytes(stream.data), False, fixed_tables(), native_scan=native)
    assert got.end[0] is SourceError
    assert "binlog_row_image=" in got.end[1] and "without c" in got.end[1]
    assert [k for k in got.kinds if k != "idle"] == (["native"] if native else ["routed"])


@pytest.mark.parametrize("native_scan", [True, False])
def test_rows_without_their_table_map_are_a_clean_error(native_scan: bool) -> None:
    """A rows event whose TableMap never came (a reader that lost the start of the
    transaction) stops with MissingTableMap naming the transaction, not a KeyError;
    relay-log mode reads the relay log again on it (pipeline/relay.py)."""
    from applier.errors import MissingTableMap

    a, *_ = fixed_tables()
    st_ = DumpStream(True)
    dml(st_, a, [1])
    st_.gtid()
    st_.rows(INSERT, 2, simple_insert(a, [2]))  # no TableMap before it
    st_.xid()
    got = run(bytes(st_.data), True, [a], native_scan=native_scan)
    assert got.kinds == ["native" if native_scan else "routed"]  # the whole transaction before it
    assert got.end[0] is MissingTableMap, got.end
    assert f"table id {a.table_id} without its TableMap" in got.end[1], got.end


@pytest.mark.parametrize("checksum", [False, True])
def test_a_big_transaction_above_the_scanner_limit_is_never_hashed(checksum: bool, monkeypatch) -> None:
    """A transaction above the scanner's 4 MiB takes the Python path, which counts its
    rows first and hashes them only once the transaction has ended not big: one of more
    than big_txn_rows rows is streamed without any of its rows hashed (before, up to
    big_txn_rows of them were); a small one gets the same keys as ever (``both``)."""
    blob = Template("blob", (Col(s.T_LONG), Col(s.T_BLOB, 4, None, None, True)), (("PRIMARY", (0,)),))
    t = TableDef(blob, 77, "db", "blob")
    a, *_ = fixed_tables()
    present = [True, True]
    st_ = DumpStream(checksum)
    dml(st_, a, [1])
    st_.gtid()
    st_.table_map(t)
    for i in range(50):  # 50 events of 20 rows of 5 KiB: 1,000 rows, ~5 MiB
        image = b"".join(enc_image(present, [enc_int(20 * i + j, 4), t.tpl.cols[1].encode(b"z" * 5000)])
                         for j in range(20))
        st_.rows(INSERT, 2, rows_body(2, INSERT, 2, present, None, image, table_id=77))
    st_.xid()
    dml(st_, a, [2])
    assert len(st_.data) > 4 << 20
    hashed = []
    real = intake_mod.event_keys
    monkeypatch.setattr(intake_mod, "event_keys", lambda *a: hashed.append(a[3]) or real(*a))
    got, ref = both(bytes(st_.data), checksum, [a, t], big_txn_rows=500)
    assert got.kinds == ["native", "stream", "native"]
    assert ref.kinds == ["routed", "stream", "routed"]
    assert len(hashed) == 2  # the two small ones of the Python-only run, at their ends
    hashed.clear()
    got, _ = both(bytes(st_.data), checksum, [a, t], big_txn_rows=5000)  # not big: routed, keyed
    assert got.kinds == ["native", "routed", "native"] and len(got.seen[1][7]) == 1000

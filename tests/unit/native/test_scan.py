"""The native binlog scanner (native/_scan.pyx) itself: ``Scanner.scan`` on a buffer,
its keys (``TableRoute``) against ``writeset.TableKeys.hashes``, ``unpack_payload``
against ``transactions.py_unpack_payload``, its limits and its TableMap cache.

That the intake reads the same transactions through the scanner as through the
per-event Python path, over random streams read in random chunks, is
tests/unit/pipeline/test_intake.py. Streams are built by tests/unit/streams.py.
"""

from __future__ import annotations

import random

import pytest
import xxhash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from applier.binlog import events as ev
from applier.binlog import native
from applier.binlog import rowcodec as rc
from applier.binlog import tablemap as s
from applier.binlog.events import DELETE, INSERT, UPDATE
from applier.binlog.transactions import RowsEvent, py_unpack_payload
from applier.db import schema as dbs
from applier.errors import SchemaError
from applier.pipeline import writeset
from tests.unit.binlog_encoders import enc_image, rows_body
from tests.unit.streams import (
    MAX_PACKET,
    TEMPLATES,
    Col,
    Stream,
    TableDef,
    Template,
    dml,
    enc_int,
    fixed_tables,
    simple_insert,
)

_scan = pytest.importorskip("applier.native._scan", reason="native scanner not built")

_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def route(t: TableDef):
    """The route the intake gives a replicated table under policy writeset."""
    return writeset.scan_route(t.table_keys(), t.plan)


class Resolver:
    """``Scanner``'s resolve: routes for the tables it knows (None for those the test
    says go the Python path), and every TableMap body it was asked about."""

    def __init__(self, tables: list[TableDef], python: tuple[str, ...] = ()) -> None:
        self.by_name = {t.name: t for t in tables}
        self.python = python
        self.resolved: list[bytes] = []

    def __call__(self, body: bytes):
        self.resolved.append(body)
        name = s.parse_table_map(body).table
        if name in self.python:
            return None
        t = self.by_name.get(name)
        if t is None:
            raise SchemaError(f"table db.{name} from the source binlog is not on the target")
        return route(t)


def scan_all(scanner, data: bytes) -> tuple[int, list, bool]:
    return scanner.scan(bytearray(data), 0)


# -- 1. routes and native key hashing == TableKeys.hashes ---------------------------------


def _int_table(ncols: int, keys: list[tuple[int, ...]]) -> tuple[rc.RowPlan, writeset.TableKeys]:
    columns = tuple(dbs.Column(f"c{i}", "int", False, None, None, True, False) for i in range(ncols))
    uks = tuple(dbs.UniqueKey("PRIMARY" if n == 0 else f"uk{n}", k, (None,) * len(k), True)
                for n, k in enumerate(keys))
    schema = dbs.TableSchema("db", "t", columns, uks, False)
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
    bitmaps = b"\x01\x01" if op == UPDATE else b"\x01"  # one column, present (FULL images)
    st_.event(ev.WRITE_ROWS_V2 + op - 1, b"\x2a\x00\x00\x00\x00\x00\x01\x00\x02\x00\x01" + bitmaps)
    st_.xid()
    return bytes(st_.data), tmap


def _scan_keys(route_, rows, op: int = UPDATE) -> tuple[set[int], int]:
    data, _ = _one_rows_txn(op)
    stub = _scan.TableRoute(decode=lambda plan, op_, body, version, wanted: rows, plan=route_.plan,
                            wanted=route_.wanted, heads=route_.heads, cols=route_.cols,
                            extra=route_.extra)
    scanner = _scan.Scanner(lambda body: stub, checksum=False, max_rows=10**6)
    off, records, slow = scan_all(scanner, data)
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
    route_ = writeset.scan_route(tkeys, plan)
    assert route_.native and len(route_.heads) == len(keys)
    image = st.tuples(*[_LITERAL] * ncols)
    op = data.draw(st.sampled_from([INSERT, UPDATE, DELETE]))
    rows = data.draw(st.lists(st.tuples(image if op != INSERT else st.none(),
                                        image if op != DELETE else st.none()), max_size=4))
    got, nrows = _scan_keys(route_, rows, op)
    want: set[int] = set()
    writeset.row_hashes(tkeys, rows, want)
    assert got == want
    assert nrows == len(rows)


def test_native_hashes_known_values() -> None:
    h = xxhash.xxh3_64_intdigest
    plan, tkeys = _int_table(4, [(0,), (1, 2), (3,)])
    route_ = writeset.scan_route(tkeys, plan)
    # an UPDATE changing the primary key: before and after keys; NULL parts skip a key
    rows = [((b"1", b"7", b"x", rc.NULL), (b"2", b"7", rc.NULL, None))]
    got, nrows = _scan_keys(route_, rows)
    assert nrows == 1
    assert got == {h(b"db\0t\0PRIMARY\0" + b"1"), h(b"db\0t\0PRIMARY\0" + b"2"),
                   h(b"db\0t\0uk1\0" + b"7\0x")}
    want: set[int] = set()
    writeset.row_hashes(tkeys, rows, want)
    assert got == want
    # a unique key change: both values are keys; an empty literal is not NULL
    rows = [((b"1", b"", b"", b"5"), (b"1", b"", b"", b"6"))]
    got, _ = _scan_keys(route_, rows)
    assert got == {h(b"db\0t\0PRIMARY\0" + b"1"), h(b"db\0t\0uk1\0" + b"\0"),
                   h(b"db\0t\0uk2\0" + b"5"), h(b"db\0t\0uk2\0" + b"6")}


def test_native_keys_of_real_rows_equal_event_keys() -> None:
    """The fixed tables' routes, decoding real rows events: the scanner's keys and row
    counts are writeset.event_keys' (d's collation-aware key goes through call)."""
    tables = fixed_tables()
    for t in tables:
        st_ = Stream(True)
        dml(st_, t, [1, -2, 3])
        scanner = _scan.Scanner(Resolver(tables), checksum=True, max_rows=100)
        off, [record], slow = scan_all(scanner, bytes(st_.data))
        assert (off, slow) == (len(st_.data), False)
        want: set[int] = set()
        nrows = writeset.event_keys(t.table_keys(), t.plan, INSERT, simple_insert(t, [1, -2, 3]),
                                    2, want)
        assert record[4] == want and record[5] == nrows == 3


def test_scan_route_kinds() -> None:
    a, b, c, d = fixed_tables()
    for t in (a, b, c):
        route_ = route(t)
        assert route_.native and route_.heads == tuple(h for h, _ in t.table_keys().keys)
    assert not route(d).native  # collation-aware key: writeset computes it (call)
    for name in ("floaty", "prefix"):
        assert not route(TableDef(TEMPLATES[name], 15, "db", name)).native
    # policies table / database: no row keys, only the extra key
    narrow = TableDef(TEMPLATES["narrow"], 14, "db", "p")
    extra = (writeset.table_key("db", "p"),)
    policy = writeset.scan_route(None, narrow.plan, extra)
    assert policy.native and policy.heads == () and policy.extra == extra
    with pytest.raises(ValueError):
        _scan.TableRoute()
    with pytest.raises(ValueError):
        _scan.TableRoute(decode=writeset.decode_keys, heads=[b"x"], cols=[])
    data, _ = _one_rows_txn()
    bad = _scan.Scanner(lambda body: "nonsense", checksum=False, max_rows=10)
    with pytest.raises(TypeError):
        scan_all(bad, data)


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
        route_ = _scan.TableRoute(decode=lambda *_a, rows=rows: rows, heads=[b"h"], cols=cols)
        scanner = _scan.Scanner(lambda body, r=route_: r, checksum=False, max_rows=10)
        with pytest.raises(error):
            scan_all(scanner, data)


# -- 2. scanning a buffer --------------------------------------------------------------------


@pytest.mark.parametrize("checksum", [False, True])
def test_records_and_where_the_scan_stops(checksum: bool) -> None:
    """Records for whole transactions; the scan stops at what the Python path reads
    (DDL, Rotate, heartbeats, artificial events), or where more bytes are needed."""
    a, b, *_ = fixed_tables()
    st_ = Stream(checksum)
    dml(st_, a, [1, 2])
    dml(st_, b, [3])
    ddl_at = len(st_.data)
    st_.ddl()
    after_ddl = len(st_.data)
    dml(st_, a, [4])
    rotate_at = len(st_.data)
    st_.rotate("bin.000002")
    data = bytes(st_.data)
    scanner = _scan.Scanner(Resolver([a, b]), checksum=checksum, max_rows=100)
    off, records, slow = scan_all(scanner, data)
    assert (off, slow) == (ddl_at, True)
    assert [(r[0], r[5]) for r in records] == [("0-1-1", 2), ("0-1-2", 1)]
    gtid, timestamp, end_pos, payload, keys, rows = records[0]
    assert type(payload) is bytes and type(keys) is set and type(rows) is int
    assert type(timestamp) is int and timestamp > 0 and type(end_pos) is int
    maps, items = native.unpack_payload(payload, RowsEvent)
    assert maps == {a.table_id: a.map_body}
    assert items == [RowsEvent(INSERT, a.table_id, 2, simple_insert(a, [1, 2]))]
    off, records, slow = scanner.scan(bytearray(data), after_ddl)
    assert (off, len(records), slow) == (rotate_at, 1, True)
    # a transaction cut anywhere: nothing yet, from its start
    for cut in range(after_ddl + 1, rotate_at):
        assert scanner.scan(bytearray(data[:cut]), after_ddl) == (after_ddl, [], False)


def test_transaction_arriving_in_small_reads_is_decoded_once() -> None:
    """Rows events are decoded only once their whole transaction is in the buffer, not
    again on every scan after a read that brings a bit more of it."""
    a, *_ = fixed_tables()
    st_ = Stream(False)
    for i in range(20):
        dml(st_, a, list(range(i * 10, i * 10 + 10)))
    data = bytes(st_.data)
    calls = 0
    r = route(a)

    def counting(*args):
        nonlocal calls
        calls += 1
        return writeset.decode_keys(*args)

    counted = _scan.TableRoute(decode=counting, plan=r.plan, wanted=r.wanted, heads=r.heads,
                               cols=r.cols)
    scanner = _scan.Scanner(lambda body: counted, checksum=False, max_rows=10**6)
    rnd = random.Random(3)
    buf, off, pos, records, scans = bytearray(), 0, 0, 0, 0
    while pos < len(data):  # as the intake does: read a bit, scan from where it stopped
        size = rnd.randint(1, 64)
        buf += data[pos : pos + size]
        pos += size
        off, got, slow = scanner.scan(buf, off)
        scans += 1
        assert not slow
        records += len(got)
    assert off == len(buf) and scans > 40
    assert records == 20
    assert calls == 20  # one rows event per transaction, each decoded once


# -- 3. limits, split packets ---------------------------------------------------------------


@pytest.mark.parametrize("checksum", [False, True])
def test_max_rows(checksum: bool) -> None:
    a, b, *_ = fixed_tables()
    st_ = Stream(checksum)
    dml(st_, a, [1, 2, 3])  # exactly max_rows: a record
    gtid_at = len(st_.data)
    st_.gtid()
    st_.table_map(b)
    st_.rows(INSERT, 2, simple_insert(b, [1, 2]))
    st_.table_map(a)
    st_.rows(INSERT, 1, simple_insert(a, [7, 8], version=1))  # 4 rows > 3
    st_.xid()
    dml(st_, b, [9])
    data = bytes(st_.data)
    scanner = _scan.Scanner(Resolver([a, b]), checksum=checksum, max_rows=3)
    off, records, slow = scan_all(scanner, data)
    assert (off, len(records), slow) == (gtid_at, 1, True)  # stopped at the GTID
    assert records[0][5] == 3
    assert scanner.big  # ... because the transaction is big (the intake streams it)
    scan_all(scanner, data[:gtid_at])  # only the first, small, transaction
    assert not scanner.big  # reset by every scan
    # a scan from the big one's GTID stops there at once
    assert scanner.scan(bytearray(data), gtid_at) == (gtid_at, [], True) and scanner.big
    big = _scan.Scanner(Resolver([a, b]), checksum=checksum, max_rows=4)
    off, records, slow = scan_all(big, data)
    assert (off, [r[5] for r in records], slow) == (len(data), [3, 4, 1], False)


@pytest.mark.parametrize("checksum", [False, True])
def test_max_bytes(checksum: bool) -> None:
    a, *_ = fixed_tables()
    st_ = Stream(checksum)
    dml(st_, a, [1])
    small = st_.txn_bytes
    at_big = len(st_.data)
    dml(st_, a, list(range(40)))
    big = st_.txn_bytes
    dml(st_, a, [2])
    assert small < 200 < big
    data = bytes(st_.data)
    scanner = _scan.Scanner(Resolver([a]), checksum=checksum, max_rows=1000, max_bytes=200)
    off, records, slow = scan_all(scanner, data)
    assert (off, len(records), slow) == (at_big, 1, True)
    assert not scanner.big  # too many bytes, not rows: the Python path reads it whole
    default = _scan.Scanner(Resolver([a]), checksum=checksum, max_rows=1000)  # 4 MiB
    assert scan_all(default, data)[::2] == (len(data), False)
    # max_bytes counts the packets before the XID, from the GTID's packet on
    st_ = Stream(checksum)
    dml(st_, a, [1])
    xid_len = 4 + 1 + ev.HEADER_LEN + 8 + (4 if checksum else 0)
    limit = st_.txn_bytes - xid_len
    data = bytes(st_.data)
    for max_bytes, want in ((limit, (len(data), 1, False)), (limit - 1, (0, 0, True))):
        scanner = _scan.Scanner(Resolver([a]), checksum=checksum, max_rows=10,
                                max_bytes=max_bytes)
        off, records, slow = scan_all(scanner, data)
        assert (off, len(records), slow) == want


def test_split_packet_stops_the_scan() -> None:
    a, *_ = fixed_tables()
    st_ = Stream(False)
    dml(st_, a, [1])
    first = len(st_.data)
    st_.gtid()
    st_.table_map(a)
    scanner = _scan.Scanner(Resolver([a]), checksum=False, max_rows=10)
    # a 0xFFFFFF-long packet: the scanner does not wait for it, the Python path joins it
    head = MAX_PACKET.to_bytes(3, "little") + b"\x05" + b"\0" + bytes(100)
    off, records, slow = scanner.scan(bytearray(st_.data) + head, 0)
    assert (off, len(records), slow) == (first, 1, True)
    off, records, slow = scanner.scan(bytearray(head), 0)
    assert (off, records, slow) == (0, [], True)


@pytest.mark.parametrize("checksum", [False, True])
def test_split_rows_event(checksum: bool) -> None:
    """A whole rows event above 16 MiB (several packets): the scan stops at its
    transaction, with records before it, whatever max_bytes says."""
    blob = Template("blob", (Col(s.T_LONG), Col(s.T_BLOB, 4, None, None, True)),
                    (("PRIMARY", (0,)),))
    t = TableDef(blob, 77, "db", "blob")
    a, *_ = fixed_tables()
    present = [True, True]
    value = t.tpl.cols[1].encode(b"z" * (MAX_PACKET + 1000))
    body = rows_body(2, INSERT, 2, present, None, enc_image(present, [enc_int(5, 4), value]),
                     table_id=77)
    st_ = Stream(checksum)
    dml(st_, a, [1])
    at = len(st_.data)
    st_.gtid()
    st_.table_map(t)
    st_.rows(INSERT, 2, body)
    st_.xid()
    dml(st_, a, [2])
    scanner = _scan.Scanner(Resolver([a, t]), checksum=checksum, max_rows=10,
                            max_bytes=64 << 20)
    off, records, slow = scan_all(scanner, bytes(st_.data))
    assert (off, len(records), slow) == (at, 1, True)


@pytest.mark.parametrize("tail", ["error", "eof", "short"])
def test_non_event_packets_stop_the_scan(tail: str) -> None:
    """Error and EOF packets (and short packets) are the Python path's, inside a
    transaction too: the scan stops at its start, with the records before it."""
    a, *_ = fixed_tables()
    st_ = Stream(True)
    dml(st_, a, [1])
    at = len(st_.data)
    st_.gtid()
    st_.table_map(a)
    st_.rows(INSERT, 2, simple_insert(a, [2]))
    if tail == "error":
        st_.error(1236, b"Could not read the binlog")
    elif tail == "eof":
        st_.eof()
    else:
        st_.data += b"\x02\x00\x00\x09\x00\x00"
    scanner = _scan.Scanner(Resolver([a]), checksum=True, max_rows=10)
    off, records, slow = scan_all(scanner, bytes(st_.data))
    assert (off, len(records), slow) == (at, 1, True)


# -- 4. unpack_payload ----------------------------------------------------------------------


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
    assert native.unpack_payload is _scan.unpack_payload
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


# -- 5. the TableMap cache and resolve ------------------------------------------------------


def test_forget_tables_and_changed_table_map() -> None:
    a, b, *_ = fixed_tables()
    tables = Resolver([a, b])
    scanner = _scan.Scanner(tables, checksum=False, max_rows=100)

    def scan(t: TableDef) -> None:
        st_ = Stream(False)
        dml(st_, t, [1])
        dml(st_, t, [2])
        off, records, slow = scan_all(scanner, bytes(st_.data))
        assert (off, len(records), slow) == (len(st_.data), 2, False)

    scan(a)
    assert tables.resolved == [a.map_body]
    scan(a)
    assert tables.resolved == [a.map_body]  # cached by table id and body
    scanner.forget_tables()
    scan(a)
    assert tables.resolved == [a.map_body] * 2
    # the same table id with another TableMap body (another table, or after ALTER)
    b_same_id = TableDef(TEMPLATES["second"], a.table_id, "db", "b")
    tables.by_name["b"] = b_same_id
    scan(b_same_id)
    assert tables.resolved == [a.map_body] * 2 + [b_same_id.map_body]
    scan(a)
    assert tables.resolved[-1] == a.map_body and len(tables.resolved) == 4


def test_resolve_none_is_remembered() -> None:
    """A table resolve() turns down (filtered, barrier) stops the scan at every
    transaction using it, without asking again; other tables' transactions are records."""
    a, *_ = fixed_tables()
    f = TableDef(TEMPLATES["narrow"], 99, "skip", "f")
    tables = Resolver([a, f], python=("f",))
    scanner = _scan.Scanner(tables, checksum=False, max_rows=10)
    st_ = Stream(False)
    dml(st_, a, [1])
    f_at = len(st_.data)
    dml(st_, f, [1])
    data = bytes(st_.data)
    for _ in range(3):
        off, records, slow = scan_all(scanner, data)
        assert (off, len(records), slow) == (f_at, 1, True)
    assert tables.resolved == [a.map_body, f.map_body]


def test_resolve_errors() -> None:
    """A failing resolve (a table missing on the target) raises out of scan() when no
    record came before; else the scan returns those records and stops at the failing
    transaction, for the Python path to meet the error in source order."""
    a, b, *_ = fixed_tables()
    st_ = Stream(False)
    dml(st_, a, [1])
    b_at = len(st_.data)
    dml(st_, b, [1])
    data = bytes(st_.data)
    scanner = _scan.Scanner(Resolver([a]), checksum=False, max_rows=100)
    off, records, slow = scan_all(scanner, data)
    assert (off, len(records), slow) == (b_at, 1, True)
    with pytest.raises(SchemaError, match="db.b"):
        scanner.scan(bytearray(data), b_at)


# -- 6. xxh3 --------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=2000))
def test_xxh3_equals_xxhash(data: bytes) -> None:
    assert _scan.xxh3(data) == xxhash.xxh3_64_intdigest(data)


def test_xxh3_lengths() -> None:
    rnd = random.Random(5)
    for n in (0, 1, 2, 3, 4, 8, 9, 16, 17, 128, 129, 240, 241, 1024, 4096, 100_003):
        data = rnd.randbytes(n)
        assert _scan.xxh3(data) == xxhash.xxh3_64_intdigest(data)

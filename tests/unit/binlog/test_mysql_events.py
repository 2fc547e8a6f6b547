"""MySQL event formats without a server: compressed transactions (binlog.payload),
tagged GTID events (transactions.tagged_gtid) and the tagged GTID set encoding of
COM_BINLOG_DUMP_GTID (position.MysqlGtidSet.encode). The bytes of ``REAL_TAGGED`` come
from a MySQL 9.7 binlog (``SET gtid_next='AUTOMATIC:mytag'``); the integration tests in
tests/integration/test_mysql_binlog.py run the same against the server."""

from __future__ import annotations

import struct

import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from applier.binlog import events as ev
from applier.binlog import payload
from applier.binlog.position import MysqlGtidSet
from applier.binlog.transactions import TransactionBuilder, _varlen, tagged_gtid
from applier.errors import DecodeError
from tests.unit.binlog_encoders import enc_packed_int
from tests.unit.streams import event_bytes, query_body

UUID = "0269a3bf-ed3f-11f1-bdc4-02fc00000001"
REAL_TAGGED = bytes.fromhex(
    "02740000000204d28d02fd02b5037e22c503f502110304f103000000020404060a6d7974616708080a0c0c7f"
    "bd7d37e78a6106108d041283120b"
)


# -- encoders -------------------------------------------------------------------------------


def enc_varlen(v: int) -> bytes:
    """MySQL's serialization integer (the inverse of transactions._varlen)."""
    n = ((v.bit_length() * 575) >> 12) + 1
    if n == 1:
        return bytes([v << 1 & 0xFF])
    first = ((1 << (n - 1)) - 1) | (v << n & 0xFF)
    rest = v >> (8 - n + (1 if n == 9 else 0))
    return bytes([first]) + rest.to_bytes(n - 1, "little")


def enc_tagged(uuid: str, tag: str, gno: int, extra: bytes = b"") -> bytes:
    fields = enc_varlen(0) + enc_varlen(0)  # flags
    fields += enc_varlen(1) + b"".join(enc_varlen(b) for b in bytes.fromhex(uuid.replace("-", "")))
    fields += enc_varlen(2) + enc_varlen(gno << 1)
    fields += enc_varlen(3) + enc_varlen(len(tag)) + tag.encode()
    fields += extra
    head = enc_varlen(1)
    size = len(head) + 2 + len(fields)
    while True:  # the size counts its own bytes
        body = head + enc_varlen(size) + enc_varlen(0) + fields
        if len(body) == size:
            return body
        size = len(body)


def inner_event(etype: int, body: bytes) -> bytes:
    return event_bytes(etype, body, ts=1_700_000_000, server_id=1, log_pos=0, flags=0, checksum=False)


def payload_body(events: bytes, compression: int = payload.ZSTD, *, claimed: int | None = None) -> bytes:
    data = zstandard.ZstdCompressor().compress(events) if compression == payload.ZSTD else events
    def field(kind: int, value: int) -> bytes:
        packed = enc_packed_int(value)
        return bytes([kind]) + enc_packed_int(len(packed)) + packed
    head = (field(payload.COMPRESSION_TYPE, compression) + field(payload.PAYLOAD_SIZE, len(data))
            + field(payload.UNCOMPRESSED_SIZE, len(events) if claimed is None else claimed) + b"\0")
    return head + data


TRANSACTION = (inner_event(ev.QUERY, query_body(b"BEGIN")) + inner_event(ev.TABLE_MAP, b"m" * 30)
               + inner_event(ev.WRITE_ROWS_V2, b"r" * 70_000) + inner_event(ev.XID, struct.pack("<Q", 9)))


# -- payload ------------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", [payload.ZSTD, payload.NONE])
def test_payload_expands_into_its_events(compression):
    e = ev.Event(ev.MYSQL_TRANSACTION_PAYLOAD, 1, 1, 123_456, 0, payload_body(TRANSACTION, compression))
    kind, size, uncompressed, _ = payload.header(e.body)
    assert (kind, uncompressed) == (compression, len(TRANSACTION))  # 70,000+: a 3-byte packed int
    inner = list(payload.events(e))
    assert [i.type for i in inner] == [ev.QUERY, ev.TABLE_MAP, ev.WRITE_ROWS_V2, ev.XID]
    assert {i.log_pos for i in inner} == {123_456}  # the payload's end: where a restart resumes
    assert inner[2].body == b"r" * 70_000
    framed = payload.frame(inner, checksum=True)
    # packets: 3-byte length, sequence, OK byte, header (size counts the dummy CRC), body, CRC
    length = int.from_bytes(framed[:3], "little")
    assert framed[4] == 0 and ev.HEADER.unpack_from(framed, 5)[3] == length - 1
    assert len(framed) == sum(4 + 1 + 19 + len(i.body) + 4 for i in inner)


def test_transaction_builder_reads_a_compressed_transaction():
    builder = TransactionBuilder()
    gtid = b"\x00" + bytes.fromhex(UUID.replace("-", "")) + struct.pack("<Q", 7) + bytes(20)
    assert builder.add(ev.Event(ev.MYSQL_GTID, 5, 1, 100, 0, gtid), "bin.000001") is None
    e = ev.Event(ev.MYSQL_TRANSACTION_PAYLOAD, 5, 1, 900, 0, payload_body(TRANSACTION))
    done = [t for i in payload.events(e) if (t := builder.add(i, "bin.000001"))]
    assert [(t.gtid, t.end_pos, len(t.items), list(t.table_maps)) for t in done] == [
        (f"{UUID}:7", 900, 1, [int.from_bytes(b"m" * 6, "little")])]


@pytest.mark.parametrize("bad", [
    b"\x02\x01",  # header cut short
    b"\x02\x01\x00\x01\x01\x30\x00" + b"x" * 10,  # says 48 compressed bytes, has 10
    b"\x02\x01\x07\x01\x01\x03\x00abc",  # compression type 7
])
def test_bad_payload_headers(bad):
    with pytest.raises(DecodeError):
        list(payload.events(ev.Event(ev.MYSQL_TRANSACTION_PAYLOAD, 1, 1, 10, 0, bad)))


def test_corrupt_or_short_payloads():
    body = bytearray(payload_body(TRANSACTION))
    body[-5] ^= 0xFF
    with pytest.raises(DecodeError, match="compressed transaction"):
        list(payload.events(ev.Event(40, 1, 1, 10, 0, bytes(body))))
    short = payload_body(TRANSACTION[:-5])
    with pytest.raises(DecodeError, match="ends inside an event"):
        list(payload.events(ev.Event(40, 1, 1, 10, 0, short)))
    lying = payload_body(TRANSACTION, claimed=len(TRANSACTION) + 1)
    with pytest.raises(DecodeError, match="its header says"):
        list(payload.events(ev.Event(40, 1, 1, 10, 0, lying)))


# -- tagged GTIDs -------------------------------------------------------------------------------


def test_tagged_gtid_of_a_real_event():
    assert tagged_gtid(REAL_TAGGED) == f"{UUID}:mytag:1"


@given(st.integers(0, 2**64 - 1))
def test_varlen_round_trip(v):
    data = enc_varlen(v) + b"tail"
    assert _varlen(data, 0) == (v, len(data) - 4)


@given(st.uuids(), st.from_regex(r"[a-z_][a-z0-9_]{0,31}", fullmatch=True) | st.just(""),
       st.integers(1, 2**63 - 1), st.binary(max_size=20))
def test_tagged_gtid_round_trip(uuid, tag, gno, extra):
    body = enc_tagged(str(uuid), tag, gno, enc_varlen(4) + enc_varlen(1) + extra)
    want = f"{uuid}:{tag}:{gno}" if tag else f"{uuid}:{gno}"
    assert tagged_gtid(body) == want
    builder = TransactionBuilder()
    builder.add(ev.Event(ev.MYSQL_GTID_TAGGED, 1, 1, 50, 0, body), "f.000001")
    assert builder.current is not None and builder.current.gtid == want


@pytest.mark.parametrize("bad", [b"", REAL_TAGGED[:20], enc_tagged(UUID, "t", 1)[:-3] + b"\xff\xff\xff"])
def test_malformed_tagged_gtid_events(bad):
    with pytest.raises(DecodeError, match="tagged GTID"):
        tagged_gtid(bad)


# -- GTID set encoding ---------------------------------------------------------------------------


def test_tagged_gtid_set_encoding():
    enc = MysqlGtidSet.parse(f"{UUID}:1-12:mytag:1-3:7").encode()
    assert int.from_bytes(enc[:8], "little") == (1 << 56) | (2 << 8) | 1
    pos = 8
    entries = []
    for _ in range(2):
        uuid = enc[pos : pos + 16].hex()
        tag_len = enc[pos + 16] >> 1
        tag = enc[pos + 17 : pos + 17 + tag_len].decode()
        pos += 17 + tag_len
        n = int.from_bytes(enc[pos : pos + 8], "little")
        pos += 8
        intervals = [(int.from_bytes(enc[pos + 16 * i : pos + 16 * i + 8], "little"),
                      int.from_bytes(enc[pos + 16 * i + 8 : pos + 16 * i + 16], "little")) for i in range(n)]
        pos += 16 * n
        entries.append((uuid, tag, intervals))
    assert pos == len(enc)
    sid = UUID.replace("-", "")
    assert entries == [(sid, "", [(1, 13)]), (sid, "mytag", [(1, 4), (7, 8)])]
    # untagged sets keep the classic format every server reads
    assert MysqlGtidSet.parse(f"{UUID}:1-12").encode()[:8] == (1).to_bytes(8, "little")

"""The intake over MySQL's newer events: compressed transactions (a GTID, then one
TRANSACTION_PAYLOAD_EVENT holding BEGIN, TableMaps, rows events, XID) and tagged GTIDs
read the same, with the same keys and end positions, through the native scanner as
through the per-event Python path (tests/unit/pipeline/test_intake.py's harness)."""

from __future__ import annotations

import struct

import pytest

from applier.binlog import events as ev
from applier.binlog.events import INSERT
from applier.pipeline import intake as intake_mod
from applier.pipeline.source import SourceDisconnected
from tests.unit.binlog.test_mysql_events import enc_tagged, inner_event, payload_body
from tests.unit.pipeline.test_intake import _always_readable, both  # noqa: F401 - its fixture
from tests.unit.streams import SID, STATUS, dml, fixed_tables, query_body, simple_insert
from tests.unit.streams import Stream as DumpStream

UUID = "00010203-0405-0607-0809-0a0b0c0d0e0f"  # tests.unit.streams.SID


def compressed(stream: DumpStream, parts: list[tuple], *, tagged: str = "") -> None:
    """One MySQL transaction as the source logs it with compression on: its GTID event
    (tagged or not), then a payload holding BEGIN, ``parts`` (TableDef, rows body) and XID."""
    stream.gno += 1
    stream.txn_start = len(stream.data)
    if tagged:
        stream.event(ev.MYSQL_GTID_TAGGED, enc_tagged(UUID, tagged, stream.gno))
    else:
        stream.event(ev.MYSQL_GTID, b"\x00" + SID + struct.pack("<Q", stream.gno) + b"\x02" + bytes(16))
    inner = inner_event(ev.QUERY, query_body(b"BEGIN", status=STATUS))
    for t, rows in parts:
        inner += inner_event(ev.TABLE_MAP, t.map_body)
        inner += inner_event(ev.WRITE_ROWS_V2, rows)
    inner += inner_event(ev.XID, struct.pack("<Q", stream.gno))
    stream.event(ev.MYSQL_TRANSACTION_PAYLOAD, payload_body(inner))


def tagged(stream: DumpStream, tag: str, t, ids: list[int]) -> None:
    """An uncompressed transaction with a tagged GTID."""
    stream.gno += 1
    stream.txn_start = len(stream.data)
    stream.event(ev.MYSQL_GTID_TAGGED, enc_tagged(UUID, tag, stream.gno))
    stream.query(b"BEGIN", STATUS)
    stream.table_map(t)
    stream.rows(INSERT, 2, simple_insert(t, ids))
    stream.xid()


@pytest.mark.parametrize("checksum", [False, True])
def test_compressed_and_tagged_transactions_read_alike(checksum):
    a, b, c, d = fixed_tables()
    s = DumpStream(checksum)
    compressed(s, [(a, simple_insert(a, [1, 2]))])
    dml(s, b, [3])  # a MariaDB-style transaction in between: the harness does not mind
    compressed(s, [(a, simple_insert(a, [4])), (c, simple_insert(c, [5]))], tagged="blue")
    tagged(s, "green", d, [6])
    s.ddl()
    compressed(s, [(b, simple_insert(b, [7]))])
    got, ref = both(bytes(s.data), checksum, [a, b, c, d])
    assert got.end == (SourceDisconnected, "source closed the dump connection")
    assert got.kinds == ["native", "native", "native", "native", "barrier", "native"]
    gtids = [e[2] for e in got.seen]
    assert gtids == [f"{UUID}:1", "0-1-2", f"{UUID}:blue:3", f"{UUID}:green:4", "0-1-5", f"{UUID}:6"]
    # end positions: the end of each payload event (where a restart resumes)
    ends = [e[4] for e in got.seen]
    assert ends == sorted(ends) and all(e[6] for e in got.seen if e[0] == "routed")


def test_compressed_transactions_of_filtered_tables_and_big_ones_go_the_python_path():
    a, *_ = fixed_tables()
    s = DumpStream(True)
    compressed(s, [(a, simple_insert(a, list(range(1, 30))))])  # above big_txn_rows: streamed
    compressed(s, [(a, simple_insert(a, [40]))])
    got, ref = both(bytes(s.data), True, [a], big_txn_rows=10)
    assert got.kinds == ["stream", "native"]
    assert ref.kinds == ["stream", "routed"]


def test_a_payload_above_the_scan_limit_goes_event_by_event(monkeypatch):
    a, *_ = fixed_tables()
    s = DumpStream(False)
    compressed(s, [(a, simple_insert(a, list(range(1, 40))))])
    compressed(s, [(a, simple_insert(a, [40]))])
    monkeypatch.setattr(intake_mod, "SCAN_PAYLOAD_BYTES", 200)
    got, _ = both(bytes(s.data), False, [a])
    assert got.kinds == ["routed", "native"]


def test_a_corrupt_payload_stops_both_paths_alike():
    a, *_ = fixed_tables()
    s = DumpStream(False)
    compressed(s, [(a, simple_insert(a, [1]))])
    s.gno += 1
    s.event(ev.MYSQL_GTID, b"\x00" + SID + struct.pack("<Q", s.gno) + b"\x02" + bytes(16))
    body = bytearray(payload_body(inner_event(ev.XID, bytes(8)) * 40))
    body[-3] ^= 0x55
    s.event(ev.MYSQL_TRANSACTION_PAYLOAD, bytes(body))
    got, _ = both(bytes(s.data), False, [a])
    assert got.kinds == ["native"]
    assert "compressed transaction" in got.end[1]

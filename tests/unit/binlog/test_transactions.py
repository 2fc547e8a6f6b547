"""Events -> whole transactions (``TransactionBuilder``), without a server."""

from __future__ import annotations

import struct

from applier.binlog import events as ev
from applier.binlog.transactions import TransactionBuilder
from applier.pipeline.checkpoint import Watermark

FILE = "mysql-bin.000002"


def gtid(seq: int, pos: int) -> ev.Event:
    return ev.Event(ev.MARIADB_GTID, 1, 1, pos, 0, struct.pack("<QIB", seq, 0, 0))


def xid(pos: int) -> ev.Event:
    return ev.Event(ev.XID, 1, 1, pos, 0, struct.pack("<Q", 9))


def table_map(pos: int) -> ev.Event:
    return ev.Event(ev.TABLE_MAP, 1, 1, pos, 0, b"\x01\x00\x00\x00\x00\x00" + bytes(20))


def test_a_transaction_dropped_by_reset_takes_no_sequence_number():
    """A disconnect in the middle of a transaction read event by event drops it
    (``reset``); the transactions read after the reconnect must number on from the last
    whole one, or the watermark waits forever for the dropped number."""
    b = TransactionBuilder()
    b.add(gtid(1, 100), FILE)
    assert b.add(xid(200), FILE).seq == 1
    b.add(gtid(2, 300), FILE)
    b.add(table_map(400), FILE)  # ... and the connection breaks here
    b.reset()
    b.add(gtid(2, 300), FILE)  # read again from the watermark
    again = b.add(xid(500), FILE)
    assert again.seq == 2
    w = Watermark(None)
    for seq, end in ((1, 200), (2, 500)):
        w.register(seq, 2 << 32 | end, FILE, f"0-1-{seq}")
        w.done(seq)
    assert (w.ordinal, w.gtid) == (2 << 32 | 500, "0-1-2")
    scanned = b.whole("0-1-3", 1, 600, b"", 0)  # the scanner numbers on alike
    assert scanned.seq == 3


def query(sql: bytes, pos: int) -> ev.Event:
    # thread id, exec time, db length 0, error code, no status variables, db "\0", text
    return ev.Event(ev.QUERY, 1, 1, pos, 0, struct.pack("<IIBHH", 1, 0, 0, 0, 0) + b"\0" + sql)


def test_the_tail_of_a_transaction_whose_start_was_not_read_is_headless():
    """Reading that starts inside a transaction (a relay log whose earlier file the SQL
    thread deleted): its rows events or its COMMIT come first. They make one headless
    transaction (the coordinator skips it or stops), never a statement "COMMIT" nor a
    transaction passed for whole; what follows numbers on as usual."""
    b = TransactionBuilder()
    b.add(table_map(100), FILE)
    tail = b.add(xid(200), FILE)
    assert tail.headless and tail.gtid == "" and tail.end_pos == 200
    b.add(gtid(2, 300), FILE)
    whole = b.add(xid(400), FILE)
    assert not whole.headless and whole.seq == tail.seq + 1
    b = TransactionBuilder()
    tail = b.add(query(b"COMMIT", 500), FILE)  # a non-transactional table's BEGIN ... COMMIT
    assert tail.headless and tail.items == [] and tail.end_pos == 500
    ddl = b.add(query(b"CREATE TABLE t (a INT)", 600), FILE)
    assert not ddl.headless and ddl.items[0].sql == b"CREATE TABLE t (a INT)"


def test_mysql_create_table_select_is_run_without_its_start_transaction():
    """MySQL 8.0.21+ logs CREATE TABLE ... SELECT as ``CREATE TABLE ... START
    TRANSACTION`` followed by the rows and an XID. A server takes only BINLOG statements
    after it (3977), and MariaDB knows no such clause: the statement runs as a plain
    CREATE TABLE, the rows after it (the serial path commits them with the checkpoint)."""
    from applier.binlog.transactions import parse_query
    from tests.unit.streams import query_body

    sql = b"CREATE TABLE `t2` (\n  `id` int NOT NULL\n) START TRANSACTION"
    assert parse_query(query_body(sql)).sql == b"CREATE TABLE `t2` (\n  `id` int NOT NULL\n)"
    assert parse_query(query_body(b"create table t3 select 1 as a start  transaction ")).sql == \
        b"create table t3 select 1 as a"
    # anything else stays as logged
    for other in (b"CREATE TABLE t (a INT)", b"START TRANSACTION", b"BEGIN",
                  b"ALTER TABLE t COMMENT 'x START TRANSACTION'"):
        assert parse_query(query_body(other)).sql == other

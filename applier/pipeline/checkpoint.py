"""Checkpoints on the target, committed in the same transaction as the data.

Design (exactly-once with N workers committing out of order):

* The coordinator numbers transactions in source order and tracks the *watermark*
  W: the end position of the longest prefix of transactions that have all committed
  (``Watermark``). It learns of commits from worker acknowledgements, so its W is
  never ahead of the truth. Every batch sent to a worker carries the current W.
* Worker k owns row k of ``<schema>.checkpoint`` and updates it in the same target
  transaction as each batch: ``watermark`` = the W it was handed, ``done`` = the end
  positions of its own committed transactions beyond that W (a short list: at most
  what is in flight). Row 0 belongs to the coordinator's serial (barrier) path.
  One row per worker, never a row all workers update: that row would serialise them.
* Recovery: W* = the highest watermark over all rows (each was true when written and
  W only grows). A transaction ending after W* that committed is in its worker's row:
  it was written with it, and later writes of that row only drop entries at or below
  their own W, which is <= W*. So: resume reading at W*, and skip exactly the
  transactions whose end positions are in the union of ``done`` lists beyond W*.
* DDL cannot share a transaction with the checkpoint (it commits implicitly), so row
  0 records ``ddl_pending`` = the DDL's end position before running it. After a crash,
  that single statement is re-run tolerating "already exists / already gone" errors.

Positions are ``BinlogPosition.ordinal`` ints (file number << 32 | offset).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..binlog.position import BinlogPosition, GtidPosition
from ..db.sql import escape, quote_ident, text

log = logging.getLogger(__name__)

COORDINATOR_ROW = 0
HANDED_BACK = "handed back"  # row 0's state after `applier handback`


def _esc(value: str) -> bytes:
    return escape(value.encode())


def ddl(schema: str) -> list[bytes]:
    s = quote_ident(schema)
    return [
        b"CREATE DATABASE IF NOT EXISTS " + s,
        b"CREATE TABLE IF NOT EXISTS " + s + b".checkpoint ("
        b" worker INT UNSIGNED NOT NULL PRIMARY KEY,"
        b" watermark BIGINT UNSIGNED NOT NULL,"
        b" watermark_file VARCHAR(512) NOT NULL,"
        b" watermark_gtid MEDIUMTEXT NOT NULL,"
        b" done MEDIUMTEXT NOT NULL,"
        b" last_gtid VARCHAR(512) NOT NULL DEFAULT '',"
        b" ddl_pending BIGINT UNSIGNED NOT NULL DEFAULT 0,"
        b" transactions BIGINT UNSIGNED NOT NULL DEFAULT 0,"
        b" source_timestamp INT UNSIGNED NOT NULL DEFAULT 0,"
        b" state VARCHAR(255) NOT NULL DEFAULT '',"
        b" updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)"
        b") ENGINE=InnoDB",
    ]


def ensure_table(conn, schema: str) -> None:
    for sql in ddl(schema):
        conn.query(sql)
    cur = conn.cursor()  # a table from before the ``state`` column
    cur.execute("SELECT 1 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s "
                "AND TABLE_NAME = 'checkpoint' AND COLUMN_NAME = 'state'", (schema,))
    if not cur.fetchone():
        conn.query(b"ALTER TABLE " + quote_ident(schema) + b".checkpoint ADD COLUMN "
                   b"state VARCHAR(255) NOT NULL DEFAULT ''")
    cur.close()


@dataclass(frozen=True)
class Recovery:
    """Where to resume and what to skip."""

    start: BinlogPosition | None  # None: no checkpoint yet, or a start by GTID only
    gtid: str  # the GTID position at ``start`` ("" when unknown)
    done: frozenset[int]  # end ordinals committed beyond start
    ddl_pending: int  # end ordinal of a DDL that may or may not have run
    applied_transactions: int
    exists: bool  # the table has rows: a previous run (or takeover) chose where to start
    handed_back: str = ""  # row 0's state when `applier handback` gave the target to its native replica


def load(conn, schema: str) -> Recovery:
    cur = conn.cursor()
    cur.execute(
        b"SELECT worker, watermark, watermark_file, watermark_gtid, done, ddl_pending, transactions, "
        b"state FROM " + quote_ident(schema) + b".checkpoint"
    )
    rows = cur.fetchall()
    cur.close()
    return recover([tuple(text(v) if isinstance(v, bytes | bytearray) else v for v in r) for r in rows])


def recover(rows: list[tuple]) -> Recovery:
    """Where to resume from the checkpoint rows ``(worker, watermark, watermark_file,
    watermark_gtid, done, ddl_pending, transactions, state)``: the highest watermark W*,
    and the ``done`` entries of every row beyond it (see the module docstring)."""
    if not rows:
        return Recovery(None, "", frozenset(), 0, 0, False)
    best = max(rows, key=lambda r: int(r[1]))
    w = int(best[1])
    done: set[int] = set()
    for r in rows:
        done.update(int(x) for x in r[4].split(",") if x and int(x) > w)
    ddl_pending = max(int(r[5]) for r in rows)
    total = sum(int(r[6]) for r in rows)
    start = BinlogPosition(best[2], w & 0xFFFFFFFF) if best[2] else None
    state = next((r[7] for r in rows if int(r[0]) == COORDINATOR_ROW), "")
    handed_back = state if state.startswith(HANDED_BACK) else ""
    return Recovery(start, best[3], frozenset(done), ddl_pending if ddl_pending > w else 0, total, True,
                    handed_back)


class CheckpointRow:
    """One worker's row: builds the UPDATE that rides in each batch's transaction."""

    def __init__(self, schema: str, worker: int) -> None:
        self.table = quote_ident(schema) + b".checkpoint"
        self.worker = worker
        self.done: list[int] = []

    def insert_if_missing(self, conn, start: BinlogPosition | None, gtid: str = "") -> None:
        ordinal = start.ordinal if start else 0
        file = start.file if start else ""
        conn.query(
            b"INSERT IGNORE INTO " + self.table
            + b" (worker, watermark, watermark_file, watermark_gtid, done) VALUES ("
            + str(self.worker).encode() + b"," + str(ordinal).encode() + b",'"
            + _esc(file) + b"','" + _esc(gtid) + b"','')"
        )
        conn.commit()

    def resume(self, conn) -> None:
        """Take over the ``done`` entries a previous run left in this row. Those beyond
        the recovered watermark are what recovery skips: the next UPDATE of the row must
        keep them until a watermark passes them, or a crash before that would make the
        following recovery apply those transactions a second time."""
        cur = conn.cursor()
        cur.execute(b"SELECT done FROM " + self.table + b" WHERE worker=" + str(self.worker).encode())
        row = cur.fetchone()
        cur.close()
        conn.commit()
        self.done = [int(x) for x in text(row[0]).split(",") if x] if row else []

    def next_done(self, watermark: int, committed: list[int]) -> list[int]:
        """The row's ``done`` list once a batch ending at ``committed`` commits with
        ``watermark``: entries at or below the watermark are dropped (recovery never
        needs them), the rest kept until a watermark passes them."""
        done = [o for o in self.done if o > watermark]
        done.extend(o for o in committed if o > watermark)
        return done

    def statement(self, watermark: int, watermark_file: str, watermark_gtid: str,
                  committed: list[int], last_gtid: str, txns: int, timestamp: int,
                  ddl_pending: int = 0) -> bytes:
        """The UPDATE for a batch whose transactions end at ``committed``."""
        done = self._pending = self.next_done(watermark, committed)
        return (
            b"UPDATE " + self.table + b" SET watermark=" + str(watermark).encode()
            + b",watermark_file='" + _esc(watermark_file)
            + b"',watermark_gtid='" + _esc(watermark_gtid)
            + b"',done='" + ",".join(map(str, done)).encode()
            + b"',last_gtid='" + _esc(last_gtid)
            + b"',ddl_pending=" + str(ddl_pending).encode()
            + b",transactions=transactions+" + str(txns).encode()
            + b",source_timestamp=" + str(timestamp).encode()
            + b" WHERE worker=" + str(self.worker).encode()
        )

    def committed(self) -> None:
        """Call after the batch's COMMIT succeeded."""
        self.done = self._pending


class Watermark:
    """The end position of the longest fully committed prefix of transactions, as a
    binlog position and as GTIDs (``gtids``: per domain on MariaDB, the executed set on
    MySQL; ``gtid`` is its text)."""

    def __init__(self, start: BinlogPosition | None, gtid: str = "") -> None:
        self.ordinal = start.ordinal if start else 0
        self.file = start.file if start else ""
        self.gtids = GtidPosition(gtid)
        self._next = 1  # seq expected to complete next
        self.timestamp = 0  # source commit time of the last transaction in the prefix
        # seq -> (end, file, gtid, timestamp): registered, and done but not in the prefix yet
        self._ends: dict[int, tuple[int, str, str, int]] = {}
        self._pending: dict[int, tuple[int, str, str, int]] = {}

    def register(self, seq: int, ordinal: int, file: str, gtid: str, timestamp: int = 0) -> None:
        self._ends[seq] = (ordinal, file, gtid, timestamp)

    def done(self, seq: int) -> None:
        self._pending[seq] = self._ends.pop(seq)
        while self._next in self._pending:
            self.ordinal, self.file, gtid, timestamp = self._pending.pop(self._next)
            if gtid:
                self.gtids.add(gtid)
            if timestamp:
                self.timestamp = timestamp
            self._next += 1

    @property
    def gtid(self) -> str:
        return str(self.gtids)

    def oldest_pending_timestamp(self) -> int:
        """Source commit time of the oldest transaction read and not yet applied (0: none):
        how far behind the target is."""
        end = self._ends.get(self._next) or self._pending.get(self._next)
        return end[3] if end else 0

    def outstanding(self) -> int:
        """Transactions registered (read) and not done yet."""
        return len(self._ends)

    def beyond(self, committed: frozenset[int] = frozenset()) -> int:
        """Transactions past the prefix that need nothing more: done out of order, or
        ``committed`` before a restart (end ordinals) and not read again yet."""
        ends = {end[0] for end in list(self._pending.values())}
        ends.update(o for o in committed if o > self.ordinal)
        return len(ends)

    def gtid_after(self, *gtids: str) -> str:
        """The GTID text once ``gtids`` (the next transactions') are applied too."""
        gtids = tuple(g for g in gtids if g)
        if not gtids:
            return self.gtid
        after = GtidPosition(self.gtid)
        for gtid in gtids:
            after.add(gtid)
        return str(after)


def replace(conn, schema: str, start: BinlogPosition | None, gtid: str, state: str) -> None:
    """Make the table hold just row 0 at ``start`` / ``gtid`` with ``state`` (takeover:
    the native replica's position; handback: marks the table as handed back)."""
    table = quote_ident(schema) + b".checkpoint"
    conn.query(b"DELETE FROM " + table)
    conn.query(
        b"INSERT INTO " + table + b" (worker, watermark, watermark_file, watermark_gtid, done, state) "
        b"VALUES (0," + str(start.ordinal if start else 0).encode() + b",'"
        + _esc(start.file if start else "") + b"','" + _esc(gtid) + b"','','" + _esc(state) + b"')"
    )
    conn.commit()

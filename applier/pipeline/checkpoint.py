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

import contextlib
import hashlib
import logging
import threading
import time
from dataclasses import dataclass

import MySQLdb

from ..binlog.position import BinlogPosition, GtidPosition
from ..config import TargetConfig
from ..db import codes
from ..db.connect import connect
from ..db.sql import escape, quote_ident, text
from ..errors import ApplierError, Busy, TargetError, TargetLost

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


# -- one applier per checkpoint schema -------------------------------------------------------


def lock_name(schema: str) -> str:
    """The target's named lock for a checkpoint schema (GET_LOCK names: 64 characters)."""
    name = f"mts_applier.{schema}"
    if len(name) > 64:
        name = "mts_applier." + hashlib.sha1(schema.encode()).hexdigest()
    return name


LOCK_SESSION_SECONDS = 60  # the lock connection's wait_timeout: an orphaned session's life
KEEPALIVE_SECONDS = 2.0  # how often the holder uses its lock connection (and checks the lock)
LOCK_READ_SECONDS = 10  # an answer to the lock connection's short queries takes at most this
STALE_SECONDS = 8  # a holder idle this long does not ping: its applier is gone or frozen

# (lock, connection id) -> when this process gave that lock session up (the target is
# not part of the key: the same server may be reached by two addresses; a session idle
# since then, holding the same lock, is ours)
_ABANDONED: dict[tuple[str, int], float] = {}


class CheckpointLock:
    """``GET_LOCK`` on the target, held on its own connection for as long as an applier
    (``run``, ``takeover``, ``handback``) works with a checkpoint schema: a second one
    refuses, naming the holder. The server releases it when the connection ends (a
    crash included), so a stale lock never blocks a restart for long.

    Keeping it. A thread uses the connection every ``KEEPALIVE_SECONDS`` (``SELECT
    IS_USED_LOCK(name) = CONNECTION_ID()``), so the server's ``wait_timeout`` never
    drops it while the applier lives, and the session's own ``wait_timeout`` is
    ``LOCK_SESSION_SECONDS``: after a silent network partition (the server never saw the
    connection end) the orphaned session, and the lock, go away within a minute, not
    after the server's default 8 hours.

    Losing it. When that query fails or says the lock is not ours, the lock is lost and
    ``check()`` (called by the holder's loop, cheap) raises: ``TargetLost`` (exit 4, a
    restart resumes from the checkpoint) or ``Busy`` when another connection holds it
    now. Nothing is applied unprotected beyond the next ``check()``.

    Taking it when it is held. The holder's session is watched: one that is used (its
    PROCESSLIST ``TIME`` resets every ``KEEPALIVE_SECONDS``) is a live applier: ``Busy``
    within a few seconds. A session this process gave up (a reconnect after a lost
    target connection) is killed, it is ours. A holder that has been idle for
    ``STALE_SECONDS`` pings no more (an applier that froze or lost its network): wait,
    at most ``LOCK_SESSION_SECONDS`` and a margin, for the server to drop it, then take
    the lock (or ``Busy``, naming it, when it stays)."""

    def __init__(self, target: TargetConfig, what: str = "applier run") -> None:
        self.name = lock_name(target.checkpoint_schema)
        self.target = target
        self.what = what
        self.lost: Exception | None = None
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        conn = connect(target, "target", autocommit=True, read_timeout=LOCK_READ_SECONDS)
        try:
            with self._errors("taking the checkpoint lock"):
                conn.query(f"SET SESSION wait_timeout = {LOCK_SESSION_SECONDS}".encode())
                self._acquire(conn)
                conn.query(f"SET @mts_applier = '{_esc(what).decode()}'".encode())
                self.id = int(_scalar(conn, "SELECT CONNECTION_ID()", ()))
        except BaseException:
            conn.close()
            raise
        self.conn = conn
        self._verified = time.monotonic()  # when the lock was last known to be ours
        self._thread = threading.Thread(target=self._keep, name="checkpoint-lock", daemon=True)
        self._thread.start()

    # -- taking it -------------------------------------------------------------------------

    def _acquire(self, conn) -> None:
        if _scalar(conn, "SELECT GET_LOCK(%s, 0)", (self.name,)) == 1:
            return
        began = time.monotonic()
        deadline = began + LOCK_SESSION_SECONDS + STALE_SECONDS + LOCK_READ_SECONDS
        holder, idle, waiting = None, 0, False
        while True:
            seen = self._session(conn)
            if seen is not None:
                who, command, idle_now = seen
                given_up = _ABANDONED.get((self.name, who))
                if given_up is not None and idle_now + 1 >= time.monotonic() - given_up:
                    self._kill(conn, who)  # ours, unused since this process gave it up
                elif who != holder:
                    holder, idle = who, idle_now
                elif command != "Sleep" or idle_now < idle:
                    raise Busy(self._busy(conn, ""))  # it was used meanwhile: a live applier
                else:
                    idle = idle_now
                if holder == who and idle > LOCK_SESSION_SECONDS + STALE_SECONDS:
                    # idle longer than an applier's lock session lives: not a lost one of ours
                    raise Busy(self._busy(conn, f"idle for {idle} s"))
                if holder == who and idle >= STALE_SECONDS and not waiting:
                    waiting = True
                    log.warning("the checkpoint lock %r is held by connection %s, idle for %d s: "
                                "its applier stopped using it (gone, frozen or cut off); waiting up "
                                "to %.0f s for the server to end that session", self.name, who, idle,
                                deadline - time.monotonic())
            if time.monotonic() > deadline:
                raise Busy(self._busy(conn, f"its session did not end within {deadline - began:.0f} s"))
            if _scalar(conn, "SELECT GET_LOCK(%s, 1)", (self.name,)) == 1:
                if holder is not None:
                    log.info("took the checkpoint lock after %.1f s: the session of connection %s "
                             "that held it ended", time.monotonic() - began, holder)
                return

    def _session(self, conn) -> tuple[int, str, int] | None:
        """The holder's (connection id, COMMAND, TIME), None when the lock is free; ``Busy``
        when its session is not visible (another user, and no PROCESS privilege: it is
        taken as live)."""
        holder = _scalar(conn, "SELECT IS_USED_LOCK(%s)", (self.name,))
        if holder is None:
            return None
        cur = conn.cursor()
        try:
            cur.execute("SELECT COMMAND, TIME FROM information_schema.PROCESSLIST WHERE ID = %s", (holder,))
            row = cur.fetchone()
        finally:
            cur.close()
        if row is None:
            raise Busy(self._busy(conn, "its session is not visible to this user"))
        return int(holder), text(row[0]), int(row[1] or 0)

    def _kill(self, conn, who: int) -> None:
        """End a session this process gave up (one's own: no privilege needed)."""
        _ABANDONED.pop((self.name, who), None)
        try:
            conn.query(f"KILL CONNECTION {int(who)}".encode())
            log.info("ended connection %s, the checkpoint lock session given up before", who)
        except MySQLdb.Error as e:
            if codes.code_of(e) in codes.GONE:
                raise
            log.info("could not end connection %s (%s): waiting for its session to end", who,
                     codes.message_of(e))

    def _busy(self, conn, why: str) -> str:
        try:
            who = self._holder(conn, self.target, self.what)
        except MySQLdb.Error:
            who = self._holder_text(None, None, self.target, self.what)
        return who.replace(" (connection ", f" ({why}: connection ", 1) if why else who

    @classmethod
    def _holder(cls, conn, target: TargetConfig, what: str) -> str:
        holder = _scalar(conn, "SELECT IS_USED_LOCK(%s)", (lock_name(target.checkpoint_schema),))
        cur = conn.cursor()
        try:
            cur.execute("SELECT USER, HOST, TIME FROM information_schema.PROCESSLIST WHERE ID = %s",
                        (holder,))
            row = cur.fetchone()
        except Exception:  # noqa: BLE001 - the description is best effort
            row = None
        finally:
            cur.close()
        return cls._holder_text(holder, row, target, what)

    @staticmethod
    def _holder_text(holder, row, target: TargetConfig, what: str) -> str:
        who = f"connection {holder}" if holder is not None else "a connection"
        if row:
            who += f" of {text(row[0])}@{text(row[1])}, for {row[2]} s"
        return (
            f"cannot start {what}: another applier works with checkpoint schema "
            f"{target.checkpoint_schema!r} on target {target.describe()} ({who}): stop it first, "
            "or give this one its own [target] checkpoint_schema"
        )

    # -- keeping it --------------------------------------------------------------------------

    def _keep(self) -> None:
        while not self._stop.wait(KEEPALIVE_SECONDS):
            if not self._verify():
                return

    def _verify(self) -> bool:
        """One keep-alive: is the lock still ours? (False: lost, ``self.lost`` says why.)"""
        with self._mutex:
            if self._stop.is_set() or self.lost is not None:
                return False
            try:
                ours = self._ours()
            except ApplierError as e:
                self._lose(e)
                return False
            if ours:
                self._verified = time.monotonic()
            return ours

    def _ours(self) -> bool:
        """Is the lock still held by this connection? (Raises when the connection failed.)"""
        with self._errors("checking the checkpoint lock"):
            cur = self.conn.cursor()
            try:
                cur.execute("SELECT IS_USED_LOCK(%s)", (self.name,))
                holder = cur.fetchone()[0]
            finally:
                cur.close()
        if holder is not None and int(holder) == self.id:
            return True
        if holder is None:
            self._lose(TargetLost(
                f"the checkpoint lock {self.name!r} on target {self.target.describe()} is no longer "
                f"held by this applier (connection {self.id}): it stops so that no second applier "
                "works beside it; run it again to resume from the checkpoint"))
        else:
            self._lose(Busy(
                f"the checkpoint lock {self.name!r} on target {self.target.describe()} was lost: "
                f"connection {holder} holds it now, so another applier works with checkpoint schema "
                f"{self.target.checkpoint_schema!r}: this one stops; stop the other one before "
                "running this one again"))
        return False

    def _lose(self, e: Exception) -> None:
        if self.lost is None:
            self.lost = e
            log.info("%s", e)
        _ABANDONED.setdefault((self.name, self.id), time.monotonic())

    def check(self) -> None:
        """Raise if the lock was lost (see the class docstring); cheap, call it often. When
        the keep-alive has not confirmed the lock lately (the process was frozen, or its
        thread starved), it asks the server first: a process that wakes up after its lock
        session was ended must not apply one more batch."""
        if self.lost is None and time.monotonic() - self._verified > 2 * KEEPALIVE_SECONDS + 1:
            self._verify()
        if self.lost is not None:
            raise self.lost

    @contextlib.contextmanager
    def _errors(self, what: str):
        try:
            yield
        except MySQLdb.Error as e:
            code = codes.code_of(e)
            if code in codes.GONE or code in codes.UNREACHABLE or isinstance(e, MySQLdb.InterfaceError):
                raise TargetLost(
                    f"lost the connection to the target {self.target.describe()} while {what} "
                    f"({code}: {codes.message_of(e)}): the checkpoint lock is not held, so this "
                    "applier stops; run it again (it resumes from the checkpoint) once the target "
                    "is reachable") from None
            raise TargetError(
                f"target {self.target.describe()} refused {what} on checkpoint schema "
                f"{self.target.checkpoint_schema!r} ({code}: {codes.message_of(e)}): the [target] "
                "user needs no privilege for GET_LOCK; check the server's error log") from None

    def release(self) -> None:
        self._stop.set()
        with self._mutex:
            # should the close not reach the server, a later lock of this process ends the session
            _ABANDONED.setdefault((self.name, self.id), time.monotonic())
            with contextlib.suppress(Exception):
                self.conn.close()
        if self._thread is not threading.current_thread():
            self._thread.join(LOCK_READ_SECONDS + KEEPALIVE_SECONDS)

    def __enter__(self) -> CheckpointLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _scalar(conn, sql: str, params: tuple):
    cur = conn.cursor()
    try:
        cur.execute(sql, params)
        return cur.fetchone()[0]
    finally:
        cur.close()


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

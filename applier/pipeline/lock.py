"""One applier per checkpoint schema: a named lock on the target (``GET_LOCK``), held
on its own connection for the whole life of ``run``, ``takeover`` and ``handback``,
kept alive and checked (``CheckpointLock.check``, called by the coordinator before
each item), so that two appliers never write one target's checkpoint rows.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time

import MySQLdb

from ..config import TargetConfig
from ..db import codes
from ..db.connect import connect
from ..db.sql import escape, text
from ..errors import ApplierError, Busy, TargetError, TargetLost

log = logging.getLogger(__name__)


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
                conn.query(b"SET @mts_applier = '" + escape(what.encode()) + b"'")
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

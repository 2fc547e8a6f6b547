"""Replica lag measured pt-heartbeat style, for `applier bench --steady`.

A writer thread updates one row on the source every ``INTERVAL`` seconds with the
source's own clock (``UPDATE bench.heartbeat SET ts = SYSDATE(6)``: a ROW binlog carries
the value, so the replica gets the source's time, whoever applies it). A reader thread
asks the target every ``INTERVAL`` seconds, at a random point of each slot, how old the
row it sees is: ``TIMESTAMPDIFF(MICROSECOND, ts, SYSDATE(6))`` evaluated on the target.
Source and target run on one machine, so that is one clock: lag = target read time -
heartbeat value, no clock skew to correct.

Like pt-heartbeat's, the figure is an upper bound by up to one interval: a replica that
is fully caught up reads 0-100 ms (mean ~50 ms), since the newest heartbeat is up to an
interval old when it is read. The reader's random phase keeps that sawtooth from being
sampled at one fixed point (two fixed 100 ms periods would always read the same age).

Each thread has its own connection; the main thread's own calls (``wait_caught_up``,
``pause``) use the servers' cached connections, which only the main thread touches.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable
from datetime import datetime

import MySQLdb

from ...db import codes
from ...errors import ApplierError
from .. import sandbox

INTERVAL = 0.1  # seconds between two heartbeat writes, and between two lag reads
TABLE = "heartbeat"


def create_table(source: sandbox.LocalServer, db: str) -> None:
    """The heartbeat row (a primary key: the applier routes it like any other row)."""
    source.execute(f"CREATE DATABASE IF NOT EXISTS `{db}`")
    source.execute(f"CREATE TABLE IF NOT EXISTS `{db}`.{TABLE} "
                   "(id INT NOT NULL PRIMARY KEY, ts DATETIME(6) NOT NULL) ENGINE=InnoDB")
    source.execute(f"INSERT INTO `{db}`.{TABLE} VALUES (1, SYSDATE(6)) "
                   "ON DUPLICATE KEY UPDATE ts = VALUES(ts)")


class Heartbeat:
    """The writer (source) and reader (target) threads; ``samples`` holds
    ``(time.monotonic(), lag seconds)`` for every read since ``start``."""

    def __init__(self, source: sandbox.LocalServer, target: sandbox.LocalServer, db: str) -> None:
        self.source, self.target, self.db = source, target, db
        self.samples: list[tuple[float, float]] = []
        self.read_errors = 0
        self.error: BaseException | None = None  # the writer's, raised by check()
        self._stop = threading.Event()
        self._writing = threading.Event()
        self._writing.set()
        self._write_lock = threading.Lock()  # held for the duration of one write
        self._threads = [threading.Thread(target=self._writer, name="heartbeat-writer", daemon=True),
                         threading.Thread(target=self._reader, name="heartbeat-reader", daemon=True)]
        self._select = f"SELECT ts FROM `{db}`.{TABLE} WHERE id = 1"

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        self._writing.set()
        for t in self._threads:
            if t.is_alive():
                t.join(5)

    def check(self) -> None:
        if self.error is not None:
            raise ApplierError(f"the heartbeat writer failed: {self.error}")

    # -- writer ----------------------------------------------------------------------------

    def _writer(self) -> None:
        sql = f"UPDATE `{self.db}`.{TABLE} SET ts = SYSDATE(6) WHERE id = 1"
        try:
            conn = self.source.connect()
        except BaseException as e:  # noqa: BLE001 - reported by check()
            self.error = e
            return
        try:
            cur = conn.cursor()
            due = time.monotonic()
            while not self._stop.is_set():
                self._writing.wait()
                with self._write_lock:
                    if self._writing.is_set() and not self._stop.is_set():
                        cur.execute(sql)
                due = max(due + INTERVAL, time.monotonic() - INTERVAL)  # no burst after a stall
                self._stop.wait(max(0.0, due - time.monotonic()))
        except BaseException as e:  # noqa: BLE001 - reported by check()
            self.error = e
        finally:
            with contextlib.suppress(MySQLdb.Error):
                conn.close()

    def pause(self) -> None:
        """No heartbeat writes until ``resume`` (returns once none is in flight)."""
        self._writing.clear()
        with self._write_lock:
            pass

    def resume(self) -> None:
        self._writing.set()

    # -- reader ----------------------------------------------------------------------------

    def _reader(self) -> None:
        sql = (f"SELECT TIMESTAMPDIFF(MICROSECOND, ts, SYSDATE(6)) FROM `{self.db}`.{TABLE} "
               "WHERE id = 1")
        rng = random.Random(4)
        conn = None
        slot = time.monotonic()
        while not self._stop.is_set():
            # one read per slot, at a random point of it
            self._stop.wait(max(0.0, slot + rng.uniform(0, INTERVAL) - time.monotonic()))
            slot = max(slot + INTERVAL, time.monotonic() - INTERVAL)
            if self._stop.is_set():
                break
            try:
                if conn is None:
                    conn = self.target.connect(connect_timeout=2)
                cur = conn.cursor()
                cur.execute(sql)
                row = cur.fetchone()
                cur.close()
                if row is not None and row[0] is not None:
                    self.samples.append((time.monotonic(), int(row[0]) / 1e6))
            except MySQLdb.Error:  # target restarting or busy: try again next slot
                self.read_errors += 1
                if conn is not None:
                    with contextlib.suppress(MySQLdb.Error):
                        conn.close()
                conn = None
            self._stop.wait(max(0.0, slot - time.monotonic()))
        if conn is not None:
            with contextlib.suppress(MySQLdb.Error):
                conn.close()

    def between(self, t0: float, t1: float) -> list[tuple[float, float]]:
        return [s for s in list(self.samples) if t0 <= s[0] <= t1]

    # -- the main thread's waits -------------------------------------------------------------

    def _ts(self, server: sandbox.LocalServer) -> datetime | None:
        """The heartbeat ``server`` holds (None: not even its table yet)."""
        try:
            rows = server.query(self._select)
        except MySQLdb.ProgrammingError as e:
            if codes.code_of(e) in (codes.ER_NO_SUCH_TABLE, codes.ER_BAD_DB_ERROR):
                return None
            raise
        return rows[0][0] if rows else None

    def wait_caught_up(self, timeout: float, health: Callable[[], None] = lambda: None) -> float:
        """Seconds until the target holds the heartbeat the source holds now (everything
        written until now is applied). ``health`` raises if the contender died."""
        self.check()
        want = self._ts(self.source)
        started = time.monotonic()
        while True:
            have = self._ts(self.target)
            if have is not None and have >= want:
                return time.monotonic() - started
            health()
            self.check()
            if time.monotonic() - started > timeout:
                raise ApplierError(f"the target did not catch up within {timeout:g}s "
                                   f"(it holds heartbeat {self._ts(self.target)}, the source {want})")
            time.sleep(0.02)


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linear between the closest ranks."""
    if not values:
        return float("nan")
    v = sorted(values)
    k = (len(v) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


END_SHARE = 0.1  # the end of the load phase: its last tenth (at least END_MIN_SECONDS)
END_MIN_SECONDS = 1.0
BOUNDED_FACTOR = 1.5  # bounded: lag at the end <= BOUNDED_FACTOR x median + BOUNDED_SLACK
BOUNDED_SLACK = 0.2
BOUNDED_GROWTH = 0.05  # ... and the lag's trend over the phase <= this, seconds per second


def lag_stats(samples: list[tuple[float, float]], t0: float, t1: float) -> dict:
    """p50/p99/max of the lag over [t0, t1], the lag at its end, whether it stayed bounded
    and how fast it grew (least squares, seconds of lag per second).

    Bounded: the lag at the end of the load (median of its last tenth, at least its last
    second) is at most ``BOUNDED_FACTOR`` x the median over the whole phase +
    ``BOUNDED_SLACK`` s, and the lag's trend (least-squares slope over the phase) is at
    most ``BOUNDED_GROWTH`` s per s. A lag that holds steady ends near its median (ratio
    ~1) with a trend ~0; one that grows steadily from zero ends at twice its median; the
    slack keeps a replica whose lag is a few heartbeat intervals from being judged by
    noise; the trend catches one that fell behind early and went on losing ground more
    slowly (its median is then high too). 0.05 s/s is a replica applying 5% slower than
    the source writes: one more second behind every 20 s."""
    window = [s for s in samples if t0 <= s[0] <= t1]
    lags = [lag for _, lag in window]
    if not lags:
        return {"samples": 0}
    tail = max(END_MIN_SECONDS, (t1 - t0) * END_SHARE)
    end = percentile([lag for t, lag in window if t >= t1 - tail], 50)
    p50 = percentile(lags, 50)
    n = len(window)
    mt = sum(t for t, _ in window) / n
    ml = sum(lags) / n
    var = sum((t - mt) ** 2 for t, _ in window)
    slope = sum((t - mt) * (lag - ml) for t, lag in window) / var if var else 0.0
    return {
        "samples": n,
        "p50": round(p50, 4),
        "p99": round(percentile(lags, 99), 4),
        "max": round(max(lags), 4),
        "mean": round(ml, 4),
        "end": round(end, 4),
        "growth": round(slope, 4),
        "bounded": end <= BOUNDED_FACTOR * p50 + BOUNDED_SLACK and slope <= BOUNDED_GROWTH,
    }

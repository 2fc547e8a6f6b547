"""Counters and lag, kept apart from settings and state so any stage can report (the
summary `applier run` prints, and the Prometheus exporter reads them live).

Lag (``lag_seconds``) is how far behind the source the target is, in seconds of the
source's clock: now minus the source commit time of the oldest transaction the target
does not have yet. That is the oldest transaction read and not committed (in flight,
waiting, held back, streamed, applied by the coordinator); with none, and the reading at
the end of what the source sent, the target has caught up: 0 (as Seconds_Behind_Master,
0 when the SQL thread has nothing to do, however long the source has been idle). With
none but the reading not at the end (it is going through transactions that need no
work, e.g. filtered ones), the next one committed no earlier than the last one read:
its age. Source commit times are the binlog's whole seconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)  # transactions per commit


def lag_seconds(oldest_uncommitted: int, last_read: int, reading_idle: bool,
                now: float | None = None) -> float | None:
    """Seconds the target is behind (module docstring); ``oldest_uncommitted``: the source
    commit time of the oldest transaction read and not committed (0: none), ``last_read``:
    that of the last transaction read (0: none yet), ``reading_idle``: the reading is at
    the end of what the source sent. None: not known yet (nothing read, still reading)."""
    now = time.time() if now is None else now
    if oldest_uncommitted:
        return max(0.0, now - oldest_uncommitted)
    if reading_idle:
        return 0.0
    if not last_read:
        return None
    return max(0.0, now - last_read)


@dataclass
class Metrics:
    started: float = field(default_factory=time.monotonic)
    transactions: int = 0  # applied (by workers or barriers)
    rows: int = 0
    barriers: int = 0
    big_transactions: int = 0
    skipped_filtered: int = 0  # transactions touching only ignored databases
    skipped_recovered: int = 0  # already committed before a restart (from checkpoint)
    waits: int = 0  # times routing waited for a conflict to clear
    batches: int = 0  # target commits by workers (transactions per batch = transactions / batches)
    scanned: int = 0  # transactions the native scanner read (the rest took the Python path)
    read: int = 0  # whole transactions read from the source
    retries: int = 0  # batches run again after a deadlock or lock-wait timeout
    batch_counts: list[int] = field(default_factory=lambda: [0] * (len(BATCH_BUCKETS) + 1))
    last_source_timestamp: int = 0  # source commit time of the last transaction read
    position: str = ""  # where the run ended: every transaction up to it has committed
    gtid: str = ""  # the same position as GTIDs
    until_reached: bool | None = None  # None: no UNTIL asked for

    def batch(self, transactions: int, retries: int) -> None:
        """A worker commit of ``transactions``, run ``retries`` more times than once."""
        self.batches += 1
        self.retries += retries
        i = 0
        while i < len(BATCH_BUCKETS) and transactions > BATCH_BUCKETS[i]:
            i += 1
        self.batch_counts[i] += 1

    @property
    def elapsed(self) -> float:
        return max(time.monotonic() - self.started, 1e-9)

    @property
    def tps(self) -> float:
        return self.transactions / self.elapsed

    def lag_seconds(self, oldest_uncommitted: int = 0, reading_idle: bool = False) -> float:
        """``lag_seconds`` with this run's last read transaction (0.0 when not known),
        for the progress line."""
        return lag_seconds(oldest_uncommitted, self.last_source_timestamp, reading_idle) or 0.0

    def summary(self) -> dict[str, float | int]:
        return {
            "transactions": self.transactions,
            "rows": self.rows,
            "seconds": round(self.elapsed, 3),
            "tps": round(self.tps, 1),
            "barriers": self.barriers,
            "big_transactions": self.big_transactions,
            "skipped_filtered": self.skipped_filtered,
            "skipped_recovered": self.skipped_recovered,
            "routing_waits": self.waits,
            "worker_batches": self.batches,
            "native_scanned": self.scanned,
            "position": self.position,
            "gtid": self.gtid,
            **({} if self.until_reached is None else {"until_reached": self.until_reached}),
        }

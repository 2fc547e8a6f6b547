"""Where a run stops on its own, like ``START SLAVE UNTIL``: after the transaction that
reaches a binlog position, once a GTID position has been read, or before the first
transaction committed after a moment. The coordinator then drains, so the target ends
at one exact position (no gaps), and prints it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..binlog.position import BinlogPosition, GtidPosition
from ..binlog.transactions import Transaction
from ..errors import ConfigError


@dataclass(frozen=True)
class Until:
    position: BinlogPosition | None = None  # stop after the transaction ending at or beyond it
    gtid: str = ""  # stop once every GTID of this position / set has been read
    time: float | None = None  # stop before the first transaction committed after it (epoch)

    @classmethod
    def parse(cls, position: str | None = None, gtid: str | None = None,
              time: str | None = None) -> Until | None:
        given = [x for x in (position, gtid, time) if x]
        if not given:
            return None
        if len(given) > 1:
            raise ConfigError("give one of --until-position, --until-gtid, --until-time")
        if position:
            return cls(position=BinlogPosition.parse(position))
        if gtid:
            if not GtidPosition(gtid):
                raise ConfigError(f"--until-gtid {gtid!r} names no GTID")
            return cls(gtid=gtid)
        assert time is not None
        try:
            moment = datetime.fromisoformat(time.strip())
        except ValueError:
            raise ConfigError(
                f"--until-time {time!r}: expected 'YYYY-MM-DD HH:MM:SS' (local time) or ISO 8601 "
                "with an offset"
            ) from None
        return cls(time=moment.timestamp())  # a naive moment is local time, as mysqlbinlog's

    def __str__(self) -> str:
        if self.position is not None:
            return f"position {self.position}"
        if self.gtid:
            return f"GTID {self.gtid}"
        return f"time {datetime.fromtimestamp(self.time or 0).isoformat(sep=' ')}"


class UntilTracker:
    """Follows the transactions read, in source order, against an ``Until``."""

    def __init__(self, until: Until, start_gtid: str) -> None:
        self.until = until
        self.reached = False
        self._read = GtidPosition(start_gtid)  # GTIDs read so far (the start's included)
        self._want = GtidPosition(until.gtid) if until.gtid else None
        self._position = until.position.ordinal if until.position else None

    def before(self, txn: Transaction) -> bool:
        """``txn`` must not be applied: it was committed after the moment."""
        t = self.until.time
        if t is not None and txn.timestamp > t:
            self.reached = True
        return self.reached

    def after(self, txn: Transaction) -> bool:
        """``txn`` (read, and applied or skipped) is the last one to apply."""
        if self._position is not None:
            self.reached = txn.end_ordinal >= self._position
        elif self._want is not None:
            if txn.gtid:
                self._read.add(txn.gtid)
            self.reached = self.read_all()
        return self.reached

    def read_all(self) -> bool:
        """Every GTID asked for has been read (also true before the first transaction
        when the start position already holds them)."""
        want, read = self._want, self._read
        if want is None:
            return False
        if want.mariadb is not None:
            return read.mariadb is not None and read.mariadb.reached(want.mariadb)
        assert want.mysql is not None
        return read.mysql is not None and want.mysql.issubset(read.mysql)

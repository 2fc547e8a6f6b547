"""Where a run stops on its own, like ``START SLAVE UNTIL``: after the transaction that
reaches a binlog position, once a GTID position has been read, or before the first
transaction committed after a moment. The coordinator then drains, so the target ends
at one exact position (no gaps), and prints it.

Nothing past the point is ever applied: a transaction that starts past it (a GTID later
in its domain / source than the point, a commit after the moment) stops the run before
it, also when it is the first one read (then nothing is applied, and a warning says so).
GTIDs applied before the run count as read: the start GTID position, ``applied``
(`applier replay` on a MySQL target: its gtid_executed, e.g. a restored backup's), and
``before``: the source's GTIDs before a start at a file position (``gtids_before``). A
run started at a file position reads only the GTIDs after it, so without them a point
naming GTIDs from before the start (a MariaDB position with a domain written to only
before it, MySQL's usual ``uuid:1-N``) would never count as read: the run would wait
for a transaction past the point, forever on an idle source.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime

from ..binlog.position import BinlogPosition, GtidPosition, MysqlGtidSet
from ..binlog.transactions import Transaction
from ..config import SourceConfig
from ..db.connect import connect, driver_errors
from ..db.sql import text
from ..errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Until:
    position: BinlogPosition | None = None  # stop after the transaction ending at or beyond it
    gtid: str = ""  # stop once every GTID of this position / set has been read
    time: float | None = None  # stop before the first transaction committed after it (epoch)
    applied: str = ""  # GTIDs applied before the run besides its start position (gtid_executed)

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

    def __init__(self, until: Until, start_gtid: str, before: str = "") -> None:
        self.until = until
        self.reached = False
        # GTIDs read so far: the start's, those applied before the run and (a start at a
        # file position) the source's before it included
        self._read = _merged(_merged(GtidPosition(start_gtid), GtidPosition(until.applied)),
                             GtidPosition(before))
        self._want = GtidPosition(until.gtid) if until.gtid else None
        self._position = until.position.ordinal if until.position else None
        self._tops = _mysql_tops(self._want.mysql) if self._want is not None and self._want.mysql else {}
        self._seen = 0  # transactions read (and applied or skipped) before the point

    def before(self, txn: Transaction) -> bool:
        """``txn`` must not be applied: it was committed after the moment, or it comes
        after the GTID position asked for."""
        if self.reached:
            return True
        t = self.until.time
        if t is not None and txn.timestamp > t:
            self._stop(txn, f"committed at {datetime.fromtimestamp(txn.timestamp).isoformat(sep=' ')}")
        elif self._want is not None and txn.gtid and self.past(txn.gtid):
            if not self.read_all():
                log.warning("--until-gtid %s: transaction %s (ending at %s:%d) is past it, so the run "
                            "stops before it, though not every GTID asked for was read (%s)",
                            self.until.gtid, txn.gtid, txn.file, txn.end_pos, self._read or "none")
            self._stop(txn, "past it")
        return self.reached

    def _stop(self, txn: Transaction, why: str) -> None:
        self.reached = True
        if not self._seen:
            log.warning("nothing applied: UNTIL %s is at or before the first transaction read "
                        "(%s ending at %s:%d, %s)", self.until, txn.gtid or "(no GTID)", txn.file,
                        txn.end_pos, why)

    def after(self, txn: Transaction) -> bool:
        """``txn`` (read, and applied or skipped) is the last one to apply."""
        self._seen += 1
        if self._position is not None:
            self.reached = txn.end_ordinal >= self._position
        elif self._want is not None:
            if txn.gtid:
                self._read.add(txn.gtid)
            self.reached = self.read_all()
        return self.reached

    def past(self, gtid: str) -> bool:
        """A transaction of this GTID comes after the GTID position asked for: MariaDB, a
        later sequence number in one of its domains; MySQL, not in the set and later than
        every GTID of the set from its source (and tag). (GTIDs of one domain or source
        come in order in a binlog.)"""
        want = self._want
        if want is None:
            return False
        if want.mariadb is not None:
            if "-" not in gtid or ":" in gtid:
                return False
            domain, _, seq = gtid.split("-")
            point = want.mariadb.domains().get(int(domain))
            return point is not None and int(seq) > point.seq
        if ":" not in gtid or gtid in want:
            return False
        uuid, tag, n = MysqlGtidSet.split(gtid)
        top = self._tops.get((uuid, tag))
        return top is not None and n > top

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


def gtids_before(source: SourceConfig, flavor: str, start: BinlogPosition) -> str:
    """The source's GTIDs before ``start``, a position in its binlog (``before`` of an
    ``UntilTracker``). MariaDB: ``BINLOG_GTID_POS(file, pos)``, every domain. MySQL: the
    start file's Previous_gtids and the GTIDs of its transactions before the position
    (SHOW BINLOG EVENTS, at most ``BEFORE_SECONDS`` of it). "" with a warning when the
    source cannot tell (purged, or too long to read): then only the GTIDs read count."""
    what = f"reading the GTIDs before {start} (for --until-gtid)"
    with driver_errors(source, "source", what, "applier run"):
        conn = connect(source, "source")
        try:
            cur = conn.cursor()
            if flavor == "mariadb":
                cur.execute("SELECT BINLOG_GTID_POS(%s, %s)", (start.file, start.pos))
                value = cur.fetchone()[0]
                if value is None:
                    log.warning("--until-gtid: the source cannot tell its GTID position at %s "
                                "(BINLOG_GTID_POS is NULL); only the GTIDs read count", start)
                    return ""
                return text(value)
            return _mysql_gtids_before(cur, start)
        finally:
            conn.close()


BEFORE_SECONDS = 10.0  # MySQL: how long gtids_before may read the start file
_PAGE = 2000  # events per SHOW BINLOG EVENTS


def _mysql_gtids_before(cur, start: BinlogPosition) -> str:
    gtids = MysqlGtidSet()
    pos, deadline = 4, time.monotonic() + BEFORE_SECONDS
    while pos < start.pos:
        if time.monotonic() > deadline:
            log.warning("--until-gtid: reading %s up to %d for the GTIDs before the start took more "
                        "than %g s; only the GTIDs read count (give --until-gtid the GTIDs after the "
                        "start, or start by GTID)", start.file, start.pos, BEFORE_SECONDS)
            return ""
        cur.execute(f"SHOW BINLOG EVENTS IN %s FROM {int(pos)} LIMIT {_PAGE}", (start.file,))
        rows = cur.fetchall()
        if not rows:
            break
        for _file, at, kind, _server, end, info in rows:
            if int(at) >= start.pos:
                return str(gtids)
            kind, info = text(kind), text(info)
            if kind == "Previous_gtids" and info.strip():
                gtids.update(MysqlGtidSet.parse(info))
            elif kind.startswith("Gtid"):  # Gtid, Gtid_tagged_log_event (not Anonymous_Gtid)
                gtids.add(info.split("'")[1])
            pos = int(end)
        if len(rows) < _PAGE:
            break
    return str(gtids)


def _merged(read: GtidPosition, applied: GtidPosition) -> GtidPosition:
    """``read`` with ``applied`` in it too (a MySQL set: the union; a MariaDB position: the
    later GTID of each domain)."""
    if not applied:
        return read
    if not read:
        return applied
    if read.mysql is not None and applied.mysql is not None:
        read.mysql.update(applied.mysql)
    elif read.mariadb is not None and applied.mariadb is not None:
        mine = read.mariadb.domains()
        for domain, gtid in applied.mariadb.domains().items():
            if domain not in mine or gtid.seq > mine[domain].seq:
                read.mariadb.advance(gtid)
    return read


def _mysql_tops(gset: MysqlGtidSet) -> dict[tuple[str, str], int]:
    """The highest number of each (source uuid, tag) of a MySQL GTID set."""
    tops: dict[tuple[str, str], int] = {}
    for part in str(gset).split(","):
        uuid, *ranges = part.split(":")
        tag = ""
        for r in ranges:
            if not r[:1].isdigit():
                tag = r
                continue
            key = (uuid, tag)
            tops[key] = max(tops.get(key, 0), int(r.rpartition("-")[2]))
    return tops

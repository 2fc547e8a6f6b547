"""`applier status`: where the target is, exactly, and how far behind the source.

From the checkpoint table: the applied position W* (every transaction up to it has
committed; the applier records it when it has caught up and when it stops), the GTID
position there (per domain on MariaDB, the executed set on MySQL), and what workers
committed beyond it out of order after a crash (``committed beyond``; the transactions
in between that are not applied yet are ``in gaps``: `applier run` or `handback`
applies exactly those). From the source: its current position. Lag in bytes counts the
binlog in between; in transactions, the transactions not applied in that binlog (read
from the source, up to SCAN_BYTES; the ones committed out of order are not counted;
beyond that, the GTID distance on MariaDB, else unknown); in seconds, the age of the
oldest transaction not applied yet, 0 when none is (also with bytes behind: a rotated
binlog's Rotate and the next file's header are no transaction). Whether an applier runs: the holder of
the checkpoint schema's lock; when it runs and ``[metrics] listen`` is set, its live
figures (``live.py``: current rate, lag, per-worker queues, the waiting line).

Read-only: it writes nothing anywhere, not even the checkpoint table. With no
checkpoint yet (no schema, no table, or no rows) it exits 0 and says so in one line,
``no checkpoint yet: ...`` with the source's position (``--json``: ``"checkpoint":
false``, ``applied`` "" and the lags null): not having started is a state, not an
error, and both servers were reached. A script that wants an applier tells it by
``checkpoint`` (and ``applier``: whether one runs). Every driver error is one line: a
lost or refused connection exits 4, a refused statement 5 (target) or 3 (source).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass

import MySQLdb

from ..binlog import events as ev
from ..binlog import payload
from ..binlog.position import BinlogPosition, MariadbGtidPos, bytes_between, file_base
from ..binlog.transactions import TransactionBuilder
from ..config import Config
from ..db import codes
from ..db.connect import connect, driver_errors, flavor_and_version
from ..db.sql import quote_ident, text
from ..errors import ApplierError, DecodeError, SourceError
from ..pipeline import checkpoint
from ..pipeline.lock import lock_name
from ..pipeline.source import DumpSource, EndOfBinlog, SourceDisconnected
from .live import Live, read_live

log = logging.getLogger(__name__)

ER_BAD_FIELD_ERROR = 1054  # a checkpoint table from before the ``state`` column
NO_CHECKPOINT = frozenset({codes.ER_BAD_DB_ERROR, codes.ER_NO_SUCH_TABLE})

SCAN_BYTES = 16 << 20  # read at most this much of the source's binlog to count transactions
SCAN_SECONDS = 5.0


@dataclass(frozen=True)
class Status:
    applied: str
    applied_gtid: str
    committed_beyond: int
    highest_committed: str
    in_gaps: int | None
    source: str
    source_gtid: str
    lag_bytes: int | None
    lag_transactions: int | None
    lag_seconds: float | None
    transactions_applied: int
    applier: str
    live: Live | None = None  # a running applier's metrics endpoint, when [metrics] listen is set
    checkpoint: bool = True  # False: no checkpoint yet (nothing applied with this config)
    no_checkpoint: str = ""  # then: why, in one line

    def lines(self) -> list[str]:
        def show(v: object) -> str:
            return "unknown" if v is None else str(v)

        if not self.checkpoint:
            return [f"{self.no_checkpoint}; source position: {self.source}"
                    + (f" ({self.source_gtid})" if self.source_gtid else "")]

        out = [
            f"applied position:   {self.applied or 'none yet'}",
            f"applied gtid:       {self.applied_gtid or '-'}",
        ]
        if self.committed_beyond:
            out += [
                f"committed beyond:   {self.committed_beyond} transactions, up to {self.highest_committed}",
                f"in gaps:            {show(self.in_gaps)} transactions (not applied yet)",
            ]
        out += [
            f"source position:    {self.source}" + (f" ({self.source_gtid})" if self.source_gtid else ""),
            f"lag (bytes):        {show(self.lag_bytes)}",
            f"lag (transactions): {show(self.lag_transactions)}",
            f"lag (seconds):      {show(self.lag_seconds)}",
            f"applier:            {self.applier}",
            *([self.live.line()] if self.live is not None else []),
            f"transactions applied since the checkpoint table was created: {self.transactions_applied}",
        ]
        return out

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def read_status(cfg: Config) -> Status:
    t = cfg.target
    schema = t.checkpoint_schema
    with driver_errors(t, "target", "reading the checkpoint", "applier status"):
        tconn = connect(t, "target")
        try:
            cur = tconn.cursor()
            cur.execute("SELECT IS_USED_LOCK(%s)", (lock_name(schema),))
            (holder,) = cur.fetchone()
            cur.close()
            rec, missing = _load(tconn, cfg, holder)
        finally:
            tconn.close()
    applier = f"running (target connection {holder})" if holder else "not running"
    live = read_live(cfg.metrics.listen) if holder and cfg.metrics.listen else None
    with driver_errors(cfg.source, "source", "reading its binlog position", "applier status"):
        sconn = connect(cfg.source, "source")
        try:
            flavor, version = flavor_and_version(sconn)
            cur = sconn.cursor()
            sql = ("SHOW BINARY LOG STATUS" if flavor == "mysql" and version >= (8, 2, 0)
                   else "SHOW MASTER STATUS")
            cur.execute(sql)
            row = cur.fetchone()
            if row is None:
                raise SourceError(f"source {cfg.source.describe()} has no binary log ({sql} is empty): "
                                  "point [source] at the server the applier replicates from")
            src_file, src_pos = text(row[0]), int(row[1])
            cur.execute("SHOW BINARY LOGS")
            sizes = {text(r[0]): int(r[1]) for r in cur.fetchall()}
            cur.execute("SELECT @@gtid_binlog_pos" if flavor == "mariadb" else "SELECT @@GLOBAL.gtid_executed")
            src_gtid = text(cur.fetchone()[0]).replace("\n", "")
            cur.close()
        finally:
            sconn.close()
    applied = rec.start
    highest = max(rec.done) if rec.done else 0
    base = file_base(applied.file) if applied else file_base(src_file)
    lag_bytes = lag_txns = in_gaps = None
    lag_secs: float | None = None
    if applied is not None:
        lag_bytes = bytes_between(applied.file, applied.pos, src_file, src_pos, sizes)
        if lag_bytes == 0:
            lag_txns, lag_secs = 0, 0.0
        else:
            scan = _scan(cfg, flavor, applied, None, lag_bytes, rec.done)
            if scan is not None:
                # bytes behind but no transaction (a Rotate and the next file's header after
                # FLUSH BINARY LOGS, heartbeats): caught up, 0 s
                lag_txns, first = scan
                lag_secs = round(max(0.0, time.time() - first), 1) if lag_txns else 0.0
            if flavor == "mariadb" and rec.gtid and lag_txns is None:
                lag_txns = _gtid_distance(rec.gtid, src_gtid)
        if highest:
            top = BinlogPosition.from_ordinal(highest, base)  # bytes, not ordinals: files change
            size = bytes_between(applied.file, applied.pos, top.file, top.pos, sizes)
            scan = _scan(cfg, flavor, applied, highest, size, rec.done)
            in_gaps = scan[0] if scan is not None else None
    if missing:
        return Status(applied="", applied_gtid="", committed_beyond=0, highest_committed="", in_gaps=None,
                      source=f"{src_file}:{src_pos}", source_gtid=src_gtid, lag_bytes=None,
                      lag_transactions=None, lag_seconds=None, transactions_applied=0, applier=applier,
                      live=live, checkpoint=False, no_checkpoint=missing)
    return Status(
        applied=str(applied or ""), applied_gtid=rec.gtid, committed_beyond=len(rec.done),
        highest_committed=str(BinlogPosition.from_ordinal(highest, base)) if highest else "",
        in_gaps=in_gaps, source=f"{src_file}:{src_pos}", source_gtid=src_gtid,
        lag_bytes=lag_bytes, lag_transactions=lag_txns, lag_seconds=lag_secs,
        transactions_applied=rec.applied_transactions, applier=applier, live=live,
    )


def _load(conn, cfg: Config, holder) -> tuple[checkpoint.Recovery, str]:
    """The checkpoint, read only, and "" or, when there is none yet, why (one line)."""
    t = cfg.target
    schema = t.checkpoint_schema
    rec: checkpoint.Recovery | None
    try:
        rec = checkpoint.load(conn, schema)
    except MySQLdb.Error as e:
        code = codes.code_of(e)
        if code == ER_BAD_FIELD_ERROR:  # an old table: no ``state`` column, no handback state
            cur = conn.cursor()
            cur.execute(b"SELECT worker, watermark, watermark_file, watermark_gtid, done, ddl_pending, "
                        b"transactions, '' FROM " + quote_ident(schema) + b".checkpoint")
            rows = cur.fetchall()
            cur.close()
            rec = checkpoint.recover([tuple(text(v) if isinstance(v, bytes | bytearray) else v for v in r)
                                      for r in rows])
        elif code in NO_CHECKPOINT:
            rec = None
        else:
            raise
    if rec is not None and rec.exists:
        return rec, ""
    running = f"; an applier holds its lock (target connection {holder}): it is starting" if holder else ""
    return checkpoint.recover([]), (
        f"no checkpoint yet: target {t.describe()} has no rows in `{schema}`.checkpoint "
        f"([target] checkpoint_schema){running}: nothing has been applied with this config "
        "(`applier run` from [source] start_file/start_gtid, or `applier takeover`, creates it)")


def _scan(cfg: Config, flavor: str, start: BinlogPosition, end: int | None,
          size: int, done: frozenset[int]) -> tuple[int, int] | None:
    """(transactions not applied, source commit time of the first of them) in the
    source's binlog from ``start`` to the ordinal ``end`` (None: to the end of the
    binlog); those ending at an ordinal of ``done`` (committed out of order) are applied.
    None when that is more than SCAN_BYTES or SCAN_SECONDS of reading."""
    if size > SCAN_BYTES:
        return None
    reader = DumpSource(cfg.source, flavor, non_blocking=True, server_id=0)  # beside a running applier
    builder = TransactionBuilder()
    count = first = 0
    deadline = time.monotonic() + SCAN_SECONDS
    try:
        reader.open(start)
        for e in reader.events():
            txn = builder.add(e, reader.file)
            if e.type == ev.MYSQL_TRANSACTION_PAYLOAD:  # a compressed transaction: its events
                for inner in payload.events(e):
                    txn = builder.add(inner, reader.file) or txn
            if txn is not None:
                if end is not None and txn.end_ordinal > end:
                    break
                if txn.end_ordinal not in done:
                    count += 1
                    first = first or txn.timestamp
                if end is not None and txn.end_ordinal == end:
                    break
            if time.monotonic() > deadline:
                return None
    except EndOfBinlog:
        pass
    except (SourceDisconnected, OSError, DecodeError):
        return None
    except ApplierError as e:  # the dump refused (grants, purged): the lag is unknown
        log.warning("cannot count the transactions behind: %s", e)
        return None
    finally:
        reader.close()
    return count, first


def _gtid_distance(applied: str, source: str) -> int | None:
    try:
        a = MariadbGtidPos.parse(applied).domains()
        s = MariadbGtidPos.parse(source).domains()
    except Exception:  # noqa: BLE001 - unusual GTID text: distance unknown
        return None
    return max(0, sum(g.seq - (a[d].seq if d in a else 0) for d, g in s.items()))

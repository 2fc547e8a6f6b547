"""`applier status`: how far the target is behind the source.

Applied position and GTID come from the checkpoint table; the source's position from
SHOW MASTER STATUS / SHOW BINARY LOGS. Lag in bytes counts binlog bytes in between;
in transactions, the GTID sequence distance (MariaDB, per domain); in seconds, the age
of the newest applied source event when anything is left to apply.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..binlog.position import MariadbGtidPos, file_number
from ..config import Config
from ..db.connect import connect, flavor_and_version
from ..pipeline import checkpoint


@dataclass(frozen=True)
class Status:
    applied: str
    applied_gtid: str
    source: str
    lag_bytes: int | None
    lag_transactions: int | None
    lag_seconds: float | None
    transactions_applied: int

    def lines(self) -> list[str]:
        def show(v: object) -> str:
            return "unknown" if v is None else str(v)

        return [
            f"applied position:   {self.applied or 'none yet'}",
            f"applied gtid:       {self.applied_gtid or '-'}",
            f"source position:    {self.source}",
            f"lag (bytes):        {show(self.lag_bytes)}",
            f"lag (transactions): {show(self.lag_transactions)}",
            f"lag (seconds):      {show(self.lag_seconds)}",
            f"transactions applied since the checkpoint table was created: {self.transactions_applied}",
        ]


def read_status(cfg: Config) -> Status:
    tconn = connect(cfg.target, "target")
    try:
        checkpoint.ensure_table(tconn, cfg.target.checkpoint_schema)
        rec = checkpoint.load(tconn, cfg.target.checkpoint_schema)
        cur = tconn.cursor()
        cur.execute(f"SELECT MAX(source_timestamp) FROM `{cfg.target.checkpoint_schema}`.checkpoint")
        (newest,) = cur.fetchone()
    finally:
        tconn.close()
    sconn = connect(cfg.source, "source")
    try:
        flavor, version = flavor_and_version(sconn)
        cur = sconn.cursor()
        mysql_new = flavor == "mysql" and version >= (8, 2, 0)
        cur.execute("SHOW BINARY LOG STATUS" if mysql_new else "SHOW MASTER STATUS")
        row = cur.fetchone()
        src_file, src_pos = row[0], int(row[1])
        cur.execute("SHOW BINARY LOGS")
        sizes = {r[0]: int(r[1]) for r in cur.fetchall()}
        src_gtid = ""
        if flavor == "mariadb":
            cur.execute("SELECT @@gtid_binlog_pos")
            src_gtid = cur.fetchone()[0] or ""
    finally:
        sconn.close()
    lag_bytes = lag_txns = lag_secs = None
    if rec.start is not None:
        lag_bytes = _bytes_between(rec.start.file, rec.start.pos, src_file, src_pos, sizes)
        if flavor == "mariadb" and rec.gtid:
            lag_txns = _gtid_distance(rec.gtid, src_gtid)
        if lag_bytes == 0:
            lag_secs = 0.0
        elif newest:
            lag_secs = round(max(0.0, time.time() - int(newest)), 1)
    return Status(str(rec.start or ""), rec.gtid, f"{src_file}:{src_pos}" + (f" ({src_gtid})" if src_gtid else ""),
                  lag_bytes, lag_txns, lag_secs, rec.applied_transactions)


def _bytes_between(file_a: str, pos_a: int, file_b: str, pos_b: int, sizes: dict[str, int]) -> int:
    if file_a == file_b:
        return max(0, pos_b - pos_a)
    na, nb = file_number(file_a), file_number(file_b)
    total = max(0, sizes.get(file_a, pos_a) - pos_a) + pos_b
    for name, size in sizes.items():
        if na < file_number(name) < nb:
            total += size
    return total


def _gtid_distance(applied: str, source: str) -> int | None:
    try:
        a = MariadbGtidPos.parse(applied)
        s = MariadbGtidPos.parse(source)
    except Exception:  # noqa: BLE001 - unusual GTID text: distance unknown
        return None
    total = 0
    for dom, gtid in s._by_domain.items():  # noqa: SLF001
        mine = a._by_domain.get(dom)  # noqa: SLF001
        total += gtid.seq - (mine.seq if mine else 0)
    return max(0, total)

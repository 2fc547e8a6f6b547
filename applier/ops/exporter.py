"""Prometheus metrics of a running `applier run` / `applier replay` (`[metrics] listen`).

Served by prometheus_client's HTTP server on its own thread; every scrape reads the
coordinator's counters and a snapshot of the running pass (``Coordinator.live``), so
nothing is updated on the hot path for it. The README's metrics table lists each one.

* counters: source transactions read (its rate is the coordinator's read rate),
  applied, rows, barriers, big (streamed) transactions, skipped (filtered out /
  committed before a restart), batch retries, routing waits; a histogram of
  transactions per worker commit;
* gauges: lag in seconds (``metrics.lag_seconds``), transactions read and not committed
  (pending), transactions in flight per worker (given to it, not committed: its queue),
  transactions waiting for a conflict to clear, and how far behind the source: bytes
  and transactions;
* info: the applied position (file, pos, GTIDs).

Behind the source. In dump mode the source's binlog position and GTIDs are read on a
connection of the exporter's own, at most every ``SOURCE_EVERY`` seconds (only when
scraped). Bytes: from the applied position to the source's end of binlog (replay: to the
end of the last file given). Transactions (``transactions_past``): what the source's
GTIDs hold past the applied position's (MariaDB: per domain, by sequence number; MySQL:
per source uuid and tag, the GTIDs numbered past the highest applied), less those
committed out of order beyond it, and never fewer than the pending ones. A domain or
uuid:tag the run has applied nothing of counts 0 when the GTID position where the
applied position's binlog file starts (``BINLOG_GTID_POS(file, 4)``, MySQL's
Previous_gtids) already holds all of it; otherwise, or without GTIDs on either side,
or with no source to ask (replay, relay-log mode), there is no figure: no metric rather
than a wrong one.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ..binlog.position import GtidPosition, MariadbGtidPos, MysqlGtidSet, bytes_between, file_number
from ..config import SourceConfig
from ..db.connect import connect, flavor_and_version
from ..db.sql import text
from ..errors import ApplierError, ConfigError
from ..metrics import BATCH_BUCKETS
from ..pipeline.coordinator import Coordinator
from ..pipeline.reading import FileReading

log = logging.getLogger(__name__)

SOURCE_EVERY = 1.0  # seconds between two reads of the source's binlog position and GTIDs


# -- how far behind ----------------------------------------------------------------------------


def transactions_past(applied: str, source: str,
                      before_file: str | None | Callable[[], str | None]) -> int | None:
    """Transactions in the source's binlog past the ``applied`` GTID position, from the
    source's GTIDs (``@@gtid_binlog_pos`` / ``gtid_executed``); ``before_file``: the GTID
    position where the applied position's binlog file starts, or a function giving it
    (asked only for a domain or uuid:tag the applied position lacks). None: not known
    (module docstring)."""
    try:
        a, s = GtidPosition(applied), GtidPosition(source)
        if a.mariadb is not None and s.mariadb is not None:
            return _mariadb_past(a.mariadb, s.mariadb, before_file)
        if a.mysql is not None and s.mysql is not None:
            return _mysql_past(a.mysql, s.mysql, before_file)
    except (ConfigError, ValueError):
        pass
    return None  # a side without GTIDs, or of the other flavor


def _before(before_file) -> str | None:
    return before_file() if callable(before_file) else before_file


def _mariadb_past(applied: MariadbGtidPos, source: MariadbGtidPos, before_file) -> int | None:
    mine = applied.domains()
    if not mine:
        return None
    count, unseen = 0, {}
    for domain, gtid in source.domains().items():
        if domain in mine:
            count += max(0, gtid.seq - mine[domain].seq)
        else:
            unseen[domain] = gtid.seq
    if unseen:
        before = _before(before_file)
        if before is None:
            return None
        start = MariadbGtidPos.parse(before).domains()
        if any(d not in start or start[d].seq < seq for d, seq in unseen.items()):
            return None  # that domain wrote in or after the file: where it stands is not known
    return count


def _intervals(gset: MysqlGtidSet) -> dict[tuple[str, str], list[tuple[int, int]]]:
    """{(uuid, tag): intervals} from the set's text (``uuid:1-5:tag:1-2,uuid2:...``)."""
    out: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for part in filter(None, str(gset).split(",")):
        uuid, *tokens = part.split(":")
        tag = ""
        for token in tokens:
            if token[:1].isdigit():
                lo, _, hi = token.partition("-")
                out.setdefault((uuid, tag), []).append((int(lo), int(hi or lo)))
            else:
                tag = token
    return out


def _mysql_past(applied: MysqlGtidSet, source: MysqlGtidSet, before_file) -> int | None:
    mine = _intervals(applied)
    if not mine:
        return None
    count, unseen = 0, MysqlGtidSet()
    for (uuid, tag), intervals in _intervals(source).items():
        if (uuid, tag) in mine:
            # numbered past the highest applied: a run started from a file position knows
            # only the GTIDs it applied, not the history before them
            high = max(hi for _, hi in mine[(uuid, tag)])
            count += sum(max(0, hi - max(lo, high + 1) + 1) for lo, hi in intervals)
        else:
            for lo, hi in intervals:
                unseen.add_interval(uuid, lo, hi, tag)
    if unseen:
        before = _before(before_file)
        if before is None or not unseen.issubset(MysqlGtidSet.parse(before)):
            return None
    return count


def bytes_behind(file_a: str, pos_a: int, file_b: str, pos_b: int, sizes: dict[str, int]) -> int | None:
    """Binlog bytes from ``file_a:pos_a`` (applied) to ``file_b:pos_b`` (the end); 0 when
    the end was read before the applied position passed it; None for a name without a
    number."""
    try:
        if (file_number(file_a), pos_a) >= (file_number(file_b), pos_b):
            return 0
        return bytes_between(file_a, pos_a, file_b, pos_b, sizes)
    except ApplierError:
        return None


@dataclass(frozen=True)
class SourceState:
    file: str
    pos: int
    sizes: dict[str, int]  # SHOW BINARY LOGS
    gtid: str  # @@gtid_binlog_pos (MariaDB), @@GLOBAL.gtid_executed (MySQL)


class _Source:
    """The source's end of binlog and GTIDs, cached ``SOURCE_EVERY`` seconds, and the GTID
    position where a binlog file starts (cached per file), on one connection."""

    def __init__(self, cfg: SourceConfig | None) -> None:
        self.cfg = cfg
        self._conn = None
        self._flavor = ""
        self._version: tuple[int, ...] = ()
        self._at = 0.0
        self._value: SourceState | None = None
        self._starts: dict[str, str | None] = {}
        self._lock = threading.Lock()

    def get(self) -> SourceState | None:
        if self.cfg is None:
            return None
        with self._lock:
            if time.monotonic() - self._at < SOURCE_EVERY:
                return self._value
            self._at = time.monotonic()
            self._value = None
            with self._errors("the source's position"):
                cur = self._cursor()
                cur.execute("SHOW BINARY LOG STATUS" if self._flavor == "mysql" and self._version >= (8, 2, 0)
                            else "SHOW MASTER STATUS")
                row = cur.fetchone()
                cur.execute("SHOW BINARY LOGS")
                sizes = {text(r[0]): int(r[1]) for r in cur.fetchall()}
                cur.execute("SELECT @@gtid_binlog_pos" if self._flavor == "mariadb"
                            else "SELECT @@GLOBAL.gtid_executed")
                gtid = text(cur.fetchone()[0] or "").replace("\n", "")
                cur.close()
                self._value = SourceState(text(row[0]), int(row[1]), sizes, gtid)
            return self._value

    def file_start(self, file: str) -> str | None:
        """The GTID position before ``file``'s first transaction (None: not known)."""
        with self._lock:
            if file in self._starts:
                return self._starts[file]
            value = None
            with self._errors(f"the GTIDs before {file}"):
                cur = self._cursor()
                if self._flavor == "mariadb":
                    cur.execute("SELECT BINLOG_GTID_POS(%s, 4)", (file,))
                    found = cur.fetchone()[0]
                    value = None if found is None else text(found)
                else:
                    cur.execute("SHOW BINLOG EVENTS IN %s LIMIT 4", (file,))
                    value = next((text(r[5]) for r in cur.fetchall() if text(r[2]) == "Previous_gtids"), None)
                cur.close()
            if len(self._starts) > 8:
                self._starts.clear()
            self._starts[file] = value
            return value

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _cursor(self):
        if self._conn is None:
            self._conn = connect(self.cfg, "source", connect_timeout=3, read_timeout=5)  # type: ignore[arg-type]
            self._flavor, self._version = flavor_and_version(self._conn)
        return self._conn.cursor()

    @contextlib.contextmanager
    def _errors(self, what: str):
        try:
            yield
        except Exception as e:  # noqa: BLE001 - a scrape must not fail for it
            log.debug("metrics: cannot read %s: %s", what, e)
            self._drop()

    def _drop(self) -> None:
        with contextlib.suppress(Exception):
            if self._conn is not None:
                self._conn.close()
        self._conn = None


# -- the collector --------------------------------------------------------------------------


class ApplierCollector:
    """Yields the applier's metric families on every scrape."""

    def __init__(self, coord: Coordinator, source: SourceConfig | None) -> None:
        self.coord = coord
        self.source = _Source(None if isinstance(coord.reading, FileReading) else source)

    def describe(self) -> list:
        return []  # no pre-registration check (families are built per scrape)

    def collect(self) -> Iterator:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
            InfoMetricFamily,
        )

        m = self.coord.metrics
        for name, doc, value in (
            ("applier_read_transactions", "Source transactions the coordinator read (its rate: the read rate)",
             m.read),
            ("applier_transactions", "Source transactions applied (committed on the target)", m.transactions),
            ("applier_rows", "Rows applied", m.rows),
            ("applier_barriers", "Transactions applied alone by the coordinator (DDL, tables without keys "
             "or with foreign keys, big transactions)", m.barriers),
            ("applier_big_transactions", "Transactions above big_txn_rows, streamed", m.big_transactions),
            ("applier_skipped_filtered", "Transactions touching only filtered databases", m.skipped_filtered),
            ("applier_skipped_recovered", "Transactions committed before a restart, skipped",
             m.skipped_recovered),
            ("applier_retries", "Worker batches run again after a deadlock or lock-wait timeout", m.retries),
            ("applier_routing_waits", "Transactions that waited for a conflict to clear", m.waits),
        ):
            yield CounterMetricFamily(name, doc, value=value)
        buckets, total = [], 0
        for bound, count in zip(BATCH_BUCKETS, m.batch_counts, strict=False):
            total += count
            buckets.append((str(bound), total))
        buckets.append(("+Inf", total + m.batch_counts[-1]))
        yield HistogramMetricFamily("applier_batch_transactions", "Source transactions per worker commit",
                                    buckets=buckets, sum_value=m.transactions - m.barriers)
        live = self.coord.live()
        if live is None:
            return  # between two passes (a reconnect)
        if live.get("lag_seconds") is not None:
            yield GaugeMetricFamily(
                "applier_lag_seconds", "Seconds the target is behind: now minus the source commit time of "
                "the oldest transaction not committed on the target (0: caught up and idle)",
                value=live["lag_seconds"])
        pending = live.get("pending")
        if pending is not None:
            yield GaugeMetricFamily("applier_pending_transactions", "Transactions read from the source and "
                                    "not committed on the target yet", value=pending)
        in_flight = GaugeMetricFamily("applier_worker_in_flight", "Transactions given to the worker and not "
                                      "committed yet (its queue: held back, queued or running)",
                                      labels=["worker"])
        for i, n in enumerate(live["in_flight"]):
            in_flight.add_metric([str(i + 1)], n)
        yield in_flight
        yield GaugeMetricFamily("applier_waiting_transactions", "Transactions waiting for a conflict to clear "
                                "(given to no worker yet)", value=live["waiting"])
        info = InfoMetricFamily("applier_position", "The applied position: every source transaction up to "
                                "it has committed")
        info.add_metric([], {"file": live["position_file"], "pos": str(live["position"]), "gtid": live["gtid"]})
        yield info
        behind_bytes, behind_txns = self._behind(live)
        if behind_bytes is not None:
            yield GaugeMetricFamily("applier_behind_bytes", "Source binlog bytes past the applied position "
                                    "(replay: to the end of the last file given)", value=behind_bytes)
        if behind_txns is not None:
            yield GaugeMetricFamily("applier_behind_transactions", "Source transactions not committed on the "
                                    "target yet, read or not (from GTIDs)", value=behind_txns)

    def _behind(self, live: dict) -> tuple[int | None, int | None]:
        reading = self.coord.reading
        file, pos = live["position_file"], live["position"]
        if isinstance(reading, FileReading):
            infos = reading.files.files
            if not file:
                file, pos = infos[0].name, 4  # nothing applied from the files yet
            sizes = {i.name: i.size for i in infos}
            if file not in sizes:
                return None, None
            return bytes_behind(file, pos, infos[-1].name, infos[-1].size, sizes), None
        source = self.source.get()
        if source is None:
            return None, None
        behind_bytes = bytes_behind(file, pos, source.file, source.pos, source.sizes) if file else None
        behind_txns = None
        if live.get("pending") is not None and live.get("beyond") is not None and live["gtid"]:
            past = transactions_past(live["gtid"], source.gtid,
                                     lambda: self.source.file_start(file) if file else None)
            if past is not None:
                behind_txns = max(live["pending"], past - live["beyond"])
        return behind_bytes, behind_txns

    def close(self) -> None:
        self.source.close()


class Exporter:
    """The running HTTP server; ``shutdown()`` stops it and closes its source connection."""

    def __init__(self, server, collector: ApplierCollector) -> None:
        self._server = server
        self._collector = collector

    def shutdown(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._collector.close()


def serve(listen: str, coord: Coordinator, source: SourceConfig | None) -> Exporter:
    """Start the HTTP server on ``listen`` ("host:port"); returns it (``shutdown()``)."""
    try:
        from prometheus_client import CollectorRegistry, start_http_server
    except ImportError:  # pragma: no cover - a declared dependency
        raise ConfigError("[metrics] listen is set but prometheus_client is not installed: "
                          "pip install prometheus_client") from None
    host, _, port = listen.rpartition(":")
    registry = CollectorRegistry(auto_describe=False)
    collector = ApplierCollector(coord, source)
    registry.register(collector)
    try:
        server, _thread = start_http_server(int(port), addr=host or "127.0.0.1", registry=registry)
    except OSError as e:
        raise ConfigError(f"[metrics] listen = {listen!r}: cannot listen there ({e.strerror})") from None
    return Exporter(server, collector)

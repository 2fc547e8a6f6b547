"""Prometheus metrics of a running `applier run` / `applier replay` (`[metrics] listen`).

Served by prometheus_client's HTTP server on its own thread; every scrape reads the
coordinator's counters and a snapshot of the running pass (``Coordinator.live``), so
nothing is updated on the hot path for it. What it shows:

* counters: source transactions read, applied, rows, barriers, big (streamed)
  transactions, skipped (filtered out / committed before a restart), batch retries,
  routing waits; a histogram of transactions per target commit;
* gauges: lag in seconds (age of the oldest transaction read and not applied; 0 when
  caught up), transactions in flight per worker, transactions waiting for a conflict,
  bytes behind the source (its binlog position, read at most every 5 s on a connection
  of its own; dump mode only);
* info: the applied position and GTID position.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator

from ..binlog.position import bytes_between
from ..config import SourceConfig
from ..db.connect import connect, flavor_and_version
from ..db.sql import text
from ..errors import ApplierError, ConfigError
from ..metrics import BATCH_BUCKETS
from ..pipeline.coordinator import Coordinator

log = logging.getLogger(__name__)

SOURCE_EVERY = 5.0  # seconds between two reads of the source's binlog position


class _SourcePosition:
    """The source's current binlog position, cached."""

    def __init__(self, cfg: SourceConfig | None) -> None:
        self.cfg = cfg
        self._conn = None
        self._at = 0.0
        self._value: tuple[str, int, dict[str, int]] | None = None
        self._lock = threading.Lock()

    def get(self) -> tuple[str, int, dict[str, int]] | None:
        if self.cfg is None:
            return None
        with self._lock:
            if time.monotonic() - self._at < SOURCE_EVERY:
                return self._value
            self._at = time.monotonic()
            try:
                if self._conn is None:
                    self._conn = connect(self.cfg, "source", connect_timeout=3, read_timeout=5)
                flavor, version = flavor_and_version(self._conn)
                cur = self._conn.cursor()
                cur.execute("SHOW BINARY LOG STATUS" if flavor == "mysql" and version >= (8, 2, 0)
                            else "SHOW MASTER STATUS")
                row = cur.fetchone()
                cur.execute("SHOW BINARY LOGS")
                sizes = {text(r[0]): int(r[1]) for r in cur.fetchall()}
                cur.close()
                self._value = (text(row[0]), int(row[1]), sizes)
            except Exception as e:  # noqa: BLE001 - a scrape must not fail for it
                log.debug("metrics: cannot read the source's position: %s", e)
                with contextlib.suppress(Exception):
                    if self._conn is not None:
                        self._conn.close()
                self._conn = None
                self._value = None
            return self._value


class ApplierCollector:
    """Yields the applier's metric families on every scrape."""

    def __init__(self, coord: Coordinator, source: SourceConfig | None) -> None:
        self.coord = coord
        self.source = _SourcePosition(source)

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
            ("applier_read_transactions", "Source transactions read", m.read),
            ("applier_transactions", "Source transactions applied (committed on the target)", m.transactions),
            ("applier_rows", "Rows applied", m.rows),
            ("applier_barriers", "Transactions applied alone (DDL, tables without keys or with foreign keys)",
             m.barriers),
            ("applier_big_transactions", "Transactions above big_txn_rows, streamed", m.big_transactions),
            ("applier_skipped_filtered", "Transactions touching only filtered databases", m.skipped_filtered),
            ("applier_skipped_recovered", "Transactions committed before a restart, skipped",
             m.skipped_recovered),
            ("applier_retries", "Batches run again after a deadlock or lock-wait timeout", m.retries),
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
            return
        yield GaugeMetricFamily("applier_lag_seconds", "Age of the oldest source transaction read and "
                                "not applied yet (0: caught up with what was read)", value=live["lag_seconds"])
        in_flight = GaugeMetricFamily("applier_worker_in_flight", "Transactions queued or running, per worker",
                                      labels=["worker"])
        for i, n in enumerate(live["in_flight"]):
            in_flight.add_metric([str(i + 1)], n)
        yield in_flight
        yield GaugeMetricFamily("applier_waiting_transactions", "Transactions waiting for a conflict to clear",
                                value=live["waiting"])
        info = InfoMetricFamily("applier_position", "Every source transaction up to it has committed")
        info.add_metric([], {"file": live["position_file"], "pos": str(live["position"]),
                             "gtid": live["gtid"]})
        yield info
        source = self.source.get()
        if source is not None and live["position_file"]:
            file, pos, sizes = source
            with contextlib.suppress(ApplierError):  # a file name without a number
                yield GaugeMetricFamily("applier_behind_bytes", "Source binlog bytes not applied yet",
                                        value=bytes_between(live["position_file"], live["position"],
                                                            file, pos, sizes))


def serve(listen: str, coord: Coordinator, source: SourceConfig | None):
    """Start the HTTP server on ``listen`` ("host:port"); returns it (``shutdown()``)."""
    try:
        from prometheus_client import CollectorRegistry, start_http_server
    except ImportError:  # pragma: no cover - a declared dependency
        raise ConfigError("[metrics] listen is set but prometheus_client is not installed: "
                          "pip install prometheus_client") from None
    host, _, port = listen.rpartition(":")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ApplierCollector(coord, source))
    try:
        server, _thread = start_http_server(int(port), addr=host or "127.0.0.1", registry=registry)
    except OSError as e:
        raise ConfigError(f"[metrics] listen = {listen!r}: cannot listen there ({e.strerror})") from None
    return server

"""A running applier's live figures for `applier status`: two scrapes of its Prometheus
endpoint (``[metrics] listen``, ``ops/exporter.py``) ``interval`` seconds apart give the
current apply rate; the second gives lag, per-worker queues and the waiting line.

No answer (the applier is not running, or runs without metrics) is a ``Live`` whose
``error`` says so: status still reports the checkpoint. Loopback HTTP only, bounded by
``TIMEOUT`` per scrape.
"""

from __future__ import annotations

import time
import urllib.request
from dataclasses import dataclass, field

TIMEOUT = 3.0


@dataclass(frozen=True)
class Live:
    listen: str
    error: str = ""
    rate: float | None = None  # transactions applied per second, between the two scrapes
    lag_seconds: float | None = None
    in_flight: tuple[int, ...] = field(default_factory=tuple)  # per worker, queued or running
    waiting: int | None = None
    transactions: int | None = None  # applied since the applier started

    def line(self) -> str:
        if self.error:
            return f"live ({self.listen}):  {self.error}"
        parts = [f"{self.rate:.0f} transactions/s" if self.rate is not None else "rate unknown"]
        if self.lag_seconds is not None:
            parts.append(f"lag {self.lag_seconds:.1f} s")
        if self.in_flight:
            parts.append("in flight per worker " + ",".join(str(n) for n in self.in_flight))
        if self.waiting is not None:
            parts.append(f"waiting {self.waiting}")
        return f"live ({self.listen}):  " + "; ".join(parts)


def parse(text: str) -> dict[str, float]:
    """Prometheus text format → {name{labels}: value} (labels as written)."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[s.name + (f"{{{labels}}}" if labels else "")] = s.value
    return out


def scrape(listen: str) -> dict[str, float]:
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    url = f"http://{host}:{port}/metrics"
    with urllib.request.urlopen(url, timeout=TIMEOUT) as r:  # noqa: S310 - http to the configured listen
        return parse(r.read().decode())


def read_live(listen: str, interval: float = 1.0) -> Live:
    try:
        first = scrape(listen)
        t0 = time.monotonic()
        time.sleep(interval)
        second = scrape(listen)
        elapsed = time.monotonic() - t0
    except (OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        return Live(listen, error=f"no answer ({reason}): not running, or not with these [metrics]")
    done = second.get("applier_transactions_total")
    before = first.get("applier_transactions_total")
    workers = sorted((k for k in second if k.startswith("applier_worker_in_flight{")),
                     key=lambda k: int(k.split('"')[1]))
    return Live(
        listen,
        rate=(done - before) / elapsed if done is not None and before is not None and elapsed > 0 else None,
        lag_seconds=second.get("applier_lag_seconds"),
        in_flight=tuple(int(second[k]) for k in workers),
        waiting=int(second["applier_waiting_transactions"]) if "applier_waiting_transactions" in second else None,
        transactions=int(done) if done is not None else None,
    )

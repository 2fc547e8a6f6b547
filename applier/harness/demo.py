"""`applier demo`: the whole job on an embedded default, end to end.

Starts a throwaway MariaDB (or MySQL 9.7: ``flavor``) source and target (temp datadirs, free loopback ports), runs
a workload on the source, runs the applier until it has caught up, runs `check`, and
returns a summary. The servers are always stopped.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .. import config
from ..metrics import Metrics
from ..ops.check import CheckReport, check
from ..pipeline.coordinator import Coordinator
from . import sandbox, workload


@dataclass(frozen=True)
class DemoResult:
    workload_transactions: int
    workload_seconds: float
    apply: Metrics
    report: CheckReport


def run_demo(transactions: int = 2000, connections: int = 4, workers: int = 4, policy: str = "writeset",
             keep: bool = False, say=print, flavor: str = "mariadb") -> DemoResult:
    base = Path(tempfile.mkdtemp(prefix="mts-demo-"))
    source = target = None
    try:
        product = sandbox.FLAVORS[flavor].product
        say(f"starting a throwaway {product} source and target under {base} ...")
        source, target = sandbox.start_pair(base, flavor=flavor)
        file, pos = source.binlog_position()
        sc, tc = source.server_config(), target.server_config()
        say(f"source on 127.0.0.1:{sc.port}, target on 127.0.0.1:{tc.port}; binlog starts at {file}:{pos}")
        say(f"workload: {transactions} transactions from {connections} connections ...")
        workload.prepare(sc, "demo", tables=4, rows=1000)
        wl = workload.run(sc, "demo", "uniform", transactions, connections, tables=4, rows=1000)
        cfg = config.Config(
            source=config.SourceConfig(host=sc.host, port=sc.port, user=sc.user, password=sc.password,
                                       start_file=file, start_pos=pos),
            target=config.TargetConfig(host=tc.host, port=tc.port, user=tc.user, password=tc.password),
            apply=config.ApplyConfig(workers=workers, policy=policy, stop_at_end=True),
        )
        say(f"applying with {workers} workers, policy {policy} ...")
        started = time.monotonic()
        metrics = Coordinator(cfg).run()
        say(f"applied {metrics.transactions} transactions in {time.monotonic() - started:.2f}s")
        say("checking source against target ...")
        report = check(sc, tc, databases=("demo",))
        return DemoResult(transactions, wl.seconds, metrics, report)
    finally:
        for server in (target, source):
            if server is not None:
                server.stop()
        if not keep:
            shutil.rmtree(base, ignore_errors=True)

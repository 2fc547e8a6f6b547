"""Helpers shared by integration tests: configs that point the applier at the session
servers, and a run-to-catch-up call. Each test replicates only its own database and
keeps its own checkpoint schema, so tests sharing the servers do not interfere."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from applier import config
from applier.binlog.position import MysqlGtidSet
from applier.harness.configfile import config_toml, render_toml  # noqa: F401 - for tests
from applier.harness.sandbox import LocalMariadb
from applier.metrics import Metrics
from applier.ops.check import check
from applier.pipeline.coordinator import Coordinator


def make_config(
    source: LocalMariadb,
    target: LocalMariadb,
    db: str,
    *,
    start: tuple[str, int] | None = None,
    **apply: object,
) -> config.Config:
    """A config replicating database ``db`` from ``start`` (default: the source's
    current position), in catch-up mode (exit at the end of the binlog)."""
    sc, tc = source.server_config(), target.server_config()
    file, pos = start or source.binlog_position()
    apply.setdefault("stop_at_end", True)
    apply.setdefault("databases", (db,))
    apply.setdefault("adapt_workers", False)  # every worker fed (tests/conftest.py)
    return config.Config(
        source=config.SourceConfig(host=sc.host, port=sc.port, user=sc.user, password=sc.password,
                                   start_file=file, start_pos=pos, reconnect_attempts=2),
        target=config.TargetConfig(host=tc.host, port=tc.port, user=tc.user, password=tc.password,
                                   checkpoint_schema=f"ckpt_{db}"),
        apply=config.ApplyConfig(**apply),  # type: ignore[arg-type]
    )


def run_applier(cfg: config.Config) -> Metrics:
    return Coordinator(cfg).run()


def assert_same(source: LocalMariadb, target: LocalMariadb, db: str) -> None:
    report = check(source.server_config(), target.server_config(), databases=(db,))
    assert report.ok, str(report)
    assert report.tables_checked > 0


def proc_stats() -> Iterator[tuple[int, list[str]]]:
    """(pid, fields of /proc/pid/stat after the command name) for every process:
    fields[0] is the state, [1] the parent pid, [2] the process group."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # exited meanwhile
        yield int(entry), stat[stat.rindex(")") + 2 :].split()


def source_transactions(source: LocalMariadb) -> int:
    """Every binlogged transaction of the source so far: MariaDB's GTID sequence number
    (domain 0); MySQL's ``gtid_executed``, counted (a server's own transactions only
    appear there, every one once)."""
    pos = source.gtid_position()
    if source.flavor == "mysql":
        return MysqlGtidSet.parse(pos).count()
    return max((int(g.split("-")[2]) for g in pos.split(",") if g.startswith("0-")), default=0)

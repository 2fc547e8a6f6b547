"""`applier bench`: time catch-up of one backlog, native replica vs the applier.

How (same backlog for every contender):

1. Start a throwaway source and a *seed* target (``sandbox``). Create the tables on the
   source (built-in ``workload.prepare`` or ``sysbench ... prepare``), copy them to the
   seed with the applier itself, drop the seed's checkpoint schema, record the source
   binlog position ``P0`` and stop the seed cleanly: its basedir is the snapshot.
2. Generate the backlog on the source once (``P0`` .. ``P_end``).
3. ``decode``: read the backlog with the coordinator's own stages (``decode``: source,
   intake, dispatcher over a pool that acknowledges at once) and no target writes. That
   is the coordinator's ceiling in transactions/s.
4. Each contender gets a fresh copy of the snapshot (``LocalServer.clone``) and its own
   server, then catches up from ``P0``:

   * native: the server's own replica from ``P0`` by file/position
     (``contenders.run_native``). MariaDB: ``slave_parallel_threads`` and
     ``slave_parallel_mode`` (conservative, optimistic), ``START SLAVE``. MySQL
     (``--flavor mysql``): ``replica_parallel_workers`` (0 threads: one worker) and
     ``replica_preserve_commit_order`` (mode ordered = ON, MySQL's default, or
     unordered), ``START REPLICA``. Timed from the start until the replica status has
     executed up to ``P_end`` (the IO thread fetches while the SQL threads apply, like a
     real lagging replica).
   * applier: ``applier run --stop-at-end`` as a subprocess (so its CPU and memory are
     its own); the time is the applier's own ``seconds`` (from start-up, preflight and
     worker spawn included, to caught up); CPU is user+sys of the process and its
     workers (``RUSAGE_CHILDREN``), peak RSS the largest sum over its process tree
     sampled every 0.2 s.

   Then ``check`` compares source and target; every row of the table says if they match.

TPS is always the backlog's transaction count (from the decode pass) divided by the
contender's time, so every contender is measured against the same work.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import MySQLdb

from ... import config
from ...binlog.position import BinlogPosition
from ...errors import ApplierError
from ...ops.check import check
from ...pipeline.coordinator import Coordinator
from .. import sandbox, workload
from ..configfile import private_file, sysbench_options
from .contenders import (
    IoWatch,
    apply_config,
    copy_binlogs,
    fresh_target,
    run_applier_process,
    run_native,
    run_pipe,
    server_cpu,
    settle,
    start_io_thread,
)
from .decode import DECODE_RUNS, measure_decode
from .report import BenchReport, RunResult, write

BUILTIN = {  # name -> (workload kind, connections)
    "uniform": ("uniform", 8),
    "hot": ("hot", 8),
    "single": ("uniform", 1),  # one source connection: commit groups of one
    "big": ("big", 4),  # 8 transactions updating 20,000 rows each
    "big-insert": ("big-insert", 4),  # ... inserting 20,000 rows each
    "big-delete": ("big-delete", 4),  # ... deleting 20,000 rows each
    "fk": ("fk", 8),  # foreign keys: barriers for the applier
}
SYSBENCH = ("oltp_write_only", "oltp_insert")
WORKLOADS = (*BUILTIN, *SYSBENCH)
NATIVE_MODES = {  # the native contenders' parallel modes, per flavor (contenders.native_settings)
    "mariadb": ("conservative", "optimistic"),  # slave_parallel_mode
    "mysql": ("ordered", "unordered"),  # replica_preserve_commit_order ON / OFF
}
ORDERED = " ordered"  # an applier contender's mode suffixes: preserve_commit_order,
VERIFIED = " verified"  # verify_before_image


def mode_parts(mode: str) -> tuple[str, bool, bool]:
    """An applier contender's mode -> (policy, preserve_commit_order, verify_before_image)."""
    verified = mode.endswith(VERIFIED)
    mode = mode.removesuffix(VERIFIED)
    return mode.removesuffix(ORDERED), mode.endswith(ORDERED), verified
DB = "bench"
SYSBENCH_DB = "sbtest"


@dataclass(frozen=True)
class BenchOptions:
    workload: str = "uniform"
    transactions: int = 20_000
    workers: tuple[int, ...] = (1, 4, 8)
    policies: tuple[str, ...] = ("writeset",)
    native_threads: tuple[int, ...] = (0, 4, 16)
    native_modes: tuple[str, ...] = ()  # () = the flavor's (NATIVE_MODES)
    out: Path = Path("benchmarks/out")
    tables: int = 8
    rows: int = 50_000  # rows per table
    durable: bool = True  # innodb_flush_log_at_trx_commit=1 on the timed targets (else 2)
    target_binlog: bool = False  # the timed targets binlog, sync_binlog=1 (a replica with replicas)
    sysbench_threads: int = 16  # source client threads of the sysbench workloads
    timeout: float = 900.0  # per contender
    keep: bool = False
    commit_order: bool = False  # the applier contenders run with preserve_commit_order
    verify_before_image: bool = False  # ... and/or with verify_before_image
    files: bool = False  # also the file sources: the mariadb-binlog | mariadb pipe, replay, relay-log
    flavor: str = "mariadb"  # of the source, the targets and the native replica: mariadb | mysql

    @property
    def modes(self) -> tuple[str, ...]:
        """The native contenders' modes: the chosen ones, or the flavor's."""
        return self.native_modes or NATIVE_MODES[self.flavor]

    @classmethod
    def quick(cls, **kw: Any) -> BenchOptions:
        base = {
            "transactions": 2000,
            "workers": (1, 4),
            "native_threads": (0, 4),
            "native_modes": {"mariadb": ("optimistic",), "mysql": ("ordered",)}[kw.get("flavor") or "mariadb"],
            "tables": 4,
            "rows": 1000,
        }
        base.update({k: v for k, v in kw.items() if v is not None})
        return cls(**base)


def _plan(opts: BenchOptions) -> list[tuple[str, int, str]]:
    runs: list[tuple[str, int, str]] = []
    for n in opts.native_threads:
        if n == 0:
            runs.append(("native", 0, "serial"))
        else:
            runs += [("native", n, mode) for mode in opts.modes]
    suffix = (ORDERED if opts.commit_order else "") + (VERIFIED if opts.verify_before_image else "")
    kinds = ("replay", "relay", "relay-fetched", "applier") if opts.files else ("applier",)
    if opts.files:
        runs.append(("pipe", 1, "serial"))
    runs += [(k, w, p + suffix) for k in kinds for p in opts.policies for w in opts.workers]
    return runs


def _label(kind: str, threads: int, mode: str) -> str:
    if kind == "native":
        return "native 1 thread" if threads == 0 else f"native {threads} {mode}"
    if kind == "pipe":
        return "mariadb-binlog | mariadb"
    names = {"replay": "replay", "relay": "relay-log", "relay-fetched": "relay-log fetched"}
    return names.get(kind, "applier") + f" {threads} {mode}"


def run_bench(opts: BenchOptions, say=print, progress: bool = True) -> BenchReport:
    if opts.workload not in WORKLOADS:
        raise ApplierError(f"unknown workload {opts.workload!r}; one of {', '.join(WORKLOADS)}")
    if opts.flavor not in NATIVE_MODES:
        raise ApplierError(f"unknown flavor {opts.flavor!r}; one of {', '.join(NATIVE_MODES)}")
    for mode in opts.modes:
        if mode not in NATIVE_MODES[opts.flavor]:
            raise ApplierError(f"unknown native mode {mode!r} for {opts.flavor}; one of "
                               f"{', '.join(NATIVE_MODES[opts.flavor])}")
    if opts.files and opts.flavor != "mariadb":
        raise ApplierError("--files compares with the mariadb-binlog | mariadb pipe and the "
                           "MariaDB relay log: use it with --flavor mariadb")
    from tqdm import tqdm

    plan = _plan(opts)
    base = Path(tempfile.mkdtemp(prefix="mts-bench-"))
    source = seed = None
    db = SYSBENCH_DB if opts.workload in SYSBENCH else DB
    bar = tqdm(total=len(plan) + 2, desc="setup", unit="run", disable=not progress, file=sys.stderr)
    log = bar.write if progress else say
    try:
        # 1. source + seed snapshot
        source = sandbox.make_source(base / "source", flavor=opts.flavor)
        seed = sandbox.make_target(base / "seed", name="seed", flavor=opts.flavor)
        source.start()
        seed.start()
        origin = source.binlog_position()
        sc = source.server_config()
        bar.set_description(f"prepare {opts.workload}")
        if opts.workload in SYSBENCH:
            source.execute(f"CREATE DATABASE {SYSBENCH_DB}")
            _sysbench(opts.workload, source, opts, "prepare")
        else:
            rows, _ = workload.big_sizes(BUILTIN[opts.workload][0], opts.rows)
            workload.prepare(sc, DB, tables=opts.tables, rows=rows, fk=opts.workload == "fk")
        p0 = source.binlog_position()
        Coordinator(apply_config(source, seed, origin, workers=4)).run()
        seed.execute(f"DROP DATABASE IF EXISTS {config.TargetConfig().checkpoint_schema}")
        seed.stop()
        # 2. the backlog
        bar.set_description(f"backlog {opts.transactions} txns")
        t0 = time.perf_counter()
        if opts.workload in SYSBENCH:
            _sysbench(
                opts.workload,
                source,
                opts,
                f"--threads={opts.sysbench_threads}",
                f"--events={opts.transactions}",
                "--time=0",
                "--rand-seed=1",
                "--report-interval=0",
                "run",
            )
        else:
            kind, conns = BUILTIN[opts.workload]
            rows, big_rows = workload.big_sizes(kind, opts.rows)
            workload.run(
                sc, DB, kind, opts.transactions, conns, tables=opts.tables, rows=rows, big_rows=big_rows
            )
        gen_seconds = time.perf_counter() - t0
        end = source.binlog_position()
        settle(source)
        files = copy_binlogs(source, p0, end, base / "binlogs") if opts.files else []
        bar.update(1)
        # 3. decode ceiling
        bar.set_description("decode")
        decode = measure_decode(apply_config(source, source, p0, max(opts.workers), opts.policies[0]),
                                opts.flavor, BinlogPosition(*p0))
        bar.update(1)
        backlog = {
            "workload": opts.workload,
            "database": db,
            "start": list(p0),
            "end": list(end),
            "transactions": decode["transactions"],
            "rows": decode["rows"],
            "binlog_bytes": end[1] - p0[1] if end[0] == p0[0] else None,
            "source_seconds": round(gen_seconds, 2),
            "source_tps": round(decode["transactions"] / gen_seconds, 1),
        }
        log(
            f"backlog: {backlog['transactions']} transactions, {backlog['rows']} rows "
            f"({p0[0]}:{p0[1]} .. {end[0]}:{end[1]}), made in {gen_seconds:.1f}s on the source"
        )
        log(f"decode only: {decode['tps']:,.0f} transactions/s (best of {DECODE_RUNS})")
        report = BenchReport(
            options={k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()},
            environment=_environment(opts, source),
            backlog=backlog,
            decode=decode,
        )
        # 4. contenders
        for i, (kind, threads, mode) in enumerate(plan):
            label = _label(kind, threads, mode)
            bar.set_description(label)
            r = _one_run(
                opts, source, seed, base / f"run{i}", kind, threads, mode, p0, end, backlog, db, files
            )
            r.label = label
            report.runs.append(r)
            log(
                f"{label}: {r.seconds:.2f}s, {r.tps:,.0f} TPS, check "
                f"{'equal' if r.check_ok else r.error or r.check}"
                + (f" (the target's IO thread fetched the backlog in {r.io_fetch_s:.2f}s)"
                   if r.io_fetch_s is not None else "")
            )
            bar.update(1)
        native1 = next(
            (r.tps for r in report.runs if r.contender == "native" and r.threads == 0 and r.tps),
            None,
        )
        pipe = next((r.tps for r in report.runs if r.contender == "pipe" and r.tps), None)
        for r in report.runs:
            r.ratio = round(r.tps / native1, 2) if native1 and r.tps else None
            r.vs_pipe = round(r.tps / pipe, 2) if pipe and r.tps else None
        write(report, opts.out)
        return report
    finally:
        bar.close()
        for server in (seed, source):
            if server is not None:
                server.stop()
        if not opts.keep:
            shutil.rmtree(base, ignore_errors=True)


def _one_run(opts, source, seed, where, kind, threads, mode, p0, end, backlog, db, files) -> RunResult:
    r = RunResult(kind, "", threads, mode)
    target = None
    try:
        target = fresh_target(seed, where, f"{kind}-{threads}", opts.durable, opts.target_binlog)
        tcpu0, scpu0 = server_cpu(target), server_cpu(source)
        if kind in ("native", "pipe"):
            t0 = time.perf_counter()
            r.seconds = (run_native(source, target, p0, end, threads, mode, opts.timeout) if kind == "native"
                         else run_pipe(target, files, p0, where, opts.timeout))
            r.wall_seconds = time.perf_counter() - t0
        else:
            policy, ordered, verified = mode_parts(mode)
            cfg = apply_config(source, target, p0, threads, policy, ordered=ordered, verify=verified)
            args: tuple[str, ...] = ("run",)
            if kind == "replay":
                args = ("replay", "--no-progress", "--start-position", f"{p0[0]}:{p0[1]}", *map(str, files))
            elif kind in ("relay", "relay-fetched"):
                # relay: the IO thread fetches while the applier applies, as the native
                # replica's does; relay-fetched: the backlog is in the relay logs first (a
                # replica whose SQL thread fell behind), the applier alone is timed
                cfg = cfg.with_overrides("source", mode="relay-log").with_overrides("apply", stop_at_end=False)
                args = ("run", "--until-position", f"{end[0]}:{end[1]}")
                start_io_thread(source, target, p0)
                watch = IoWatch(target, end)
                watch.start()
                if kind == "relay-fetched":
                    if watch.wait(opts.timeout) is None:
                        raise ApplierError(f"the target's IO thread did not fetch the backlog within "
                                           f"{opts.timeout:g}s")
                    tcpu0 = server_cpu(target)  # the applier's run only
            res = run_applier_process(cfg, where, opts.timeout, args)
            if kind.startswith("relay"):
                r.io_fetch_s = watch.stop()
            r.seconds = float(res["summary"]["seconds"])
            r.wall_seconds = res["wall"]
            r.applier_cpu_s = round(res["cpu"], 2)
            r.applier_peak_rss_mb = round(res["peak_rss"] / 2**20, 1)
        r.target_cpu_s = round(server_cpu(target) - tcpu0, 2)
        r.source_cpu_s = round(server_cpu(source) - scpu0, 2)
        r.seconds = round(r.seconds, 3)
        r.wall_seconds = round(r.wall_seconds, 3)
        r.tps = round(backlog["transactions"] / r.seconds, 1)
        r.rows_per_s = round(backlog["rows"] / r.seconds, 1)
        rep = check(source.server_config(), target.server_config(), databases=(db,))
        r.check_ok, r.check = rep.ok, str(rep)
    except (ApplierError, MySQLdb.Error, OSError) as e:
        r.error = str(e)[-2000:]
    finally:
        if target is not None:
            target.stop()
        shutil.rmtree(where, ignore_errors=True)
    return r


def _sysbench(test: str, server: sandbox.LocalServer, opts: BenchOptions, *args: str) -> None:
    exe = shutil.which("sysbench")
    if exe is None:
        raise ApplierError(
            "sysbench is not installed (apt-get install -y sysbench); "
            f"use a built-in workload: {', '.join(BUILTIN)}"
        )
    # the connection options (the password among them) in a 0600 file, not on the
    # command line where `ps` shows them
    conf = private_file(sysbench_options(server, SYSBENCH_DB), prefix="mts-sysbench-", suffix=".conf")
    cmd = [exe, test, f"--config-file={conf}", f"--tables={opts.tables}", f"--table-size={opts.rows}", *args]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    finally:
        os.unlink(conf)
    if out.returncode != 0:
        raise ApplierError(
            f"sysbench {test} {args[-1]} failed:\n{(out.stdout + out.stderr)[-2000:]}"
        )


def _environment(opts: BenchOptions, source: sandbox.LocalServer) -> dict[str, Any]:
    (version,) = source.query("SELECT VERSION()")[0]
    return {
        "cpus": os.cpu_count(),
        "server": f"{source.product} {version.decode() if isinstance(version, bytes) else version}",
        "python": sys.version.split()[0],
        "innodb_flush_log_at_trx_commit": 1 if opts.durable else 2,
        "target_binlog": "sync_binlog=1" if opts.target_binlog else "off",
        "note": "source, target(s) and applier share the same machine",
    }

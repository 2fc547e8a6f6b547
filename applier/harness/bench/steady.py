"""`applier bench --steady RATE --seconds S`: replica lag while the source runs at a fixed rate.

A replica spends most of its life keeping up; what a DBA watches then is how far behind
the source it is. How (one source, one target, contenders one after the other):

1. Start a throwaway source and a target (``sandbox``; the target durable unless
   ``--no-durable``). Create the tables on the source (built-in ``workload.prepare`` or
   ``sysbench prepare``) and the heartbeat row (``heartbeat``), and make the target a
   native replica of the source from before them (file/position): it copies them.
   The heartbeat writer (source) and reader (target) run from then on.
2. RATE ``N%``: measure native single's catch-up rate for the same transactions: with
   the replica stopped, make a backlog of ``--transactions`` on the source (unpaced,
   the same connections), let the source write back its pages, then time
   ``START SLAVE`` (``slave_parallel_threads = 0``) until it executed the backlog's end
   (``contenders.run_native``, as the catch-up bench does). RATE = N% of that TPS.
3. Per contender (``live``: native single, native N optimistic/conservative, applier N
   workers): take the target over, wait until it has caught up (the target holds the
   heartbeat the source holds), warm up (the load for ``WARMUP_SECONDS``, untimed: the
   applier reads each table's definition the first time it meets it) and catch up
   again, then run the paced load for ``--seconds`` (``load``: built-in
   ``workload.run_paced``, or sysbench ``--rate``), note the lag samples of that window,
   wait until it has caught up again (the time it took is reported), pause the
   heartbeat, ``check`` source vs target, let both servers write back their pages,
   resume the heartbeat, give the target back.
4. At the end (the native replica applying again): ``applier check`` from the CLI.

Per contender: p50/p99/max lag over the load phase, the lag at its end and whether it
stayed bounded (``heartbeat.lag_stats``), the rate the source reached (the contenders'
CPU competes with the source on one machine), CPU of the applier, the target and the
source as % of one core, and the lag series for the chart.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import MySQLdb

from ...errors import ApplierError
from ...ops.check import check
from .. import sandbox
from . import (
    DB,
    NATIVE_MODES,
    SYSBENCH,
    BenchOptions,
    _environment,
    _label,
    _plan,
    mode_parts,
)
from .contenders import run_native, server_cpu
from .heartbeat import Heartbeat, create_table, lag_stats
from .live import ApplierLive, NativeLive, change_master, native_health, stop_native
from .load import BUILTIN, Load
from .report import SteadyReport, SteadyRun, write_steady

log = logging.getLogger(__name__)

WORKLOADS = (*BUILTIN, *SYSBENCH)
PRE_SECONDS = 1.0  # lag shown on the chart before the load starts
WARMUP_SECONDS = 2.0  # the load, untimed, before each contender's timed phase
SETTLE_SECONDS = 60.0  # at most, for the servers to write back their dirty pages
_RATE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(%?)\s*$")


@dataclass(frozen=True)
class SteadySpec:
    rate: str  # "200": transactions/s; "70%": of native single's catch-up rate
    seconds: float = 60.0  # the load phase
    connections: int = 4  # source connections of the load


def parse_rate(text: str) -> tuple[float, bool]:
    """``"200"`` -> (200.0, False); ``"70%"`` -> (70.0, True). ValueError otherwise."""
    m = _RATE.match(str(text))
    if m is None or float(m.group(1)) <= 0:
        raise ValueError(f"{text!r}: a rate in transactions/s (200) or a share of native "
                         "single's catch-up rate (70%)")
    return float(m.group(1)), bool(m.group(2))


def run_steady(opts: BenchOptions, spec: SteadySpec, say=print, progress: bool = True) -> SteadyReport:
    value, percent = parse_rate(spec.rate)
    if opts.workload not in WORKLOADS:
        raise ApplierError(f"unknown workload {opts.workload!r} for --steady; one of {', '.join(WORKLOADS)}")
    if opts.flavor != "mariadb":
        raise ApplierError("--steady runs on MariaDB only (slave_parallel_mode contenders)")
    for mode in opts.modes:
        if mode not in NATIVE_MODES["mariadb"]:
            raise ApplierError(f"unknown native mode {mode!r}; one of {', '.join(NATIVE_MODES['mariadb'])}")
    if spec.seconds <= 0 or spec.connections < 1:
        raise ApplierError("--seconds and --connections must be positive")
    from tqdm import tqdm

    plan = _plan(opts)
    base = Path(tempfile.mkdtemp(prefix="mts-steady-"))
    bar = tqdm(total=len(plan) + 1 + percent, desc="setup", unit="step", disable=not progress,
               file=sys.stderr)
    tell = bar.write if progress else say
    source = target = hb = live = None
    load = Load(opts, spec.connections, base)
    dbs = (load.db,) if load.db == DB else (load.db, DB)
    try:
        # 1. source, target = its native replica, tables, heartbeat
        source = sandbox.make_source(base / "source")
        options = sandbox.target_options()
        if opts.durable:
            options["innodb_flush_log_at_trx_commit"] = "1"
        target = sandbox.LocalMariadb("target", base / "target", sandbox.free_port(), 2, False, options)
        source.start()
        target.start()
        origin = source.binlog_position()
        bar.set_description(f"prepare {opts.workload}")
        load.prepare(source)
        create_table(source, DB)
        change_master(target, source, origin)
        target.execute("START SLAVE")
        hb = Heartbeat(source, target, DB)
        hb.start()
        hb.wait_caught_up(opts.timeout, lambda: native_health(target))
        _quiesce(hb, source, target, opts.timeout, NativeLive(target, 0, "conservative"))
        bar.update(1)
        # 2. the rate
        reference = None
        if percent:
            bar.set_description(f"native 1 thread catch-up of {opts.transactions}")
            reference = _reference(opts, load, source, target, hb)
            tell(f"native 1 thread catch-up: {reference['transactions']} transactions in "
                f"{reference['seconds']:.2f}s = {reference['tps']:,.0f} TPS")
            bar.update(1)
        rate = value * reference["tps"] / 100 if reference else value
        report = SteadyReport(
            options={k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()},
            environment=_environment(opts, source),
            steady={"rate": spec.rate.strip(), "rate_tps": round(rate, 1), "seconds": spec.seconds,
                    "connections": load.connections, "workload": opts.workload},
            reference=reference,
        )
        tell(f"steady load: {rate:,.0f} transactions/s for {spec.seconds:g}s from {load.connections} "
            f"connections ({opts.workload})")
        # 3. the contenders, one after the other
        for i, (kind, threads, mode) in enumerate(plan):
            label = _label(kind, threads, mode)
            bar.set_description(label)
            if kind == "native":
                live = NativeLive(target, threads, mode)
            else:
                policy, ordered, verified = mode_parts(mode)
                live = ApplierLive(source, target, threads, policy, base / f"applier{i}",
                                   ordered=ordered, verify=verified)
            r = SteadyRun(kind, label, threads, mode, rate=round(rate, 1))
            try:
                _phase(r, live, load, rate, spec.seconds, source, target, hb, dbs, opts.timeout)
            except (ApplierError, MySQLdb.Error, OSError) as e:
                r.error = str(e)[-2000:]
            report.runs.append(r)
            try:
                live.deactivate()
            except (ApplierError, MySQLdb.Error, OSError) as e:
                # the shared target is in an unknown state: no further contender
                r.error = (r.error + "\n" if r.error else "") + f"giving the target back: {e}"[-2000:]
                r.check_ok = False
                tell(f"{label}: {r.error}")
                report.final_check = {"ok": False, "output": f"not run: {label} failed to give the target back"}
                break
            live = None
            lag = r.lag
            tell(f"{label}: " + (f"lag p50 {lag['p50']:.3f}s p99 {lag['p99']:.3f}s max {lag['max']:.3f}s "
                                f"({'bounded' if lag['bounded'] else 'NOT bounded'}), source "
                                f"{r.achieved_tps:,.0f} tx/s, check "
                                f"{'equal' if r.check_ok else r.check or 'DIFFERENT'}"
                                if lag.get("samples") else f"error: {r.error}"))
            bar.update(1)
        # 4. applier check, the native replica applying again
        if not report.final_check:
            bar.set_description("applier check")
            report.final_check = _final_check(source, target, hb, dbs, base, opts.timeout)
        write_steady(report, opts.out)
        return report
    finally:
        bar.close()
        if live is not None:
            live.kill()
        if hb is not None:
            hb.stop()
        for server in (target, source):
            if server is not None:
                server.stop()
        if not opts.keep:
            shutil.rmtree(base, ignore_errors=True)


def _phase(r: SteadyRun, live, load: Load, rate: float, seconds: float, source, target,
           hb: Heartbeat, dbs: tuple[str, ...], timeout: float) -> None:
    ts = time.monotonic()
    live.activate()
    log.info("%s: active after %.2fs", r.label, time.monotonic() - ts)
    hb.wait_caught_up(timeout, live.health)
    log.info("%s: caught up after %.2fs", r.label, time.monotonic() - ts)
    # warm-up, untimed: the applier reads each table's definition from the target the first
    # time its coordinator and each worker meet the table (~20-30 ms a lookup here); a
    # steady state has them all
    w0 = time.monotonic()
    load.run(source, rate, WARMUP_SECONDS)
    hb.wait_caught_up(timeout, live.health)
    r.warmup_lag_max = round(max((lag for _, lag in hb.between(w0, time.monotonic())), default=0.0), 4)
    log.info("%s: warmed up (max lag %.3fs) after %.2fs", r.label, r.warmup_lag_max, time.monotonic() - ts)
    time.sleep(PRE_SECONDS)  # a second of caught-up lag before the load, on the chart
    cpu0 = (live.cpu(), server_cpu(target), server_cpu(source), time.process_time(), live.coordinator_cpu())
    t0 = time.monotonic()
    done, elapsed, per_second = load.run(source, rate, seconds)
    t1 = time.monotonic()
    cpu1 = (live.cpu(), server_cpu(target), server_cpu(source), time.process_time(), live.coordinator_cpu())
    r.load_seconds = round(t1 - t0, 3)
    r.achieved_tps = round(done / elapsed, 1) if elapsed else 0.0
    r.source_series = per_second

    def pct(i: int) -> float:
        return round(100 * (cpu1[i] - cpu0[i]) / (t1 - t0), 1)

    if cpu0[0] is not None:
        r.applier_cpu_pct, r.coordinator_cpu_pct = pct(0), pct(4)
        r.applier_peak_rss_mb = round((live.peak_rss() or 0) / 2**20, 1)
    r.target_cpu_pct, r.source_cpu_pct = pct(1), pct(2)
    if load.builtin:
        r.client_cpu_pct = pct(3)
    r.caught_up_after_s = round(hb.wait_caught_up(timeout, live.health), 2)
    t2 = time.monotonic()
    r.lag = lag_stats(hb.samples, t0, t1)
    r.series = [[round(t - t0, 3), round(lag, 4)] for t, lag in hb.between(t0 - PRE_SECONDS, t2)]
    rep, r.exact_after_heartbeat_s = _quiesce(hb, source, target, timeout, live, dbs)
    r.exact_after_heartbeat_s = round(r.exact_after_heartbeat_s, 3)
    r.check_ok, r.check = rep.ok, str(rep)
    log.info("%s: caught up %.2fs after the load, checked and settled %.2fs after", r.label,
             r.caught_up_after_s, time.monotonic() - t2)


def _quiesce(hb: Heartbeat, source, target, timeout: float, live, dbs: tuple[str, ...] = ()):
    """With the heartbeat paused: wait until the target has everything (``_exactly``),
    compare ``dbs`` (if any), and let both servers write back their dirty pages, so the
    next contender does not pay for this one's. (check report or None, ``_exactly``'s
    seconds)"""
    hb.pause()
    try:
        hb.wait_caught_up(timeout, live.health)
        behind = _exactly(source, live, timeout)
        rep = check(source.server_config(), target.server_config(), databases=dbs) if dbs else None
        _settle(source, target)
    finally:
        hb.resume()
    return rep, behind


def _exactly(source, live, timeout: float) -> float:
    """Seconds until ``live`` has applied everything up to the source's binlog end (its
    own exact position: the native replica's executed position, the applier's checkpoint).
    The heartbeat alone is not enough for a replica that commits out of order: the row
    can be there while an earlier transaction, on another worker, is not yet."""
    end = source.binlog_position()
    started = time.monotonic()
    while not live.applied(end):
        live.health()
        if time.monotonic() - started > timeout:
            raise ApplierError(f"the target did not apply up to the source's {end[0]}:{end[1]} "
                               f"within {timeout:g}s")
        time.sleep(0.02)
    return time.monotonic() - started


def _settle(*servers, timeout: float = SETTLE_SECONDS) -> None:
    """``contenders.settle`` for several servers at once, polled every 0.1 s."""
    before = [s.query("SELECT @@GLOBAL.innodb_max_dirty_pages_pct")[0][0] for s in servers]
    for s in servers:
        s.execute("SET GLOBAL innodb_max_dirty_pages_pct = 0")
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(
                int(s.query("SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'")[0][1])
                for s in servers):
            time.sleep(0.1)
    finally:
        for s, pct in zip(servers, before, strict=True):
            s.execute(f"SET GLOBAL innodb_max_dirty_pages_pct = {float(pct)}")
    os.sync()


def _reference(opts: BenchOptions, load: Load, source, target, hb: Heartbeat) -> dict[str, Any]:
    """Native single's catch-up rate over a backlog of ``opts.transactions`` of the load's
    transactions, made while the replica is stopped (the catch-up bench's procedure)."""
    hb.pause()
    try:
        hb.wait_caught_up(opts.timeout, lambda: native_health(target))
        st = stop_native(target)
        start = (st["Relay_Master_Log_File"], int(st["Exec_Master_Log_Pos"]))
        t = time.monotonic()
        load.backlog(source, opts.transactions)
        made = time.monotonic() - t
        end = source.binlog_position()
        _settle(source, target, timeout=120)
        seconds = run_native(source, target, start, end, 0, "conservative", opts.timeout)
        target.execute("START SLAVE")
        hb.wait_caught_up(opts.timeout, lambda: native_health(target))
        _exactly(source, NativeLive(target, 0, "conservative"), opts.timeout)
        _settle(source, target)
    finally:
        hb.resume()
    return {"transactions": opts.transactions, "seconds": round(seconds, 3),
            "tps": round(opts.transactions / seconds, 1), "backlog_seconds": round(made, 2),
            "start": list(start), "end": list(end)}


def _final_check(source, target, hb: Heartbeat, dbs: tuple[str, ...], base: Path,
                 timeout: float) -> dict[str, Any]:
    """``applier check`` (the CLI) once the native replica has applied everything."""
    hb.pause()
    hb.wait_caught_up(timeout, lambda: native_health(target))
    hb.stop()
    _exactly(source, NativeLive(target, 0, "conservative"), timeout)
    checker = ApplierLive(source, target, 1, "writeset", base / "check")
    args = [a for d in dbs for a in ("-d", d)]
    try:
        out = checker.cli("check", *args)
        return {"ok": True, "output": out}
    except ApplierError as e:
        return {"ok": False, "output": str(e)}

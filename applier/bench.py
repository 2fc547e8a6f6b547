"""`applier bench`: time catch-up of one backlog, native replica vs the applier.

How (same backlog for every contender):

1. Start a throwaway source and a *seed* target (``sandbox``). Create the tables on the
   source (built-in ``workload.prepare`` or ``sysbench ... prepare``), copy them to the
   seed with the applier itself, drop the seed's checkpoint schema, record the source
   binlog position ``P0`` and stop the seed cleanly: its basedir is the snapshot.
2. Generate the backlog on the source once (``P0`` .. ``P_end``).
3. ``decode``: read the backlog with the coordinator's own code (source, transaction
   builder, writeset hashing, scheduler routing) but with no target writes: each routed
   transaction completes at once. That is the coordinator's ceiling in transactions/s.
4. Each contender gets a fresh copy of the snapshot (``cp -a`` of the basedir) and its
   own ``mariadbd``, then catches up from ``P0``:

   * native: ``CHANGE MASTER TO ... MASTER_LOG_FILE/POS = P0``, ``slave_parallel_threads``
     and ``slave_parallel_mode``, ``START SLAVE``; timed from ``START SLAVE`` until
     ``SHOW SLAVE STATUS`` has executed up to ``P_end`` (the IO thread fetches while the
     SQL threads apply, like a real lagging replica).
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

import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import MySQLdb

from . import config, sandbox, workload
from .check import check
from .checkpoint import Watermark
from .connect import connect
from .coordinator import Coordinator
from .errors import ApplierError
from .position import BinlogPosition
from .scheduler import Scheduler
from .schema import SchemaCache
from .target import TableCache
from .transactions import TransactionBuilder
from .writeset import Weigher, decode_keys

BUILTIN = {  # name -> (workload kind, connections)
    "uniform": ("uniform", 8),
    "hot": ("hot", 8),
    "single": ("uniform", 1),  # one source connection: commit groups of one
    "big": ("big", 4),
}
SYSBENCH = ("oltp_write_only", "oltp_insert")
WORKLOADS = (*BUILTIN, *SYSBENCH)
NATIVE_MODES = ("conservative", "optimistic")
DB = "bench"
SYSBENCH_DB = "sbtest"
_CLK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class BenchOptions:
    workload: str = "uniform"
    transactions: int = 20_000
    workers: tuple[int, ...] = (1, 4, 8)
    policies: tuple[str, ...] = ("writeset",)
    native_threads: tuple[int, ...] = (0, 4, 16)
    native_modes: tuple[str, ...] = NATIVE_MODES
    out: Path = Path("benchmarks/out")
    tables: int = 8
    rows: int = 50_000  # rows per table
    durable: bool = True  # innodb_flush_log_at_trx_commit=1 on the timed targets (else 2)
    sysbench_threads: int = 16  # source client threads of the sysbench workloads
    timeout: float = 900.0  # per contender
    keep: bool = False

    @classmethod
    def quick(cls, **kw: Any) -> BenchOptions:
        base = {
            "transactions": 2000,
            "workers": (1, 4),
            "native_threads": (0, 4),
            "native_modes": ("optimistic",),
            "tables": 4,
            "rows": 1000,
        }
        base.update({k: v for k, v in kw.items() if v is not None})
        return cls(**base)


@dataclass
class RunResult:
    contender: str  # "native" | "applier"
    label: str
    threads: int  # workers / slave_parallel_threads (0 = native single-threaded)
    mode: str  # native mode or applier policy
    seconds: float = 0.0
    wall_seconds: float = 0.0
    tps: float = 0.0
    rows_per_s: float = 0.0
    ratio: float | None = None  # tps / native single-threaded tps
    applier_cpu_s: float | None = None
    applier_peak_rss_mb: float | None = None
    target_cpu_s: float = 0.0
    source_cpu_s: float = 0.0
    check_ok: bool = False
    check: str = ""
    error: str = ""


@dataclass
class BenchReport:
    options: dict[str, Any]
    environment: dict[str, Any]
    backlog: dict[str, Any]
    decode: dict[str, Any]
    runs: list[RunResult] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "options": self.options,
            "environment": self.environment,
            "backlog": self.backlog,
            "decode": self.decode,
            "runs": [asdict(r) for r in self.runs],
        }

    def table(self) -> str:
        head = (
            "contender",
            "threads",
            "seconds",
            "TPS",
            "rows/s",
            "vs native-1",
            "applier CPU s",
            "peak RSS MB",
            "target CPU s",
            "check",
        )
        rows = [head]
        for r in self.runs:
            rows.append(
                (
                    r.label,
                    str(r.threads),
                    f"{r.seconds:.2f}",
                    f"{r.tps:,.0f}",
                    f"{r.rows_per_s:,.0f}",
                    "-" if r.ratio is None else f"{r.ratio:.2f}x",
                    "-" if r.applier_cpu_s is None else f"{r.applier_cpu_s:.1f}",
                    "-" if r.applier_peak_rss_mb is None else f"{r.applier_peak_rss_mb:.0f}",
                    f"{r.target_cpu_s:.1f}",
                    "equal" if r.check_ok else ("ERROR" if r.error else "DIFFERENT"),
                )
            )
        d = self.decode
        rows.append(
            (
                "decode only (no target)",
                str(d.get("workers", "")),
                f"{d['seconds']:.2f}",
                f"{d['tps']:,.0f}",
                f"{d['rows_per_s']:,.0f}",
                "-",
                "-",
                "-",
                "-",
                "-",
            )
        )
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = []
        for n, r in enumerate(rows):
            cells = [
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            ]
            lines.append("| " + " | ".join(cells) + " |")
            if n == 0:
                lines.append(
                    "|"
                    + "|".join(
                        "-" * (w + 1) + ":" if i else "-" * (w + 2) for i, w in enumerate(widths)
                    )
                    + "|"
                )
        return "\n".join(lines)


# -- helpers ------------------------------------------------------------------------------


def _proc_cpu(pid: int) -> float:
    """user+sys seconds of one process (0 if gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLK


def _server_cpu(server: sandbox.LocalMariadb) -> float:
    proc = server._proc  # noqa: SLF001 - setpriv execs mariadbd, so this is its pid
    return _proc_cpu(proc.pid) if proc is not None else 0.0


def _tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * _PAGE
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _apply_config(
    source: sandbox.LocalMariadb,
    target: sandbox.LocalMariadb,
    start: tuple[str, int],
    workers: int = 1,
    policy: str = "writeset",
) -> config.Config:
    sc, tc = source.server_config(), target.server_config()
    return config.Config(
        source=config.SourceConfig(
            host=sc.host,
            port=sc.port,
            user=sc.user,
            password=sc.password,
            start_file=start[0],
            start_pos=start[1],
        ),
        target=config.TargetConfig(host=tc.host, port=tc.port, user=tc.user, password=tc.password),
        apply=config.ApplyConfig(workers=workers, policy=policy, stop_at_end=True),
    )


def _toml(cfg: config.Config) -> str:
    out = []
    for section in ("source", "target", "apply"):
        out.append(f"[{section}]")
        for k, v in asdict(getattr(cfg, section)).items():
            if isinstance(v, bool):
                out.append(f"{k} = {'true' if v else 'false'}")
            elif isinstance(v, int | float):
                out.append(f"{k} = {v}")
            elif isinstance(v, tuple | list):
                out.append(f"{k} = {json.dumps(list(v))}")
            else:
                out.append(f"{k} = {json.dumps(v)}")
    return "\n".join(out) + "\n"


def _sysbench(test: str, server: sandbox.LocalMariadb, opts: BenchOptions, *args: str) -> None:
    exe = shutil.which("sysbench")
    if exe is None:
        raise ApplierError(
            "sysbench is not installed (apt-get install -y sysbench); "
            f"use a built-in workload: {', '.join(BUILTIN)}"
        )
    cmd = [
        exe,
        test,
        "--db-driver=mysql",
        "--mysql-host=127.0.0.1",
        f"--mysql-port={server.port}",
        f"--mysql-user={server.user}",
        f"--mysql-password={server.password}",
        f"--mysql-db={SYSBENCH_DB}",
        f"--tables={opts.tables}",
        f"--table-size={opts.rows}",
        *args,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        raise ApplierError(
            f"sysbench {test} {args[-1]} failed:\n{(out.stdout + out.stderr)[-2000:]}"
        )


# -- the decode ceiling ------------------------------------------------------------------


class _DecodeOnly(Coordinator):
    """The coordinator's read/group/hash/route path; routed transactions complete at once."""

    def measure(
        self, schema_server: config.ServerConfig, flavor: str, start: BinlogPosition
    ) -> dict:
        conn = connect(schema_server, "source")
        try:
            tables = TableCache(SchemaCache(conn))

            def apply_items(table_maps, items, net=None) -> int:  # streamed big transactions: count only
                n = 0
                for it in items:
                    t = tables.get(table_maps[it.table_id])
                    n += len(decode_keys(t.plan, it.op, it.body, it.version, frozenset()))
                return n

            self.flavor = flavor
            self._weigher = Weigher(conn)  # collation weights, as the real coordinator uses
            self.serial = SimpleNamespace(
                applier=SimpleNamespace(tables=tables, apply_items=apply_items)
            )
            self.recovery = SimpleNamespace(done=set())
            self.watermark = Watermark(None)
            self.scheduler = Scheduler(
                1 if self.cfg.apply.policy == "serial" else self.cfg.apply.workers
            )
            self.builder = TransactionBuilder()
            self._first_done: float | None = None
            self._last_done = 0.0
            started = time.perf_counter()
            self._stream(start, "")
            total = time.perf_counter() - started
        finally:
            conn.close()
        m = self.metrics
        # the rate once transactions flow: connecting and the dump request (~0.1 s, a
        # quarter of a 20,000-transaction run) are not what bounds a long catch-up
        first = self._first_done if self._first_done is not None else started
        seconds = max(self._last_done - first, 1e-9) * m.transactions / max(m.transactions - 1, 1)
        return {
            "transactions": m.transactions,
            "rows": m.rows,
            "seconds_with_setup": round(total, 3),
            "seconds": round(seconds, 3),
            "tps": round(m.transactions / seconds, 1),
            "rows_per_s": round(m.rows / seconds, 1),
            "workers": self.scheduler.workers,
            "policy": self.cfg.apply.policy,
            "barriers": m.barriers,
            "big_transactions": m.big_transactions,
        }

    def _dispatch(self, txn, keys) -> None:
        sched = self.scheduler
        worker = sched.route(keys)
        if worker is None:  # a conflict: the holders "finish" now
            self.metrics.waits += 1
            for w in range(sched.workers):
                if sched.busy(w):
                    sched.complete(w, txn.seq)
            worker = sched.route(keys)
        sched.assign(worker, txn.seq, keys)
        self._done(txn)
        # keep up to two in flight per worker so routing sees real holders
        if sched.busy(worker) > 2:
            sched.complete(worker, txn.seq)

    def _done(self, txn) -> None:
        now = time.perf_counter()
        if self._first_done is None:
            self._first_done = now
        self._last_done = now
        self.watermark.done(txn.seq)
        self.metrics.transactions += 1
        self.metrics.rows += txn.rows

    def _commit_serial(self, txn, *, streamed: bool, net=None) -> None:
        self._drain()
        self.metrics.barriers += 1
        if not streamed:
            with contextlib.suppress(Exception):
                txn.rows += self.serial.applier.apply_items(txn.table_maps, txn.items)
        self._done(txn)

    def _begin_streaming(self, cur, *, count: bool = False) -> None:
        self._drain()
        cur.streaming = True
        self.metrics.big_transactions += 1
        rows = self.serial.applier.apply_items(cur.txn.table_maps, cur.txn.items)
        if count:
            cur.txn.rows += rows
        cur.txn.items.clear()

    def _drain(self) -> None:
        sched = self.scheduler
        for w in range(sched.workers):
            if sched.busy(w):
                sched.complete(w, 1 << 62)

    def _poll_acks(self) -> None:
        pass


def measure_decode(
    source: sandbox.LocalMariadb, start: tuple[str, int], workers: int = 8, policy: str = "writeset"
) -> dict:
    """Transactions/s the coordinator alone reads, groups, hashes and routes (no target):
    the best of ``DECODE_RUNS`` runs, as a ceiling (one run lasts well under a second, so
    a single one mostly measures what else the machine did meanwhile)."""
    cfg = _apply_config(source, source, start, workers, policy)
    runs = [_DecodeOnly(cfg).measure(source.server_config(), "mariadb", BinlogPosition(*start))
            for _ in range(DECODE_RUNS)]
    best = max(runs, key=lambda r: r["tps"])
    best["runs_tps"] = [r["tps"] for r in runs]
    return best


DECODE_RUNS = 3


# -- contenders ---------------------------------------------------------------------------


def _fresh_target(
    snapshot: Path, where: Path, name: str, opts: BenchOptions
) -> sandbox.LocalMariadb:
    shutil.copytree(snapshot, where, symlinks=True)
    options = sandbox.target_options()
    if opts.durable:
        options["innodb_flush_log_at_trx_commit"] = "1"
    server = sandbox.LocalMariadb(name, where, sandbox.free_port(), 2, False, options)
    server.start()
    os.sync()  # the copy's writeback must not compete with the timed run's redo flushes
    return server


def _settle(source: sandbox.LocalMariadb, timeout: float = 120.0) -> None:
    """Let the source write back the pages the backlog dirtied, so that no contender is
    timed while it does (the first ones would pay for it in CPU and I/O)."""
    (pct,) = source.query("SELECT @@GLOBAL.innodb_max_dirty_pages_pct")[0]
    source.execute("SET GLOBAL innodb_max_dirty_pages_pct = 0")
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = source.query("SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'")
            if int(rows[0][1]) == 0:
                break
            time.sleep(0.5)
    finally:
        source.execute(f"SET GLOBAL innodb_max_dirty_pages_pct = {float(pct)}")
    os.sync()


def _slave_status(target: sandbox.LocalMariadb) -> dict[str, Any]:
    cur = target._cached().cursor(MySQLdb.cursors.DictCursor)  # noqa: SLF001
    try:
        cur.execute("SHOW SLAVE STATUS")
        row = cur.fetchone() or {}
    finally:
        cur.close()
    return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in row.items()}


def run_native(
    source: sandbox.LocalMariadb,
    target: sandbox.LocalMariadb,
    start: tuple[str, int],
    end: tuple[str, int],
    threads: int,
    mode: str,
    timeout: float,
) -> float:
    """Seconds from START SLAVE until the replica executed up to ``end``."""
    target.execute(
        "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%s, MASTER_USER=%s, MASTER_PASSWORD=%s, "
        "MASTER_LOG_FILE=%s, MASTER_LOG_POS=%s, MASTER_USE_GTID=no",
        (source.port, source.user, source.password, start[0], start[1]),
    )
    target.execute(f"SET GLOBAL slave_parallel_threads = {int(threads)}")
    target.execute("SET GLOBAL slave_parallel_mode = %s", (mode if threads else "conservative",))
    started = time.perf_counter()
    target.execute("START SLAVE")
    deadline = started + timeout
    while True:
        st = _slave_status(target)
        if (st.get("Relay_Master_Log_File"), int(st.get("Exec_Master_Log_Pos") or 0)) >= end:
            seconds = time.perf_counter() - started
            break
        if st.get("Last_SQL_Errno") or st.get("Last_IO_Errno"):
            raise ApplierError(
                f"native replica stopped: {st.get('Last_SQL_Error') or st.get('Last_IO_Error')}"
            )
        if time.perf_counter() > deadline:
            raise ApplierError(f"native replica not caught up after {timeout:g}s")
        time.sleep(0.05)
    target.execute("STOP SLAVE")
    return seconds


def run_applier_process(cfg: config.Config, workdir: Path, timeout: float) -> dict[str, Any]:
    """``applier run --stop-at-end`` as a child; its summary, wall time, CPU and peak RSS."""
    path = workdir / "applier.toml"
    path.write_text(_toml(cfg))
    path.chmod(0o600)
    cpu0 = _children_cpu()
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "applier.cli", "run", "-c", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            stop.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise ApplierError(f"applier did not catch up within {timeout:g}s") from None
    finally:
        stop.set()
        sampler.join()
    wall = time.perf_counter() - started
    cpu = _children_cpu() - cpu0
    if proc.returncode != 0:
        raise ApplierError(f"applier run exited with {proc.returncode}: {err.strip()[-2000:]}")
    summary = json.loads(out.strip().splitlines()[-1])
    return {"summary": summary, "wall": wall, "cpu": cpu, "peak_rss": peak}


# -- the whole benchmark ------------------------------------------------------------------


def _plan(opts: BenchOptions) -> list[tuple[str, int, str]]:
    runs: list[tuple[str, int, str]] = []
    for n in opts.native_threads:
        if n == 0:
            runs.append(("native", 0, "serial"))
        else:
            runs += [("native", n, mode) for mode in opts.native_modes]
    runs += [("applier", w, p) for p in opts.policies for w in opts.workers]
    return runs


def _label(kind: str, threads: int, mode: str) -> str:
    if kind == "native":
        return "native 1 thread" if threads == 0 else f"native {threads} {mode}"
    return f"applier {threads} {mode}"


def run_bench(opts: BenchOptions, say=print, progress: bool = True) -> BenchReport:
    if opts.workload not in WORKLOADS:
        raise ApplierError(f"unknown workload {opts.workload!r}; one of {', '.join(WORKLOADS)}")
    for mode in opts.native_modes:
        if mode not in NATIVE_MODES:
            raise ApplierError(f"unknown native mode {mode!r}; one of {', '.join(NATIVE_MODES)}")
    from tqdm import tqdm

    plan = _plan(opts)
    base = Path(tempfile.mkdtemp(prefix="mts-bench-"))
    source = seed = None
    db = SYSBENCH_DB if opts.workload in SYSBENCH else DB
    bar = tqdm(total=len(plan) + 2, desc="setup", unit="run", disable=not progress, file=sys.stderr)
    log = bar.write if progress else say
    try:
        # 1. source + seed snapshot
        source = sandbox.make_source(base / "source")
        seed = sandbox.make_target(base / "seed", name="seed")
        source.start()
        seed.start()
        origin = source.binlog_position()
        sc = source.server_config()
        bar.set_description(f"prepare {opts.workload}")
        if opts.workload in SYSBENCH:
            source.execute(f"CREATE DATABASE {SYSBENCH_DB}")
            _sysbench(opts.workload, source, opts, "prepare")
        else:
            rows = max(opts.rows, 20_000) if opts.workload == "big" else opts.rows
            workload.prepare(sc, DB, tables=opts.tables, rows=rows)
        p0 = source.binlog_position()
        Coordinator(_apply_config(source, seed, origin, workers=4)).run()
        seed.execute(f"DROP DATABASE IF EXISTS {config.TargetConfig().checkpoint_schema}")
        seed.stop()
        snapshot = seed.basedir
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
            rows = max(opts.rows, 20_000) if opts.workload == "big" else opts.rows
            workload.run(
                sc, DB, kind, opts.transactions, conns, tables=opts.tables, rows=rows, big_rows=rows
            )
        gen_seconds = time.perf_counter() - t0
        end = source.binlog_position()
        _settle(source)
        bar.update(1)
        # 3. decode ceiling
        bar.set_description("decode")
        decode = measure_decode(source, p0, workers=max(opts.workers), policy=opts.policies[0])
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
            environment=_environment(opts),
            backlog=backlog,
            decode=decode,
        )
        # 4. contenders
        for i, (kind, threads, mode) in enumerate(plan):
            label = _label(kind, threads, mode)
            bar.set_description(label)
            r = _one_run(
                opts, source, snapshot, base / f"run{i}", kind, threads, mode, p0, end, backlog, db
            )
            r.label = label
            report.runs.append(r)
            log(
                f"{label}: {r.seconds:.2f}s, {r.tps:,.0f} TPS, check "
                f"{'equal' if r.check_ok else r.error or r.check}"
            )
            bar.update(1)
        native1 = next(
            (r.tps for r in report.runs if r.contender == "native" and r.threads == 0 and r.tps),
            None,
        )
        for r in report.runs:
            r.ratio = round(r.tps / native1, 2) if native1 and r.tps else None
        _write(report, opts.out)
        return report
    finally:
        bar.close()
        for server in (seed, source):
            if server is not None:
                server.stop()
        if not opts.keep:
            shutil.rmtree(base, ignore_errors=True)


def _one_run(opts, source, snapshot, where, kind, threads, mode, p0, end, backlog, db) -> RunResult:
    r = RunResult(kind, "", threads, mode)
    target = None
    try:
        target = _fresh_target(snapshot, where, f"{kind}-{threads}", opts)
        tcpu0, scpu0 = _server_cpu(target), _server_cpu(source)
        if kind == "native":
            t0 = time.perf_counter()
            r.seconds = run_native(source, target, p0, end, threads, mode, opts.timeout)
            r.wall_seconds = time.perf_counter() - t0
        else:
            res = run_applier_process(
                _apply_config(source, target, p0, threads, mode), where, opts.timeout
            )
            r.seconds = float(res["summary"]["seconds"])
            r.wall_seconds = res["wall"]
            r.applier_cpu_s = round(res["cpu"], 2)
            r.applier_peak_rss_mb = round(res["peak_rss"] / 2**20, 1)
        r.target_cpu_s = round(_server_cpu(target) - tcpu0, 2)
        r.source_cpu_s = round(_server_cpu(source) - scpu0, 2)
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


def _environment(opts: BenchOptions) -> dict[str, Any]:
    try:
        ver = subprocess.run(
            [str(sandbox.find_mariadb_binaries()[0]), "--version"], capture_output=True, text=True
        ).stdout.strip()
    except (ApplierError, OSError):
        ver = ""
    return {
        "cpus": os.cpu_count(),
        "mariadbd": ver,
        "python": sys.version.split()[0],
        "innodb_flush_log_at_trx_commit": 1 if opts.durable else 2,
        "note": "source, target(s) and applier share the same machine",
    }


# -- output -------------------------------------------------------------------------------


def _write(report: BenchReport, out: Path) -> None:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(report.to_json(), indent=2) + "\n")
    (out / "bench.md").write_text(report.table() + "\n")
    chart(report, out / "bench.png")


def chart(report: BenchReport, path: Path) -> None:
    """TPS by worker/thread count: native lines vs applier lines, decode ceiling dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=90)
    native1 = next((r for r in report.runs if r.contender == "native" and r.threads == 0), None)
    series: dict[str, list[tuple[int, float]]] = {}
    for r in report.runs:
        if not r.tps or (r.contender == "native" and r.threads == 0):
            continue
        series.setdefault(f"{r.contender} {r.mode}", []).append((r.threads, r.tps))
    for name, pts in sorted(series.items()):
        if name.startswith("native") and native1 is not None and native1.tps:
            pts = [(1, native1.tps), *pts]
        pts.sort()
        ax.plot(
            [p[0] for p in pts],
            [p[1] for p in pts],
            marker="o",
            linestyle="--" if name.startswith("native") else "-",
            label=name,
        )
    if native1 is not None and native1.tps:
        ax.scatter([1], [native1.tps], color="black", zorder=5, label="native 1 thread")
    d = report.decode
    ax.axhline(d["tps"], color="grey", linestyle=":", label=f"decode only ({d['tps']:,.0f})")
    ax.set_xscale("log", base=2)
    ticks = sorted({1, *(r.threads for r in report.runs if r.threads)})
    ax.set_xticks(ticks)
    ax.set_xticklabels([str(t) for t in ticks])
    ax.set_xlabel("workers (applier) / slave_parallel_threads (native)")
    ax.set_ylabel("transactions/s")
    ax.set_ylim(bottom=0)
    b = report.backlog
    ax.set_title(f"catch-up of {b['transactions']:,} txns, workload {b['workload']}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)

"""The contenders of `applier bench`: the server's own replica and ``applier run``, each on a
fresh copy of the snapshot, timed over the same backlog; and what they cost (CPU, RSS)."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import MySQLdb
import MySQLdb.cursors

from ... import config
from ...binlog.position import file_number
from ...db.replica import Replica
from ...errors import ApplierError
from .. import sandbox
from ..configfile import config_toml, private_file

_CLK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _proc_cpu(pid: int) -> float:
    """user+sys seconds of one process (0 if gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLK


def server_cpu(server: sandbox.LocalServer) -> float:
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


def apply_config(
    source: sandbox.LocalServer,
    target: sandbox.LocalServer,
    start: tuple[str, int],
    workers: int = 1,
    policy: str = "writeset",
    *,
    ordered: bool = False,
    verify: bool = False,
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
        apply=config.ApplyConfig(workers=workers, policy=policy, stop_at_end=True,
                                 preserve_commit_order=ordered, verify_before_image=verify),
    )


def fresh_target(seed: sandbox.LocalServer, where: Path, name: str, durable: bool,
                 binlog: bool = False) -> sandbox.LocalServer:
    """A started copy of the (stopped) ``seed``'s datadir under ``where``; with ``binlog``
    it keeps a binlog synced at every commit and logs what it replicates."""
    options = sandbox.target_options(seed.flavor)
    if durable:
        options["innodb_flush_log_at_trx_commit"] = "1"
    if binlog:
        options.update(sandbox.binlog_options(seed.flavor))
    server = seed.clone(name, where, options, log_bin=binlog)
    server.start()
    os.sync()  # the copy's writeback must not compete with the timed run's redo flushes
    return server


def settle(source: sandbox.LocalServer, timeout: float = 120.0) -> None:
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


def point_native(source: sandbox.LocalServer, replica: Replica, start: tuple[str, int]) -> None:
    """Make the contender a replica of ``source`` from ``start`` (file/position), stopped."""
    if replica.mariadb:
        head = "MASTER_HOST='127.0.0.1', MASTER_PORT=%s, MASTER_USER=%s, MASTER_PASSWORD=%s, "
    else:
        # the source logs GTIDs (gtid_mode=ON): a replica must accept them; TLS carries
        # caching_sha2_password's exchange
        steps = ("OFF", "OFF_PERMISSIVE", "ON_PERMISSIVE")
        cur = replica.conn.cursor()
        cur.execute("SELECT @@GLOBAL.gtid_mode")
        (mode,) = cur.fetchone()
        cur.close()
        mode = mode.decode() if isinstance(mode, bytes) else mode
        for step in steps[steps.index(mode) + 1 :] if mode in steps else ():
            replica.execute(f"SET GLOBAL gtid_mode = {step}")
        head = "SOURCE_HOST='127.0.0.1', SOURCE_PORT=%s, SOURCE_USER=%s, SOURCE_PASSWORD=%s, SOURCE_SSL=1, "
    replica.point_at(start[0], start[1], "", use_gtid=False,
                     source=(head, (source.port, source.user, source.password)))


def native_settings(flavor: str, threads: int, mode: str) -> list[str]:
    """The replica's parallel settings for a native contender: MariaDB
    slave_parallel_threads/mode (0 threads: the single SQL thread); MySQL
    replica_parallel_workers (0: one worker) and replica_preserve_commit_order (mode
    ``ordered``, MySQL's default, or ``unordered``)."""
    if flavor == "mariadb":
        return [f"SET GLOBAL slave_parallel_threads = {int(threads)}",
                f"SET GLOBAL slave_parallel_mode = '{mode if threads else 'conservative'}'"]
    return [f"SET GLOBAL replica_parallel_workers = {max(int(threads), 1)}",
            f"SET GLOBAL replica_preserve_commit_order = {'OFF' if mode == 'unordered' else 'ON'}"]


def run_native(
    source: sandbox.LocalServer,
    target: sandbox.LocalServer,
    start: tuple[str, int],
    end: tuple[str, int],
    threads: int,
    mode: str,
    timeout: float,
) -> float:
    """Seconds from START SLAVE (MySQL: START REPLICA) until the replica executed up to
    ``end``."""
    conn = target.connect()
    try:
        replica = Replica(conn, target.flavor, f"native replica {target.name}")
        point_native(source, replica, start)
        for sql in native_settings(target.flavor, threads, mode):
            replica.execute(sql)
        started = time.perf_counter()
        replica.execute("START SLAVE" if replica.mariadb else "START REPLICA")
        deadline = started + timeout
        while True:
            st = replica.status()
            assert st is not None
            if (st.exec_file, st.exec_pos) >= end:
                seconds = time.perf_counter() - started
                break
            if st.sql_errno:
                raise ApplierError(f"native replica stopped: {st.sql_error}")
            if not st.io_running and time.perf_counter() - started > 5:
                raise ApplierError(f"native replica's IO thread stopped: {st.io_error}")
            if time.perf_counter() > deadline:
                raise ApplierError(f"native replica not caught up after {timeout:g}s")
            time.sleep(0.05)
        replica.stop()
    finally:
        conn.close()
    return seconds


def copy_binlogs(source: sandbox.LocalServer, start: tuple[str, int], end: tuple[str, int],
                 where: Path) -> list[Path]:
    """The source's binlog files from ``start``'s through ``end``'s, copied to ``where``
    after a FLUSH BINARY LOGS (closed files, as a backup keeps them)."""
    source.execute("FLUSH BINARY LOGS")
    (basename,) = source.query("SELECT @@GLOBAL.log_bin_basename")[0]
    basename = basename.decode() if isinstance(basename, bytes) else basename
    names = [r[0].decode() if isinstance(r[0], bytes) else r[0] for r in source.query("SHOW BINARY LOGS")]
    names = [n for n in names if start[0] <= n <= end[0]]
    where.mkdir(parents=True, exist_ok=True)
    out = []
    for name in names:
        out.append(where / name)
        shutil.copyfile(Path(basename).parent / name, out[-1])
    return out


def _client_file(target: sandbox.LocalServer, workdir: Path) -> Path:
    """The client's connection options (the password among them) in a 0600 file, not on
    a command line where `ps` shows them."""
    return private_file(f"[client]\nhost=127.0.0.1\nport={target.port}\nuser={target.user}\n"
                        f"password={target.password}\n", workdir / "client.cnf")


def run_pipe(target: sandbox.LocalServer, files: list[Path], start: tuple[str, int], workdir: Path,
             timeout: float) -> float:
    """Seconds of the usual point-in-time recovery: ``mariadb-binlog --start-position=P
    FILES | mariadb`` (one thread, one statement at a time)."""
    decode = shutil.which("mariadb-binlog") or shutil.which("mysqlbinlog")
    client = shutil.which("mariadb") or shutil.which("mysql")
    if decode is None or client is None:
        raise ApplierError("mariadb-binlog and mariadb (package mariadb-client) are needed for the pipe")
    cnf = _client_file(target, workdir)
    started = time.perf_counter()
    dump = subprocess.Popen([decode, f"--start-position={start[1]}", *map(str, files)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert dump.stdout is not None
    load = subprocess.run([client, f"--defaults-extra-file={cnf}", "--binary-mode"], stdin=dump.stdout,
                          capture_output=True, text=True, timeout=timeout)
    dump.stdout.close()
    err = dump.communicate(timeout=60)[1]
    seconds = time.perf_counter() - started
    if dump.returncode != 0 or load.returncode != 0:
        raise ApplierError(f"mariadb-binlog | mariadb failed: {err.decode(errors='replace')[-1000:]}"
                           f"{load.stderr[-1000:]}")
    return seconds


def start_io_thread(source: sandbox.LocalServer, target: sandbox.LocalServer, start: tuple[str, int]) -> None:
    """Relay-log mode's set-up: the target a replica of ``source`` from ``start`` with
    only its IO thread running."""
    conn = target.connect()
    try:
        replica = Replica(conn, target.flavor, f"target {target.name}")
        point_native(source, replica, start)
        replica.start("IO_THREAD")
    finally:
        conn.close()


class IoWatch:
    """How long the target's IO thread takes to fetch the backlog (relay-log mode): from
    ``start()`` until it has read the source's binlog up to ``end``, polled every 50 ms on
    a connection of its own. A relay-log applier can apply no faster than that."""

    def __init__(self, target: sandbox.LocalServer, end: tuple[str, int]) -> None:
        self.target, self.end = target, file_number(end[0]) << 32 | end[1]
        self.seconds: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def start(self) -> None:
        self._t0 = time.perf_counter()
        self._thread.start()

    def wait(self, timeout: float) -> float | None:
        """Until the backlog is fetched (its seconds) or ``timeout`` passed (None)."""
        self._thread.join(timeout)
        return self.seconds

    def stop(self) -> float | None:
        self._stop.set()
        self._thread.join()
        return self.seconds

    def _watch(self) -> None:
        conn = self.target.connect()
        sql = "SHOW REPLICA STATUS" if self.target.flavor == "mysql" else "SHOW SLAVE STATUS"
        try:
            cur = conn.cursor(MySQLdb.cursors.DictCursor)
            while not self._stop.is_set():
                cur.execute(sql)
                row = cur.fetchone() or {}
                read = row.get("Master_Log_File") or row.get("Source_Log_File")
                pos = row.get("Read_Master_Log_Pos", row.get("Read_Source_Log_Pos"))
                if read and pos is not None and (file_number(read) << 32 | int(pos)) >= self.end:
                    self.seconds = time.perf_counter() - self._t0
                    return
                self._stop.wait(0.05)
        except MySQLdb.Error:
            return  # the target went (the run failed): no figure
        finally:
            conn.close()


def run_applier_process(cfg: config.Config, workdir: Path, timeout: float,
                        args: tuple[str, ...] = ("run",)) -> dict[str, Any]:
    """``applier run`` (``args``: the subcommand and its options, e.g. ``replay`` and its
    files) as a child; its summary, wall time, CPU and peak RSS."""
    path = private_file(config_toml(cfg), workdir / "applier.toml")
    cpu0 = _children_cpu()
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "applier.cli", args[0], "-c", str(path), *args[1:]],
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
        raise ApplierError(f"applier {args[0]} exited with {proc.returncode}: {err.strip()[-2000:]}")
    summary = json.loads(out.strip().splitlines()[-1])
    return {"summary": summary, "wall": wall, "cpu": cpu, "peak_rss": peak}



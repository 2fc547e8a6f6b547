"""The load of `applier bench --steady`: the tables, an unpaced backlog (native single's
catch-up reference) and the paced phase, for the built-in workloads
(``workload.run_paced``: every connection on a fixed schedule) and sysbench's
(``--rate``: its threads take events from a queue filled at that average rate)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from ...errors import ApplierError
from .. import workload
from ..configfile import private_file, sysbench_options
from . import DB, SYSBENCH_DB, BenchOptions, _sysbench
from .live import spawn

BUILTIN = {  # name -> (workload kind, connections; None: --connections)
    "updates": ("updates", None),
    "uniform": ("uniform", None),
    "hot": ("hot", None),
    "single": ("uniform", 1),
    "big": ("big", None),
    "big-insert": ("big-insert", None),
    "big-delete": ("big-delete", None),
}


class Load:
    """The workload: tables, an unpaced backlog (the reference) and the paced phase."""

    def __init__(self, opts: BenchOptions, connections: int, base: Path) -> None:
        self.opts, self.base = opts, base
        self.builtin = opts.workload in BUILTIN
        if self.builtin:
            self.kind, conns = BUILTIN[opts.workload]
            self.connections = conns or connections
            self.db = DB
            self.rows, self.big_rows = workload.big_sizes(self.kind, opts.rows)
        else:
            self.kind, self.connections, self.db, self.rows = opts.workload, connections, SYSBENCH_DB, opts.rows
            self.big_rows = workload.BIG_ROWS

    def prepare(self, source) -> None:
        if self.builtin:
            workload.prepare(source.server_config(), DB, tables=self.opts.tables, rows=self.rows)
        else:
            source.execute(f"CREATE DATABASE {SYSBENCH_DB}")
            _sysbench(self.kind, source, self.opts, "prepare")

    def backlog(self, source, transactions: int) -> None:
        if self.builtin:
            workload.run(source.server_config(), DB, self.kind, transactions, self.connections,
                         tables=self.opts.tables, rows=self.rows, big_rows=self.big_rows)
        else:
            _sysbench(self.kind, source, self.opts, f"--threads={self.connections}",
                      f"--events={transactions}", "--time=0", "--rand-seed=1",
                      "--report-interval=0", "run")

    def run(self, source, rate: float, seconds: float) -> tuple[int, float, list[float]]:
        """The paced phase: (transactions committed, seconds it took, transactions/s in
        each of its seconds)."""
        if self.builtin:
            times: list[float] = []
            t0 = time.monotonic()
            res = workload.run_paced(source.server_config(), DB, self.kind, rate, seconds,
                                     self.connections, tables=self.opts.tables, rows=self.rows,
                                     big_rows=self.big_rows, timeline=times)
            per = [0] * max(1, round(res.seconds))  # the last commits after S s: in the last second
            for t in times:
                per[min(len(per) - 1, int(t - t0))] += 1
            return res.transactions, res.seconds, [float(n) for n in per]
        return self._sysbench_paced(source, rate, seconds)

    def _sysbench_paced(self, source, rate: float, seconds: float) -> tuple[int, float, list[float]]:
        """sysbench ``--rate`` (its threads take events from a queue filled at that
        average rate) for ``--time``; its own count of transactions and seconds, and its
        per-second reports."""
        exe = shutil.which("sysbench")
        if exe is None:
            raise ApplierError("sysbench is not installed (apt-get install -y sysbench)")
        conf = private_file(sysbench_options(source, SYSBENCH_DB), prefix="mts-sysbench-", suffix=".conf",
                            directory=self.base)
        out = self.base / "sysbench.log"
        out.write_text("")
        proc = spawn([exe, self.kind, f"--config-file={conf}", f"--tables={self.opts.tables}",
                      f"--table-size={self.opts.rows}", f"--threads={self.connections}",
                      f"--rate={max(1, round(rate))}", f"--time={max(1, round(seconds))}",
                      "--events=0", "--report-interval=1", "run"], out)
        try:
            proc.wait(seconds + 120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise ApplierError("sysbench --rate did not finish in time") from None
        finally:
            os.unlink(conf)
        text = out.read_text(errors="replace")
        m = re.search(r"transactions:\s+(\d+)", text)
        t = re.search(r"total time:\s+([\d.]+)s", text)
        if proc.returncode != 0 or m is None or t is None:
            raise ApplierError(f"sysbench {self.kind} --rate failed (exit {proc.returncode}):\n{text[-2000:]}")
        per = [float(x) for x in re.findall(r"^\[\s*\d+s\s*\].*?\btps:\s*([\d.]+)", text, re.M)]
        return int(m.group(1)), float(t.group(1)), per

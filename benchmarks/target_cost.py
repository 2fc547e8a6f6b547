"""What one big transaction costs the target: the applier's statements vs row events.

One throwaway MariaDB source and two targets holding the same rows. The source runs
one transaction changing ROWS rows of a sysbench-like table (INT id PK, INT k with an
index, CHAR(120) c, CHAR(60) pad, INT n): an INSERT ... SELECT, an UPDATE of every
row, or a DELETE of every row. Then:

* ``applier``: `applier run --stop-at-end` (in this process, 1 worker) applies it to the
  first target: a streamed big transaction, multi-row statements of about 1 MB;
* ``row events``: ``mariadb-binlog`` of the same binlog piped into ``mariadb`` (the
  bench's ``contenders.run_pipe``) applies it to the second: ``BINLOG '...'`` statements, the row events applied by the server's
  own replication code (what the native SQL thread runs, without its relay log).

Prints the wall time and the target's CPU (user+sys of its mariadbd, from /proc) for
each, and checks both targets equal the source (COUNT, SUM(n)). Usage:

    .venv/bin/python benchmarks/target_cost.py insert|update|delete [ROWS]

ROWS defaults to 160,000. The machine's other load moves these figures: compare the two
lines of one run.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from applier.harness import sandbox
from applier.harness.bench.contenders import apply_config, run_pipe, server_cpu
from applier.pipeline.coordinator import Coordinator

TABLE = ("CREATE TABLE d.t (id INT AUTO_INCREMENT PRIMARY KEY, k INT NOT NULL DEFAULT 0, "
         "c CHAR(120) NOT NULL DEFAULT '', pad CHAR(60) NOT NULL DEFAULT '', "
         "n INT NOT NULL DEFAULT 0, KEY (k))")


def _apply(source, target, start) -> None:
    cfg = apply_config(source, target, start)
    Coordinator(cfg.with_overrides("apply", databases=("d",))).run()
    target.execute(f"DROP DATABASE {cfg.target.checkpoint_schema}")


def main(op: str, rows: int) -> int:
    base = Path(tempfile.mkdtemp(prefix="mts-target-cost-"))
    source = sandbox.make_source(base / "source")
    targets = [sandbox.make_target(base / f"t{i}", name=f"t{i}") for i in range(2)]
    for t in targets:
        t.options["max_allowed_packet"] = "1G"  # mariadb-binlog writes one BINLOG per statement
    for server in (source, *targets):
        server.start()
    try:
        origin = source.binlog_position()
        source.execute("CREATE DATABASE d")
        source.execute(TABLE)
        fill = (f"INSERT INTO d.t (k, c, pad) WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 "
                f"FROM s WHERE i < {int(rows)}) SELECT i % 1000, REPEAT('c', 110), REPEAT('p', 50) FROM s")
        conn = source.connect()
        cur = conn.cursor()
        cur.execute("SET SESSION max_recursive_iterations = 100000000")
        if op == "insert":
            for t in targets:
                t.execute("CREATE DATABASE d")
                t.execute(TABLE)
            start = source.binlog_position()
            cur.execute(fill)
        else:
            cur.execute(fill)
            conn.commit()
            for t in targets:
                _apply(source, t, origin)
            start = source.binlog_position()
            cur.execute("UPDATE d.t SET n = n + 1" if op == "update" else "DELETE FROM d.t")
        conn.commit()
        conn.close()

        t = targets[0]
        cpu0, t0 = server_cpu(t), time.perf_counter()
        _apply(source, t, start)
        print(f"{op} of {rows:,} rows, applier:    {time.perf_counter() - t0:5.2f} s, "
              f"target CPU {server_cpu(t) - cpu0:5.2f} s")

        t = targets[1]
        cpu0 = server_cpu(t)
        seconds = run_pipe(t, [source.datadir / start[0]], start, base, timeout=600)
        print(f"{op} of {rows:,} rows, row events: {seconds:5.2f} s, "
              f"target CPU {server_cpu(t) - cpu0:5.2f} s")

        want = source.query("SELECT COUNT(*), SUM(n) FROM d.t")
        got = [x.query("SELECT COUNT(*), SUM(n) FROM d.t") for x in targets]
        print("targets equal the source" if got == [want, want] else f"DIFFERENT: {got} vs {want}")
        return 0 if got == [want, want] else 1
    finally:
        for server in (source, *targets):
            server.stop()


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("insert", "update", "delete"):
        sys.exit(__doc__)
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 160_000))

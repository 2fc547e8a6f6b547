"""A worker hits a target error (here: the target lost a row, so an UPDATE finds
nothing) while the coordinator still has transactions queued for it: ``applier run``
must stop with the error and a non-zero exit code, not hang.

The hang this guards against: transactions already put on the dead worker's
multiprocessing queue (more than a pipe buffer's worth) are never read, so the
queue's feeder thread blocks for ever, and Python joins that thread at exit.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.scenarios.helpers import APPLIER, toml_config
from tests.support import make_config, run_applier

pytestmark = pytest.mark.flavors("mariadb", "mysql")  # MariaDB -> MariaDB, MySQL -> MySQL

PAD = 4000  # bytes per row image: a few transactions fill a 64 KiB pipe


def _diverged_backlog(source, target, db: str, tmp_path):
    cfg = make_config(source, target, db, workers=2)
    src = source.connect()
    cur = src.cursor()
    cur.execute(f"CREATE DATABASE {db}")
    cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, n INT NOT NULL, pad TEXT)")
    cur.execute(f"INSERT INTO {db}.t VALUES (1, 0, '')")
    run_applier(cfg)  # the target has the table and the row, and a checkpoint
    target.execute(f"DELETE FROM {db}.t WHERE id = 1")  # ... and now loses the row
    for i in range(300):  # all on one row: routed to the worker that fails
        cur.execute(f"UPDATE {db}.t SET n = n + 1, pad = REPEAT(%s, {PAD}) WHERE id = 1", (chr(97 + i % 26),))
    src.close()
    path = tmp_path / "applier.toml"
    path.write_text(toml_config(cfg))
    return path


def _run(path) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run([str(APPLIER), "run", "--config", str(path), "--stop-at-end"],
                              capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"applier run hung after a worker error: {e.stderr!r}")


def test_worker_error_stops_the_run(source, target, dbname, tmp_path):
    proc = _run(_diverged_backlog(source, target, dbname, tmp_path))
    # the worker's own error reaches the user: TargetError (exit code 5) naming the cause
    assert proc.returncode == 5, proc.stderr
    assert "target has diverged" in proc.stderr and f"{dbname}.t" in proc.stderr


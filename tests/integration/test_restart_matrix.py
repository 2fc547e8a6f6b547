"""Every start restarts: a first run started from a binlog file position, from a GTID
position, or from a native replica by `applier takeover`, is stopped at once (SIGTERM
before anything is applied), after some work (SIGTERM) or killed -9 mid-way; a restart
then catches up and the target equals the source (a ledger row per source transaction:
nothing lost, nothing twice). On MySQL 9.7 too, from a file position and from a GTID
set; the MySQL takeover row (a native MySQL replica: stop at once, after work, kill -9)
is test_mysql_takeover.py::test_mysql_takeover_restarts, beside the replica it shares."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from applier.harness import sandbox
from tests.appliers import Applier, applied
from tests.integration.test_cli_errors import run_cli
from tests.integration.test_mysql_takeover import seed as mysql_seed
from tests.integration.test_takeover import Load, caught_up, seed, wait_for
from tests.support import assert_same, render_toml

STARTS = ("file", "gtid", "takeover")
STOPS = ("at-once", "after-work", "kill")


@pytest.fixture(scope="module")
def servers(tmp_path_factory, mariadb_available):
    """A source and a target that can be made its native replica (for takeover)."""
    base = tmp_path_factory.mktemp("matrix")
    source, target = sandbox.start_pair(base)
    yield source, target
    target.stop()
    source.stop()


def write_config(path: Path, source, target, db: str, start: dict) -> Path:
    sc, tc = source.server_config(), target.server_config()
    path.write_text(render_toml({
        "source": {"host": sc.host, "port": sc.port, "user": sc.user, "password": sc.password,
                   "heartbeat_seconds": 1.0, **start},
        "target": {"host": tc.host, "port": tc.port, "user": tc.user, "password": tc.password,
                   "checkpoint_schema": f"ckpt_{db}"},
        "apply": {"databases": [db], "workers": 3, "batch_txns": 16},
    }))
    return path


@pytest.mark.parametrize("stop", STOPS)
@pytest.mark.parametrize("start", STARTS)
def test_every_start_restarts(servers, tmp_path, dbname, start, stop):
    source, target = servers
    begin = source.binlog_position()
    gtid = source.gtid_position()
    seed(source, dbname)
    if start == "takeover":
        target.execute("STOP SLAVE")
        target.execute("RESET SLAVE ALL")
        target.execute(
            "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%s, MASTER_USER=%s, "
            "MASTER_PASSWORD=%s, MASTER_LOG_FILE=%s, MASTER_LOG_POS=%s, MASTER_USE_GTID=no",
            (source.port, source.user, source.password, begin[0], begin[1]))
        target.execute("START SLAVE")
        wait_for("the native replica", lambda: caught_up(source, target))
        options: dict = {}
    elif start == "file":
        options = {"start_file": begin[0], "start_pos": begin[1]}
    else:
        options = {"start_gtid": gtid}
    path = write_config(tmp_path / "applier.toml", source, target, dbname, options)
    _first_run_then_restart(source, target, dbname, tmp_path, path, start, stop)
    if start == "takeover":
        target.execute("RESET SLAVE ALL")


def _first_run_then_restart(source, target, dbname, tmp_path, path, start, stop) -> None:
    load = Load(source, dbname, count=1500, pause=0.001)
    try:
        if start == "takeover":
            out = run_cli("takeover", "--config", str(path))
            assert out.returncode == 0, out.stderr
        app = Applier(path, log_dir=tmp_path, name="first")
        schema = f"ckpt_{dbname}"
        if stop == "at-once":
            time.sleep(0.2)
            app.signal(signal.SIGTERM, group=False)
            # (a SIGTERM before Python installed the handler ends it as the signal does)
            assert app.wait() in (0, -signal.SIGTERM), app.describe()
        elif stop == "after-work":
            wait_for("applied transactions", lambda: applied(target, schema) > 200)
            app.signal(signal.SIGTERM, group=False)
            assert app.wait() == 0, app.describe()
        else:
            wait_for("applied transactions", lambda: applied(target, schema) > 200)
            app.signal(signal.SIGKILL, group=True)
            app.wait()
            app.assert_gone()
    finally:
        load.join()
    again = Applier(path, "--stop-at-end", log_dir=tmp_path, name="again")
    assert again.wait(120) == 0, again.describe()
    assert_same(source, target, dbname)
    assert target.query(f"SELECT COUNT(*) FROM {dbname}.ledger")[0][0] == 1500


@pytest.mark.parametrize("stop", STOPS)
@pytest.mark.parametrize("start", ("file", "gtid"))
def test_every_start_restarts_on_mysql(mysql_source, mysql_target, tmp_path, dbname, start, stop):
    source, target = mysql_source, mysql_target
    begin = source.binlog_position()
    options = ({"start_file": begin[0], "start_pos": begin[1]} if start == "file"
               else {"start_gtid": source.gtid_position()})
    mysql_seed(source, dbname)
    path = write_config(tmp_path / "applier.toml", source, target, dbname, options)
    _first_run_then_restart(source, target, dbname, tmp_path, path, start, stop)

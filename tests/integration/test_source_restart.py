"""The source restarts while the applier runs: it reconnects with backoff, resumes from
the last applied position (not the last read one), follows the new binlog file, and
the target ends equal to the source. Uses its own servers: the session ones must not
restart under other tests."""

from __future__ import annotations

import threading
import time

import pytest

from applier import config
from applier.harness import sandbox, workload
from applier.ops.check import check
from applier.pipeline.coordinator import Coordinator


@pytest.fixture(scope="module", params=["mariadb", "mysql"])
def pair(request, tmp_path_factory):
    if request.param == "mysql":
        request.getfixturevalue("mysql_available")
    source, target = sandbox.start_pair(tmp_path_factory.mktemp("restart"), flavor=request.param)
    yield source, target
    target.stop()
    source.stop()


def _ledger(server, db):
    return server.query(f"SELECT COUNT(*) FROM {db}.ledger")[0][0]


def _wait_for(cond, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {seconds}s waiting for {what}")


def test_source_restart_mid_stream(pair):
    source, target = pair
    sc, tc = source.server_config(), target.server_config()
    file, pos = source.binlog_position()
    workload.prepare(sc, "rs", tables=2, rows=200)
    workload.run(sc, "rs", "uniform", 300, 4, tables=2, rows=200)
    cfg = config.Config(
        source=config.SourceConfig(host=sc.host, port=sc.port, user=sc.user, password=sc.password,
                                   start_file=file, start_pos=pos, heartbeat_seconds=1.0,
                                   reconnect_attempts=30, reconnect_backoff_seconds=0.2),
        target=config.TargetConfig(host=tc.host, port=tc.port, user=tc.user, password=tc.password),
        apply=config.ApplyConfig(workers=3, databases=("rs",)),
    )
    coord = Coordinator(cfg)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            coord.run()
        except BaseException as e:  # noqa: BLE001 - reported by the test thread
            failure.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        _wait_for(lambda: _ledger_or_zero(target) == 300, 60, "the first backlog to apply")
        source.stop()
        time.sleep(1.0)
        source.start()
        workload.run(sc, "rs", "hot", 300, 4, tables=2, rows=200, seed=7)
        _wait_for(lambda: _ledger_or_zero(target) == _ledger(source, "rs"), 90, "catch-up after restart")
        assert not failure, failure
    finally:
        coord.request_stop()
        thread.join(60)
    assert not thread.is_alive(), "the applier did not stop when asked"
    assert not failure, failure
    assert coord.metrics.transactions >= 600
    report = check(sc, tc, databases=("rs",))
    assert report.ok, str(report)


def _ledger_or_zero(target) -> int:
    try:
        return _ledger(target, "rs")
    except Exception:  # noqa: BLE001 - table not created yet
        return 0

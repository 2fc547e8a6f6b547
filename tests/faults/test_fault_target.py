"""The target goes away while the applier runs: ``kill -9`` of its mariadbd, or a clean
restart, on the same port. Expected: the applier (``[target] reconnect_attempts`` /
``reconnect_backoff_seconds``) reconnects, resumes from its checkpoint and ends equal,
exit 0; with the attempts exhausted, one ``error:`` line (exit 4: unreachable, a
restart is safe), nothing half-applied, and a restart once the target is back resumes. A
target unreachable at the very start: one line, exit 4, nothing created.

The target here is this module's own (``own_target``): it is killed and restarted. The
source is the session one (it only serves the binlog).
"""

from __future__ import annotations

import signal
import time

import pytest

from applier.errors import ConnectError
from tests.appliers import applied
from tests.faults import faultlib as fl

UNIFORM = 1500


def _setup(source, target, dbname, tmp_path, **target_extra):
    """A backlog in ``dbname`` and its config; (config, source transactions, how many
    of them made the tables)."""
    before = fl.source_transactions(source)
    start = source.binlog_position()
    prepared = fl.backlog(source, dbname, uniform=UNIFORM, tables=2, rows=500)
    total = fl.source_transactions(source) - before
    secs = fl.sections(source, target, [dbname], start=start, schema=f"ckpt_{dbname}",
                       target_extra=target_extra, batch_txns=4, workers=2)
    return fl.write(tmp_path / "applier.toml", secs), total, prepared


def _assert_done(source, target, dbname, total) -> None:
    schema = f"ckpt_{dbname}"
    fl.assert_equal(source, target, [dbname], schema, total)
    assert fl.checkpoint_position(target, schema) == source.binlog_position()


def _bounce(target, *, kill: bool) -> None:
    if kill:
        target.kill()
    else:
        target.stop()
    target.start()


def _run_through_a_bounce(source, target, dbname, tmp_path, spawn, *, kill: bool) -> None:
    config, total, _ = _setup(source, target, dbname, tmp_path,
                              reconnect_attempts=10, reconnect_backoff_seconds=0.2)
    app = spawn(config, "--stop-at-end")
    fl.wait_applied(app, target, f"ckpt_{dbname}", 300)
    _bounce(target, kill=kill)
    rc = app.wait(fl.APPLY_SECONDS)
    assert rc == 0, app.describe()
    app.assert_gone()
    assert fl.log_count(app, "reconnecting to the target") >= 1, app.describe()
    assert "Traceback" not in app.stderr, app.describe()
    _assert_done(source, target, dbname, total)


def test_target_killed_mid_run_and_restarted(source, running_target, dbname, tmp_path, spawn):
    _run_through_a_bounce(source, running_target, dbname, tmp_path, spawn, kill=True)


def test_target_restarted_cleanly_mid_run(source, running_target, dbname, tmp_path, spawn):
    _run_through_a_bounce(source, running_target, dbname, tmp_path, spawn, kill=False)


def test_target_reconnect_attempts_exhausted_then_a_restart_resumes(
        source, running_target, dbname, tmp_path, spawn):
    target = running_target
    config, total, prepared = _setup(source, target, dbname, tmp_path,
                                     reconnect_attempts=2, reconnect_backoff_seconds=0.1)
    app = spawn(config, "--stop-at-end")
    fl.wait_applied(app, target, f"ckpt_{dbname}", 300)
    target.kill()
    try:
        app.wait(fl.APPLY_SECONDS)
        app.assert_gone()
    finally:
        target.start()
    done = fl.assert_not_half_applied(target, dbname, f"ckpt_{dbname}", prepared)
    assert done < total
    fl.catch_up(spawn, config)
    _assert_done(source, target, dbname, total)
    # exit 4 (ConnectError / TargetLost): a server unreachable after the in-process attempts,
    # which the systemd unit restarts (README "Exit codes"), naming [target]
    fl.app_error(app, ConnectError.exit_code, "[target]", secrets=(source.password, target.password))


def test_target_unreachable_at_the_start(source, running_target, dbname, tmp_path, spawn):
    target = running_target
    config, total, _ = _setup(source, target, dbname, tmp_path,
                              reconnect_attempts=3, reconnect_backoff_seconds=0.1)
    target.stop()
    try:
        app = spawn(config, "--stop-at-end")
        app.wait(fl.APPLY_SECONDS)
        app.assert_gone()
        fl.app_error(app, ConnectError.exit_code, "[target]", "not reachable",
                     f"{target.port}", secrets=(source.password, target.password))
    finally:
        target.start()
    assert not target.query("SELECT 1 FROM information_schema.schemata WHERE schema_name IN (%s, %s)",
                            (dbname, f"ckpt_{dbname}"))
    assert applied(target, f"ckpt_{dbname}") == 0
    fl.catch_up(spawn, config)
    _assert_done(source, target, dbname, total)


@pytest.mark.flavors("mariadb", "mysql")
def test_sessions_the_target_ends_for_idling_are_reconnected(source, target, dbname, tmp_path, spawn):
    """A target with a short ``wait_timeout`` ends the applier's sessions while the source
    is quiet (MariaDB just closes them; MySQL 8.0.24+ first sends error 4031), as it never
    does the native SQL thread: the applier's sessions set their own wait_timeout, so
    they stay (no reconnect at all); one that is lost anyway is reconnected, not a
    worker crash (tests/unit/pipeline/test_worker.py)."""
    config, total, _ = _setup(source, target, dbname, tmp_path,
                              reconnect_attempts=5, reconnect_backoff_seconds=0.2)
    (old,) = target.query("SELECT @@GLOBAL.wait_timeout")[0]
    target.execute("SET GLOBAL wait_timeout = 2")
    try:
        app = spawn(config)
        fl.wait_applied(app, target, f"ckpt_{dbname}", total)
        time.sleep(4)  # every session of the applier idles past wait_timeout
        before = fl.source_transactions(source)
        for i in range(1, 51):
            source.execute(f"UPDATE `{dbname}`.sbtest1 SET n = n + 1 WHERE id = %s", (i,))
        total += fl.source_transactions(source) - before
        fl.wait_applied(app, target, f"ckpt_{dbname}", total)
        app.signal(signal.SIGTERM, group=False)
        assert app.wait(fl.APPLY_SECONDS) == 0, app.describe()
    finally:
        target.execute(f"SET GLOBAL wait_timeout = {int(old)}")
    assert "Traceback" not in app.stderr, app.describe()
    assert fl.log_count(app, "reconnecting to the target") == 0, app.describe()
    _assert_done(source, target, dbname, total)

"""Two appliers on one checkpoint schema: while ``applier run`` works, a second ``run``
on the same config, ``takeover`` and ``handback`` each refuse with exit 9 (Busy) and one
line naming the holder's connection, change nothing, and the first run ends equal. A
first run that stops answering (frozen) loses its lock to a second one, which waits for
it rather than exit 9; woken up, the first stops. Session servers (nothing is killed)."""

from __future__ import annotations

import signal

from applier.errors import Busy
from applier.harness import workload
from applier.pipeline import lock as lock_mod
from tests.appliers import applied
from tests.faults import faultlib as fl
from tests.integration.test_cli_errors import run_cli


def _first_run(source, target, dbname, tmp_path, spawn):
    """A backlog, and a first ``applier run`` (no --stop-at-end) that holds the lock, has
    applied it and recorded the end position; (app, config, source transactions before
    the backlog, lock holder's id)."""
    before = fl.source_transactions(source)
    start = source.binlog_position()
    fl.backlog(source, dbname, uniform=400, tables=2, rows=200)
    total = fl.source_transactions(source) - before
    secs = fl.sections(source, target, [dbname], start=start, schema=f"ckpt_{dbname}", workers=2)
    config = fl.write(tmp_path / "applier.toml", secs)
    app = spawn(config)
    fl.wait_applied(app, target, f"ckpt_{dbname}", total)
    end = source.binlog_position()  # caught up and quiet: row 0 takes the exact position
    fl.wait_for("the first run's checkpoint at the source's end",
                lambda: fl.checkpoint_position(target, f"ckpt_{dbname}") == end, app=app)
    lock = lock_mod.lock_name(f"ckpt_{dbname}")
    holder = fl.wait_for("the first run's lock",
                         lambda: target.query("SELECT IS_USED_LOCK(%s)", (lock,))[0][0], app=app)
    return app, config, before, int(holder)


def _checkpoint_rows(target, schema: str):
    return target.query(f"SELECT worker, watermark, watermark_file, done, state FROM `{schema}`.checkpoint "
                        "ORDER BY worker")


def _finish_first(app, source, target, dbname, before) -> None:
    """More transactions while the first run goes on; it applies them, stops on SIGTERM
    (exit 0) and the target equals the source."""
    workload.run(source.server_config(), dbname, "uniform", 200, connections=2, tables=2, rows=200,
                 seed=99)
    total = fl.source_transactions(source) - before
    fl.wait_applied(app, target, f"ckpt_{dbname}", total)
    app.signal(signal.SIGTERM, group=False)
    assert app.wait() == 0, app.describe()
    app.assert_gone()
    assert "Traceback" not in app.stderr, app.describe()
    fl.assert_equal(source, target, [dbname], f"ckpt_{dbname}", total)
    assert fl.checkpoint_position(target, f"ckpt_{dbname}") == source.binlog_position()


def test_a_second_run_on_the_same_config_is_refused(source, target, dbname, tmp_path, spawn):
    app, config, before, holder = _first_run(source, target, dbname, tmp_path, spawn)
    rows = _checkpoint_rows(target, f"ckpt_{dbname}")
    count = applied(target, f"ckpt_{dbname}")
    second = run_cli("run", "--config", str(config), "--stop-at-end")
    fl.error_line(second.stderr, second.returncode, Busy.exit_code, f"connection {holder}",
                  f"ckpt_{dbname}", secrets=(source.password, target.password), stdout=second.stdout)
    assert _checkpoint_rows(target, f"ckpt_{dbname}") == rows  # the second touched nothing
    assert applied(target, f"ckpt_{dbname}") == count
    assert app.proc.poll() is None, app.describe()
    _finish_first(app, source, target, dbname, before)


def test_takeover_and_handback_during_a_run_are_refused(source, target, dbname, tmp_path, spawn):
    app, config, before, holder = _first_run(source, target, dbname, tmp_path, spawn)
    rows = _checkpoint_rows(target, f"ckpt_{dbname}")
    for command in (["takeover"], ["takeover", "--force"], ["handback"]):
        result = run_cli(*command, "--config", str(config))
        fl.error_line(result.stderr, result.returncode, Busy.exit_code, f"connection {holder}",
                      f"applier {command[0]}", secrets=(source.password, target.password),
                      stdout=result.stdout)
        assert _checkpoint_rows(target, f"ckpt_{dbname}") == rows, f"{command} changed the checkpoint"
        assert app.proc.poll() is None, app.describe()
    _finish_first(app, source, target, dbname, before)


def test_a_run_beside_a_frozen_one_waits_for_its_lock_then_the_frozen_one_stops(
        source, target, dbname, tmp_path, spawn):
    """The first run stops answering (SIGSTOP of its whole group while it is caught up:
    what a network partition looks like to the server). A second run does not exit 9:
    the first's lock session (wait_timeout 60 s) ends, and the second takes the lock and
    applies. When the first wakes up, its lock is gone: it stops (exit 9, the second
    holds the lock) instead of applying beside the second."""
    app, config, before, holder = _first_run(source, target, dbname, tmp_path, spawn)
    app.signal(signal.SIGSTOP, group=True)
    second = spawn(config)
    try:
        lock = lock_mod.lock_name(f"ckpt_{dbname}")
        taken = fl.wait_for("the second run to take the lock",
                            lambda: (h := target.query("SELECT IS_USED_LOCK(%s)", (lock,))[0][0])
                            and int(h) != holder and int(h),
                            timeout=lock_mod.LOCK_SESSION_SECONDS + fl.APPLY_SECONDS, app=second)
        assert "waiting up to" in second.stderr, second.describe()
        workload.run(source.server_config(), dbname, "uniform", 200, connections=2, tables=2, rows=200,
                     seed=98)
        total = fl.source_transactions(source) - before
        fl.wait_applied(second, target, f"ckpt_{dbname}", total)
        app.signal(signal.SIGCONT, group=True)
        app.wait(fl.APPLY_SECONDS)
        fl.app_error(app, Busy.exit_code, f"connection {taken}", "another applier",
                     secrets=(source.password, target.password))
        app.assert_gone()
    finally:
        if app.proc.poll() is None:
            app.signal(signal.SIGCONT, group=True)
    second.signal(signal.SIGTERM, group=False)
    assert second.wait() == 0, second.describe()
    fl.assert_equal(source, target, [dbname], f"ckpt_{dbname}", total)

"""`applier bench` end to end in a tiny size: every contender catches up, matches the
source, and the JSON, table and PNG are written."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from applier.cli import main


def test_bench_quick(tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        [
            "bench",
            "--quick",
            "--transactions",
            "300",
            "--workers",
            "1,2",
            "--native-threads",
            "0",
            "--out",
            str(out),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    data = json.loads((out / "bench.json").read_text())
    runs = {(r["contender"], r["threads"]) for r in data["runs"]}
    assert runs == {("native", 0), ("applier", 1), ("applier", 2)}
    for r in data["runs"]:
        assert r["tps"] > 0, r
        assert r["check_ok"], r
        assert not r["error"], r
    applier_runs = [r for r in data["runs"] if r["contender"] == "applier"]
    assert all(r["applier_cpu_s"] > 0 and r["applier_peak_rss_mb"] > 0 for r in applier_runs)
    assert data["backlog"]["transactions"] == 300
    assert data["decode"]["tps"] > 0 and data["decode"]["transactions"] == 300
    assert (out / "bench.png").stat().st_size > 1000
    assert "decode only" in result.output and "native 1 thread" in result.output


def test_bench_quick_mysql(tmp_path, mysql_available):
    """`--flavor mysql`: source, targets and the yardstick are MySQL 9.7: MySQL's own
    replica (replica_parallel_workers 1, and 2 with replica_preserve_commit_order OFF)
    and the applier catch up on the same sysbench backlog, each equal to the source."""
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        ["bench", "--quick", "--flavor", "mysql", "--workload", "oltp_write_only", "--transactions",
         "300", "--workers", "2", "--native-threads", "0,2", "--native-modes", "unordered",
         "--out", str(out), "--no-progress"],
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    data = json.loads((out / "bench.json").read_text())
    assert [(r["contender"], r["threads"], r["mode"]) for r in data["runs"]] == [
        ("native", 0, "serial"), ("native", 2, "unordered"), ("applier", 2, "writeset")]
    for r in data["runs"]:
        assert not r["error"], r
        assert r["check_ok"] and r["tps"] > 0 and r["ratio"] > 0, r
    assert data["environment"]["server"].startswith("MySQL 9.")
    assert "native 2 unordered" in result.output


def test_bench_refuses_what_a_flavor_lacks():
    from applier.errors import ApplierError
    from applier.harness.bench import BenchOptions, run_bench

    for opts, says in ((BenchOptions(flavor="mysql", native_modes=("optimistic",)), "one of ordered"),
                       (BenchOptions(flavor="mysql", files=True), "--flavor mariadb"),
                       (BenchOptions(flavor="oracle"), "unknown flavor")):
        try:
            run_bench(opts, say=lambda _: None, progress=False)
        except ApplierError as e:
            assert says in str(e), e
        else:
            raise AssertionError(f"{opts} was not refused")


def test_bench_files_quick(tmp_path):
    """`--files`: the same backlog as binlog files through the `mariadb-binlog | mariadb`
    pipe and `applier replay`, and through relay-log mode: every one equal, the pipe the
    reference of the vs pipe column."""
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        ["bench", "--quick", "--files", "--transactions", "300", "--workers", "2",
         "--native-threads", "", "--out", str(out), "--no-progress"],
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    data = json.loads((out / "bench.json").read_text())
    runs = {(r["contender"], r["threads"]) for r in data["runs"]}
    assert runs == {("pipe", 1), ("replay", 2), ("relay", 2), ("relay-fetched", 2), ("applier", 2)}
    for r in data["runs"]:
        assert not r["error"], r
        assert r["check_ok"] and r["tps"] > 0, r
        assert r["vs_pipe"] > 0, r
    assert next(r for r in data["runs"] if r["contender"] == "pipe")["vs_pipe"] == 1.0
    relay = next(r for r in data["runs"] if r["contender"] == "relay")
    assert 0 < relay["io_fetch_s"] < relay["wall_seconds"] + 5, relay  # the IO thread's fetch, timed
    fetched = next(r for r in data["runs"] if r["contender"] == "relay-fetched")
    assert fetched["io_fetch_s"] > 0, fetched  # fetched before the applier was timed
    assert "the target's IO thread fetched the backlog in" in result.output
    assert "mariadb-binlog | mariadb" in result.output and "vs pipe" in result.output
    assert "relay-log 2 writeset" in result.output and "replay 2 writeset" in result.output
    assert "relay-log fetched 2 writeset" in result.output


def test_bench_steady_quick(tmp_path):
    """`--steady`: the source runs at a fixed rate while each contender applies it live on
    one replica target (switched with takeover/handback); every contender has lag
    percentiles and an equal check, and the final `applier check` is equal."""
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        ["bench", "--steady", "200", "--seconds", "3", "--quick", "--workers", "2",
         "--native-threads", "0", "--out", str(out), "--no-progress"],
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    data = json.loads((out / "steady.json").read_text())
    assert data["steady"]["rate_tps"] == 200 and data["steady"]["workload"] == "updates"
    assert data["reference"] is None  # a rate in transactions/s: no catch-up reference
    runs = {(r["contender"], r["threads"]) for r in data["runs"]}
    assert runs == {("native", 0), ("applier", 2)}
    for r in data["runs"]:
        assert not r["error"], r
        assert r["check_ok"], r
        lag = r["lag"]
        assert lag["samples"] >= 10, r
        assert 0 <= lag["p50"] <= lag["p99"] <= lag["max"], lag
        assert isinstance(lag["bounded"], bool)
        assert r["achieved_tps"] > 100, r  # paced at 200/s
        assert r["series"], r
    applier = next(r for r in data["runs"] if r["contender"] == "applier")
    assert applier["applier_cpu_pct"] > 0 and applier["applier_peak_rss_mb"] > 0
    assert data["final_check"]["ok"], data["final_check"]
    assert (out / "steady.png").stat().st_size > 1000
    assert "p99 lag s" in (out / "steady.md").read_text()
    assert "native 1 thread" in result.output and "applier 2 writeset" in result.output


def test_steady_rate_and_boundedness():
    """The pure parts of `--steady`: RATE parsing and the lag statistics' definitions."""
    import pytest

    from applier.harness.bench.heartbeat import lag_stats, percentile
    from applier.harness.bench.steady import parse_rate

    assert parse_rate("200") == (200.0, False)
    assert parse_rate(" 70% ") == (70.0, True)
    assert parse_rate("1.5") == (1.5, False)
    for bad in ("", "0", "-5", "70%%", "fast", "%"):
        with pytest.raises(ValueError):
            parse_rate(bad)
    assert percentile([1, 2, 3, 4, 5], 50) == 3
    assert percentile([0, 10], 99) == pytest.approx(9.9)
    ts = [i / 10 for i in range(200)]  # 20 s, 10 samples/s
    steady = lag_stats([(t, 0.05 + 0.04 * ((t * 10) % 2)) for t in ts], 0, 20)
    assert steady["bounded"] and steady["p50"] < 0.1 and abs(steady["growth"]) < 0.01
    growing = lag_stats([(t, 0.05 + 0.25 * t) for t in ts], 0, 20)  # falls behind: 5 s at the end
    assert not growing["bounded"] and growing["growth"] == pytest.approx(0.25, rel=0.01)
    assert growing["end"] > 1.8 * growing["p50"]
    # fell 4 s behind at once, then kept losing ground more slowly: a high median hides
    # the end-vs-median test, the trend does not
    early = lag_stats([(t, min(t, 4.0) + 0.1 * max(0.0, t - 4)) for t in ts], 0, 20)
    assert early["end"] <= 1.5 * early["p50"] + 0.2 and not early["bounded"]
    assert lag_stats([], 0, 1) == {"samples": 0}


def test_plan_and_mode_suffixes():
    """The contenders a bench runs, and an applier mode's suffixes back to its settings."""
    from applier.harness.bench import BenchOptions, _plan, mode_parts

    plan = _plan(BenchOptions(workers=(1, 4), native_threads=(0, 4), native_modes=("optimistic",),
                              commit_order=True, verify_before_image=True))
    assert plan == [("native", 0, "serial"), ("native", 4, "optimistic"),
                    ("applier", 1, "writeset ordered verified"), ("applier", 4, "writeset ordered verified")]
    assert mode_parts(plan[-1][2]) == ("writeset", True, True)
    assert mode_parts("writeset verified") == ("writeset", False, True)
    assert mode_parts("table") == ("table", False, False)
    files = _plan(BenchOptions(workers=(2,), native_threads=(), files=True))
    assert [k for k, _, _ in files] == ["pipe", "replay", "relay", "relay-fetched", "applier"]


def test_steady_targets_say_what_was_shown():
    """Above native single's catch-up rate the target needs native single to fall behind;
    a source that could not reach the rate beside a contender is said."""
    from applier.harness.bench.report import SteadyReport, SteadyRun

    def run(contender, threads, p99, bounded, achieved):
        return SteadyRun(contender, f"{contender} {threads}", threads, "m", achieved_tps=achieved,
                         lag={"samples": 100, "p99": p99, "bounded": bounded})

    def report(share, native_bounded, achieved):
        rep = SteadyReport({}, {}, {"rate_tps": 1000.0 * share}, {"tps": 1000.0})
        rep.runs = [run("native", 0, 0.6, native_bounded, 1000 * share), run("applier", 1, 0.2, True, achieved)]
        return rep.targets()[0]

    assert report(1.5, False, 1500)["verdict"] == "met"
    shown = report(1.5, True, 1500)
    assert shown["met"] and shown["verdict"].startswith("not shown")
    short = report(0.7, True, 500)
    assert short["verdict"].startswith("met; the source reached only 500 of 700 tx/s")
    assert "summary" not in short


def test_private_files_are_the_owners_alone(tmp_path):
    """Files holding passwords (sysbench options, client options, applier configs) are
    0600 from their creation, whether named or temporary."""
    import stat

    from applier.harness.configfile import private_file

    named = private_file("password=x\n", tmp_path / "client.cnf")
    temp = private_file("password=y\n", prefix="mts-t-", suffix=".conf", directory=tmp_path)
    for path, text in ((named, "password=x\n"), (temp, "password=y\n")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text() == text
    assert temp.name.startswith("mts-t-") and temp.parent == tmp_path


@pytest.mark.parametrize("flavor", ["mariadb", "mysql"])
def test_target_binlog_targets_binlog_every_commit(tmp_path, request, flavor):
    """``--target-binlog``: a timed target is a copy of the seed that binlogs, synced at
    every commit, with what it replicates logged too."""
    from applier.harness import sandbox
    from applier.harness.bench.contenders import fresh_target

    if flavor == "mysql":
        request.getfixturevalue("mysql_available")
    seed = sandbox.make_target(tmp_path / "seed", name="seed", flavor=flavor)
    seed.start()
    seed.stop()
    target = fresh_target(seed, tmp_path / "t", "binlogging", True, binlog=True)
    try:
        updates = "log_slave_updates" if flavor == "mariadb" else "log_replica_updates"
        got = target.query(f"SELECT @@log_bin, @@sync_binlog, @@{updates}, @@innodb_flush_log_at_trx_commit")[0]
        assert tuple(int(v) for v in got) == (1, 1, 1, 1)
    finally:
        target.stop()


@pytest.mark.parametrize("op", ["insert", "update", "delete"])
def test_target_cost_script(op, capsys):
    """benchmarks/target_cost.py (the figures of what the target pays per statement kind):
    both ways of applying one transaction leave the targets equal to the source."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "target_cost.py"
    spec = importlib.util.spec_from_file_location("target_cost", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(op, 2000) == 0
    out = capsys.readouterr().out
    assert "applier:" in out and "row events:" in out and "targets equal the source" in out

"""`applier bench` end to end in a tiny size: every contender catches up, matches the
source, and the JSON, table and PNG are written."""

from __future__ import annotations

import json

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

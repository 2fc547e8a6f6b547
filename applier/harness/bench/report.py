"""`applier bench` results: one row per contender, the table, JSON, Markdown and the chart."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class RunResult:
    contender: str  # "native" | "applier"
    label: str
    threads: int  # workers / slave_parallel_threads (0 = native single-threaded)
    mode: str  # native mode or applier policy
    seconds: float = 0.0
    wall_seconds: float = 0.0
    tps: float = 0.0
    rows_per_s: float = 0.0
    ratio: float | None = None  # tps / native single-threaded tps
    vs_pipe: float | None = None  # tps / the mariadb-binlog | mariadb pipe's tps (--files)
    applier_cpu_s: float | None = None
    applier_peak_rss_mb: float | None = None
    target_cpu_s: float = 0.0
    source_cpu_s: float = 0.0
    io_fetch_s: float | None = None  # relay-log: seconds the target's IO thread took to fetch the backlog
    check_ok: bool = False
    check: str = ""
    error: str = ""


@dataclass
class BenchReport:
    options: dict[str, Any]
    environment: dict[str, Any]
    backlog: dict[str, Any]
    decode: dict[str, Any]
    runs: list[RunResult] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "options": self.options,
            "environment": self.environment,
            "backlog": self.backlog,
            "decode": self.decode,
            "runs": [asdict(r) for r in self.runs],
        }

    def table(self) -> str:
        head = (
            "contender",
            "threads",
            "seconds",
            "TPS",
            "rows/s",
            "vs native-1",
            "applier CPU s",
            "peak RSS MB",
            "target CPU s",
            "check",
        )
        pipe = any(r.vs_pipe is not None for r in self.runs)
        if pipe:
            head = (*head[:6], "vs pipe", *head[6:])
        rows = [head]
        for r in self.runs:
            row = (
                r.label,
                str(r.threads),
                f"{r.seconds:.2f}",
                f"{r.tps:,.0f}",
                f"{r.rows_per_s:,.0f}",
                "-" if r.ratio is None else f"{r.ratio:.2f}x",
                "-" if r.applier_cpu_s is None else f"{r.applier_cpu_s:.1f}",
                "-" if r.applier_peak_rss_mb is None else f"{r.applier_peak_rss_mb:.0f}",
                f"{r.target_cpu_s:.1f}",
                "equal" if r.check_ok else ("ERROR" if r.error else "DIFFERENT"),
            )
            if pipe:
                row = (*row[:6], "-" if r.vs_pipe is None else f"{r.vs_pipe:.2f}x", *row[6:])
            rows.append(row)
        d = self.decode
        rows.append(
            (
                "decode only (no target)",
                str(d.get("workers", "")),
                f"{d['seconds']:.2f}",
                f"{d['tps']:,.0f}",
                f"{d['rows_per_s']:,.0f}",
                *(["-"] * (len(head) - 5)),
            )
        )
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = []
        for n, r in enumerate(rows):
            cells = [
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            ]
            lines.append("| " + " | ".join(cells) + " |")
            if n == 0:
                lines.append(
                    "|"
                    + "|".join(
                        "-" * (w + 1) + ":" if i else "-" * (w + 2) for i, w in enumerate(widths)
                    )
                    + "|"
                )
        return "\n".join(lines)


def write(report: BenchReport, out: Path) -> None:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(report.to_json(), indent=2) + "\n")
    (out / "bench.md").write_text(report.table() + "\n")
    chart(report, out / "bench.png")


def chart(report: BenchReport, path: Path) -> None:
    """TPS by worker/thread count: native lines vs applier lines, decode ceiling dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=90)
    native1 = next((r for r in report.runs if r.contender == "native" and r.threads == 0), None)
    series: dict[str, list[tuple[int, float]]] = {}
    for r in report.runs:
        if not r.tps or (r.contender == "native" and r.threads == 0):
            continue
        series.setdefault(f"{r.contender} {r.mode}", []).append((r.threads, r.tps))
    for name, pts in sorted(series.items()):
        if name.startswith("native") and native1 is not None and native1.tps:
            pts = [(1, native1.tps), *pts]
        pts.sort()
        ax.plot(
            [p[0] for p in pts],
            [p[1] for p in pts],
            marker="o",
            linestyle="--" if name.startswith("native") else "-",
            label=name,
        )
    if native1 is not None and native1.tps:
        ax.scatter([1], [native1.tps], color="black", zorder=5, label="native 1 thread")
    d = report.decode
    ax.axhline(d["tps"], color="grey", linestyle=":", label=f"decode only ({d['tps']:,.0f})")
    ax.set_xscale("log", base=2)
    ticks = sorted({1, *(r.threads for r in report.runs if r.threads)})
    ax.set_xticks(ticks)
    ax.set_xticklabels([str(t) for t in ticks])
    ax.set_xlabel("workers (applier) / slave_parallel_threads (native)")
    ax.set_ylabel("transactions/s")
    ax.set_ylim(bottom=0)
    b = report.backlog
    ax.set_title(f"catch-up of {b['transactions']:,} txns, workload {b['workload']}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# -- `applier bench --steady`: lag while the source runs at a fixed rate ----------------------

KEEP_UP_P99 = 0.5  # the target below native single's rate: applier p99 lag <= 0.5 s
OVERLOAD_P99 = 1.0  # above it: the applier's lag stays bounded, p99 < 1 s


@dataclass
class SteadyRun:
    contender: str  # "native" | "applier"
    label: str
    threads: int
    mode: str
    rate: float = 0.0  # asked of the source, transactions/s
    achieved_tps: float = 0.0  # what the source reached during the load phase
    load_seconds: float = 0.0
    lag: dict[str, Any] = field(default_factory=dict)  # heartbeat.lag_stats over the load phase
    caught_up_after_s: float | None = None  # once the load stopped (the heartbeat)
    exact_after_heartbeat_s: float | None = None  # then until its exact position was the source's
    warmup_lag_max: float | None = None  # the highest lag of the untimed warm-up before it
    applier_cpu_pct: float | None = None  # of one core, during the load phase
    coordinator_cpu_pct: float | None = None  # the coordinator's share of it (the rest: workers)
    applier_peak_rss_mb: float | None = None
    target_cpu_pct: float = 0.0
    source_cpu_pct: float = 0.0
    client_cpu_pct: float | None = None  # the load + heartbeat threads (built-in workloads)
    check_ok: bool = False
    check: str = ""
    error: str = ""
    series: list[list[float]] = field(default_factory=list)  # [seconds since load start, lag s]
    source_series: list[float] = field(default_factory=list)  # source tx/s in each second of the load


@dataclass
class SteadyReport:
    options: dict[str, Any]
    environment: dict[str, Any]
    steady: dict[str, Any]  # rate asked / resolved, seconds, connections, workload
    reference: dict[str, Any] | None  # native single's catch-up of a backlog (RATE in %)
    runs: list[SteadyRun] = field(default_factory=list)
    final_check: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "options": self.options,
            "environment": self.environment,
            "steady": self.steady,
            "reference": self.reference,
            "runs": [asdict(r) for r in self.runs],
            "targets": self.targets(),
            "final_check": self.final_check,
        }

    def share(self) -> float | None:
        """The rate as a share of native single's catch-up rate (None without a reference)."""
        ref = self.reference
        return self.steady["rate_tps"] / ref["tps"] if ref and ref.get("tps") else None

    def targets(self) -> list[dict[str, Any]]:
        """The issue's targets, per applier contender: at or below native single's
        catch-up rate, p99 lag <= native single's and <= KEEP_UP_P99 s; above it,
        bounded with p99 < OVERLOAD_P99 s (and whether native single fell behind)."""
        share = self.share()
        if share is None:
            return []
        native1 = next((r for r in self.runs if r.contender == "native" and r.threads == 0
                        and r.lag.get("samples")), None)
        out = []
        for r in self.runs:
            if r.contender != "applier" or not r.lag.get("samples"):
                continue
            p99 = r.lag["p99"]
            if share <= 1:
                ref = native1.lag["p99"] if native1 else None
                met = p99 <= KEEP_UP_P99 and (ref is None or p99 <= ref)
                text = (f"p99 lag {p99:.3f} s <= native 1 thread's "
                        f"{'-' if ref is None else f'{ref:.3f} s'} and <= {KEEP_UP_P99} s")
            else:
                met = bool(r.lag["bounded"]) and p99 < OVERLOAD_P99
                text = (f"bounded ({'yes' if r.lag['bounded'] else 'no'}) and p99 lag {p99:.3f} s "
                        f"< {OVERLOAD_P99} s")
                if native1 is not None:
                    text += (f"; native 1 thread {'stayed bounded' if native1.lag['bounded'] else 'fell behind'}"
                             f" (p99 {native1.lag['p99']:.3f} s)")
            verdict = "met" if met else "NOT met"
            if met and share > 1 and (native1 is None or native1.lag["bounded"]):
                verdict = "not shown (native 1 thread was not overloaded: nothing to compare)"
            asked = self.steady.get("rate_tps") or 0
            if asked and r.achieved_tps < 0.9 * asked:
                verdict += (f"; the source reached only {r.achieved_tps:,.0f} of {asked:,.0f} tx/s "
                            "beside this contender (shared cores)")
            out.append({"label": r.label, "met": met, "verdict": verdict, "text": text})
        return out

    def table(self) -> str:
        head = ("contender", "threads", "source tx/s", "p50 lag s", "p99 lag s", "max lag s",
                "end lag s", "bounded", "caught up s", "applier CPU %", "target CPU %",
                "source CPU %", "check")
        rows = [head]
        for r in self.runs:
            lag = r.lag if r.lag.get("samples") else {}

            def f(key: str, lag=lag) -> str:
                return f"{lag[key]:.3f}" if key in lag else "-"

            rows.append((
                r.label,
                str(r.threads),
                f"{r.achieved_tps:,.0f}" if r.achieved_tps else "-",
                f("p50"), f("p99"), f("max"), f("end"),
                ("yes" if lag["bounded"] else "NO") if lag else "-",
                "-" if r.caught_up_after_s is None else f"{r.caught_up_after_s:.1f}",
                "-" if r.applier_cpu_pct is None else f"{r.applier_cpu_pct:.0f}",
                f"{r.target_cpu_pct:.0f}",
                f"{r.source_cpu_pct:.0f}",
                "equal" if r.check_ok else ("ERROR" if r.error else "DIFFERENT"),
            ))
        return _grid(rows)

    def summary(self) -> str:
        """The lines under the table: the rate, the reference, the issue's targets."""
        s = self.steady
        lines = [f"rate asked: {s['rate']} = {s['rate_tps']:,.0f} transactions/s for {s['seconds']:g} s "
                 f"from {s['connections']} connections ({s['workload']})"]
        ref = self.reference
        if ref:
            lines.append(f"native 1 thread catch-up of {ref['transactions']:,} transactions: "
                         f"{ref['seconds']:.2f} s = {ref['tps']:,.0f} TPS (the rate is "
                         f"{self.share():.0%} of it)")
        for t in self.targets():
            lines.append(f"issue target, {t['label']}: {t['text']}: {t['verdict']}")
        fc = self.final_check
        if fc:
            lines.append(f"final applier check: {'equal' if fc.get('ok') else 'DIFFERENT'} "
                         f"({fc.get('output', '').splitlines()[0] if fc.get('output') else ''})")
        return "\n".join(lines)


def _grid(rows: list[tuple[str, ...]]) -> str:
    """A Markdown table, first column left-aligned, the others right-aligned."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, r in enumerate(rows):
        cells = [c.ljust(w) if i == 0 else c.rjust(w)
                 for i, (c, w) in enumerate(zip(r, widths, strict=True))]
        lines.append("| " + " | ".join(cells) + " |")
        if n == 0:
            lines.append("|" + "|".join("-" * (w + 1) + ":" if i else "-" * (w + 2)
                                        for i, w in enumerate(widths)) + "|")
    return "\n".join(lines)


def write_steady(report: SteadyReport, out: Path) -> None:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "steady.json").write_text(json.dumps(report.to_json(), indent=2) + "\n")
    (out / "steady.md").write_text(report.table() + "\n\n" + report.summary() + "\n")
    steady_chart(report, out / "steady.png")


def steady_chart(report: SteadyReport, path: Path) -> None:
    """Above: lag over time, one line per contender (log scale), the load phase shaded.
    Below: the rate the source reached in each second of that contender's load."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, (ax, low) = plt.subplots(2, 1, figsize=(8, 5.6), dpi=90, sharex=True,
                                  gridspec_kw={"height_ratios": [3, 1]})
    floor = 0.005
    lowest = 1.0
    for r in report.runs:
        if not r.series:
            continue
        # the highest read of each second: the raw reads carry the heartbeat's 0-100 ms
        # sawtooth, which hides the lines behind each other (steady.json has them all)
        worst: dict[int, float] = {}
        for t, lag in r.series:
            b = math.floor(t)
            worst[b] = max(worst.get(b, 0.0), lag)
        xs = sorted(worst)
        lowest = min([lowest, *worst.values()])
        style = "--" if r.contender == "native" else "-"
        (line,) = ax.plot([x + 0.5 for x in xs], [max(worst[x], floor) for x in xs],
                          linestyle=style, linewidth=1.4, marker=".", markersize=3,
                          label=f"{r.label} (p99 {r.lag['p99']:.2f} s)" if r.lag.get("samples") else r.label)
        if r.source_series:
            low.plot([i + 0.5 for i in range(len(r.source_series))], r.source_series, linestyle=style,
                     linewidth=1.0, color=line.get_color())
    s = report.steady
    for a in (ax, low):
        a.axvspan(0, s["seconds"], color="grey", alpha=0.08, label="the load phase" if a is ax else None)
        a.grid(alpha=0.3, which="both")
    ax.axhline(KEEP_UP_P99, color="grey", linestyle=":", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_ylim(bottom=max(floor, lowest / 2))
    plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_locator(matplotlib.ticker.LogLocator(base=10, subs=(2.0, 5.0)))
    ax.yaxis.set_minor_formatter(plain)
    ax.tick_params(axis="y", which="minor", labelsize=7)
    ax.set_ylabel("lag, s (highest read\nper second, log scale)")
    share = report.share()
    ax.set_title(f"steady load: {s['rate_tps']:,.0f} tx/s asked"
                 + (f" ({share:.0%} of native 1 thread's catch-up)" if share else "")
                 + f", {s['workload']}", fontsize=10)
    ax.legend(fontsize=7)
    low.axhline(s["rate_tps"], color="grey", linestyle=":", linewidth=0.8)
    top = max([s["rate_tps"], *(x for r in report.runs for x in r.source_series)])
    low.set_ylim(0, top * 1.15)
    low.set_ylabel("source tx/s", fontsize=8)
    low.set_xlabel("seconds since the load started")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)

"""`applier bench` results: one row per contender, the table, JSON, Markdown and the chart."""

from __future__ import annotations

import json
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
    applier_cpu_s: float | None = None
    applier_peak_rss_mb: float | None = None
    target_cpu_s: float = 0.0
    source_cpu_s: float = 0.0
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
        rows = [head]
        for r in self.runs:
            rows.append(
                (
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
            )
        d = self.decode
        rows.append(
            (
                "decode only (no target)",
                str(d.get("workers", "")),
                f"{d['seconds']:.2f}",
                f"{d['tps']:,.0f}",
                f"{d['rows_per_s']:,.0f}",
                "-",
                "-",
                "-",
                "-",
                "-",
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

"""Command line (click only; the work happens in the modules it calls)."""

from __future__ import annotations

import contextlib
import json
import logging
import sys

import click

from . import config as config_mod
from .errors import ApplierError, Divergence


class _JsonLines(logging.Formatter):
    """One JSON object per log line (``--log-format json``)."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"), "level": record.levelname,
                "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line)


def _setup_logging(verbose: int, fmt: str = "text") -> None:
    level = logging.WARNING - 10 * min(verbose, 2)
    handler = logging.StreamHandler()
    handler.setFormatter(_JsonLines() if fmt == "json" else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])


def _load(path: str | None, **apply_overrides) -> config_mod.Config:
    return config_mod.load(path).with_overrides("apply", **apply_overrides)


def _fail(e: ApplierError) -> None:
    click.echo(f"error: {e}", err=True)
    sys.exit(e.exit_code)


@click.group()
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="Log lines as text or as one JSON object each.")
def main(verbose: int, log_format: str) -> None:
    """mts-applier: a multi-threaded replica applier for MySQL and MariaDB."""
    _setup_logging(verbose, log_format)


@contextlib.contextmanager
def _exporter(cfg: config_mod.Config, coord):
    """Prometheus metrics while ``coord`` runs, when ``[metrics] listen`` is set."""
    if not cfg.metrics.listen:
        yield
        return
    from .ops.exporter import serve

    server = serve(cfg.metrics.listen, coord, cfg.source if cfg.source.mode == "dump" else None)
    try:
        yield
    finally:
        server.shutdown()


config_option = click.option("--config", "-c", "config_path", type=click.Path(dir_okay=False),
                             help="TOML config file (see examples/applier.toml).")


@main.command()
@config_option
@click.option("--workers", type=int, help="Override [apply] workers.")
@click.option("--policy", type=click.Choice(config_mod.POLICIES), help="Override [apply] policy.")
@click.option("--batch-txns", type=int, help="Override [apply] batch_txns.")
@click.option("--start-file", help="Override [source] start_file.")
@click.option("--start-pos", type=int, help="Override [source] start_pos.")
@click.option("--start-gtid", help="Override [source] start_gtid.")
@click.option("--stop-at-end", is_flag=True, default=None, help="Exit once caught up with the source.")
@click.option("--until-position", metavar="FILE:POS",
              help="Stop after the transaction that reaches this source binlog position.")
@click.option("--until-gtid", metavar="GTID",
              help="Stop once these GTIDs are applied (MariaDB position d-s-n,..., MySQL set uuid:1-n).")
@click.option("--until-time", metavar="'YYYY-MM-DD HH:MM:SS'",
              help="Stop before the first transaction committed on the source after this moment "
                   "(local time, or ISO 8601 with an offset).")
def run(config_path, workers, policy, batch_txns, start_file, start_pos, start_gtid, stop_at_end,
        until_position, until_gtid, until_time) -> None:
    """Replicate: read the source binlog and apply it to the target.

    With an UNTIL option it stops there, at one exact position (no gaps), and exits 0."""
    from .pipeline.coordinator import Coordinator, install_signal_handlers
    from .pipeline.until import Until

    try:
        cfg = _load(config_path, workers=workers, policy=policy, batch_txns=batch_txns,
                    stop_at_end=stop_at_end)
        cfg = cfg.with_overrides("source", start_file=start_file, start_pos=start_pos,
                                 start_gtid=start_gtid)
        until = Until.parse(until_position, until_gtid, until_time)
        coord = Coordinator(cfg, until)
        install_signal_handlers(coord)
        with _exporter(cfg, coord):
            metrics = coord.run()
    except ApplierError as e:
        _fail(e)
    click.echo(json.dumps(metrics.summary()))


@main.command()
@config_option
@click.option("--start-position", metavar="FILE:POS", help="Where to start when the target has no checkpoint.")
@click.option("--start-gtid", metavar="GTID", help="Start after this GTID position when there is no checkpoint.")
@click.option("--until-position", metavar="FILE:POS", help="Stop after the transaction that reaches it.")
@click.option("--until-gtid", metavar="GTID", help="Stop once these GTIDs are applied.")
@click.option("--until-time", metavar="'YYYY-MM-DD HH:MM:SS'",
              help="Stop before the first transaction committed after this moment (local time).")
@click.option("--workers", type=int, help="Override [apply] workers.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
def replay(config_path, start_position, start_gtid, until_position, until_gtid, until_time, workers,
           no_progress, files) -> None:
    """Apply binlog FILES (in order) to the target, in parallel, exactly once: point-in-time
    recovery without a source server. [source] is not used (nor its start options: a
    replay starts at --start-position/--start-gtid, else at the first file's start)."""
    from pathlib import Path

    from .binlog.position import BinlogPosition
    from .ops.replay import replay as run_replay
    from .pipeline.until import Until

    try:
        cfg = _load(config_path, workers=workers)
        start = BinlogPosition.parse(start_position) if start_position else None
        until = Until.parse(until_position, until_gtid, until_time)
        metrics = run_replay(cfg, [Path(f) for f in files], until, start=start, start_gtid=start_gtid or "",
                             progress=False if no_progress else None, exporter=_exporter)
    except ApplierError as e:
        _fail(e)
    click.echo(json.dumps(metrics.summary()))


@main.command()
@config_option
@click.option("--force", is_flag=True, help="Replace a checkpoint the applier already has.")
def takeover(config_path, force) -> None:
    """Take over from the target's native replica: stop its IO and SQL threads and start
    the applier's checkpoint at its exact executed position."""
    from .ops.takeover import takeover as take

    try:
        position = take(_load(config_path), force=force)
    except ApplierError as e:
        _fail(e)
    click.echo(f"took over at {position}; the native replica's threads are stopped: "
               f"now run `applier run --config {config_path or 'FILE'}`")


@main.command()
@config_option
@click.option("--gtid/--file-position", "use_gtid", default=None,
              help="Point the native replica by GTID or by file/position "
                   "[default: as the replica was configured].")
def handback(config_path, use_gtid) -> None:
    """Hand the target back to its native replica: apply what lies in gaps, set the
    replica's position to the applier's exact position and start it."""
    from .ops.takeover import handback as give

    try:
        position = give(_load(config_path), use_gtid=use_gtid)
    except ApplierError as e:
        _fail(e)
    click.echo(f"handed back at {position}; the native replica runs")


@main.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object, for scripts.")
def status(config_path, as_json) -> None:
    """Applied position (exact), source position, lag, whether an applier runs.

    Read-only. With no checkpoint yet it prints one line starting 'no checkpoint yet'
    and exits 0 (--json: "checkpoint": false); exits 4 when a server is unreachable,
    5 or 3 when the target or the source refuses a statement."""
    from .ops.status import read_status

    try:
        st = read_status(_load(config_path))
    except ApplierError as e:
        _fail(e)
    click.echo(st.to_json() if as_json else "\n".join(st.lines()))


@main.command()
@config_option
@click.option("--database", "-d", "databases", multiple=True, help="Only these databases.")
@click.option("--chunk-rows", type=int, default=1000, show_default=True)
def check(config_path, databases, chunk_rows) -> None:
    """Compare every replicated table, source vs target, by chunked checksums."""
    from .ops.check import check as run_check

    try:
        cfg = _load(config_path)
        report = run_check(cfg.source, cfg.target, databases=databases or cfg.apply.databases,
                           ignore_databases=(*cfg.apply.ignore_databases, cfg.target.checkpoint_schema),
                           chunk_rows=chunk_rows, apply=cfg.apply)
    except ApplierError as e:
        _fail(e)
    click.echo(str(report))
    if not report.ok:
        sys.exit(Divergence.exit_code)


@main.command()
@click.option("--transactions", type=int, default=2000, show_default=True)
@click.option("--connections", type=int, default=4, show_default=True)
@click.option("--workers", type=int, default=4, show_default=True)
@click.option("--policy", type=click.Choice(config_mod.POLICIES), default="writeset", show_default=True)
@click.option("--flavor", type=click.Choice(("mariadb", "mysql")), default="mariadb", show_default=True,
              help="The throwaway servers: the host's MariaDB, or MySQL 9.7 from the chroot "
                   "scripts/bootstrap.sh makes.")
@click.option("--keep", is_flag=True, help="Keep the temp datadirs.")
def demo(transactions, connections, workers, policy, flavor, keep) -> None:
    """Run everything on throwaway local servers: workload, apply, check, summary."""
    from .harness.demo import run_demo

    try:
        result = run_demo(transactions, connections, workers, policy, keep, say=click.echo, flavor=flavor)
    except ApplierError as e:
        _fail(e)
    m = result.apply.summary()
    click.echo("")
    click.echo("summary")
    click.echo(f"  workload:  {result.workload_transactions} transactions in {result.workload_seconds:.2f}s on the source")
    click.echo(f"  applier:   {m['transactions']} transactions, {m['rows']} rows, {m['tps']} TPS, "
               f"{m['barriers']} barriers (DDL etc.)")
    click.echo(f"  check:     {result.report}")
    if not result.report.ok:
        sys.exit(Divergence.exit_code)


def _int_list(_ctx, _param, value):
    if value is None:
        return None
    try:
        return tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r}: a comma-separated list of integers") from None


def _name_list(_ctx, _param, value):
    return None if value is None else tuple(v.strip() for v in value.split(",") if v.strip())


BENCH_MODULES = ("matplotlib", "tqdm")  # the [bench] extra


def _missing_bench_modules() -> tuple[str, ...]:
    import importlib.util

    return tuple(m for m in BENCH_MODULES if importlib.util.find_spec(m) is None)


def _bench_extra_message(missing: tuple[str, ...]) -> str:
    return (f"applier bench needs {' and '.join(missing)}, not installed: "
            "pip install 'mts-applier[bench]'")


@main.command()
@click.option("--workload",
              type=click.Choice(["uniform", "hot", "single", "big", "big-insert", "big-delete", "fk",
                                 "updates", "oltp_write_only", "oltp_insert"]),
              help="What the source runs [default: uniform; big, big-insert, big-delete: 8 "
                   "transactions updating, inserting or deleting 20,000 rows each among small ones; "
                   "fk: foreign-key tables, barriers for the "
                   "applier; --steady: updates, two rows' counters + a ledger row per transaction, "
                   "--steady only].")
@click.option("--transactions", type=int,
              help="Backlog size (--steady N%: native single's reference backlog) "
                   "[default: 20000, --quick 2000].")
@click.option("--workers", callback=_int_list, help="Applier worker counts [default: 1,4,8].")
@click.option("--policies", callback=_name_list, help="Applier policies [default: writeset].")
@click.option("--native-threads", callback=_int_list,
              help="slave_parallel_threads values, 0 = single-threaded [default: 0,4,16].")
@click.option("--native-modes", callback=_name_list,
              help="Native parallel modes: MariaDB slave_parallel_mode values [default: "
                   "conservative,optimistic]; MySQL ordered,unordered (replica_preserve_commit_order).")
@click.option("--flavor", type=click.Choice(("mariadb", "mysql")), default="mariadb", show_default=True,
              help="Source, targets and native replica: the host's MariaDB, or MySQL 9.7 from the "
                   "chroot scripts/bootstrap.sh makes (its native replica: replica_parallel_workers).")
@click.option("--tables", type=int, help="Tables [default: 8, --quick 4].")
@click.option("--rows", type=int, help="Rows per table [default: 50000, --quick 1000].")
@click.option("--durable/--no-durable", default=True, show_default=True,
              help="innodb_flush_log_at_trx_commit=1 on the timed targets (redo flushed at every "
                   "commit, as on a production replica); --no-durable: 2.")
@click.option("--target-binlog", is_flag=True,
              help="The timed targets keep a binlog with sync_binlog=1 (and log the replicated "
                   "changes), as a replica that others replicate from does.")
@click.option("--out", type=click.Path(file_okay=False), default="benchmarks/out", show_default=True)
@click.option("--commit-order", is_flag=True,
              help="The applier contenders run with preserve_commit_order = true.")
@click.option("--verify-before-image", is_flag=True,
              help="The applier contenders run with verify_before_image = true.")
@click.option("--steady", metavar="RATE",
              help="Steady state instead of catch-up: the source runs RATE transactions/s (200) "
                   "or RATE% of native single's catch-up rate (70%: measured first) while each "
                   "contender applies live; lag p50/p99/max, pt-heartbeat style.")
@click.option("--seconds", type=float,
              help="--steady: the load phase per contender [default: 60, --quick 10].")
@click.option("--connections", type=int,
              help="--steady: source connections of the load [default: 4].")
@click.option("--files", is_flag=True,
              help="Also binlog files as the source: the mariadb-binlog | mariadb pipe, `applier "
                   "replay` and relay-log mode (with the IO thread fetching as it applies, and once the IO "
                   "thread has fetched the backlog), on the same backlog (vs pipe column).")
@click.option("--quick", is_flag=True, help="A small smoke run (about a minute).")
@click.option("--keep", is_flag=True, help="Keep the temp datadirs.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def bench(workload, transactions, workers, policies, native_threads, native_modes, tables, rows, durable,
          target_binlog, out, commit_order, verify_before_image, steady, seconds, connections, files, quick, keep,
          no_progress, flavor) -> None:
    """Time catch-up of one backlog: native replica vs the applier; table, JSON and PNG.

    With --steady: replica lag while the source runs at a fixed rate (steady.json,
    steady.md, steady.png)."""
    from pathlib import Path

    if steady is not None:
        from .harness.bench.steady import parse_rate

        try:
            parse_rate(steady)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--steady") from None
        if seconds is not None and seconds <= 0:
            raise click.BadParameter("must be positive", param_hint="--seconds")
        if connections is not None and connections < 1:
            raise click.BadParameter("must be positive", param_hint="--connections")
        if files:
            raise click.BadParameter("not with --steady", param_hint="--files")
        if flavor != "mariadb":
            raise click.BadParameter("--steady runs on MariaDB only", param_hint="--flavor")
    elif seconds is not None or connections is not None:
        raise click.BadParameter("only with --steady",
                                 param_hint="--seconds" if seconds is not None else "--connections")
    elif workload == "updates":
        raise click.BadParameter("updates: only with --steady", param_hint="--workload")
    workload = workload or ("updates" if steady is not None else "uniform")
    missing = _missing_bench_modules()
    if missing:
        _fail(ApplierError(_bench_extra_message(missing)))
    from .harness.bench import BenchOptions, run_bench

    kw = {"workload": workload, "transactions": transactions, "workers": workers, "policies": policies,
          "native_threads": native_threads, "native_modes": native_modes, "tables": tables, "rows": rows,
          "durable": durable, "target_binlog": target_binlog, "out": Path(out), "keep": keep, "commit_order": commit_order,
          "verify_before_image": verify_before_image, "files": files, "flavor": flavor}
    for p in policies or ():
        if p not in config_mod.POLICIES:
            raise click.BadParameter(f"{p!r}: one of {', '.join(config_mod.POLICIES)}", param_hint="--policies")
    try:
        if quick:
            opts = BenchOptions.quick(**kw)
        else:
            opts = BenchOptions(**{k: v for k, v in kw.items() if v is not None})
        if steady is not None:
            from .harness.bench.steady import SteadySpec, run_steady

            spec = SteadySpec(steady, seconds or (10.0 if quick else 60.0), connections or 4)
            report = run_steady(opts, spec, say=click.echo, progress=not no_progress)
        else:
            report = run_bench(opts, say=click.echo, progress=not no_progress)
    except ApplierError as e:
        _fail(e)
    except ModuleNotFoundError as e:  # an extra's module imported late (checked above)
        if (e.name or "").partition(".")[0] not in BENCH_MODULES:
            raise
        _fail(ApplierError(_bench_extra_message((e.name or "",))))
    click.echo("")
    click.echo(report.table())
    if steady is not None:
        click.echo("")
        click.echo(report.summary())
        click.echo(f"\nwrote {opts.out / 'steady.json'}, {opts.out / 'steady.md'} and {opts.out / 'steady.png'}")
        if not (all(r.check_ok for r in report.runs) and report.final_check.get("ok")):
            sys.exit(Divergence.exit_code)
        return
    click.echo(f"\nwrote {opts.out / 'bench.json'} and {opts.out / 'bench.png'}")
    if not all(r.check_ok for r in report.runs):
        sys.exit(Divergence.exit_code)


if __name__ == "__main__":  # pragma: no cover
    main()

"""`applier replay`: apply saved binlog files to a target, in parallel, with the same
writesets, scheduler, workers, barriers and exactly-once checkpoints as `applier run`
(point-in-time recovery: restore a backup, then replay the binlog files saved since, up
to a moment or a GTID). No source server is needed. A second replay of the same files
after a crash resumes from the checkpoint and skips what was committed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import threading
from pathlib import Path

import MySQLdb

from ..binlog.position import BinlogPosition, GtidPosition
from ..config import Config
from ..db import codes
from ..db.connect import connect, flavor_and_version
from ..errors import ConfigError, TargetError
from ..metrics import Metrics
from ..pipeline.coordinator import Coordinator, install_signal_handlers
from ..pipeline.files import FileSequence
from ..pipeline.reading import FileReading
from ..pipeline.until import Until, UntilTracker

REPORT_SECONDS = 0.5


def replay(cfg: Config, files: list[Path], until: Until | None = None, *,
           start: BinlogPosition | None = None, start_gtid: str = "",
           progress: bool | None = None, exporter=contextlib.nullcontext) -> Metrics:
    """Apply ``files`` (in order) to the target, from ``start`` or after ``start_gtid``
    (else from the first file's start) when the target has no checkpoint yet; ``[source]``
    is not used (its start options belong to `applier run`). ``progress``: a bar on
    stderr (default: when stderr is a terminal); ``exporter(cfg, coordinator)``: a
    context that serves its metrics while it runs."""
    if start is not None and start_gtid:
        raise ConfigError("give one of --start-position, --start-gtid")
    cfg = cfg.with_overrides("source", start_file=start.file if start else "",
                             start_pos=start.pos if start else 4, start_gtid=start_gtid)
    sequence = FileSequence(files)
    sequence.verify()  # a bad file is refused before anything is applied
    if until is not None and until.gtid and GtidPosition(until.gtid).mysql is not None:
        until = _with_gtid_executed(cfg, until, start_gtid)
    reading = FileReading(sequence, until)
    coord = Coordinator(cfg.with_overrides("apply", stop_at_end=True), until, reading=reading)
    install_signal_handlers(coord)
    show = sys.stderr.isatty() if progress is None else progress
    done = threading.Event()
    reporter = threading.Thread(target=_report, args=(reading, done), daemon=True) if show else None
    if reporter is not None:
        reporter.start()
    try:
        with exporter(cfg, coord):
            return coord.run()
    finally:
        done.set()
        if reporter is not None:
            reporter.join(5)


def _with_gtid_executed(cfg: Config, until: Until, start_gtid: str) -> Until:
    """A MySQL --until-gtid set: the GTIDs a MySQL target has executed already (a restored
    backup's gtid_purged, say) count as read, as for START REPLICA UNTIL SQL_AFTER_GTIDS;
    refused when they hold the whole set."""
    t = cfg.target
    conn = connect(t, "target")
    try:
        if flavor_and_version(conn)[0] != "mysql":
            return until
        cur = conn.cursor()
        cur.execute("SELECT @@GLOBAL.gtid_executed")
        (value,) = cur.fetchone()
    except MySQLdb.Error as e:
        raise TargetError(f"target {t.describe()}: reading @@GLOBAL.gtid_executed: "
                          f"{codes.code_of(e)}: {codes.message_of(e)}") from None
    finally:
        conn.close()
    executed = (value.decode() if isinstance(value, bytes) else str(value or "")).replace("\n", "")
    if not executed.strip():
        return until
    until = dataclasses.replace(until, applied=executed)
    if UntilTracker(until, start_gtid).read_all():
        raise ConfigError(f"--until-gtid {until.gtid} is already applied: the target's gtid_executed "
                          f"({executed}) holds it: there is nothing to apply")
    return until


def _report(reading: FileReading, done: threading.Event) -> None:
    """A progress bar over the bytes of the files, with an ETA (tqdm when installed)."""
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - the bench extra brings it
        tqdm = None
    bar = None
    last = 0
    while not done.wait(REPORT_SECONDS):
        read, total = reading.progress()
        if not total:
            continue
        if tqdm is None:
            sys.stderr.write(f"\rreplayed {read / 2**20:,.1f} of {total / 2**20:,.1f} MiB")
            continue
        if bar is None:
            bar = tqdm(total=total, unit="B", unit_scale=True, desc="replay", file=sys.stderr)
        bar.update(read - last)
        last = read
    if bar is not None:
        bar.close()
    elif last == 0 and tqdm is None:
        sys.stderr.write("\n")

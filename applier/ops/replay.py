"""`applier replay`: apply saved binlog files to a target, in parallel, with the same
writesets, scheduler, workers, barriers and exactly-once checkpoints as `applier run`
(point-in-time recovery: restore a backup, then replay the binlog files saved since, up
to a moment or a GTID). No source server is needed. A second replay of the same files
after a crash resumes from the checkpoint and skips what was committed.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from pathlib import Path

from ..config import Config
from ..metrics import Metrics
from ..pipeline.coordinator import Coordinator, install_signal_handlers
from ..pipeline.files import FileSequence
from ..pipeline.reading import FileReading
from ..pipeline.until import Until

REPORT_SECONDS = 0.5


def replay(cfg: Config, files: list[Path], until: Until | None = None, *,
           progress: bool | None = None, exporter=contextlib.nullcontext) -> Metrics:
    """Apply ``files`` (in order) to the target; ``progress``: a bar on stderr (default:
    when stderr is a terminal); ``exporter(cfg, coordinator)``: a context that serves its
    metrics while it runs."""
    sequence = FileSequence(files)
    sequence.verify()  # a bad file is refused before anything is applied
    reading = FileReading(sequence)
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

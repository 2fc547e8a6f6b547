"""Where the binlog comes from, and how the coordinator goes through it: a dump connection
to the source (``DumpReading``: reconnects, resuming at the watermark) or binlog files
(``FileReading``: `applier replay`, one file after the other, checked to form one
sequence). Each checks a start position before a checkpoint is written and runs the
``flow.Flow`` until the end, the UNTIL point or a stop request.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from ..binlog import events as ev
from ..binlog.position import BinlogPosition, GtidPosition, file_base, file_number
from ..config import Config
from ..errors import ConfigError, SourceError
from . import preflight
from .files import EndOfFile, FileInfo, FileSequence, FileSource, cut_short
from .source import BOUNDARY_EVENTS, DumpSource, EndOfBinlog, SourceDisconnected, check_start
from .until import Until, UntilTracker

if TYPE_CHECKING:
    from .flow import Flow

log = logging.getLogger(__name__)


class Reading(Protocol):
    flavor: str

    def preflight(self) -> None:
        """Check the source before anything else (grants, formats, the start file)."""
        ...

    def check_start(self, start: BinlogPosition | None, gtid: str) -> None:
        """Raise unless reading can begin there (a transaction boundary)."""
        ...

    def run(self, flow: Flow, start: BinlogPosition | None, gtid: str) -> None:
        """Feed ``flow`` until the end, its UNTIL point or a stop request."""
        ...

    def progress(self) -> tuple[int, int]:
        """(bytes read, bytes in all) where that is known, else (0, 0)."""
        ...


class DumpReading:
    """The source server's binlog over COM_BINLOG_DUMP connections."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.flavor = ""

    def preflight(self) -> None:
        src = self.cfg.source
        facts = preflight.inspect_source(src)
        preflight.check_source(facts, start_file=src.start_file or None, start_gtid=src.start_gtid or None)
        self.flavor = facts.flavor

    def check_start(self, start: BinlogPosition | None, gtid: str) -> None:
        check_start(self.cfg.source, self.flavor, start, gtid)

    def progress(self) -> tuple[int, int]:
        return 0, 0

    def run(self, flow: Flow, start: BinlogPosition | None, gtid: str) -> None:
        """Over dump connections until the end (``stop_at_end``), the UNTIL point or a
        stop request; after a disconnect, drain and resume at the watermark."""
        cfg = self.cfg.source
        attempts = 0
        position, gtid_start = start, gtid
        non_blocking = self.cfg.apply.stop_at_end
        while not flow.stop:
            reader = DumpSource(cfg, self.flavor, non_blocking=non_blocking)
            try:
                reader.open(position, gtid_start)
                attempts = 0
                flow.run(reader)
                return
            except EndOfBinlog:
                if flow.intake.partial or len(reader.buf) > reader.off:  # (Python path, scanner)
                    raise SourceError("the source binlog ends inside a transaction") from None
                if flow.until is not None:
                    log.warning("the source's binlog ends before UNTIL %s", flow.until.until)
                return
            except SourceDisconnected as e:
                attempts += 1
                if attempts > cfg.reconnect_attempts:
                    raise SourceError(
                        f"source {cfg.describe()} unreachable after {cfg.reconnect_attempts} reconnect "
                        f"attempts ({e}): check the server, then run again to resume"
                    ) from None
                log.warning("source connection lost (%s); reconnecting from the last applied position", e)
                flow.intake.abandon()
                flow.serial.abandon()
                flow.dispatcher.drain()
                w = flow.watermark
                if w.ordinal:
                    position = BinlogPosition(w.file, w.ordinal & 0xFFFFFFFF)
                elif position is None:
                    gtid_start = w.gtid or gtid_start
                time.sleep(min(30.0, cfg.reconnect_backoff_seconds * 2 ** (attempts - 1)))
            finally:
                reader.close()


class FileReading:
    """Binlog files, in order (`applier replay`). Without a start position it begins at
    the first file's first event; a start GTID position skips the transactions it
    holds (the files are read from their start, as a server would send them).

    The last file may end inside a transaction (a copy of the binlog the server was
    writing): its whole transactions are applied, not the incomplete one, and a warning
    says where they end. Any other file that ends inside a transaction is an
    error: the rest of that transaction is in no file given."""

    def __init__(self, files: FileSequence, until: Until | None = None) -> None:
        self.files = files
        self.flavor = files.flavor
        self.until = until  # to refuse an UNTIL point before the files' first transaction
        self._read = 0
        self._total = 0
        self._current: FileSource | None = None

    def preflight(self) -> None:
        pass  # the files were checked when they were opened (FileSequence)

    def check_start(self, start: BinlogPosition | None, gtid: str) -> None:
        if start is None:
            self._check_until(gtid)
            return
        i, pos = self.files.locate(start)
        source = FileSource(self.files.files[i], pos)
        try:
            for _ in range(64):
                e = source.next_event()
                if e is None:
                    source.fill(0)
                    continue
                if e.type in BOUNDARY_EVENTS:
                    return
                raise ConfigError(
                    f"start position {start} is inside a transaction: the event there is of type "
                    f"{e.type} (a transaction starts with its GTID event): start at the end "
                    "position of a COMMIT/XID event or at a GTID"
                )
        except EndOfFile:
            return
        finally:
            source.close()

    def _check_until(self, gtid: str) -> None:
        """No start position: an UNTIL point at or before the first transaction of the
        files leaves nothing to apply; refused before a checkpoint is written."""
        until = self.until
        if until is None:
            return
        tracker = UntilTracker(until, gtid)
        if until.gtid and tracker.read_all():
            return  # already applied: the coordinator says so
        first = self.files.first_transaction()
        if first is None:
            return
        txn, at = first
        where = f"{txn.gtid + ' ' if txn.gtid else ''}at {at}"
        if until.position is not None and until.position.ordinal <= at.ordinal:
            raise ConfigError(f"--until-position {until.position} is at or before the first transaction "
                              f"of the files ({where}): there is nothing to apply")
        if until.gtid and txn.gtid and tracker.past(txn.gtid):
            raise ConfigError(f"--until-gtid {until.gtid} is before the first transaction of the files "
                              f"({where}): there is nothing to apply")
        if until.time is not None and txn.timestamp > until.time:
            raise ConfigError(f"--until-time '{_moment(until.time)}' is before the first transaction of the files "
                              f"({where}, committed at {_moment(txn.timestamp)}): there is nothing to apply")

    def progress(self) -> tuple[int, int]:
        current = self._current.read_bytes if self._current is not None else 0
        return self._read + current, self._total

    def run(self, flow: Flow, start: BinlogPosition | None, gtid: str) -> None:
        files = self.files.files
        i, pos = self.files.locate(start)
        self._total = self.files.total_bytes((i, pos))
        if start is None and gtid:
            flow.applied_gtids = GtidPosition(gtid)
        for n in range(i, len(files)):
            info = files[n]
            reader = self._current = FileSource(info, pos)
            try:
                flow.run(reader)
                return  # the UNTIL point, or a stop request
            except EndOfFile:
                self._read += reader.read_bytes
                cut = _whole_end(flow, reader)
                if cut is not None and n + 1 < len(files):
                    raise SourceError(
                        f"binlog file {info.path} ends inside a transaction (its whole transactions "
                        f"end at offset {cut}) though {files[n + 1].name} follows it: the file is "
                        "truncated or corrupted and the rest of that transaction is in no file "
                        "given; copy the file again from the server"
                    ) from None
                if cut is not None:
                    flow.intake.abandon()
                    log.warning(
                        "binlog file %s ends inside a transaction: its whole transactions end at "
                        "offset %d (%s:%d) and the incomplete one after it is not applied (a copy "
                        "of a binlog the server was still writing?); replay again with the complete "
                        "file to apply the rest: it resumes there", info.path, cut, info.name, cut)
                elif n + 1 < len(files):
                    _check_next(reader, info, files[n + 1].name)
            finally:
                reader.close()
                self._current = None
            pos = 4
        if flow.until is not None and not flow.until.reached:
            log.warning("the binlog files end before UNTIL %s", flow.until.until)


def _whole_end(flow: Flow, reader: FileSource) -> int | None:
    """At the end of a file: None if it ends between transactions, else the offset where
    its whole transactions end (where the incomplete one begins). The native scanner
    leaves an incomplete transaction's events unread in the reader's buffer; the Python
    path has read them into the intake's builder."""
    unread = reader.unread_offset()
    if unread is not None:
        return unread
    if flow.intake.partial:
        current = flow.intake.builder.current
        return current.end_pos if current is not None else flow.intake.builder.pos
    return None


def _moment(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).isoformat(sep=" ")


def _check_next(reader: FileSource, info: FileInfo, following: str) -> None:
    """A file's closing Rotate names the next file (a server stop ends it with STOP and
    the next file is the next number). ``FileSequence.verify`` checked it before."""
    name, named = info.name, reader.file
    if named != name and named != following:
        raise ConfigError(f"binlog file {name} ends with a Rotate to {named}, but the next file given "
                          f"is {following}: give the files in order, none missing")
    if named == name and reader.last_type != ev.STOP:  # pragma: no cover - verify() refused it
        raise cut_short(info, following, reader.last_type)
    if file_base(following) != file_base(name) or (  # pragma: no cover - FileSequence checked it
            named == name and file_number(following) != file_number(name) + 1):
        raise ConfigError(f"{following} does not follow {name}")


__all__ = ["DumpReading", "FileReading", "Reading"]

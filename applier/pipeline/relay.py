"""Relay-log mode (`[source] mode = "relay-log"`): the target is a native replica whose
IO thread runs (its own TLS, compression, reconnects, semi-sync acknowledgements) and
whose SQL thread is stopped; the applier executes what the IO thread writes to the
relay log, in place of the SQL thread.

The relay log holds the source's events with the source's positions and GTIDs, so
checkpoints, `status`, `takeover` and `handback` speak source coordinates, one
position whichever of dump mode, relay-log mode or the native SQL thread applies.
Events the replica wrote itself (its FormatDescription, its Rotate to the next relay
file) are skipped. A transaction may span two relay files: what was not consumed of
one file carries over to the next. Reading starts at the oldest relay file and skips
every transaction that ends at or before the checkpoint.

Which source binlog file the oldest relay file's events are from is not in that file
when the relay log rotated for its size (it starts with the replica's and the source's
FormatDescription only); the checkpoint's file is not it either once the source has
rotated since (relay logs stay until they are purged, below). The first Rotate of the
source's in the relay log says: one the source sent when the IO thread (re)connected
(log position 0) names the file it continues, so what came before is in that file; a
real one (the end of a source file) names the next file, so what came before is in the
one before it (``_oldest_source_file``). MySQL's relay logs are alike: each file starts
with the replica's FormatDescription and Previous_gtids (its own server_id: skipped), a
file begun at a connect or after a source rotation has the source's artificial Rotate
(position 0) naming the file it continues, and the replica writes Rotates with server_id
0 and position 0 for what the source skipped (auto-position): they name the current file
too. MySQL rewrites its index at every rotation by deleting it and renaming a copy in
its place, so a missing index is read again for a moment (``INDEX_GONE_SECONDS``).

Applied relay logs must not fill the disk, and the IO thread owns the relay log index:
once the applier has caught up with the relay log and the files hold more than
``[source] relay_log_purge_bytes``, it drains, stops the IO thread, points the replica
at its exact position (which drops the relay logs: the server's own way) and starts the
IO thread again. While it is behind, relay logs grow as a backlog does.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..binlog import events as ev
from ..binlog.position import BinlogPosition, GtidPosition, MysqlGtidSet, file_base, file_number
from ..config import Config
from ..db.connect import connect, flavor_and_version
from ..db.replica import Replica, same_server
from ..errors import ConfigError, MissingTableMap, SourceError, TargetError
from .files import EndOfFile, FileSource, inspect_file

if TYPE_CHECKING:
    from .flow import Flow

log = logging.getLogger(__name__)

INDEX_SECONDS = 0.2  # how often the index is read again while waiting at a file's end
# MySQL rewrites its relay log index (at every rotation and purge) by writing a copy,
# deleting the index and renaming the copy in its place: for a moment there is none
INDEX_GONE_SECONDS = 2.0


class _Purge(Exception):
    """Caught up with a relay log that holds too much: time to drop it."""


class RelayLogReading:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.flavor = ""
        self.server_id = 0  # the replica's own: its events in the relay log are skipped
        self.index = Path(cfg.source.relay_log_index) if cfg.source.relay_log_index else None
        self.where = f"target {cfg.target.describe()}"

    def _replica(self):
        conn = connect(self.cfg.target, "target")
        flavor, _ = flavor_and_version(conn)
        return conn, Replica(conn, flavor, self.where)

    def preflight(self) -> None:
        conn, replica = self._replica()
        try:
            st = replica.status()
            if st is None:
                raise ConfigError(f"[source] mode = relay-log but {self.where} is not a replica: "
                                  "set up its replication (CHANGE MASTER TO, START SLAVE IO_THREAD)")
            if not same_server(st.host, st.port, self.cfg.source):
                raise ConfigError(f"{self.where}'s relay log comes from {st.host}:{st.port} but [source] "
                                  f"is {self.cfg.source.describe()}: point [source] at the replica's source")
            if not st.io_running:
                log.warning("%s: its IO thread is not running: nothing new will reach the relay log "
                            "(START SLAVE IO_THREAD)", self.where)
            index, self.server_id = replica.relay_log_index()
            self.flavor = replica.flavor
        finally:
            conn.close()
        if self.index is None:
            self.index = Path(index)
        if not _wait_for_file(self.index):
            raise ConfigError(f"relay log index {self.index} is not readable here: the applier must run "
                              "where the target's relay logs are, or set [source] relay_log_index")

    def check_start(self, start: BinlogPosition | None, gtid: str) -> None:
        if start is None and not gtid:
            raise ConfigError("relay-log mode starts from the native replica's position: run "
                              "`applier takeover` first")

    def progress(self) -> tuple[int, int]:
        return 0, 0

    def _files(self) -> list[Path]:
        assert self.index is not None
        deadline = time.monotonic() + INDEX_GONE_SECONDS
        while True:
            try:
                text = self.index.read_text()
                break
            except FileNotFoundError as e:  # MySQL replacing it (INDEX_GONE_SECONDS)
                if time.monotonic() > deadline:
                    raise SourceError(f"cannot read the relay log index {self.index}: {e.strerror}") from None
                time.sleep(0.01)
            except OSError as e:
                raise SourceError(f"cannot read the relay log index {self.index}: {e.strerror}") from None
        names = [line.strip() for line in text.splitlines() if line.strip()]
        base = self.index.parent
        return [Path(n) if n.startswith("/") else base / n for n in names]

    def run(self, flow: Flow, start: BinlogPosition | None, gtid: str) -> None:
        if start is not None:
            flow.skip_upto = start.ordinal
        elif gtid:
            flow.applied_gtids = GtidPosition(gtid)
            flow.tails_applied = True  # the oldest relay file may start inside an applied one
        source_file = self._oldest_source_file(start.file if start is not None else "")
        done: set[Path] = set()
        carry = b""
        resyncs: dict[int, int] = {}  # watermark -> times read again from the oldest relay log
        while not flow.stop:
            pending = [f for f in self._files() if f not in done]
            if not pending:
                time.sleep(INDEX_SECONDS)
                continue
            path = pending[0]
            reader = FileSource(inspect_file(path), follow=self._follower(flow, path),
                                own_server_id=self.server_id, source_file=source_file)
            reader.buf += carry
            try:
                flow.run(reader)
                return  # the UNTIL point, or a stop request
            except EndOfFile:
                done.add(path)
                source_file = reader.file
                carry = bytes(reader.buf[reader.off :])  # a transaction going on in the next file
            except _Purge:
                self._purge(flow)
                done.clear()
                carry = b""
                source_file = self._oldest_source_file(flow.watermark.file)
            except MissingTableMap as e:
                source_file = self._oldest_source_file(self._resync(flow, e, resyncs))
                done.clear()
                carry = b""
            finally:
                reader.close()

    def _oldest_source_file(self, default: str) -> str:
        """The source binlog file of the oldest relay file's first events (see the module
        docstring); ``default`` (the checkpoint's file) when no relay file holds a
        Rotate of the source's: then everything in them is from one file, the one the
        applier was reading."""
        for path in self._files():
            try:
                rotate = _first_source_rotate(path, self.server_id)
            except (OSError, SourceError):
                continue  # gone meanwhile (purged), or not readable yet: the next one
            if rotate is not None:
                name, artificial = rotate
                if artificial:
                    return name
                digits = len(name) - len(file_base(name)) - 1
                return f"{file_base(name)}.{file_number(name) - 1:0{digits}d}"
        return default

    @staticmethod
    def _resync(flow: Flow, e: MissingTableMap, resyncs: dict[int, int]) -> str:
        """A transaction's start went missing between two relay files: read again from the
        oldest relay log, skipping what has committed (as after a restart). Twice at
        the same position: the relay log itself lacks it, stop."""
        flow.intake.abandon()
        flow.serial.abandon()
        flow.dispatcher.drain()
        w = flow.watermark
        resyncs[w.ordinal] = resyncs.get(w.ordinal, 0) + 1
        if resyncs[w.ordinal] > 2:
            raise e
        log.warning("%s; reading the relay log again from its oldest file, from the applied "
                    "position %s:%d", e, w.file, w.ordinal & 0xFFFFFFFF)
        flow.skip_upto = max(flow.skip_upto, w.ordinal)
        return w.file

    def _follower(self, flow: Flow, path: Path):
        """The file's end-of-data test: done once the index names a later file; at the
        end of the newest one, asks for a purge when the relay logs have grown."""
        state = {"next": 0.0, "later": False}

        def follow() -> bool:
            now = time.monotonic()
            if now < state["next"]:
                return state["later"]
            state["next"] = now + INDEX_SECONDS
            files = self._files()
            state["later"] = path in files and files.index(path) + 1 < len(files)
            if (not state["later"] and not flow.intake.partial
                    and sum(_size(f) for f in files) > self.cfg.source.relay_log_purge_bytes):
                raise _Purge()
            return state["later"]

        return follow

    def _purge(self, flow: Flow) -> None:
        """Drop the applied relay logs the server's way (see the module docstring)."""
        flow.dispatcher.drain()
        flow.serial.record()
        w = flow.watermark
        conn, replica = self._replica()
        try:
            st = replica.stop("IO_THREAD")
            log.info("relay logs hold more than %d bytes: dropping them (the IO thread goes on "
                     "from %s:%d)", self.cfg.source.relay_log_purge_bytes, w.file, w.ordinal & 0xFFFFFFFF)
            if replica.mariadb:
                use_gtid = st.auto_position and bool(w.gtids.mariadb)
            else:
                use_gtid = st.auto_position and w.gtids.mysql is not None
                if use_gtid:
                    add_gtids(replica, w.gtids.mysql)  # type: ignore[arg-type]
            if not use_gtid and not w.file:
                raise TargetError("cannot drop the relay logs: the applier's position has no binlog file "
                                  "yet; it will try again")
            replica.point_at(w.file, w.ordinal & 0xFFFFFFFF, w.gtid, use_gtid=use_gtid)
            replica.start("IO_THREAD")
        finally:
            conn.close()
        flow.skip_upto = w.ordinal


def add_gtids(replica: Replica, applied: MysqlGtidSet) -> None:
    """MySQL: the GTIDs the applier applied join the target's gtid_executed (with
    gtid_purged '+...'), so the native replica's auto-position leaves them out."""
    missing = applied.difference(MysqlGtidSet.parse(replica.gtid_position()))
    if missing:
        replica.execute("SET GLOBAL gtid_purged = %s", (f"+{missing}",))


def _first_source_rotate(path: Path, own_server_id: int) -> tuple[str, bool] | None:
    """(the file it names, whether the source made it up at a connect) of the first
    Rotate event in ``path`` not written by the replica itself (``own_server_id``), or
    None. Reads event headers only, and the Rotate's body."""
    trailer = 4 if inspect_file(path).checksum else 0
    with open(path, "rb") as f:
        pos = 4
        while True:
            f.seek(pos)
            head = f.read(ev.HEADER_LEN)
            if len(head) < ev.HEADER_LEN:
                return None  # the end (or an event still being written)
            _, etype, server_id, size, log_pos, flags = ev.HEADER.unpack(head)
            if size < ev.HEADER_LEN:
                return None  # not an event: the reader names the problem
            if etype == ev.ROTATE and server_id != own_server_id:
                body = f.read(size - ev.HEADER_LEN)
                if len(body) < size - ev.HEADER_LEN:
                    return None
                name = body[8 : len(body) - trailer].decode("utf-8", "replace")
                return name, log_pos == 0 or bool(flags & ev.LOG_EVENT_ARTIFICIAL_F)
            pos += size


def _wait_for_file(path: Path) -> bool:
    """``path`` is a file, or becomes one within INDEX_GONE_SECONDS (MySQL's index
    replaced by rename: missing for a moment)."""
    deadline = time.monotonic() + INDEX_GONE_SECONDS
    while not path.is_file():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _size(path: Path) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0

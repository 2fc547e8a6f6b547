"""Binlog files as a source: `applier replay` (point-in-time recovery from saved binlog
files) and, following a growing file, the relay log.

``FileSource`` reads one file and frames its events the way the dump protocol sends
them (``source.PacketReader``), so the intake, its native scanner and everything
downstream read files exactly as they read a dump connection. It checks what a server
would have checked: the magic number, the FormatDescription (which says whether events
carry a CRC32), each event's size and checksum; a truncated or corrupted event stops it
with one line naming the file and the offset.

``FileSequence`` checks that the files given form one sequence (one server's binlog,
consecutive numbers, each file's closing Rotate naming the next one) and says where a
start position falls in them.
"""

from __future__ import annotations

import logging
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..binlog import events as ev
from ..binlog import native as binlog_native
from ..binlog.position import BinlogPosition, file_base, file_number
from ..binlog.transactions import Transaction, TransactionBuilder
from ..errors import ConfigError, SourceError
from .source import EndOfBinlog, PacketReader

log = logging.getLogger(__name__)

MAGIC = b"\xfebin"
CHUNK = 1 << 20  # bytes of events framed per fill
MAX_EVENT = 1 << 30  # no server writes a larger event: a larger size is corruption
_MAX_PACKET = 0xFFFFFF


class EndOfFile(EndOfBinlog):
    """Every event of a file has been read (and it is not followed)."""


@dataclass(frozen=True)
class FileInfo:
    """What a binlog file's start says about it."""

    path: Path
    name: str  # the file name: the binlog file the positions belong to
    server_id: int
    server_version: str
    checksum: bool
    size: int

    @property
    def flavor(self) -> str:
        return "mariadb" if "mariadb" in self.server_version.lower() else "mysql"


def inspect_file(path: Path) -> FileInfo:
    """Read a binlog file's magic number and FormatDescription."""
    where = str(path)
    try:
        with open(path, "rb") as f:
            head = f.read(4 + ev.HEADER_LEN)
            if head[:4] != MAGIC:
                raise SourceError(f"{where} is not a binlog file (it does not start with the binlog "
                                  "magic number)")
            if len(head) < 4 + ev.HEADER_LEN:
                raise SourceError(f"{where} is truncated: it ends inside its first event")
            _, etype, server_id, size, _, _ = ev.HEADER.unpack_from(head, 4)
            if etype != ev.FORMAT_DESCRIPTION or not ev.HEADER_LEN < size < 4096:
                raise SourceError(f"{where} does not start with a FormatDescription event: not a "
                                  "binlog file, or a corrupted one")
            body = f.read(size - ev.HEADER_LEN)
            total = f.seek(0, 2)
    except OSError as e:
        raise ConfigError(f"cannot read binlog file {where}: {e.strerror}") from None
    if len(body) < size - ev.HEADER_LEN:
        raise SourceError(f"{where} is truncated: it ends inside its FormatDescription event")
    version = body[2:52].rstrip(b"\0").decode("ascii", "replace")
    # checksum-aware servers end the FormatDescription with the algorithm and its CRC32
    alg = body[-5] if len(body) >= 5 else 0
    return FileInfo(Path(path), Path(path).name, server_id, version, alg == 1, total)


class FileSource(PacketReader):
    """One binlog or relay-log file from ``start``, framed as a dump stream. At the end:
    ``EndOfFile``, or with ``follow``, wait for the file to grow (a relay log being
    written) until ``finished()`` says no more will come."""

    def __init__(self, info: FileInfo, start: int = 4, *, follow=None, own_server_id: int | None = None,
                 source_file: str = "") -> None:
        super().__init__()
        self.info = info
        self.where = f"binlog file {info.path}"
        self.file = source_file or info.name  # a relay log's positions are the source's
        self.checksum = info.checksum
        self.follow = follow  # None, or a callable: True once the file will not grow any more
        self.own_server_id = own_server_id  # a relay log: events its own server wrote are skipped
        self.pos = start  # file offset of the next event to frame
        self.native = binlog_native.frame_events is not None  # frame in C (tests compare both)
        self.read_bytes = 0  # of the file, for progress
        self.last_type = 0  # the type of the last event framed (at the end: the file's last)
        self._seq = 1
        self._f = open(info.path, "rb")  # noqa: SIM115 - closed by close()
        if start > 4:
            self._f.seek(start)

    def close(self) -> None:
        self._f.close()

    def next_event(self) -> ev.Event | None:
        while True:
            e = super().next_event()
            if e is None or self.own_server_id is None or e.server_id != self.own_server_id:
                return e  # (a relay log's own FormatDescription, Rotate...: not the source's)

    def _source_event(self, server_id: int) -> bool:
        return server_id != self.own_server_id

    def fill(self, timeout: float) -> bool:
        if self.off:
            del self.buf[: self.off]
            self.off = 0
        if self._frame():
            return True
        if self.follow is None:
            raise EndOfFile()
        deadline = time.monotonic() + timeout
        while True:  # a relay log: wait for the IO thread to write more
            done = self.follow()
            if self._frame():
                return True
            if done:
                raise EndOfFile()
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def _frame(self) -> bool:
        """Frame the whole events that follow ``pos`` (up to CHUNK bytes); False when
        there is none yet."""
        f, where = self._f, self.where
        f.seek(self.pos)
        data = f.read(CHUNK)
        n, p, framed = len(data), 0, 0
        buf, view, checksum = self.buf, memoryview(data), self.checksum
        native = binlog_native.frame_events if self.native else None
        while n - p >= ev.HEADER_LEN:
            if native is not None:  # the common events in C; what it leaves, one by one here
                p, count, self._seq, last = native(data, p, buf, self._seq, checksum)
                if count:
                    framed += count
                    self.last_type = last
                    if n - p < ev.HEADER_LEN:
                        break
            size = int.from_bytes(view[p + 9 : p + 13], "little")
            if size < ev.HEADER_LEN or size > MAX_EVENT:
                raise _impossible(where, self.pos + p, size)
            if n - p < size:
                if p == 0 and size > CHUNK:  # one big event: read it whole
                    f.seek(self.pos)
                    data = f.read(size)
                    n, view = len(data), memoryview(data)
                    if n < size:
                        break
                else:
                    break
            event = view[p : p + size]  # (no copy until it is appended to buf)
            if checksum and not _crc_ok(event):
                raise _bad_crc(where, self.pos + p)
            self._packet_out(buf, event)
            self.last_type = event[4]
            p += size
            framed += 1
        if p == 0 and self.follow is None and n:
            raise _truncated(where, self.pos)
        self.pos += p
        self.read_bytes += p
        return framed > 0

    def unread_offset(self) -> int | None:
        """The file offset of the first event framed but not read yet (what the native
        scanner left of a transaction whose end has not come), or None when every event
        framed has been read."""
        buf, off, end = self.buf, self.off, len(self.buf)
        if off >= end:
            return None
        unread = 0  # event bytes: each packet is a 4-byte header, then the OK byte and the event
        while off < end:
            length = buf[off] | buf[off + 1] << 8 | buf[off + 2] << 16
            unread += length
            off += 4 + length
            if length < _MAX_PACKET:
                unread -= 1  # the OK byte, once per event (a split event's parts carry one)
        return self.pos - unread

    def _packet_out(self, buf: bytearray, event) -> None:
        payload_len = len(event) + 1
        if payload_len < _MAX_PACKET:
            buf += (payload_len | (self._seq & 0xFF) << 24 | 0 << 32).to_bytes(5, "little")  # + the OK byte
            buf += event
            self._seq += 1
            return
        payload = b"\0" + bytes(event)  # 16 MiB and more: split as the protocol does
        while True:
            chunk, payload = payload[:_MAX_PACKET], payload[_MAX_PACKET:]
            buf += struct.pack("<I", len(chunk) | (self._seq & 0xFF) << 24) + chunk
            self._seq += 1
            if len(chunk) < _MAX_PACKET:
                return


LOG_EVENT_BINLOG_IN_USE_F = 0x1


def _walk(info: FileInfo) -> tuple[int, str]:
    """Every event of a file checked as ``FileSource`` reads it (sizes, CRC32s, types the
    applier can read), without framing or decoding, CHUNK bytes at a time: (the last
    event's type, the file a Rotate named last)."""
    where, last, rotate, base = f"binlog file {info.path}", 0, "", 4
    trailer = 4 if info.checksum else 0
    buf = bytearray()
    with open(info.path, "rb") as f:
        f.seek(4)
        while True:
            data = f.read(CHUNK)
            buf += data
            with memoryview(buf) as view:
                last, rotate, done = _walk_view(view, where, trailer, last, rotate, base, not data)
            del buf[:done]
            base += done
            if not data:
                return last, rotate


def _walk_view(view: memoryview, where: str, trailer: int, last: int, rotate: str, base: int,
               at_end: bool) -> tuple[int, str, int]:
    """The whole events at the start of ``view`` (file offset ``base``): (last type, last
    Rotate's file, bytes walked). ``at_end``: nothing follows ``view``."""
    n, p = len(view), 0
    while p < n:
        size = int.from_bytes(view[p + 9 : p + 13], "little") if n - p >= ev.HEADER_LEN else 0
        if n - p >= ev.HEADER_LEN and not ev.HEADER_LEN <= size <= MAX_EVENT:
            raise _impossible(where, base + p, size)
        if n - p < ev.HEADER_LEN or n - p < size:
            if at_end:
                raise _truncated(where, base + p)
            return last, rotate, p  # the rest of it comes with the next chunk
        with view[p : p + size] as event:
            if trailer and not _crc_ok(event):
                raise _bad_crc(where, base + p)
            last = event[4]
            if last == ev.ROTATE:
                rotate = bytes(event[ev.HEADER_LEN + 8 : size - trailer]).decode(errors="replace")
        if last in ev.UNSUPPORTED:
            raise SourceError(f"{where} has event type {last} which the applier cannot decode: "
                              f"{ev.UNSUPPORTED[last]}")
        p += size
    return last, rotate, p


_EVENT_NAMES = {
    ev.QUERY: "a Query", ev.XID: "an Xid (a COMMIT)", ev.TABLE_MAP: "a Table_map",
    ev.FORMAT_DESCRIPTION: "the Format_description", ev.MARIADB_GTID: "a GTID", ev.MYSQL_GTID: "a GTID",
    ev.MARIADB_GTID_LIST: "the Gtid_list", ev.MARIADB_BINLOG_CHECKPOINT: "a Binlog_checkpoint",
    ev.MYSQL_PREVIOUS_GTIDS: "the Previous_gtids",
}


def cut_short(info: FileInfo, following: str, last: int) -> SourceError:
    """A file before the last one that does not end with its closing Rotate (or STOP)."""
    name = _EVENT_NAMES.get(last) or ("a rows event" if last in ev.ROWS_EVENTS else f"of type {last}")
    return SourceError(
        f"binlog file {info.path} ends at offset {info.size} without the Rotate to {following} "
        f"that closes a binlog file (its last event is {name}): it was cut short (copied "
        "while the server was writing it?), so the transactions after the cut are missing; copy "
        "the whole file again from the server (or give it as the last file)"
    )


def _impossible(where: str, offset: int, size: int) -> SourceError:
    return SourceError(f"{where}: the event at offset {offset} has an impossible size ({size} bytes): "
                       "the file is corrupted")


def _bad_crc(where: str, offset: int) -> SourceError:
    return SourceError(f"{where}: the event at offset {offset} fails its CRC32 checksum: the file is corrupted")


def _truncated(where: str, offset: int) -> SourceError:
    return SourceError(f"{where} ends inside an event at offset {offset}: the file is truncated "
                       "(copied while the server was writing it?)")


def _crc_ok(event) -> bool:
    """An event (bytes or memoryview) matches its CRC32. A FormatDescription's is computed
    with the in-use flag clear: the server sets and clears that flag in place while the
    file is open."""
    if event[4] == ev.FORMAT_DESCRIPTION and event[17] & LOG_EVENT_BINLOG_IN_USE_F:
        event = bytes(event[:17]) + bytes([event[17] & ~LOG_EVENT_BINLOG_IN_USE_F]) + bytes(event[18:])
    return zlib.crc32(event[:-4]) == int.from_bytes(event[-4:], "little")


class FileSequence:
    """Binlog files given in order, checked to form one sequence."""

    def __init__(self, paths: list[Path]) -> None:
        if not paths:
            raise ConfigError("no binlog files given")
        infos = [inspect_file(Path(p)) for p in paths]
        first = infos[0]
        for prev, info in zip(infos, infos[1:], strict=False):
            if file_base(info.name) != file_base(prev.name):
                raise ConfigError(f"{info.path} does not continue {prev.path}: another binlog name")
            if info.server_id != prev.server_id:
                raise SourceError(f"{info.path} was written by server {info.server_id}, {prev.path} by "
                                  f"server {prev.server_id}: the files are not from one server")
            if file_number(info.name) != file_number(prev.name) + 1:
                missing = BinlogPosition.from_ordinal(file_number(prev.name) + 1 << 32, file_base(prev.name))
                raise ConfigError(f"binlog file {missing.file} is missing between {prev.path} and "
                                  f"{info.path}: give every file of the sequence")
        self.files = infos
        self.flavor = first.flavor
        self._by_name = {i.name: i for i in infos}

    def verify(self) -> None:
        """Read every event of every file once (sizes, CRC32s) and check that every file
        but the last ends as a server ends a binlog file: with a Rotate naming the next
        file given, or with a STOP event (the server stopped; the next file has the next
        number, checked in ``__init__``). A file that ends otherwise was cut short (copied
        while the server was writing it): the transactions after the cut are missing.
        A truncated, cut or corrupted file is refused before anything is applied."""
        for n, info in enumerate(self.files):
            last, rotate = _walk(info)
            if n + 1 == len(self.files):
                continue  # the last file may be a copy of the one being written
            following = self.files[n + 1].name
            if last == ev.ROTATE:
                if rotate != following:
                    raise ConfigError(f"binlog file {info.name} ends with a Rotate to {rotate}, but "
                                      f"the next file given is {following}: give the files in order")
            elif last != ev.STOP:
                raise cut_short(info, following, last)

    def __getitem__(self, name: str) -> FileInfo:
        return self._by_name[name]

    def index(self, name: str) -> int:
        return next(i for i, f in enumerate(self.files) if f.name == name)

    def locate(self, start: BinlogPosition | None) -> tuple[int, int]:
        """(index of the file, offset) where reading starts."""
        if start is None:
            return 0, 4
        first, last = self.files[0], self.files[-1]
        if start.file in self._by_name:
            info = self._by_name[start.file]
            if start.pos > info.size:
                raise ConfigError(f"position {start} is past the end of {info.path} ({info.size} bytes)")
            return self.index(start.file), start.pos
        if file_base(start.file) == file_base(first.name) and file_number(start.file) < file_number(first.name):
            raise ConfigError(f"the start position {start} is before the first file given "
                              f"({first.name}): give the files from {start.file} on")
        if file_base(start.file) == file_base(last.name) and file_number(start.file) > file_number(last.name):
            raise ConfigError(f"the start position {start} is after the last file given ({last.name}): "
                              "there is nothing to replay")
        raise ConfigError(f"the start position {start} is in none of the files given "
                          f"({first.name} .. {last.name})")

    def first_transaction(self) -> tuple[Transaction, BinlogPosition] | None:
        """The files' first transaction as it starts (its GTID, timestamp), and where it
        starts; None if they hold none."""
        for info in self.files:
            source = FileSource(info)
            trailer = 4 if info.checksum else 0
            try:
                builder, offset = TransactionBuilder(), 4
                for e in read_events(source):
                    txn = builder.add(e, info.name) or builder.current
                    if txn is not None:
                        return txn, BinlogPosition(info.name, offset)
                    offset += ev.HEADER_LEN + len(e.body) + trailer
            finally:
                source.close()
        return None

    def total_bytes(self, start: tuple[int, int]) -> int:
        i, pos = start
        return sum(f.size for f in self.files[i:]) - pos


def read_events(source: FileSource) -> Iterator[ev.Event]:
    """Every event of one file (for checks and tests)."""
    try:
        while True:
            e = source.next_event()
            if e is not None:
                yield e
            else:
                source.fill(0)
    except EndOfFile:
        return

"""The source: connect to it as a replica and hold what it sends as bytes.

Why not ``BinLogStreamReader``: it decodes every event into Python objects and
re-parses the TableMap before each rows event, which caps a coordinator at about
1,400 transactions/s. Here we speak the dump protocol on a pymysql connection and read
its socket in big chunks into one buffer (``buf`` from ``off``): the intake's native
scanner reads whole transactions straight from it, and ``next_event`` splits one event
into header fields and body bytes for the Python path. Row images stay bytes until a
worker decodes them.

The reader is pulled, never calls back: ``fill(timeout)`` reads more bytes (False when
none came in time), ``next_event()`` returns one whole event or None. It never decides
where to resume: the coordinator reconnects with the last applied position after a
disconnect (``SourceDisconnected``).
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import struct
import time
from collections.abc import Iterator

import pymysql

from ..binlog import events as ev
from ..binlog.position import BinlogPosition, MysqlGtidSet
from ..config import SourceConfig
from ..db import codes
from ..db.connect import connect_pymysql
from ..errors import BinlogPurgedError, ConnectError, SourceError

log = logging.getLogger(__name__)

COM_BINLOG_DUMP = 0x12
COM_REGISTER_SLAVE = 0x15
COM_BINLOG_DUMP_GTID = 0x1E
BINLOG_DUMP_NON_BLOCK = 0x01
BINLOG_THROUGH_GTID = 0x04


class SourceDisconnected(Exception):
    """The dump connection ended (source restart, network). Not an ApplierError:
    the coordinator reconnects from the last applied position."""


class EndOfBinlog(Exception):
    """Non-blocking dump reached the end of the source's binlog."""


class PacketReader:
    """Binlog events as the dump protocol frames them (a 4-byte packet header, the 0x00
    OK marker, the event), in one buffer read from ``off``: the intake's native scanner
    reads whole transactions straight from it, ``next_event`` splits one event into
    header fields and body bytes. ``fill`` brings more bytes (``DumpSource``: from the
    socket; ``files.FileSource``: from binlog files, framed the same way)."""

    where = "source"  # names the source in messages
    # MariaDB's encrypted binlogs (encrypt_binlog=ON) begin with a START_ENCRYPTION event;
    # a dump connection sends the events after it decrypted, a binlog file does not
    server_decrypts = False

    def __init__(self) -> None:
        self.file = ""  # binlog file of the event being read (from Rotate events)
        self.buf = bytearray()  # bytes not consumed yet, from ``off``
        self.off = 0
        self.checksum = False  # events end with a 4-byte CRC32 (binlog_checksum is not NONE)

    def fill(self, timeout: float) -> bool:
        """Bring more bytes, waiting up to ``timeout`` seconds; False when none came."""
        raise NotImplementedError

    def next_event(self) -> ev.Event | None:
        """The next whole event in the buffer (Rotate updates ``file``), or None when
        more bytes are needed. Raises for error and EOF packets."""
        pkt = self._packet()
        if pkt is None:
            return None
        marker = pkt[0]
        if marker == 0xFF:
            self._error(pkt)
        if marker == 0xFE and len(pkt) < 9:
            self._end()
        ts, etype, server_id, size, log_pos, flags = ev.HEADER.unpack_from(pkt, 1)
        end = size + 1 - (4 if self.checksum else 0)
        body = pkt[1 + ev.HEADER_LEN : end]
        if etype == ev.ROTATE:
            if self._source_event(server_id):
                self.file = body[8:].decode()
        elif etype in ev.UNSUPPORTED and not (etype == ev.MARIADB_START_ENCRYPTION and self.server_decrypts):
            raise SourceError(
                f"{self.where} writes event type {etype} which the applier "
                f"cannot decode: {ev.UNSUPPORTED[etype]}"
            )
        return ev.Event(etype, ts, server_id, log_pos, flags, body)

    def events(self) -> Iterator[ev.Event]:
        """Every event, waiting for more as needed, until the reader ends (raises):
        for probes and tests; the intake reads ``buf`` and ``next_event`` itself."""
        while True:
            e = self.next_event()
            if e is not None:
                yield e
            else:
                self.fill(1.0)

    def _packet(self) -> bytes | None:
        """One whole packet's payload (16 MiB parts joined), or None if not all here."""
        buf, off, end = self.buf, self.off, len(self.buf)
        parts = []
        while True:
            if end - off < 4:
                return None
            length = buf[off] | buf[off + 1] << 8 | buf[off + 2] << 16
            if end - off - 4 < length:
                return None
            parts.append(bytes(buf[off + 4 : off + 4 + length]))
            off += 4 + length
            if length < 0xFFFFFF:
                self.off = off
                return parts[0] if len(parts) == 1 else b"".join(parts)

    def _source_event(self, server_id: int) -> bool:
        """An event of the source (a relay log also holds its own server's)."""
        return True

    def _error(self, pkt: bytes) -> None:
        raise SourceError(f"{self.where} sent an error packet")

    def _end(self) -> None:
        raise EndOfBinlog()


class DumpSource(PacketReader):
    """One dump connection; open a new one to reconnect."""

    server_decrypts = True  # encrypted binlogs (either flavor) come decrypted over the dump

    def __init__(self, cfg: SourceConfig, flavor: str, *, non_blocking: bool = False,
                 server_id: int | None = None) -> None:
        """``server_id``: ours on the source, default ``[source] server_id``; 0 for a
        short look beside a running applier (`status`): it does not register, so the
        source neither refuses it nor drops the applier's dump for it."""
        super().__init__()
        self.cfg = cfg
        self.server_id = cfg.server_id if server_id is None else server_id
        self.flavor = flavor
        self.non_blocking = non_blocking
        self.where = f"source {cfg.describe()}"
        self._conn: pymysql.connections.Connection | None = None
        self._sock: socket.socket | None = None
        self._timeout = max(30.0, cfg.heartbeat_seconds * 4)  # silence that means a dead source
        self._last_read = 0.0

    # -- connection ---------------------------------------------------------------------

    def open(self, start: BinlogPosition | None, gtid: str = "") -> None:
        """Start dumping at ``start`` (file:pos) or, without it, at GTID position ``gtid``.
        A connection that breaks on the way (handshake, settings, registration, the dump
        request) is ``SourceDisconnected``: the caller retries. Refused credentials are
        ``ConnectError``: retrying would not help."""
        try:
            self._open(start, gtid)
        except (ConnectError, SourceError):
            self.close()
            raise
        except pymysql.err.OperationalError as e:
            self.close()
            code = e.args[0] if e.args else 0
            if code == codes.ER_SLAVE_SAME_ID:
                raise SourceDisconnected(self._same_id(str(e.args[-1]))) from None
            if code in codes.ACCESS_DENIED:
                raise ConnectError(
                    f"source {self.cfg.describe()}: access denied for user {self.cfg.user!r}: "
                    "check [source] user/password"
                ) from None
            raise SourceDisconnected(
                f"source {self.cfg.describe()} is not reachable ({e.args[-1] if e.args else e}): "
                "check [source] host/port and that the server runs"
            ) from None
        except (pymysql.err.Error, OSError, ValueError, AttributeError, struct.error, IndexError) as e:
            self.close()  # the connection broke somewhere in the handshake
            raise SourceDisconnected(f"source connection lost while starting the dump: "
                                     f"{type(e).__name__}: {e}") from None

    def _open(self, start: BinlogPosition | None, gtid: str) -> None:
        cfg = self.cfg
        conn = connect_pymysql(  # with [source] ssl_mode: TLS failures are ConnectError
            cfg,
            "source",
            host=cfg.host,
            port=cfg.port,
            user=cfg.user,
            password=cfg.password,
            unix_socket=cfg.socket or None,
            connect_timeout=10,
            read_timeout=max(30.0, cfg.heartbeat_seconds * 4),
            autocommit=True,
        )
        self._conn = conn
        with conn.cursor() as cur:
            cur.execute("SELECT @@global.binlog_checksum")
            (checksum,) = cur.fetchone()
            self.checksum = str(checksum).upper() != "NONE"
            cur.execute("SET @master_binlog_checksum = @@global.binlog_checksum")
            cur.execute("SET @master_heartbeat_period = %s", (int(cfg.heartbeat_seconds * 1e9),))
            if self.flavor == "mariadb":
                # 4 = MARIA_SLAVE_CAPABILITY_GTID: we understand GTID events natively.
                cur.execute("SET @mariadb_slave_capability = 4")
                if start is None:
                    cur.execute("SET @slave_connect_state = %s", (gtid,))
                    cur.execute("SET @slave_gtid_strict_mode = 1")
                    cur.execute("SET @slave_gtid_ignore_duplicates = 0")
        if self.server_id:
            self._register()
        if start is not None:
            self.file = start.file
            name = start.file.encode()
            flags = BINLOG_DUMP_NON_BLOCK if self.non_blocking else 0
            payload = struct.pack("<IHI", start.pos, flags, self.server_id) + name
            self._command(COM_BINLOG_DUMP, payload)
        elif self.flavor == "mariadb":
            flags = BINLOG_DUMP_NON_BLOCK if self.non_blocking else 0
            self._command(COM_BINLOG_DUMP, struct.pack("<IHI", 4, flags, self.server_id))
        else:
            data = MysqlGtidSet.parse(gtid).encode() if gtid else MysqlGtidSet().encode()
            flags = BINLOG_THROUGH_GTID | (BINLOG_DUMP_NON_BLOCK if self.non_blocking else 0)
            payload = (
                struct.pack("<HII", flags, self.server_id, 0)
                + struct.pack("<Q", 4)
                + struct.pack("<I", len(data))
                + data
            )
            self._command(COM_BINLOG_DUMP_GTID, payload)
        # we own this connection from here on: read its socket directly, in big chunks
        self._sock = conn._sock  # noqa: SLF001
        self._sock.settimeout(self._timeout)
        self.buf = bytearray()  # pymysql's reader holds nothing: the source sent only OK so far
        self.off = 0
        self._last_read = time.monotonic()

    def _register(self) -> None:
        """COM_REGISTER_SLAVE so the source lists us in SHOW SLAVE HOSTS."""
        host = b"mts-applier"
        payload = (
            struct.pack("<I", self.server_id)
            + bytes([len(host)])
            + host
            + b"\x00\x00"  # user, password: not reported
            + struct.pack("<HII", 0, 0, 0)
        )
        self._command(COM_REGISTER_SLAVE, payload)
        assert self._conn is not None
        self._conn._read_packet()  # noqa: SLF001 - OK packet

    def _command(self, code: int, payload: bytes) -> None:
        assert self._conn is not None
        data = bytes([code]) + payload
        self._conn._write_bytes(struct.pack("<I", len(data))[:3] + b"\x00" + data)  # noqa: SLF001
        self._conn._next_seq_id = 1  # noqa: SLF001

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # a broken socket may fail to close
                self._conn.close()
        self._conn = None
        self._sock = None

    # -- reading --------------------------------------------------------------------------

    def fill(self, timeout: float) -> bool:
        """Read what the socket has, waiting up to ``timeout`` seconds (0: not at all);
        False when nothing came. Consumed bytes are dropped from the buffer first."""
        sock = self._sock
        if sock is None:
            raise SourceDisconnected("the dump connection is closed")
        # over TLS, decrypted bytes may wait in the SSL object while the socket is quiet
        pending = sock.pending() if hasattr(sock, "pending") else 0
        if not pending and not select.select([sock], [], [], timeout)[0]:
            if time.monotonic() - self._last_read > self._timeout:
                raise SourceDisconnected(
                    f"source sent nothing (not even a heartbeat) for {self._timeout:g}s"
                )
            return False
        try:
            chunk = sock.recv(1 << 20)
        except (OSError, ValueError, AttributeError) as e:
            raise SourceDisconnected(f"source connection lost: {e}") from None
        if not chunk:
            raise SourceDisconnected("source closed the dump connection")
        if self.off:
            del self.buf[: self.off]
            self.off = 0
        self.buf += chunk
        self._last_read = time.monotonic()
        return True

    def _end(self) -> None:
        if self.non_blocking:
            raise EndOfBinlog()
        raise SourceDisconnected("source sent EOF on the dump connection")

    def _same_id(self, msg: str) -> str:
        return (f"source {self.cfg.describe()} has another binlog dump with server_id {self.server_id} "
                f"({msg}): our previous connection, not yet noticed gone (retried), or another "
                "replica: give each its own [source] server_id")

    def _error(self, pkt: bytes) -> None:
        code = pkt[1] | pkt[2] << 8
        msg = pkt[9:].decode(errors="replace") if pkt[3:4] == b"#" else pkt[3:].decode(errors="replace")
        where = f"source {self.cfg.describe()}"
        if code == codes.ER_SLAVE_SAME_ID:
            raise SourceDisconnected(self._same_id(msg))
        if code == codes.ER_MASTER_FATAL_ERROR_READING_BINLOG:
            low = msg.lower()
            if any(w in low for w in ("bogus data", "middle of event", "exceeded max_allowed_packet",
                                      "crc check", "wrong magic", "corrupt")):
                raise SourceError(
                    f"{where} cannot read an event at the requested position ({msg}): it is not "
                    "the start of an event; use a position from SHOW BINLOG EVENTS (an End_log_pos)"
                )
            if "impossible position" in low or "> file size" in low:
                raise SourceError(f"{where}: the requested position is past the end of its file ({msg})")
            raise BinlogPurgedError(
                f"{where} cannot send the binlog from the requested position ({msg}): the file "
                "may have been purged; restart the target from a fresh copy or choose a later position"
            )
        raise SourceError(f"{where} ended the binlog dump with error {code}: {msg}")


# events that may come first at a transaction boundary (or at the start of a file)
BOUNDARY_EVENTS = frozenset({
    ev.MARIADB_GTID, ev.MYSQL_GTID, ev.MYSQL_ANONYMOUS_GTID, ev.MYSQL_GTID_TAGGED, ev.QUERY,
    ev.FORMAT_DESCRIPTION, ev.ROTATE, ev.STOP, ev.MYSQL_PREVIOUS_GTIDS, ev.MARIADB_GTID_LIST,
    ev.MARIADB_BINLOG_CHECKPOINT, ev.HEARTBEAT, ev.MYSQL_HEARTBEAT_V2,
})


def check_start(cfg: SourceConfig, flavor: str, start: BinlogPosition | None, gtid: str) -> None:
    """Ask the source to send from the start position and look at what comes first: an
    error, or an event that cannot begin a transaction, means the position is wrong
    (purged, past the end, inside an event or inside a transaction). Raises
    ``SourceError`` naming the setting; a position at the end of the binlog is fine."""
    reader = DumpSource(cfg, flavor, non_blocking=True)
    where = f"[source] start_file/start_pos = {start}" if start else f"[source] start_gtid = {gtid!r}"
    try:
        reader.open(start, gtid)
        for _ in range(64):  # the artificial Rotate / FormatDescription come first
            e = reader.next_event()
            if e is None:
                if not reader.fill(10.0):
                    return  # nothing to read within 10 s: nothing wrong with the position
                continue
            if e.log_pos == 0 or e.flags & ev.LOG_EVENT_ARTIFICIAL_F:
                continue
            if e.type not in BOUNDARY_EVENTS:
                raise SourceError(
                    f"{where} is inside a transaction: the first event there is of type {e.type} "
                    "(a transaction starts with its GTID event): start at the end position of a "
                    "COMMIT/XID event or at a GTID"
                )
            return
    except EndOfBinlog:
        return
    except SourceDisconnected as e:
        raise SourceError(f"{where}: the source ended the dump at once ({e})") from None
    except SourceError as e:  # purged, inside an event, past the end: name the setting
        if str(e).startswith(where):
            raise
        raise type(e)(f"{where}: {e}") from None
    finally:
        reader.close()

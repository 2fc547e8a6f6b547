"""The binlog stream: connect to the source as a replica and yield raw events.

Why not ``BinLogStreamReader``: it decodes every event into Python objects and
re-parses the TableMap before each rows event, which caps a coordinator at about
1,400 transactions/s. Here we speak the dump protocol on a pymysql connection and read
packets straight off its buffered socket: each event is split into header fields and
body bytes, nothing more. Row images stay bytes until a worker decodes them.

The stream never decides where to resume: the coordinator reconnects with the last
applied position after a disconnect (``SourceDisconnected``).
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import struct
from collections.abc import Callable, Iterator

import pymysql

from . import events as ev
from .config import SourceConfig
from .errors import BinlogPurgedError, ConnectError, SourceError
from .position import BinlogPosition, MysqlGtidSet

log = logging.getLogger(__name__)

COM_BINLOG_DUMP = 0x12
COM_REGISTER_SLAVE = 0x15
COM_BINLOG_DUMP_GTID = 0x1E
BINLOG_DUMP_NON_BLOCK = 0x01
BINLOG_THROUGH_GTID = 0x04
ER_MASTER_FATAL_ERROR_READING_BINLOG = 1236


class SourceDisconnected(Exception):
    """The dump connection ended (source restart, network). Not an ApplierError:
    the coordinator reconnects from the last applied position."""


class EndOfBinlog(Exception):
    """Non-blocking dump reached the end of the source's binlog."""


class BinlogSource:
    """One dump connection. Iterate ``events()`` once; open a new one to reconnect."""

    def __init__(self, cfg: SourceConfig, flavor: str, *, non_blocking: bool = False) -> None:
        self.cfg = cfg
        self.flavor = flavor
        self.non_blocking = non_blocking
        self.file = ""  # binlog file of the event being read (from Rotate events)
        self._conn: pymysql.connections.Connection | None = None
        self._sock: socket.socket | None = None
        self._buf = bytearray()
        self._off = 0
        self._on_idle: Callable[[], None] | None = None
        self._checksum = False
        # read(): the scanner found that the transaction starting here is above its
        # max_rows (the consumer may stream it from its first row instead of finding out)
        self.big_ahead = False

    # -- connection ---------------------------------------------------------------------

    def open(self, start: BinlogPosition | None, gtid: str = "") -> None:
        """Start dumping at ``start`` (file:pos) or, without it, at GTID position ``gtid``."""
        cfg = self.cfg
        try:
            conn = pymysql.connect(
                host=cfg.host,
                port=cfg.port,
                user=cfg.user,
                password=cfg.password,
                unix_socket=cfg.socket or None,
                connect_timeout=10,
                read_timeout=max(30.0, cfg.heartbeat_seconds * 4),
                autocommit=True,
            )
        except pymysql.err.OperationalError as e:
            code = e.args[0] if e.args else 0
            if code == 1045:
                raise ConnectError(
                    f"source {cfg.describe()}: access denied for user {cfg.user!r}: "
                    "check [source] user/password"
                ) from None
            raise ConnectError(
                f"source {cfg.describe()} is not reachable ({e.args[-1] if e.args else e}): "
                "check [source] host/port and that the server runs"
            ) from None
        self._conn = conn
        with conn.cursor() as cur:
            cur.execute("SELECT @@global.binlog_checksum")
            (checksum,) = cur.fetchone()
            self._checksum = str(checksum).upper() != "NONE"
            cur.execute("SET @master_binlog_checksum = @@global.binlog_checksum")
            cur.execute("SET @master_heartbeat_period = %s", (int(cfg.heartbeat_seconds * 1e9),))
            if self.flavor == "mariadb":
                # 4 = MARIA_SLAVE_CAPABILITY_GTID: we understand GTID events natively.
                cur.execute("SET @mariadb_slave_capability = 4")
                if start is None:
                    cur.execute("SET @slave_connect_state = %s", (gtid,))
                    cur.execute("SET @slave_gtid_strict_mode = 1")
                    cur.execute("SET @slave_gtid_ignore_duplicates = 0")
        self._register()
        if start is not None:
            self.file = start.file
            name = start.file.encode()
            flags = BINLOG_DUMP_NON_BLOCK if self.non_blocking else 0
            payload = struct.pack("<IHI", start.pos, flags, cfg.server_id) + name
            self._command(COM_BINLOG_DUMP, payload)
        elif self.flavor == "mariadb":
            flags = BINLOG_DUMP_NON_BLOCK if self.non_blocking else 0
            self._command(COM_BINLOG_DUMP, struct.pack("<IHI", 4, flags, cfg.server_id))
        else:
            data = MysqlGtidSet.parse(gtid).encode() if gtid else MysqlGtidSet().encode()
            flags = BINLOG_THROUGH_GTID | (BINLOG_DUMP_NON_BLOCK if self.non_blocking else 0)
            payload = (
                struct.pack("<HII", flags, cfg.server_id, 0)
                + struct.pack("<Q", 4)
                + struct.pack("<I", len(data))
                + data
            )
            self._command(COM_BINLOG_DUMP_GTID, payload)
        # we own this connection from here on: read its socket directly, in big chunks
        self._sock = conn._sock  # noqa: SLF001
        self._sock.settimeout(max(30.0, cfg.heartbeat_seconds * 4))
        self._buf = bytearray()  # pymysql's reader holds nothing: the source sent only OK so far
        self._off = 0

    def _register(self) -> None:
        """COM_REGISTER_SLAVE so the source lists us in SHOW SLAVE HOSTS."""
        host = b"mts-applier"
        payload = (
            struct.pack("<I", self.cfg.server_id)
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

    def _fill(self, need: int) -> None:
        """Make ``need`` bytes available in the buffer, reading the socket as needed.
        Before a read that would block, yields control to the consumer via
        ``self._idle`` so it can flush work it holds back for batching."""
        buf = self._buf
        while len(buf) - self._off < need:
            if self._off:
                del buf[: self._off]
                self._off = 0
            if self._on_idle is not None and not select.select([self._sock], [], [], 0)[0]:
                self._on_idle()
            try:
                chunk = self._sock.recv(1 << 20)
            except (OSError, ValueError, AttributeError) as e:
                raise SourceDisconnected(f"source connection lost: {e}") from None
            if not chunk:
                raise SourceDisconnected("source closed the dump connection")
            buf += chunk

    def _read_packet(self) -> bytes:
        parts = []
        while True:
            self._fill(4)
            buf, off = self._buf, self._off
            length = buf[off] | buf[off + 1] << 8 | buf[off + 2] << 16
            self._fill(4 + length)
            off = self._off
            parts.append(bytes(self._buf[off + 4 : off + 4 + length]))
            self._off = off + 4 + length
            if length < 0xFFFFFF:
                return parts[0] if len(parts) == 1 else b"".join(parts)

    @property
    def checksum(self) -> bool:
        """Events end with a 4-byte CRC32 (binlog_checksum is not NONE)."""
        return self._checksum

    def events(self, on_idle: Callable[[], None] | None = None) -> Iterator[ev.Event]:
        """Yield events until the connection ends. Updates ``self.file`` on Rotate.
        ``on_idle`` is called whenever the next read would wait for the source."""
        self._on_idle = on_idle
        while True:
            yield self._next_event()

    def read(
        self, scanner, at_boundary: Callable[[], bool], on_idle: Callable[[], None] | None = None
    ) -> Iterator[list | ev.Event]:
        """Like ``events``, but whole transactions the native ``scanner`` can read come
        as lists of its records; what it cannot (see native/_scan.pyx) comes as events,
        from the start of that transaction until ``at_boundary()`` says the consumer is
        between transactions again."""
        self._on_idle = on_idle
        python = False
        while True:
            if python:
                yield self._next_event()
                python = not at_boundary()
                continue
            off, records, python = scanner.scan(self._buf, self._off)
            self._off = off
            self.big_ahead = python and scanner.big
            if records:
                yield records
            if not python:  # the buffer ends inside a packet or a transaction
                self._fill(len(self._buf) - self._off + 1)

    def _next_event(self) -> ev.Event:
        pkt = self._read_packet()
        marker = pkt[0]
        if marker == 0xFF:
            self._raise_error(pkt)
        if marker == 0xFE and len(pkt) < 9:
            if self.non_blocking:
                raise EndOfBinlog()
            raise SourceDisconnected("source sent EOF on the dump connection")
        ts, etype, server_id, size, log_pos, flags = ev.HEADER.unpack_from(pkt, 1)
        end = size + 1 - (4 if self._checksum else 0)
        body = pkt[1 + ev.HEADER_LEN : end]
        if etype == ev.ROTATE:
            self.file = body[8:].decode()
        elif etype in ev.UNSUPPORTED:
            raise SourceError(
                f"source {self.cfg.describe()} writes event type {etype} which the applier "
                f"cannot decode: {ev.UNSUPPORTED[etype]}"
            )
        return ev.Event(etype, ts, server_id, log_pos, flags, body)

    def _raise_error(self, pkt: bytes) -> None:
        code = pkt[1] | pkt[2] << 8
        msg = pkt[9:].decode(errors="replace") if pkt[3:4] == b"#" else pkt[3:].decode(errors="replace")
        where = f"source {self.cfg.describe()}"
        if code == ER_MASTER_FATAL_ERROR_READING_BINLOG:
            raise BinlogPurgedError(
                f"{where} cannot send the binlog from the requested position ({msg}): the file "
                "may have been purged; restart the target from a fresh copy or choose a later position"
            )
        raise SourceError(f"{where} ended the binlog dump with error {code}: {msg}")

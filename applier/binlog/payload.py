"""MySQL's TRANSACTION_PAYLOAD_EVENT (type 40): a whole transaction, compressed.

With ``binlog_transaction_compression=ON`` (global or per session, MySQL 8.0.20+) a row
transaction is logged as its GTID event, then one payload event holding the rest of it
(QUERY BEGIN, TableMaps, rows events, XID) compressed with zstd. The payload's body is
a header of fields, each ``type, length, value`` in net_store_length form (compression
type: 0 = ZSTD, 255 = NONE; compressed size; uncompressed size), an end mark (0), then
the compressed bytes (one zstd frame). The events inside have the common 19-byte header,
no checksum and ``log_pos`` 0 (MySQL's libbinlogevents transaction_payload_event,
compression/zstd_dec).

``events(e)`` expands a payload into those events, each with the payload's ``log_pos``
(the end of the transaction in the binlog: where a restart resumes), decompressing as
it goes so a big transaction is never held uncompressed whole. ``frame`` turns events
back into dump packets for the native scanner.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterable, Iterator

from ..errors import DecodeError
from . import events as ev

END_MARK, PAYLOAD_SIZE, COMPRESSION_TYPE, UNCOMPRESSED_SIZE = 0, 1, 2, 3
ZSTD, NONE = 0, 255


def header(body: bytes) -> tuple[int, int, int, int]:
    """(compression type, compressed size, uncompressed size, offset of the data)."""
    fields = {COMPRESSION_TYPE: ZSTD, PAYLOAD_SIZE: -1, UNCOMPRESSED_SIZE: -1}
    pos = 0
    try:
        while True:
            kind, pos = ev.packed_int(body, pos)
            if kind == END_MARK:
                break
            length, pos = ev.packed_int(body, pos)  # of the value, itself a packed integer
            if length < 1 or pos + length > len(body):
                raise IndexError
            fields[kind] = ev.packed_int(body, pos)[0]
            pos += length
    except IndexError:
        raise DecodeError("a compressed transaction (TRANSACTION_PAYLOAD_EVENT) has a truncated header") from None
    size = fields[PAYLOAD_SIZE]
    if size < 0 or pos + size > len(body):
        raise DecodeError(f"a compressed transaction's payload is {len(body) - pos} bytes, its header says {size}")
    return fields[COMPRESSION_TYPE], size, fields[UNCOMPRESSED_SIZE], pos


_local = threading.local()


def _zstd():
    """This thread's zstd decompressor (making one per transaction costs more than the
    decompression of a small one)."""
    dctx = getattr(_local, "dctx", None)
    if dctx is None:
        import zstandard

        dctx = _local.dctx = zstandard.ZstdDecompressor()
    return dctx


def _corrupt() -> DecodeError:
    return DecodeError("a compressed transaction does not decompress: its zstd data is corrupt")


def _unknown(compression: int) -> DecodeError:
    return DecodeError(f"a compressed transaction uses compression type {compression}, which the applier "
                       "does not know (MySQL writes 0, zstd): set binlog_transaction_compression=OFF")


def _reader(compression: int, data: bytes):
    if compression == NONE:
        return io.BytesIO(data)
    if compression == ZSTD:
        return _zstd().stream_reader(io.BytesIO(data), read_across_frames=True)
    raise _unknown(compression)


def decompress(body: bytes) -> bytes:
    """A payload event's events, uncompressed, whole (for small transactions)."""
    compression, size, uncompressed, start = header(body)
    data = bytes(body[start : start + size])
    if compression == NONE:
        raw = data
    elif compression == ZSTD:
        try:
            raw = _zstd().decompress(data, max_output_size=max(uncompressed, 1))
        except Exception:  # zstd errors: a corrupt frame
            raise _corrupt() from None
    else:
        raise _unknown(compression)
    if 0 <= uncompressed != len(raw):
        raise DecodeError(f"a compressed transaction decompresses to {len(raw)} bytes, its header says {uncompressed}")
    return raw


def frame_raw(first: ev.Event, raw: bytes, log_pos: int, checksum: bool) -> bytearray:
    """``first`` (the transaction's GTID event) and the uncompressed events ``raw`` as
    dump packets (``frame``), each inner event with ``log_pos``."""
    out = frame([first], checksum)
    trailer = b"\0\0\0\0" if checksum else b""
    extra = len(trailer)
    pos, end = 0, len(raw)
    header_len = ev.HEADER_LEN
    while pos < end:
        if end - pos < header_len:
            raise DecodeError("a compressed transaction ends inside an event header")
        size = int.from_bytes(raw[pos + 9 : pos + 13], "little")
        if size < header_len or pos + size > end:
            raise DecodeError("a compressed transaction ends inside an event")
        out += (1 + size + extra).to_bytes(3, "little") + b"\0\0"
        out += raw[pos : pos + 9]
        out += (size + extra).to_bytes(4, "little") + log_pos.to_bytes(4, "little")
        out += raw[pos + 17 : pos + size]
        out += trailer
        pos += size
    return out


def _read(stream, n: int) -> bytes:
    parts = []
    while n > 0:
        chunk = stream.read(n)
        if not chunk:
            break
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


def events(e: ev.Event) -> Iterator[ev.Event]:
    """The events inside a payload event, in order, as the dump would have sent them
    uncompressed (``log_pos``: the payload's; no checksum)."""
    compression, size, uncompressed, start = header(e.body)
    stream = _reader(compression, bytes(e.body[start : start + size]))
    total = 0
    try:
        while True:
            head = _read(stream, ev.HEADER_LEN)
            if not head:
                break
            if len(head) < ev.HEADER_LEN:
                raise DecodeError("a compressed transaction ends inside an event header")
            timestamp, etype, server_id, event_size, _, flags = ev.HEADER.unpack(head)
            if event_size < ev.HEADER_LEN:
                raise DecodeError(f"a compressed transaction holds an event of {event_size} bytes")
            body = _read(stream, event_size - ev.HEADER_LEN)
            if len(body) != event_size - ev.HEADER_LEN:
                raise DecodeError("a compressed transaction ends inside an event")
            total += event_size
            yield ev.Event(etype, timestamp, server_id, e.log_pos, flags, body)
    except DecodeError:
        raise
    except Exception:  # zstd errors: a corrupt frame
        raise _corrupt() from None
    if 0 <= uncompressed != total:
        raise DecodeError(f"a compressed transaction decompresses to {total} bytes, its header says {uncompressed}")


def frame(items: Iterable[ev.Event], checksum: bool) -> bytearray:
    """Events as dump packets (length, sequence, OK byte, header, body, a dummy CRC when
    the stream has checksums): what ``native/_scan.pyx`` reads."""
    out = bytearray()
    trailer = b"\0\0\0\0" if checksum else b""
    for e in items:
        size = ev.HEADER_LEN + len(e.body) + len(trailer)
        packet = 1 + size
        if packet >= 0xFFFFFF:
            raise ValueError("event too large to frame as one packet")
        out += packet.to_bytes(3, "little") + b"\0\0"
        out += ev.HEADER.pack(e.timestamp, e.type, e.server_id, size, e.log_pos, e.flags)
        out += e.body
        out += trailer
    return out

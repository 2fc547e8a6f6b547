"""Row images -> SQL literal bytes, for every MySQL/MariaDB column type.

Each value becomes the exact text the target must parse to store the same bytes:
integers as decimal text, DECIMAL from its binary form, FLOAT/DOUBLE as the shortest
text that reads back to the same IEEE value, temporal values as quoted strings
(TIMESTAMP in UTC: target sessions run with time_zone='+00:00'), strings as
``_charset'escaped'`` so the target stores the source's bytes without conversion (the
connection's character set is utf8mb4, in which no multibyte sequence contains a quote
or backslash byte, so escaping arbitrary bytes is safe), ENUM/SET/BIT as integers. NULL is ``NULL``.
Literals must also *compare* equal to the stored value (they end up in WHERE clauses):
BINARY(n) gets back the trailing 0x00 bytes the binlog drops, and an 8-byte SET is
written as the signed number the server compares it as. MariaDB specifics: COMPRESSED
columns are logged compressed (decoded here), and pre-10.0 TIME/DATETIME/TIMESTAMP with
fractional seconds are logged without metadata (their digits come from the schema).

Integers are read with the *source's* signedness when the TableMap logs it (SIGNEDNESS,
binlog_row_metadata=MINIMAL or FULL: the bytes of -1 and of 4294967295 are the same),
else with the target column's. Decoding is driven by a per-table ``RowPlan`` built once
per (TableMap, TableSchema) so the per-row loop only dispatches on small integers (the
native decoder, native/_rowkeys.pyx, reads the same plan).
"""

from __future__ import annotations

import functools
import struct
import zlib
from dataclasses import dataclass

from ..db import schema as dbs
from ..db.sql import escape
from ..errors import DecodeError
from . import mysqljson
from . import tablemap as s
from .decimal import decimal_size, decimal_text
from .events import DELETE, UPDATE, packed_int

NULL = b"NULL"

# value kinds used by the decode loop
K_INT, K_FLOAT, K_DOUBLE, K_DECIMAL, K_YEAR, K_DATE, K_TIME, K_DATETIME, K_TIMESTAMP = range(9)
K_TIME2, K_DATETIME2, K_TIMESTAMP2, K_VARSTR, K_BLOB, K_BIT, K_ENUMSET, K_JSON_MYSQL = range(9, 17)
# MariaDB's own pre-10.0 fractional-second formats (tables created before 10.0 or with
# mysql56_temporal_format=OFF): logged as TIME/DATETIME/TIMESTAMP *without* metadata, so
# the number of digits (and with it the value's size) comes from the target's schema
K_TIME_HIRES, K_DATETIME_HIRES, K_TIMESTAMP_HIRES = range(17, 20)
# MySQL JSON written to a column that is not JSON (a MariaDB target: LONGTEXT) as MySQL's
# own text of the document (K_JSON_MYSQL: a SQL expression that rebuilds it exactly)
K_JSON_TEXT = 20
# MariaDB's JSON (LONGTEXT) written to a MySQL JSON column: CAST(_utf8mb4'..' AS JSON), so
# that comparing a before image with the stored document compares JSON, not text
# (MySQL stores it normalized: '{"a":1}' comes back as '{"a": 1}')
K_TEXT_JSON = 21

_INT_SIZES = {s.T_TINY: 1, s.T_SHORT: 2, s.T_INT24: 3, s.T_LONG: 4, s.T_LONGLONG: 8}
_HIRES_TIME_BYTES = (3, 4, 4, 5, 5, 5, 6)  # MariaDB Type_handler_time::hires_bytes
_HIRES_DATETIME_BYTES = (5, 6, 6, 7, 7, 7, 8)  # Type_handler_datetime::hires_bytes
_TIME_HIRES_ZERO = 3020400  # (TIME_MAX_VALUE_SECONDS + 1): stored value of 00:00:00, per 10**fsp
_TEXT_TYPES = frozenset({"longtext", "mediumtext", "text", "tinytext", "varchar", "char"})
_TEXT_BTYPES = frozenset({s.T_BLOB, s.T_VARCHAR, s.T_VAR_STRING})
_FLOAT = struct.Struct("<f")
_DOUBLE = struct.Struct("<d")


@dataclass(frozen=True, slots=True)
class ColumnCodec:
    kind: int
    size: int  # fixed byte size, or length-prefix size for strings/blobs
    signed: bool
    prefix: bytes  # string introducer, e.g. b"_utf8mb4'" (b"_binary'" for binary data)
    fsp: int  # fractional seconds digits for temporal types
    precision: int  # DECIMAL precision
    scale: int  # DECIMAL scale
    # K_VARSTR/K_BLOB of a MariaDB COMPRESSED column: the logged bytes are compressed
    # (the kinds stay those of plain strings: skipping a value works the same)
    compressed: bool = False
    # K_VARSTR of a fixed-length binary column (BINARY(n), INET4/INET6/UUID): the binlog
    # drops trailing 0x00 bytes; the literal gets them back (n bytes), because BINARY
    # compares its pad bytes (a key ``WHERE b = 'ab'`` misses 'ab\0..') and INET6/UUID
    # reject a short binary value
    pad: int = 0


@dataclass(frozen=True, slots=True)
class RowPlan:
    db: str
    table: str
    columns: tuple[ColumnCodec, ...]


def column_codec(btype: int, meta: int, col: dbs.Column | None, unsigned: bool | None = None) -> ColumnCodec:
    """How to decode one column: ``btype``/``meta`` from the TableMap, ``col`` the target's
    column (None: unknown), ``unsigned`` the source's signedness when the TableMap logs
    it (SIGNEDNESS), which then decides how an integer's bytes read; else the target
    column's (``compat`` refuses a target whose signedness cannot hold the source's)."""
    if unsigned is None:
        unsigned = col.unsigned if col is not None else False
    charset = col.charset if col is not None else None
    col_fsp = col.fsp if col is not None and col.fsp and 0 < col.fsp <= 6 else 0
    prefix = f"_{charset}'".encode() if charset and charset != "binary" else b"_binary'"
    if btype in _INT_SIZES:
        return ColumnCodec(K_INT, _INT_SIZES[btype], not unsigned, b"", 0, 0, 0)
    if btype == s.T_FLOAT:
        return ColumnCodec(K_FLOAT, 4, True, b"", 0, 0, 0)
    if btype == s.T_DOUBLE:
        return ColumnCodec(K_DOUBLE, 8, True, b"", 0, 0, 0)
    if btype == s.T_NEWDECIMAL:
        precision, scale = meta & 0xFF, meta >> 8
        return ColumnCodec(K_DECIMAL, decimal_size(precision, scale), True, b"", 0, precision, scale)
    if btype == s.T_YEAR:
        return ColumnCodec(K_YEAR, 1, False, b"", 0, 0, 0)
    if btype in (s.T_DATE, s.T_NEWDATE):
        return ColumnCodec(K_DATE, 3, False, b"", 0, 0, 0)
    # old-style TIME/DATETIME/TIMESTAMP: without fractional digits the MySQL 5.5 layout,
    # with them MariaDB's "hires" layout (MySQL never logs these types with fractions)
    if btype == s.T_TIME:
        if col_fsp:
            return ColumnCodec(K_TIME_HIRES, _HIRES_TIME_BYTES[col_fsp], False, b"", col_fsp, 0, 0)
        return ColumnCodec(K_TIME, 3, False, b"", 0, 0, 0)
    if btype == s.T_DATETIME:
        if col_fsp:
            return ColumnCodec(K_DATETIME_HIRES, _HIRES_DATETIME_BYTES[col_fsp], False, b"", col_fsp, 0, 0)
        return ColumnCodec(K_DATETIME, 8, False, b"", 0, 0, 0)
    if btype == s.T_TIMESTAMP:
        if col_fsp:
            return ColumnCodec(K_TIMESTAMP_HIRES, 4 + (col_fsp + 1) // 2, False, b"", col_fsp, 0, 0)
        return ColumnCodec(K_TIMESTAMP, 4, False, b"", 0, 0, 0)
    if btype == s.T_TIME2:
        return ColumnCodec(K_TIME2, 3 + (meta + 1) // 2, False, b"", meta, 0, 0)
    if btype == s.T_DATETIME2:
        return ColumnCodec(K_DATETIME2, 5 + (meta + 1) // 2, False, b"", meta, 0, 0)
    if btype == s.T_TIMESTAMP2:
        return ColumnCodec(K_TIMESTAMP2, 4 + (meta + 1) // 2, False, b"", meta, 0, 0)
    if col is not None and col.data_type == "json" and btype in _TEXT_BTYPES:
        size = meta if btype == s.T_BLOB else (1 if meta < 256 else 2)
        return ColumnCodec(K_TEXT_JSON, size, False, b"_utf8mb4'", 0, 0, 0)
    if btype in (s.T_VARCHAR, s.T_VAR_STRING):
        return ColumnCodec(K_VARSTR, 1 if meta < 256 else 2, False, prefix, 0, 0, 0)
    if btype == s.T_STRING:
        pad = meta if col is not None and charset in (None, "binary") else 0
        return ColumnCodec(K_VARSTR, 1 if meta < 256 else 2, False, prefix, 0, 0, 0, False, pad)
    if btype in (s.T_BLOB, s.T_TINY_BLOB, s.T_MEDIUM_BLOB, s.T_LONG_BLOB):
        return ColumnCodec(K_BLOB, meta, False, prefix, 0, 0, 0)
    if btype == s.T_VARCHAR_COMPRESSED:
        return ColumnCodec(K_VARSTR, 1 if meta < 256 else 2, False, prefix, 0, 0, 0, True)
    if btype == s.T_BLOB_COMPRESSED:
        return ColumnCodec(K_BLOB, meta, False, prefix, 0, 0, 0, True)
    if btype in (s.T_GEOMETRY, s.T_VECTOR):
        return ColumnCodec(K_BLOB, meta, False, b"_binary'", 0, 0, 0)
    if btype == s.T_JSON:
        if col is not None and col.data_type in _TEXT_TYPES:
            return ColumnCodec(K_JSON_TEXT, meta, False, b"_utf8mb4'", 0, 0, 0)
        return ColumnCodec(K_JSON_MYSQL, meta, False, b"_utf8mb4'", 0, 0, 0)
    if btype == s.T_BIT:
        nbits = (meta >> 8) * 8 + (meta & 0xFF)
        return ColumnCodec(K_BIT, (nbits + 7) // 8, False, b"", 0, 0, 0)
    if btype in (s.T_ENUM, s.T_SET):
        # a SET of 57..64 members is an 8-byte bitmask that the server reads as a *signed*
        # integer: `s = 9223372036854775808` never matches, `s = -9223372036854775808`
        # does (and inserts the same bits), so the top bit is written as a sign
        return ColumnCodec(K_ENUMSET, meta, meta == 8, b"", 0, 0, 0)
    raise DecodeError(f"column type {btype} is not supported by the row decoder")


def build_plan(tmap: s.TableMap, schema: dbs.TableSchema | None) -> RowPlan:
    cols = schema.columns if schema is not None else (None,) * len(tmap.types)
    logged = tmap.unsigned if tmap.unsigned is not None else (None,) * len(tmap.types)
    return RowPlan(
        tmap.db,
        tmap.table,
        tuple(column_codec(t, m, c, u) for t, m, c, u in zip(tmap.types, tmap.metas, cols, logged, strict=True)),
    )


def _decimal(buf: bytes, pos: int, c: ColumnCodec) -> bytes:
    negative, text = decimal_text(buf[pos : pos + c.size], c.precision, c.scale)
    return (("-" + text) if negative else text).encode()


def _frac(buf: bytes, pos: int, fsp: int) -> int:
    """Fractional part stored big-endian after the integer part, as microseconds."""
    if fsp == 0:
        return 0
    n = (fsp + 1) // 2
    v = int.from_bytes(buf[pos : pos + n], "big")
    return v * (10000 if n == 1 else 100 if n == 2 else 1)


def _usec(usec: int, fsp: int) -> str:
    return f".{usec:06d}"[: fsp + 1] if fsp else ""


def _time2(buf: bytes, pos: int, fsp: int) -> bytes:
    n = (fsp + 1) // 2
    if fsp >= 5:
        packed = int.from_bytes(buf[pos : pos + 6], "big") - 0x800000000000
    else:
        intpart = int.from_bytes(buf[pos : pos + 3], "big") - 0x800000
        # the fraction is stored unsigned; negative times keep it in reverse order (sort
        # compatibility): borrow one second and subtract (MySQL my_time_packed_from_binary)
        frac = int.from_bytes(buf[pos + 3 : pos + 3 + n], "big") if n else 0
        if intpart < 0 and frac:
            intpart += 1
            frac -= 0x100 if n == 1 else 0x10000
        packed = (intpart << 24) + frac * (10000 if n == 1 else 100 if n == 2 else 0)
    sign = "-" if packed < 0 else ""
    packed = abs(packed)
    hms = packed >> 24
    usec = packed % (1 << 24)
    hour, minute, second = (hms >> 12) & 0x3FF, (hms >> 6) & 0x3F, hms & 0x3F
    return f"'{sign}{hour:02d}:{minute:02d}:{second:02d}{_usec(usec, fsp)}'".encode()


def _datetime2(buf: bytes, pos: int, fsp: int) -> bytes:
    v = int.from_bytes(buf[pos : pos + 5], "big") - 0x8000000000
    ymd, hms = v >> 17, v & 0x1FFFF
    ym = ymd >> 5
    year, month, day = ym // 13, ym % 13, ymd & 31
    hour, minute, second = hms >> 12, (hms >> 6) & 63, hms & 63
    usec = _frac(buf, pos + 5, fsp)
    return f"'{year:04d}-{month:02d}-{day:02d} {hour:02d}:{minute:02d}:{second:02d}{_usec(usec, fsp)}'".encode()


def _timestamp(seconds: int, usec: int, fsp: int) -> bytes:
    if seconds == 0 and usec == 0:
        return b"'0000-00-00 00:00:00'"
    days, rem = divmod(seconds, 86400)
    y, m, d = _civil_from_days(days)
    return (
        f"'{y:04d}-{m:02d}-{d:02d} {rem // 3600:02d}:{rem // 60 % 60:02d}:{rem % 60:02d}"
        f"{_usec(usec, fsp)}'"
    ).encode()


def _time_hires(buf: bytes, pos: int, c: ColumnCodec) -> bytes:
    """MariaDB Field_time_hires: big-endian (signed microseconds / 10**(6-fsp)) + zero point."""
    fsp = c.fsp
    v = int.from_bytes(buf[pos : pos + c.size], "big") - _TIME_HIRES_ZERO * 10**fsp
    usec = v * 10 ** (6 - fsp)
    sign = "-" if usec < 0 else ""
    secs, usec = divmod(abs(usec), 1_000_000)
    hour, rem = divmod(secs, 3600)
    return f"'{sign}{hour:02d}:{rem // 60:02d}:{rem % 60:02d}{_usec(usec, fsp)}'".encode()


def _datetime_hires(buf: bytes, pos: int, c: ColumnCodec) -> bytes:
    """MariaDB Field_datetime_hires: big-endian pack_time() / 10**(6-fsp), where
    pack_time = ((((((year*13 + month)*32 + day)*24 + hour)*60 + minute)*60 + second)*10**6 + usec."""
    fsp = c.fsp
    v = int.from_bytes(buf[pos : pos + c.size], "big") * 10 ** (6 - fsp)
    v, usec = divmod(v, 1_000_000)
    v, second = divmod(v, 60)
    v, minute = divmod(v, 60)
    v, hour = divmod(v, 24)
    v, day = divmod(v, 32)
    year, month = divmod(v, 13)
    return (
        f"'{year:04d}-{month:02d}-{day:02d} {hour:02d}:{minute:02d}:{second:02d}{_usec(usec, fsp)}'"
    ).encode()


def _timestamp_hires(buf: bytes, pos: int, c: ColumnCodec) -> bytes:
    """MariaDB Field_timestamp_hires: 4-byte big-endian seconds, then the fraction
    big-endian in (fsp+1)//2 bytes as units of 10**(fsp-6) s (unlike TIMESTAMP2)."""
    fsp = c.fsp
    secs = int.from_bytes(buf[pos : pos + 4], "big")
    usec = int.from_bytes(buf[pos + 4 : pos + c.size], "big") * 10 ** (6 - fsp)
    return _timestamp(secs, usec, fsp)


def uncompress(data: bytes) -> bytes:
    """A MariaDB COMPRESSED column's stored bytes -> the value. Empty stays empty;
    else one header byte: 0 = stored as is, 0x8N = zlib (N & 7: bytes of the original
    length, big-endian, that follow; N & 8: raw deflate without zlib wrapper)."""
    if not data:
        return b""
    head = data[0]
    method = head >> 4
    if method == 0:
        return data[1:]
    if method == 8:
        nlen = head & 7
        length = int.from_bytes(data[1 : 1 + nlen], "big")
        try:
            out = zlib.decompress(data[1 + nlen :], -zlib.MAX_WBITS if head & 8 else zlib.MAX_WBITS)
        except zlib.error as e:
            raise DecodeError(f"compressed column value does not inflate: {e}") from None
        if len(out) != length:
            raise DecodeError(f"compressed column value inflates to {len(out)} bytes, header says {length}")
        return out
    raise DecodeError(f"compressed column value uses unknown compression method {method}")


def _civil_from_days(z: int) -> tuple[int, int, int]:
    """Days since 1970-01-01 -> (year, month, day) (H. Hinnant's algorithm)."""
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return (y + 1 if m <= 2 else y), m, d


def decode_value(buf: bytes, pos: int, c: ColumnCodec) -> tuple[bytes, int]:
    """One non-NULL value at ``pos``: (literal, position after it)."""
    k = c.kind
    if k == K_INT:
        end = pos + c.size
        return str(int.from_bytes(buf[pos:end], "little", signed=c.signed)).encode(), end
    if k in (K_VARSTR, K_BLOB):
        n = c.size
        length = int.from_bytes(buf[pos : pos + n], "little")
        start = pos + n
        end = start + length
        if c.compressed:
            return c.prefix + escape(uncompress(buf[start:end])) + b"'", end
        if c.pad > length:
            return c.prefix + escape(buf[start:end] + b"\0" * (c.pad - length)) + b"'", end
        return c.prefix + escape(buf[start:end]) + b"'", end
    if k == K_DECIMAL:
        return _decimal(buf, pos, c), pos + c.size
    if k == K_DATETIME2:
        return _datetime2(buf, pos, c.fsp), pos + c.size
    if k == K_TIMESTAMP2:
        secs = int.from_bytes(buf[pos : pos + 4], "big")
        return _timestamp(secs, _frac(buf, pos + 4, c.fsp), c.fsp), pos + c.size
    if k == K_DATE:
        v = int.from_bytes(buf[pos : pos + 3], "little")
        return f"'{v >> 9:04d}-{v >> 5 & 15:02d}-{v & 31:02d}'".encode(), pos + 3
    if k == K_TIME2:
        return _time2(buf, pos, c.fsp), pos + c.size
    if k == K_DOUBLE:
        return repr(_DOUBLE.unpack_from(buf, pos)[0]).encode(), pos + 8
    if k == K_FLOAT:
        return repr(_FLOAT.unpack_from(buf, pos)[0]).encode(), pos + 4
    if k == K_ENUMSET:
        end = pos + c.size
        return str(int.from_bytes(buf[pos:end], "little", signed=c.signed)).encode(), end
    if k == K_BIT:
        end = pos + c.size
        return str(int.from_bytes(buf[pos:end], "big")).encode(), end
    if k == K_YEAR:
        v = buf[pos]
        return (str(1900 + v) if v else "0").encode(), pos + 1
    if k == K_TIMESTAMP:
        return _timestamp(int.from_bytes(buf[pos : pos + 4], "little"), 0, 0), pos + 4
    if k == K_DATETIME:
        v = int.from_bytes(buf[pos : pos + 8], "little")
        d, t = divmod(v, 1000000)
        return (
            f"'{d // 10000:04d}-{d // 100 % 100:02d}-{d % 100:02d} "
            f"{t // 10000:02d}:{t // 100 % 100:02d}:{t % 100:02d}'"
        ).encode(), pos + 8
    if k == K_TIME:
        v = int.from_bytes(buf[pos : pos + 3], "little", signed=True)
        sign = "-" if v < 0 else ""
        v = abs(v)
        return f"'{sign}{v // 10000:02d}:{v // 100 % 100:02d}:{v % 100:02d}'".encode(), pos + 3
    if k == K_DATETIME_HIRES:
        return _datetime_hires(buf, pos, c), pos + c.size
    if k == K_TIME_HIRES:
        return _time_hires(buf, pos, c), pos + c.size
    if k == K_TIMESTAMP_HIRES:
        return _timestamp_hires(buf, pos, c), pos + c.size
    if k == K_TEXT_JSON:
        n = c.size
        start = pos + n
        end = start + int.from_bytes(buf[pos:start], "little")
        return b"CAST(" + c.prefix + escape(buf[start:end]) + b"' AS JSON)", end
    if k in (K_JSON_MYSQL, K_JSON_TEXT):
        n = c.size
        length = int.from_bytes(buf[pos : pos + n], "little")
        start = pos + n
        if start + length > len(buf):
            return NULL, start + length  # the caller reports the truncated event
        doc = mysqljson.parse(buf[start : start + length])
        if k == K_JSON_TEXT:
            return b"_utf8mb4'" + escape(mysqljson.to_text(doc)) + b"'", start + length
        return mysqljson.to_sql(doc), start + length
    raise DecodeError(f"unknown value kind {k}")  # pragma: no cover


def _bitmap_bits(bitmap: bytes, ncols: int) -> list[bool]:
    return [bool(bitmap[i >> 3] >> (i & 7) & 1) for i in range(ncols)]


Row = tuple[bytes | None, ...]  # one literal per column; None = not in the image


def skip_value(buf: bytes, pos: int, c: ColumnCodec) -> int:
    """Position after one non-NULL value, without decoding it."""
    k = c.kind
    if k in (K_VARSTR, K_BLOB, K_JSON_MYSQL, K_JSON_TEXT, K_TEXT_JSON):
        n = c.size
        return pos + n + int.from_bytes(buf[pos : pos + n], "little")
    return pos + c.size


def decode_image(
    plan: RowPlan, buf: bytes, pos: int, present: list[bool], wanted: frozenset[int] | None = None
) -> tuple[Row, int]:
    """One row image at ``pos``. With ``wanted``, only those columns are decoded (the
    rest are skipped and left None): the coordinator only needs key columns."""
    cols = plan.columns
    npresent = sum(present)
    nbytes = (npresent + 7) >> 3
    nulls = buf[pos : pos + nbytes]
    pos += nbytes
    out: list[bytes | None] = []
    j = 0
    for i, c in enumerate(cols):
        if not present[i]:
            out.append(None)
            continue
        if nulls[j >> 3] >> (j & 7) & 1:
            out.append(NULL)
        elif wanted is not None and i not in wanted:
            out.append(None)
            pos = skip_value(buf, pos, c)
        else:
            lit, pos = decode_value(buf, pos, c)
            out.append(lit)
        j += 1
    return tuple(out), pos


def rows_start(body: bytes, version: int) -> int:
    """Offset of the column count in a rows event body."""
    if version == 2:
        extra = body[8] | body[9] << 8
        return 8 + extra
    return 8


@functools.lru_cache(maxsize=64)
def _full_bitmap(ncols: int) -> bytes:
    """The column bitmap with every one of ``ncols`` columns present."""
    return ((1 << ncols) - 1).to_bytes((ncols + 7) // 8, "little")


def missing_columns(body: bytes, op: int, version: int) -> list[int]:
    """Columns absent from a rows event's image(s): none with binlog_row_image=FULL;
    NOBLOB leaves out unchanged BLOB/TEXT, MINIMAL all but the key (before) and the
    changed columns (after)."""
    pos = rows_start(body, version)
    ncols, pos = packed_int(body, pos)
    nb = (ncols + 7) // 8
    full = _full_bitmap(ncols)
    if body[pos : pos + nb] == full and (op != UPDATE or body[pos + nb : pos + 2 * nb] == full):
        return []  # the common case, FULL images
    present = _bitmap_bits(body[pos : pos + nb], ncols)
    if op == UPDATE:
        after = _bitmap_bits(body[pos + nb : pos + 2 * nb], ncols)
        present = [a and b for a, b in zip(present, after, strict=True)]
    return [i for i, p in enumerate(present) if not p]


def decode_rows(
    plan: RowPlan, op: int, body: bytes, version: int, wanted: frozenset[int] | None = None
) -> list[tuple[Row | None, Row | None]]:
    """All rows of one rows event as (before, after) images; INSERT has no before,
    DELETE no after. ``wanted`` limits decoding to some columns (see decode_image)."""
    pos = rows_start(body, version)
    ncols, pos = packed_int(body, pos)
    if ncols != len(plan.columns):
        raise DecodeError(
            f"rows event for {plan.db}.{plan.table} has {ncols} columns, table map {len(plan.columns)}"
        )
    nb = (ncols + 7) // 8
    present1 = _bitmap_bits(body[pos : pos + nb], ncols)
    pos += nb
    present2 = present1
    if op == UPDATE:
        present2 = _bitmap_bits(body[pos : pos + nb], ncols)
        pos += nb
    end = len(body)
    rows: list[tuple[Row | None, Row | None]] = []
    if pos < end and not any(present1) and not (op == UPDATE and any(present2)):
        raise DecodeError(f"rows event for {plan.db}.{plan.table} has row images without any column")
    try:
        _decode_images(plan, op, body, pos, end, present1, present2, wanted, rows)
    except DecodeError as e:
        if f"{plan.db}.{plan.table}" in str(e):
            raise
        raise DecodeError(f"rows event for {plan.db}.{plan.table}: {e}") from None
    return rows


def _decode_images(plan: RowPlan, op: int, body: bytes, pos: int, end: int, present1: list[bool],
                   present2: list[bool], wanted: frozenset[int] | None,
                   rows: list[tuple[Row | None, Row | None]]) -> None:
    while pos < end:
        start = pos
        image, pos = decode_image(plan, body, pos, present1, wanted)
        if op == UPDATE:
            after, pos = decode_image(plan, body, pos, present2, wanted)
            rows.append((image, after))
        elif op == DELETE:
            rows.append((image, None))
        else:
            rows.append((None, image))
        if pos == start:  # pragma: no cover - guarded above; never loop without progress
            raise DecodeError(f"rows event for {plan.db}.{plan.table} has row images without any column")
        if pos > end:
            raise DecodeError(
                f"rows event for {plan.db}.{plan.table} is truncated: a row image runs {pos - end} "
                "bytes past its end (a corrupted binlog, or TableMap metadata the target's table "
                "does not match)"
            )

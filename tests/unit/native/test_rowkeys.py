"""The native row decoder (native/_rowkeys.pyx) returns exactly what the pure-Python
fallback (``applier.rowcodec.decode_rows``) returns.

Rows are encoded here, independently of the decoder, in the binlog row format (null
bitmap, per-type binary encodings, columns-present bitmaps, v1/v2 rows event headers), for
random tables (types, metadata, signedness: the target column's and, when the TableMap
logs it, the source's, which wins; charsets), random rows and random ``wanted`` column
sets. A few fixed values check the encoder itself against known literals.

Locally the module is skipped when the extension is not built; under CI (``CI`` set) a
missing extension is an error: the build is expected to produce it.
"""

from __future__ import annotations

import functools
import os
import struct
import zlib
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from applier.binlog import rowcodec as rc
from applier.binlog import tablemap as s
from applier.binlog.events import DELETE, INSERT, UPDATE
from applier.db import schema as dbs
from applier.errors import DecodeError
from tests.unit.binlog_encoders import enc_image, rows_body

if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
    import applier.native._rowkeys as native  # CI builds the extension: no skipping
else:
    native = pytest.importorskip("applier.native._rowkeys", reason="native extension not built")


@contextmanager
def strict():
    """Native errors propagate instead of silently falling back to rowcodec."""
    old = native._STRICT
    native._STRICT = True
    try:
        yield
    finally:
        native._STRICT = old


# -- encoder: values ----------------------------------------------------------------------

# Recent additions to rowcodec, covered when present: MariaDB COMPRESSED columns and the
# pre-10.0 "hires" TIME/DATETIME/TIMESTAMP (which need the column's fsp from the target).
_HAS_COL_FSP = "fsp" in getattr(dbs.Column, "__dataclass_fields__", {})
_HAS_HIRES = _HAS_COL_FSP and hasattr(rc, "K_TIME_HIRES")
_COMPRESSED_TYPES = tuple(
    t for t in (getattr(s, "T_VARCHAR_COMPRESSED", None), getattr(s, "T_BLOB_COMPRESSED", None)) if t
)
_STRING_TYPES = (s.T_VARCHAR, s.T_VAR_STRING, s.T_STRING, getattr(s, "T_VARCHAR_COMPRESSED", -1))

_INT_SIZES = {s.T_TINY: 1, s.T_SHORT: 2, s.T_INT24: 3, s.T_LONG: 4, s.T_LONGLONG: 8}
_DIG2BYTES = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)


@dataclass(frozen=True)
class Spec:
    """One column: binlog type and metadata, plus what the target schema says."""

    btype: int
    meta: int = 0
    unsigned: bool = False  # the target column's signedness
    charset: str | None = None
    col_fsp: int | None = None  # the target's DATETIME_PRECISION (MariaDB "hires" types)
    logged: bool | None = None  # the source's signedness (TableMap SIGNEDNESS), None: not logged

    @property
    def fsp(self) -> int:
        return self.meta

    @property
    def values_unsigned(self) -> bool:
        """The signedness the values are written with (and decoded with): the source's
        when the TableMap says it, else the target column's."""
        return self.logged if self.logged is not None else self.unsigned

    def column(self, i: int = 0) -> dbs.Column:
        kw = {"fsp": self.col_fsp} if _HAS_COL_FSP else {}
        return dbs.Column(f"c{i}", "x", self.unsigned, self.charset, None, True, False, **kw)

    def codec(self) -> rc.ColumnCodec:
        return make_plan([self]).columns[0]


def enc_int(v: int, size: int, unsigned: bool) -> bytes:
    return v.to_bytes(size, "little", signed=not unsigned)


def enc_decimal(precision: int, scale: int, negative: bool, int_digits: str, frac_digits: str) -> bytes:
    """MySQL's binary DECIMAL: digit groups of 9 in 4 bytes big-endian, leading and
    trailing partial groups in DIG2BYTES bytes, sign bit flipped, negatives inverted."""
    intg = precision - scale
    int_digits = int_digits.rjust(intg, "0")
    frac_digits = frac_digits.ljust(scale, "0")
    assert len(int_digits) == intg and len(frac_digits) == scale
    out = bytearray()
    lead = intg % 9
    if lead:
        out += int(int_digits[:lead]).to_bytes(_DIG2BYTES[lead], "big")
    for g in range(intg // 9):
        out += int(int_digits[lead + 9 * g : lead + 9 * g + 9]).to_bytes(4, "big")
    for g in range(scale // 9):
        out += int(frac_digits[9 * g : 9 * g + 9]).to_bytes(4, "big")
    tail = scale % 9
    if tail:
        out += int(frac_digits[scale - tail :]).to_bytes(_DIG2BYTES[tail], "big")
    if negative:
        out = bytearray(b ^ 0xFF for b in out)
    out[0] ^= 0x80
    return bytes(out)


def _frac_bytes(usec: int, fsp: int) -> bytes:
    """DATETIME2/TIMESTAMP2 fractional part: ceil(fsp/2) bytes big-endian."""
    n = (fsp + 1) // 2
    if n == 0:
        return b""
    return (usec // (10000 if n == 1 else 100 if n == 2 else 1)).to_bytes(n, "big")


def _c_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _c_mod(a: int, b: int) -> int:
    return a - _c_div(a, b) * b


def enc_time2(negative: bool, h: int, m: int, sec: int, usec: int, fsp: int) -> bytes:
    """MySQL my_time_packed_to_binary (usec already truncated to fsp digits)."""
    tmp = (((h << 12) | (m << 6) | sec) << 24) + usec
    nr = -tmp if negative else tmp
    intpart, frac = nr >> 24, _c_mod(nr, 1 << 24)
    if fsp >= 5:
        return (nr + 0x800000000000).to_bytes(6, "big")
    head = (intpart + 0x800000).to_bytes(3, "big")
    if fsp == 0:
        return head
    if fsp <= 2:
        return head + (_c_div(frac, 10000) & 0xFF).to_bytes(1, "big")
    return head + (_c_div(frac, 100) & 0xFFFF).to_bytes(2, "big")


def enc_datetime2(y: int, mo: int, d: int, h: int, mi: int, sec: int, usec: int, fsp: int) -> bytes:
    ymd = ((y * 13 + mo) << 5) | d
    hms = (h << 12) | (mi << 6) | sec
    return (((ymd << 17) | hms) + 0x8000000000).to_bytes(5, "big") + _frac_bytes(usec, fsp)


def enc_timestamp2(seconds: int, usec: int, fsp: int) -> bytes:
    return seconds.to_bytes(4, "big") + _frac_bytes(usec, fsp)


def enc_date(y: int, m: int, d: int) -> bytes:
    return ((y << 9) | (m << 5) | d).to_bytes(3, "little")


def enc_time(negative: bool, h: int, m: int, sec: int) -> bytes:
    v = h * 10000 + m * 100 + sec
    return (-v if negative else v).to_bytes(3, "little", signed=True)


def enc_datetime(y: int, mo: int, d: int, h: int, mi: int, sec: int) -> bytes:
    return (((y * 100 + mo) * 100 + d) * 1000000 + (h * 100 + mi) * 100 + sec).to_bytes(8, "little")


def enc_time_hires(negative: bool, h: int, m: int, sec: int, usec: int, fsp: int) -> bytes:
    """MariaDB Field_time_hires: big-endian sec_part_shift(pack_time) + zero point."""
    packed = ((h * 60 + m) * 60 + sec) * 1000000 + usec
    v = (-packed if negative else packed) // 10 ** (6 - fsp) + 3020400 * 10**fsp
    return v.to_bytes((3, 4, 4, 5, 5, 5, 6)[fsp], "big")


def enc_datetime_hires(y: int, mo: int, d: int, h: int, mi: int, sec: int, usec: int, fsp: int) -> bytes:
    """MariaDB Field_datetime_hires: big-endian sec_part_shift(pack_time)."""
    packed = (((((y * 13 + mo) * 32 + d) * 24 + h) * 60 + mi) * 60 + sec) * 1000000 + usec
    return (packed // 10 ** (6 - fsp)).to_bytes((5, 6, 6, 7, 7, 7, 8)[fsp], "big")


def enc_timestamp_hires(seconds: int, usec: int, fsp: int) -> bytes:
    """MariaDB Field_timestamp_hires: seconds, then sec_part_shift(usec), big-endian."""
    return seconds.to_bytes(4, "big") + (usec // 10 ** (6 - fsp)).to_bytes((fsp + 1) // 2, "big")


def enc_compressed(data: bytes, method: str) -> bytes:
    """MariaDB COMPRESSED column bytes: empty, header 0 + raw, or zlib with the original
    length big-endian after a 0x8N header (N&7 length bytes, N&8 raw deflate)."""
    if method == "empty" or not data:
        return b""
    if method == "stored":
        return b"\x00" + data
    nlen = max(1, (len(data).bit_length() + 7) // 8)
    raw = method == "deflate"
    co = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
    return bytes([0x80 | nlen | (8 if raw else 0)]) + len(data).to_bytes(nlen, "big") + co.compress(data) + co.flush()


def _str_prefix_size(spec: Spec) -> int:
    if spec.btype in _STRING_TYPES:
        return 1 if spec.meta < 256 else 2
    return spec.meta  # blobs, geometry, JSON: the metadata is the length size


def enc_lenprefixed(spec: Spec, data: bytes) -> bytes:
    n = _str_prefix_size(spec)
    return len(data).to_bytes(n, "little") + data


def enc_json_scalar(kind: str, v: object) -> bytes:
    """MySQL binary JSON for a scalar (type byte + value); b"" is SQL's empty JSON."""
    if kind == "empty":
        return b""
    if kind == "literal":
        return bytes([0x04, {None: 0, True: 1, False: 2}[v]])  # type: ignore[index]
    if kind == "int16":
        return b"\x05" + struct.pack("<h", v)
    if kind == "int64":
        return b"\x09" + struct.pack("<q", v)
    if kind == "double":
        return b"\x0b" + struct.pack("<d", v)
    assert kind == "string"
    raw = str(v).encode()
    n, var = len(raw), bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        var.append(byte | (0x80 if n else 0))
        if not n:
            break
    return b"\x0c" + bytes(var) + raw


def bit_size(meta: int) -> int:
    return ((meta >> 8) * 8 + (meta & 0xFF) + 7) // 8


def fixed_size(spec: Spec) -> int | None:
    """Byte width of a fixed-size type (None for length-prefixed ones)."""
    codec = spec.codec()
    if codec.kind in (rc.K_VARSTR, rc.K_BLOB, rc.K_JSON_MYSQL):
        return None
    return codec.size


# -- plans (the rows-event encoders are in binlog_encoders.py) --------------------------


def make_plan(specs: list[Spec], db: str = "db", table: str = "t") -> rc.RowPlan:
    tmap = s.TableMap(
        table_id=42,
        db=db,
        table=table,
        types=tuple(sp.btype for sp in specs),
        metas=tuple(sp.meta for sp in specs),
        nullable=(True,) * len(specs),
        names=None,
        unsigned=tuple(sp.logged for sp in specs) if any(sp.logged is not None for sp in specs) else None,
    )
    columns = tuple(sp.column(i) for i, sp in enumerate(specs))
    schema = dbs.TableSchema(db, table, columns, (), False)
    return rc.build_plan(tmap, schema)


# -- strategies ---------------------------------------------------------------------------

_CHARSETS = st.sampled_from([None, "binary", "utf8mb4", "latin1", "ascii", "utf8mb3", "ucs2"])


@st.composite
def specs(draw) -> Spec:
    kind = draw(
        st.sampled_from(
            ["int", "int", "int", "float", "double", "decimal", "decimal", "year", "date",
             "time", "datetime", "timestamp", "time2", "datetime2", "timestamp2", "varchar",
             "varchar", "char", "blob", "geometry", "json", "bit", "enum", "set"]
            + (["compressed"] if _COMPRESSED_TYPES else [])
        )
    )
    if kind == "int":
        logged = draw(st.sampled_from([None, False, True]))
        return Spec(draw(st.sampled_from(sorted(_INT_SIZES))), 0, draw(st.booleans()), logged=logged)
    if kind == "float":
        return Spec(s.T_FLOAT, 4)
    if kind == "double":
        return Spec(s.T_DOUBLE, 8)
    if kind == "decimal":
        precision = draw(st.integers(1, 65))
        scale = draw(st.integers(0, min(precision, 38)))
        return Spec(s.T_NEWDECIMAL, precision | scale << 8)
    if kind == "year":
        return Spec(s.T_YEAR)
    if kind == "date":
        return Spec(draw(st.sampled_from([s.T_DATE, s.T_NEWDATE])))
    if kind in ("time", "datetime", "timestamp"):
        t = {"time": s.T_TIME, "datetime": s.T_DATETIME, "timestamp": s.T_TIMESTAMP}[kind]
        # the target's DATETIME_PRECISION: None/0 = the MySQL 5.5 layout, else MariaDB hires
        fsp = draw(st.sampled_from([None, 0, 1, 2, 3, 4, 5, 6])) if _HAS_HIRES else None
        return Spec(t, 0, False, None, fsp)
    if kind in ("time2", "datetime2", "timestamp2"):
        t = {"time2": s.T_TIME2, "datetime2": s.T_DATETIME2, "timestamp2": s.T_TIMESTAMP2}[kind]
        return Spec(t, draw(st.integers(0, 6)))
    if kind == "varchar":
        meta = draw(st.one_of(st.integers(1, 255), st.integers(256, 65535)))
        return Spec(draw(st.sampled_from([s.T_VARCHAR, s.T_VAR_STRING])), meta, False, draw(_CHARSETS))
    if kind == "compressed":
        t = draw(st.sampled_from(_COMPRESSED_TYPES))
        if t == getattr(s, "T_VARCHAR_COMPRESSED", None):
            meta = draw(st.one_of(st.integers(1, 255), st.integers(256, 65535)))
        else:
            meta = draw(st.integers(1, 4))
        return Spec(t, meta, False, draw(_CHARSETS))
    if kind == "char":
        return Spec(s.T_STRING, draw(st.integers(1, 1020)), False, draw(_CHARSETS))
    if kind == "blob":
        t = draw(st.sampled_from([s.T_BLOB, s.T_BLOB, s.T_TINY_BLOB, s.T_MEDIUM_BLOB, s.T_LONG_BLOB]))
        return Spec(t, draw(st.integers(1, 4)), False, draw(_CHARSETS))
    if kind == "geometry":
        return Spec(s.T_GEOMETRY, draw(st.integers(1, 4)))
    if kind == "json":
        return Spec(s.T_JSON, draw(st.integers(1, 4)), False, "utf8mb4")
    if kind == "bit":
        nbits = draw(st.integers(1, 64))
        return Spec(s.T_BIT, (nbits % 8) | (nbits // 8) << 8)
    if kind == "enum":
        return Spec(s.T_ENUM, draw(st.integers(1, 2)))
    return Spec(s.T_SET, draw(st.integers(1, 8)))


_BYTES = st.binary(max_size=40) | st.lists(
    st.sampled_from([b"a", b"Z", b" ", b"'", b"\\", b"\x00", b"\xc3\xa9", b"\xff", b"\n", b'"']),
    max_size=20,
).map(b"".join)


@functools.cache
def _ints(lo: int, hi: int) -> st.SearchStrategy[int]:
    return st.integers(lo, hi)


@functools.cache
def _bit_patterns(width: int) -> st.SearchStrategy[bytes]:
    """Bytes of one width, weighted towards the edges (sign bits, all ones, zero)."""
    edges = [b"\x00" * width, b"\xff" * width, b"\x80" + b"\x00" * (width - 1),
             b"\x7f" + b"\xff" * (width - 1), b"\x00" * (width - 1) + b"\x80",
             b"\xff" * (width - 1) + b"\x7f", b"\x01" * width]
    return st.sampled_from([e[:width] for e in edges]) | st.binary(min_size=width, max_size=width)


@functools.cache
def _usec(fsp: int) -> st.SearchStrategy[int]:
    """Microseconds with ``fsp`` significant digits."""
    return _ints(0, 10**fsp - 1).map(lambda d: d * 10 ** (6 - fsp)) if fsp else st.just(0)


_BOOL = st.booleans()
_YMD = st.tuples(_ints(0, 9999), _ints(0, 12), _ints(0, 31))
_HMS = st.tuples(_ints(0, 23), _ints(0, 59), _ints(0, 59))
_SIGNED_HMS = st.tuples(_BOOL, _ints(0, 838), _ints(0, 59), _ints(0, 59))
_EPOCH = _ints(0, 2**32 - 1) | st.sampled_from([0, 1, 2**31 - 1, 2**32 - 1])
_LONG_BYTES = st.binary(min_size=250, max_size=300)
_JSON = st.one_of(
    st.tuples(st.just("empty"), st.none()),
    st.tuples(st.just("literal"), st.sampled_from([None, True, False])),
    st.tuples(st.just("int16"), _ints(-(2**15), 2**15 - 1)),
    st.tuples(st.just("int64"), _ints(-(2**63), 2**63 - 1)),
    st.tuples(st.just("double"), st.floats(allow_nan=False, allow_infinity=False)),
    st.tuples(st.just("string"), st.text(max_size=200)),
).map(lambda kv: enc_json_scalar(*kv))
_COMPRESSION = st.sampled_from(["empty", "stored", "zlib", "deflate"])


def _valid_values(spec: Spec) -> st.SearchStrategy[bytes]:
    """Encoded bytes of valid non-NULL values of ``spec``."""
    t = spec.btype
    if t in _INT_SIZES:
        size = _INT_SIZES[t]
        bits = 8 * size
        unsigned = spec.values_unsigned
        lo, hi = (0, (1 << bits) - 1) if unsigned else (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
        edges = st.sampled_from([lo, hi, 0, 1, -1 if lo else 2])
        return (_ints(lo, hi) | edges).map(lambda v: enc_int(v, size, unsigned))
    if t == s.T_FLOAT:
        return st.floats(width=32).map(lambda v: struct.pack("<f", v))
    if t == s.T_DOUBLE:
        return st.floats().map(lambda v: struct.pack("<d", v))
    if t == s.T_NEWDECIMAL:
        precision, scale = spec.meta & 0xFF, spec.meta >> 8
        digits = st.tuples(_BOOL, st.text("0123456789", max_size=precision - scale), st.text("0123456789", max_size=scale))
        return digits.map(lambda d: enc_decimal(precision, scale, *d))
    if t == s.T_YEAR:
        return (st.sampled_from([0, 1, 124, 255]) | _ints(0, 255)).map(lambda v: bytes([v]))
    if t in (s.T_DATE, s.T_NEWDATE):
        return _YMD.map(lambda d: enc_date(*d))
    hires = spec.col_fsp if _HAS_HIRES and spec.col_fsp and 0 < spec.col_fsp <= 6 else 0
    if t == s.T_TIME and hires:
        return st.tuples(_SIGNED_HMS, _usec(hires)).map(lambda v: enc_time_hires(*v[0], v[1], hires))
    if t == s.T_DATETIME and hires:
        return st.tuples(_YMD, _HMS, _usec(hires)).map(lambda v: enc_datetime_hires(*v[0], *v[1], v[2], hires))
    if t == s.T_TIMESTAMP and hires:
        return st.tuples(_EPOCH, _usec(hires)).map(lambda v: enc_timestamp_hires(*v, hires))
    if t == s.T_TIME:
        return _SIGNED_HMS.map(lambda v: enc_time(*v))
    if t == s.T_DATETIME:
        return st.tuples(_YMD, _HMS).map(lambda v: enc_datetime(*v[0], *v[1]))
    if t == s.T_TIMESTAMP:
        return _EPOCH.map(lambda v: v.to_bytes(4, "little"))
    if t == s.T_TIME2:
        return st.tuples(_SIGNED_HMS, _usec(spec.fsp)).map(lambda v: enc_time2(*v[0], v[1], spec.fsp))
    if t == s.T_DATETIME2:
        return st.tuples(_YMD, _HMS, _usec(spec.fsp)).map(lambda v: enc_datetime2(*v[0], *v[1], v[2], spec.fsp))
    if t == s.T_TIMESTAMP2:
        return st.tuples(_EPOCH, _usec(spec.fsp)).map(lambda v: enc_timestamp2(*v, spec.fsp))
    if t in _COMPRESSED_TYPES:
        limit = spec.meta if t in _STRING_TYPES else (1 << (8 * spec.meta)) - 1
        return (
            st.tuples(_BYTES, _COMPRESSION)
            .map(lambda v: enc_compressed(*v))
            .filter(lambda d: len(d) <= limit)
            .map(lambda d: enc_lenprefixed(spec, d))
        )
    if t in _STRING_TYPES:
        return (_BYTES | _LONG_BYTES).map(lambda d: enc_lenprefixed(spec, d[: spec.meta]))
    if t in (s.T_BLOB, s.T_TINY_BLOB, s.T_MEDIUM_BLOB, s.T_LONG_BLOB, s.T_GEOMETRY):
        limit = (1 << (8 * spec.meta)) - 1
        return (_BYTES | _LONG_BYTES).map(lambda d: enc_lenprefixed(spec, d[:limit]))
    if t == s.T_JSON:
        limit = (1 << (8 * spec.meta)) - 1
        return _JSON.filter(lambda d: len(d) <= limit).map(lambda d: enc_lenprefixed(spec, d))
    if t == s.T_BIT:
        nbits = (spec.meta >> 8) * 8 + (spec.meta & 0xFF)
        return (_ints(0, (1 << nbits) - 1) | st.just((1 << nbits) - 1)).map(
            lambda v: v.to_bytes(bit_size(spec.meta), "big")
        )
    assert t in (s.T_ENUM, s.T_SET)
    return _bit_patterns(spec.meta)  # ENUM/SET: every bit pattern is a value


@functools.cache
def encoded_value(spec: Spec) -> st.SearchStrategy[bytes]:
    """Encoded bytes of one non-NULL value of ``spec``: mostly valid values, and for
    fixed-size types also arbitrary bit patterns (the decoders must agree on those too)."""
    valid = _valid_values(spec)
    width = fixed_size(spec)
    return valid if width is None else st.one_of(valid, valid, valid, _bit_patterns(width))


_NULL_OR_VALUE = _ints(0, 5)


@st.composite
def present_bitmap(draw, ncols: int) -> list[bool]:
    if draw(st.booleans()):
        return [True] * ncols
    bits = draw(st.lists(st.booleans(), min_size=ncols, max_size=ncols))
    if not any(bits):  # an image with no column would never end (see test_no_columns)
        bits[draw(st.integers(0, ncols - 1))] = True
    return bits


@st.composite
def image(draw, table: list[Spec], present: list[bool]) -> bytes:
    values = []
    for spec, p in zip(table, present, strict=True):
        if p:
            values.append(None if draw(_NULL_OR_VALUE) == 0 else draw(encoded_value(spec)))
    return enc_image(present, values)


@dataclass
class Event:
    specs: list[Spec]
    op: int
    version: int
    body: bytes
    nrows: int


@st.composite
def events(draw, max_cols: int = 20) -> Event:
    ncols = draw(st.integers(1, max_cols))
    table = draw(st.lists(specs(), min_size=ncols, max_size=ncols))
    ncols = len(table)
    op = draw(st.sampled_from([INSERT, UPDATE, DELETE]))
    version = draw(st.sampled_from([1, 2]))
    extra = draw(st.binary(max_size=6)) if version == 2 else b""
    present1 = draw(present_bitmap(ncols))
    present2 = draw(present_bitmap(ncols)) if op == UPDATE else None
    nrows = draw(st.integers(0, 5))
    images = b""
    for _ in range(nrows):
        images += draw(image(table, present1))
        if op == UPDATE:
            assert present2 is not None
            images += draw(image(table, present2))
    body = rows_body(ncols, op, version, present1, present2, images, extra)
    return Event(table, op, version, body, nrows)


def wanted_sets(ncols: int):
    subset = st.frozensets(st.integers(0, ncols + 2))
    return st.one_of(
        st.none(),
        subset,
        st.just(frozenset()),
        st.just(frozenset({0})),
        subset.map(set),  # any container works, not only frozensets
    )


# -- the property -------------------------------------------------------------------------

_SETTINGS = settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@_SETTINGS
@given(data=st.data())
def test_native_equals_fallback(data) -> None:
    ev = data.draw(events())
    plan = make_plan(ev.specs)
    expected = rc.decode_rows(plan, ev.op, ev.body, ev.version, None)
    assert len(expected) == ev.nrows  # the encoder and the decoder agree on lengths
    for _ in range(3):
        wanted = data.draw(wanted_sets(len(ev.specs)), label="wanted")
        want = rc.decode_rows(plan, ev.op, ev.body, ev.version, wanted)
        with strict():  # valid input: the native path must answer by itself
            got = native.decode_keys(plan, ev.op, ev.body, ev.version, wanted)
        assert got == want
        assert [tuple(map(type, r)) for r in got] == [tuple(map(type, r)) for r in want]


def _outcome(fn, *args):
    try:
        return ("ok", fn(*args))
    except Exception as e:
        return ("error", type(e), str(e))


@settings(_SETTINGS, max_examples=300)
@given(data=st.data())
def test_malformed_events_match_fallback(data) -> None:
    """Truncated, extended or corrupted bodies: the same rows or the same error."""
    ev = data.draw(events(max_cols=10))
    plan = make_plan(ev.specs)
    body = bytearray(ev.body)
    how = data.draw(st.sampled_from(["truncate", "append", "flip", "set"]))
    if how == "truncate":
        body = body[: data.draw(st.integers(0, len(body)))]
    elif how == "append":
        body += data.draw(st.binary(min_size=1, max_size=20))
    elif how == "flip":
        i = data.draw(st.integers(0, len(body) - 1))
        body[i] ^= 1 << data.draw(st.integers(0, 7))
    else:
        i = data.draw(st.integers(0, len(body) - 1))
        body[i] = data.draw(st.sampled_from([0, 0x7F, 0x80, 0xFB, 0xFC, 0xFD, 0xFE, 0xFF]))
    body = bytes(body)
    wanted = data.draw(wanted_sets(len(ev.specs)))
    got = _outcome(native.decode_keys, plan, ev.op, body, ev.version, wanted)
    if got[0] == "error" and got[1] is DecodeError and "without any column" in got[2]:
        return  # rowcodec would loop forever on this body (see test_no_columns)
    assert got == _outcome(rc.decode_rows, plan, ev.op, body, ev.version, wanted)


# -- every kind, systematically: edge bit patterns ---------------------------------------


def _all_specs() -> list[Spec]:
    out = [Spec(t, 0, u) for t in sorted(_INT_SIZES) for u in (False, True)]
    out += [Spec(s.T_FLOAT, 4), Spec(s.T_DOUBLE, 8), Spec(s.T_YEAR), Spec(s.T_DATE), Spec(s.T_TIME),
            Spec(s.T_DATETIME), Spec(s.T_TIMESTAMP)]
    for p, sc in ((1, 0), (9, 0), (10, 0), (5, 5), (10, 2), (18, 9), (20, 10), (38, 38), (65, 0), (65, 30)):
        out.append(Spec(s.T_NEWDECIMAL, p | sc << 8))
    for fsp in range(7):
        out += [Spec(s.T_TIME2, fsp), Spec(s.T_DATETIME2, fsp), Spec(s.T_TIMESTAMP2, fsp)]
        if _HAS_HIRES:
            out += [Spec(t, 0, False, None, fsp) for t in (s.T_TIME, s.T_DATETIME, s.T_TIMESTAMP)]
    for nbits in (1, 7, 8, 9, 31, 32, 33, 63, 64):
        out.append(Spec(s.T_BIT, (nbits % 8) | (nbits // 8) << 8))
    out += [Spec(s.T_ENUM, 1), Spec(s.T_ENUM, 2)] + [Spec(s.T_SET, n) for n in range(1, 9)]
    return out


@pytest.mark.parametrize("spec", _all_specs(), ids=lambda sp: f"{sp.btype}-{sp.meta}-{sp.unsigned}-{sp.col_fsp}")
def test_fixed_size_kinds_edge_patterns(spec: Spec) -> None:
    """Every fixed-size kind with sign bits, all ones, zeros and random bytes."""
    import random

    width = fixed_size(spec)
    assert width is not None
    rnd = random.Random(width * 1000 + spec.btype)
    edges = [b"\x00" * width, b"\xff" * width, b"\x80" + b"\x00" * (width - 1),
             b"\x7f" + b"\xff" * (width - 1), b"\x00" * (width - 1) + b"\x80",
             b"\xff" * (width - 1) + b"\x7f", b"\x01" * width, b"\x80" * width, b"\x7f" * width]
    patterns = [e[:width] for e in edges] + [rnd.randbytes(width) for _ in range(40)]
    plan = make_plan([Spec(s.T_LONG), spec])
    present = [True, True]
    images = b"".join(enc_image(present, [enc_int(i, 4, False), pat]) for i, pat in enumerate(patterns))
    for op, version in ((INSERT, 2), (DELETE, 1)):
        body = rows_body(2, op, version, present, None, images)
        with strict():
            for wanted in (None, frozenset({1}), frozenset({0})):
                got = native.decode_keys(plan, op, body, version, wanted)
                assert got == rc.decode_rows(plan, op, body, version, wanted)


def test_string_kinds_edge_cases() -> None:
    """Length prefixes of every size, empty values, escapes, pads, 255/256 boundaries."""
    specs_ = [Spec(s.T_VARCHAR, 255, False, U8), Spec(s.T_VARCHAR, 256, False, "latin1"),
              Spec(s.T_STRING, 4, False, "binary"), Spec(s.T_STRING, 300, False, None),
              Spec(s.T_STRING, 10, False, U8)]
    specs_ += [Spec(s.T_BLOB, n, False, cs) for n in (1, 2, 3, 4) for cs in (None, "binary", U8)]
    specs_ += [Spec(s.T_GEOMETRY, 4), Spec(s.T_JSON, 4)]
    for spec in specs_:
        plan = make_plan([spec, Spec(s.T_TINY)])
        limit = spec.meta if spec.btype in _STRING_TYPES else (1 << (8 * spec.meta)) - 1
        if spec.btype == s.T_JSON:
            values = [b"", enc_json_scalar("string", "x'\\"), enc_json_scalar("literal", True)]
        else:
            values = [b"", b"\x00", b"'", b"\\", b"a\x00b'c\\d", bytes(range(256)), b"x" * 255,
                      b"y" * 256, b"\x00\x00", b"ab"]
        present = [True, True]
        images = b"".join(
            enc_image(present, [enc_lenprefixed(spec, v), enc_int(1, 1, False)]) for v in values if len(v) <= limit
        )
        body = rows_body(2, UPDATE, 2, present, present, images * 2)
        with strict():
            for wanted in (None, frozenset({0}), frozenset({1})):
                assert native.decode_keys(plan, UPDATE, body, 2, wanted) == rc.decode_rows(
                    plan, UPDATE, body, 2, wanted
                )


# -- fixed values: the encoder against known literals -------------------------------------

U8 = "utf8mb4"

KNOWN = [
    (Spec(s.T_TINY), enc_int(-1, 1, False), b"-1"),
    (Spec(s.T_TINY, 0, True), enc_int(255, 1, True), b"255"),
    (Spec(s.T_SHORT), enc_int(-32768, 2, False), b"-32768"),
    (Spec(s.T_INT24, 0, True), enc_int(16777215, 3, True), b"16777215"),
    (Spec(s.T_INT24), enc_int(-8388608, 3, False), b"-8388608"),
    (Spec(s.T_LONG), enc_int(2147483647, 4, False), b"2147483647"),
    (Spec(s.T_LONGLONG), enc_int(-(2**63), 8, False), b"-9223372036854775808"),
    (Spec(s.T_LONGLONG, 0, True), enc_int(2**64 - 1, 8, True), b"18446744073709551615"),
    (Spec(s.T_FLOAT, 4), struct.pack("<f", 0.5), b"0.5"),
    (Spec(s.T_FLOAT, 4), struct.pack("<f", 0.1), b"0.10000000149011612"),
    (Spec(s.T_DOUBLE, 8), struct.pack("<d", 0.1), b"0.1"),
    (Spec(s.T_DOUBLE, 8), struct.pack("<d", -0.0), b"-0.0"),
    (Spec(s.T_DOUBLE, 8), struct.pack("<d", 1e300), b"1e+300"),
    (Spec(s.T_NEWDECIMAL, 10 | 2 << 8), enc_decimal(10, 2, True, "1234", "56"), b"-1234.56"),
    (Spec(s.T_NEWDECIMAL, 10 | 2 << 8), enc_decimal(10, 2, False, "", ""), b"0.00"),
    (Spec(s.T_NEWDECIMAL, 5), enc_decimal(5, 0, False, "0", ""), b"0"),
    (Spec(s.T_NEWDECIMAL, 20 | 10 << 8), enc_decimal(20, 10, False, "0", "0000000001"), b"0.0000000001"),
    (
        Spec(s.T_NEWDECIMAL, 65 | 30 << 8),
        enc_decimal(65, 30, True, "12345678901234567890123456789012345", "123456789012345678901234567890"),
        b"-12345678901234567890123456789012345.123456789012345678901234567890",
    ),
    (Spec(s.T_NEWDECIMAL, 18 | 9 << 8), enc_decimal(18, 9, False, "987654321", "000000001"), b"987654321.000000001"),
    (Spec(s.T_YEAR), bytes([124]), b"2024"),
    (Spec(s.T_YEAR), b"\x00", b"0"),
    (Spec(s.T_DATE), enc_date(2024, 2, 29), b"'2024-02-29'"),
    (Spec(s.T_DATE), enc_date(0, 0, 0), b"'0000-00-00'"),
    (Spec(s.T_TIME), enc_time(True, 838, 59, 59), b"'-838:59:59'"),
    (Spec(s.T_TIME), enc_time(False, 1, 2, 3), b"'01:02:03'"),
    (Spec(s.T_DATETIME), enc_datetime(1999, 12, 31, 23, 59, 58), b"'1999-12-31 23:59:58'"),
    (Spec(s.T_TIMESTAMP), (1700000000).to_bytes(4, "little"), b"'2023-11-14 22:13:20'"),
    (Spec(s.T_TIMESTAMP), bytes(4), b"'0000-00-00 00:00:00'"),
    (Spec(s.T_TIME2, 0), enc_time2(True, 838, 59, 59, 0, 0), b"'-838:59:59'"),
    (Spec(s.T_TIME2, 2), enc_time2(False, 12, 34, 56, 780000, 2), b"'12:34:56.78'"),
    (Spec(s.T_TIME2, 2), enc_time2(True, 0, 0, 1, 500000, 2), b"'-00:00:01.50'"),
    (Spec(s.T_TIME2, 1), enc_time2(True, 1, 2, 3, 400000, 1), b"'-01:02:03.4'"),
    (Spec(s.T_TIME2, 4), enc_time2(True, 10, 0, 0, 123400, 4), b"'-10:00:00.1234'"),
    (Spec(s.T_TIME2, 3), enc_time2(False, 0, 0, 0, 1000, 3), b"'00:00:00.001'"),
    (Spec(s.T_TIME2, 6), enc_time2(True, 1, 2, 3, 4, 6), b"'-01:02:03.000004'"),
    (Spec(s.T_TIME2, 5), enc_time2(False, 0, 0, 0, 999990, 5), b"'00:00:00.99999'"),
    (
        Spec(s.T_DATETIME2, 3),
        enc_datetime2(2024, 1, 2, 3, 4, 5, 678000, 3),
        b"'2024-01-02 03:04:05.678'",
    ),
    (Spec(s.T_DATETIME2, 0), enc_datetime2(1000, 1, 1, 0, 0, 0, 0, 0), b"'1000-01-01 00:00:00'"),
    (Spec(s.T_DATETIME2, 6), enc_datetime2(9999, 12, 31, 23, 59, 59, 999999, 6), b"'9999-12-31 23:59:59.999999'"),
    (
        Spec(s.T_TIMESTAMP2, 6),
        enc_timestamp2(1700000000, 123456, 6),
        b"'2023-11-14 22:13:20.123456'",
    ),
    (Spec(s.T_TIMESTAMP2, 1), enc_timestamp2(951782400, 900000, 1), b"'2000-02-29 00:00:00.9'"),
    (Spec(s.T_TIMESTAMP2, 2), enc_timestamp2(0, 0, 2), b"'0000-00-00 00:00:00'"),
    (Spec(s.T_VARCHAR, 40, False, U8), enc_lenprefixed(Spec(s.T_VARCHAR, 40), b"it's"), b"_utf8mb4'it\\'s'"),
    (
        Spec(s.T_VARCHAR, 1000, False, "latin1"),
        enc_lenprefixed(Spec(s.T_VARCHAR, 1000), b"x" * 300),
        b"_latin1'" + b"x" * 300 + b"'",
    ),
    (Spec(s.T_STRING, 480, False, U8), enc_lenprefixed(Spec(s.T_STRING, 480), b"caf\xc3\xa9"), b"_utf8mb4'caf\xc3\xa9'"),
    (Spec(s.T_STRING, 10, False, U8), enc_lenprefixed(Spec(s.T_STRING, 10), b""), b"_utf8mb4''"),
    (Spec(s.T_BLOB, 2), enc_lenprefixed(Spec(s.T_BLOB, 2), b"\x00\\'\x01"), b"_binary'\\0\\\\\\'\x01'"),
    (Spec(s.T_BLOB, 4, False, U8), enc_lenprefixed(Spec(s.T_BLOB, 4), b"text"), b"_utf8mb4'text'"),
    (Spec(s.T_GEOMETRY, 4, False, U8), enc_lenprefixed(Spec(s.T_GEOMETRY, 4), b"\x01\x02"), b"_binary'\x01\x02'"),
    (Spec(s.T_JSON, 4), enc_lenprefixed(Spec(s.T_JSON, 4), enc_json_scalar("string", "a'b")),
     b"CAST(_utf8mb4'\"a\\'b\"' AS JSON)"),
    (Spec(s.T_JSON, 4), enc_lenprefixed(Spec(s.T_JSON, 4), b""), b"CAST(_utf8mb4'null' AS JSON)"),
    (Spec(s.T_JSON, 4), enc_lenprefixed(Spec(s.T_JSON, 4), enc_json_scalar("int16", -5)), b"CAST(_utf8mb4'-5' AS JSON)"),
    (Spec(s.T_BIT, 2 | 1 << 8), (0x2AB).to_bytes(2, "big"), b"683"),
    (Spec(s.T_BIT, 0 | 8 << 8), (2**64 - 1).to_bytes(8, "big"), b"18446744073709551615"),
    (Spec(s.T_BIT, 1), b"\x01", b"1"),
    (Spec(s.T_ENUM, 2), (300).to_bytes(2, "little"), b"300"),
    (Spec(s.T_SET, 8), (2**62 + 5).to_bytes(8, "little"), b"4611686018427387909"),
    (Spec(s.T_SET, 3), (0x010203).to_bytes(3, "little"), b"66051"),
]

if hasattr(rc.ColumnCodec, "pad"):  # BINARY(n): the binlog drops trailing 0x00, the literal has them
    KNOWN += [
        (Spec(s.T_STRING, 4, False, "binary"), enc_lenprefixed(Spec(s.T_STRING, 4), b"ab"), b"_binary'ab\\0\\0'"),
        (Spec(s.T_STRING, 3, False, None), enc_lenprefixed(Spec(s.T_STRING, 3), b"'"), b"_binary'\\'\\0\\0'"),
        (Spec(s.T_STRING, 2, False, "binary"), enc_lenprefixed(Spec(s.T_STRING, 2), b"xy"), b"_binary'xy'"),
    ]
if _HAS_HIRES:
    KNOWN += [
        (Spec(s.T_TIME, 0, False, None, 3), enc_time_hires(True, 1, 2, 3, 456000, 3), b"'-01:02:03.456'"),
        (Spec(s.T_TIME, 0, False, None, 6), enc_time_hires(False, 838, 59, 59, 1, 6), b"'838:59:59.000001'"),
        (Spec(s.T_TIME, 0, False, None, 1), enc_time_hires(False, 0, 0, 0, 0, 1), b"'00:00:00.0'"),
        (
            Spec(s.T_DATETIME, 0, False, None, 2),
            enc_datetime_hires(2001, 2, 3, 4, 5, 6, 780000, 2),
            b"'2001-02-03 04:05:06.78'",
        ),
        (
            Spec(s.T_DATETIME, 0, False, None, 6),
            enc_datetime_hires(9999, 12, 31, 23, 59, 59, 999999, 6),
            b"'9999-12-31 23:59:59.999999'",
        ),
        (
            Spec(s.T_TIMESTAMP, 0, False, None, 6),
            enc_timestamp_hires(1700000000, 1, 6),
            b"'2023-11-14 22:13:20.000001'",
        ),
        (Spec(s.T_TIMESTAMP, 0, False, None, 1), enc_timestamp_hires(1700000000, 500000, 1), b"'2023-11-14 22:13:20.5'"),
        (Spec(s.T_TIMESTAMP, 0, False, None, 0), (1700000000).to_bytes(4, "little"), b"'2023-11-14 22:13:20'"),
    ]
if _COMPRESSED_TYPES:
    _VC = Spec(s.T_VARCHAR_COMPRESSED, 100, False, U8)
    _BC = Spec(s.T_BLOB_COMPRESSED, 2, False, "binary")
    KNOWN += [
        (_VC, enc_lenprefixed(_VC, enc_compressed(b"hello'hello" * 3, "zlib")), b"_utf8mb4'" + b"hello\\'hello" * 3 + b"'"),
        (_VC, enc_lenprefixed(_VC, enc_compressed(b"abc", "stored")), b"_utf8mb4'abc'"),
        (_VC, enc_lenprefixed(_VC, b""), b"_utf8mb4''"),
        (_BC, enc_lenprefixed(_BC, enc_compressed(b"\x00" * 50, "deflate")), b"_binary'" + b"\\0" * 50 + b"'"),
    ]


@pytest.mark.parametrize(("spec", "encoded", "literal"), KNOWN, ids=lambda v: getattr(v, "btype", None))
def test_encoder_known_values(spec: Spec, encoded: bytes, literal: bytes) -> None:
    plan = make_plan([Spec(s.T_LONG), spec])
    present = [True, True]
    images = enc_image(present, [enc_int(7, 4, False), encoded]) + enc_image(present, [None, None])
    body = rows_body(2, INSERT, 2, present, None, images)
    expected = [(None, (b"7", literal)), (None, (b"NULL", b"NULL"))]
    assert rc.decode_rows(plan, INSERT, body, 2) == expected
    with strict():
        assert native.decode_keys(plan, INSERT, body, 2) == expected
        assert native.decode_keys(plan, INSERT, body, 2, frozenset({0})) == [
            (None, (b"7", None)), (None, (b"NULL", b"NULL"))
        ]
        assert native.decode_keys(plan, INSERT, body, 2, frozenset({1})) == [
            (None, (None, literal)), (None, (b"NULL", b"NULL"))
        ]


def test_update_delete_absent_columns() -> None:
    """UPDATE with different before/after column sets, v1 header, DELETE."""
    specs_ = [Spec(s.T_LONG), Spec(s.T_VARCHAR, 20, False, U8), Spec(s.T_SHORT, 0, True)]
    plan = make_plan(specs_)
    before, after = [True, False, True], [True, True, False]
    images = enc_image(before, [enc_int(1, 4, False), enc_int(65535, 2, True)]) + enc_image(
        after, [enc_int(2, 4, False), enc_lenprefixed(specs_[1], b"b")]
    )
    body = rows_body(3, UPDATE, 1, before, after, images)
    expected = [((b"1", None, b"65535"), (b"2", b"_utf8mb4'b'", None))]
    assert rc.decode_rows(plan, UPDATE, body, 1) == expected
    with strict():
        assert native.decode_keys(plan, UPDATE, body, 1) == expected
        assert native.decode_keys(plan, UPDATE, body, 1, frozenset({0})) == [
            ((b"1", None, None), (b"2", None, None))
        ]
    body = rows_body(3, DELETE, 1, before, None, enc_image(before, [None, enc_int(3, 2, True)]))
    with strict():
        assert native.decode_keys(plan, DELETE, body, 1) == [((b"NULL", None, b"3"), None)]


def test_wide_table_and_packed_column_count() -> None:
    """More than 250 columns: a 3-byte column count and long bitmaps."""
    specs_ = [Spec(s.T_TINY)] * 300
    plan = make_plan(specs_)
    present = [True] * 300
    values = [None if i % 7 == 0 else enc_int(i % 100, 1, False) for i in range(300)]
    body = rows_body(300, INSERT, 2, present, None, enc_image(present, values) * 2)
    wanted = frozenset({1, 7, 299})
    with strict():
        for w in (None, wanted):
            assert native.decode_keys(plan, INSERT, body, 2, w) == rc.decode_rows(plan, INSERT, body, 2, w)


def test_errors_match_fallback() -> None:
    plan = make_plan([Spec(s.T_LONG), Spec(s.T_LONG)])
    present = [True, True]
    body = rows_body(2, INSERT, 2, present, None, enc_image(present, [enc_int(1, 4, False)] * 2))
    # a column count that does not match the table map: rowcodec's DecodeError
    other = make_plan([Spec(s.T_LONG)])
    with pytest.raises(DecodeError, match="has 2 columns, table map 1"):
        native.decode_keys(other, INSERT, body, 2, None)
    # not bytes: answered by rowcodec
    assert native.decode_keys(plan, INSERT, bytearray(body), 2) == rc.decode_rows(plan, INSERT, bytearray(body), 2)
    # a truncated body: rowcodec's DecodeError
    assert _outcome(native.decode_keys, plan, INSERT, body[:-1], 2) == _outcome(
        rc.decode_rows, plan, INSERT, body[:-1], 2
    )
    with pytest.raises(DecodeError, match="truncated: a row image runs 1 bytes past its end"):
        rc.decode_rows(plan, INSERT, body[:-1], 2)
    with strict(), pytest.raises(Exception):  # noqa: B017 - strict mode surfaces the fallback
        native.decode_keys(plan, INSERT, body[:-1], 2)


def test_no_columns() -> None:
    """Row images without a single column cannot advance: an error, not a hang."""
    plan = make_plan([Spec(s.T_LONG)])
    body = rows_body(1, INSERT, 2, [False], None, b"\x00\x00")
    with pytest.raises(DecodeError, match="without any column"):
        native.decode_keys(plan, INSERT, body, 2)


def test_plan_changes_are_seen() -> None:
    """Plans are cached by identity; new plans (even for the same table) are recompiled,
    and plain (non-RowPlan) plans work too."""
    present = [True]
    body = rows_body(1, INSERT, 1, present, None, enc_image(present, [enc_int(-1, 4, False)]))
    signed, unsigned = make_plan([Spec(s.T_LONG)]), make_plan([Spec(s.T_LONG, 0, True)])
    with strict():
        for _ in range(2):
            assert native.decode_keys(signed, INSERT, body, 1) == [(None, (b"-1",))]
            assert native.decode_keys(unsigned, INSERT, body, 1) == [(None, (b"4294967295",))]

    @dataclass
    class DuckPlan:
        db: str
        table: str
        columns: list

    duck = DuckPlan("db", "t", list(unsigned.columns))
    with strict():
        assert native.decode_keys(duck, INSERT, body, 1) == [(None, (b"4294967295",))]


@pytest.mark.parametrize("btype", sorted(_INT_SIZES))
def test_logged_signedness_wins_over_the_target(btype: int) -> None:
    """The TableMap's SIGNEDNESS decodes the integers in both decoders; the target
    column's only when the binlog does not say (a plan per combination, so the native
    plan cache sees each)."""
    size = _INT_SIZES[btype]
    present = [True, True]
    raw = [b"\xff" * size, b"\x00" * (size - 1) + b"\x80"]  # -1 / max unsigned; min signed / 2^(n-1)
    body = rows_body(2, INSERT, 2, present, None, enc_image(present, raw))
    signed = (str(-1).encode(), str(-(1 << (8 * size - 1))).encode())
    unsigned = (str((1 << (8 * size)) - 1).encode(), str(1 << (8 * size - 1)).encode())
    for target_unsigned in (False, True):
        for logged, expected in ((False, signed), (True, unsigned), (None, unsigned if target_unsigned else signed)):
            plan = make_plan([Spec(btype, 0, target_unsigned, logged=logged)] * 2)
            assert rc.decode_rows(plan, INSERT, body, 2) == [(None, expected)]
            with strict():
                assert native.decode_keys(plan, INSERT, body, 2) == [(None, expected)]
                assert native.decode_keys(plan, INSERT, body, 2, frozenset({1})) == [(None, (None, expected[1]))]


def test_the_loader_chooses_native() -> None:
    from applier.binlog import native as loader
    from applier.pipeline import writeset

    assert loader.NATIVE
    assert loader.decode_rows is native.decode_keys
    assert writeset.decode_keys is native.decode_keys


@settings(_SETTINGS, max_examples=150)
@given(data=st.data())
def test_writeset_hashes_identical(data) -> None:
    """The coordinator's key hashes are the same with either decoder."""
    from applier.pipeline import writeset

    ev = data.draw(events(max_cols=8))
    ncols = len(ev.specs)
    cols = data.draw(st.lists(st.integers(0, ncols - 1), min_size=1, max_size=3, unique=True))
    prefixes = tuple(data.draw(st.none() | st.integers(1, 10)) for _ in cols)
    schema = dbs.TableSchema(
        "db", "t", tuple(sp.column(i) for i, sp in enumerate(ev.specs)),
        (dbs.UniqueKey("PRIMARY", tuple(cols), prefixes, False),), False,
    )
    plan = make_plan(ev.specs)
    tkeys = writeset.TableKeys(schema, plan)
    fallback: set[int] = set()
    writeset.row_hashes(tkeys, rc.decode_rows(plan, ev.op, ev.body, ev.version, tkeys.wanted), fallback)
    fast: set[int] = set()
    with strict():
        writeset.row_hashes(tkeys, native.decode_keys(plan, ev.op, ev.body, ev.version, tkeys.wanted), fast)
    assert fast == fallback

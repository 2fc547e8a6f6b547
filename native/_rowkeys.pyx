# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, embedsignature=True
"""Native row-image decoder for the coordinator's writesets.

``decode_keys(plan, op, body, version, wanted)`` returns exactly what
``applier.binlog.rowcodec.decode_rows`` returns for the same arguments (the pure-Python
fallback, and the reference: tests/unit/test_native.py checks equality over random
tables, rows and ``wanted`` sets). The coordinator only needs the key columns, so the
common case is: skip unwanted columns by computing their lengths, decode a few int and
string columns. Everything here works on ``const unsigned char*`` over the event body,
with the plan's ColumnCodec fields read into a C array once per plan (compiled plans are
cached by identity: RowPlan and ColumnCodec are frozen).

Where ``rowcodec`` is the reference, anything unusual goes back to Python:

* a value whose codec is not one ``rowcodec.column_codec`` builds for a valid table
  (MySQL JSON, MariaDB COMPRESSED strings, kinds or ColumnCodec fields this module does
  not know, BIT/SET wider than 8 bytes, fsp > 6, ...) is decoded by
  ``rowcodec.decode_value`` itself;
* a malformed event (truncated body, a length running past the end, a column count that
  does not match the plan, a body that is not ``bytes``) or any other error makes the
  whole call run ``rowcodec.decode_rows``, which returns or raises what it always does.

One deliberate difference: an event whose row images have no columns at all would make
``decode_rows`` loop forever; here it raises DecodeError.
"""

from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_CheckExact,
    PyBytes_FromStringAndSize,
    PyBytes_GET_SIZE,
)
from cpython.conversion cimport Py_DTSF_ADD_DOT_0, PyOS_double_to_string
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from libc.stdint cimport int64_t, uint32_t, uint64_t
from libc.string cimport memcpy, strlen

from applier.binlog import rowcodec as _rc
from applier.errors import DecodeError
from applier.binlog.events import DELETE as _DELETE
from applier.binlog.events import UPDATE as _UPDATE

__all__ = ["decode_keys"]

# Re-raise instead of falling back to Python on errors (tests set this to prove that
# valid input never leaves the native path).
_STRICT = False

_NULL = _rc.NULL


class _Fallback(Exception):
    """Internal: this call must be answered by rowcodec.decode_rows."""


class _NoProgress(DecodeError):
    pass


# decode modes
cdef enum:
    D_PY = 0        # rowcodec.decode_value
    D_INT
    D_FLOAT
    D_DOUBLE
    D_DECIMAL
    D_YEAR
    D_DATE
    D_TIME
    D_DATETIME
    D_TIMESTAMP
    D_TIME2
    D_DATETIME2
    D_TIMESTAMP2
    D_STR
    D_BIT
    D_ENUMSET
    D_TIME_HIRES        # MariaDB's pre-10.0 temporal formats (kinds added to rowcodec later:
    D_DATETIME_HIRES    # looked up by name, so this module also builds against a rowcodec
    D_TIMESTAMP_HIRES   # without them)

# skip modes
cdef enum:
    S_FIXED = 0     # pos + size
    S_LEN           # pos + size + little-endian length in `size` bytes
    S_BAD           # unrepresentable: fall back

cdef struct Col:
    int dec
    int skip
    Py_ssize_t size
    int is_signed
    int fsp
    int precision
    int scale
    const char* prefix
    Py_ssize_t prefix_len
    Py_ssize_t pad          # K_VARSTR of fixed-length binary: pad to this many bytes with 0x00

cdef int[10] DIG2BYTES
DIG2BYTES[:] = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4]

cdef Py_ssize_t MAX_DECIMAL_PRECISION = 255

cdef dict _KIND_DEC = {
    _rc.K_INT: D_INT,
    _rc.K_FLOAT: D_FLOAT,
    _rc.K_DOUBLE: D_DOUBLE,
    _rc.K_DECIMAL: D_DECIMAL,
    _rc.K_YEAR: D_YEAR,
    _rc.K_DATE: D_DATE,
    _rc.K_TIME: D_TIME,
    _rc.K_DATETIME: D_DATETIME,
    _rc.K_TIMESTAMP: D_TIMESTAMP,
    _rc.K_TIME2: D_TIME2,
    _rc.K_DATETIME2: D_DATETIME2,
    _rc.K_TIMESTAMP2: D_TIMESTAMP2,
    _rc.K_VARSTR: D_STR,
    _rc.K_BLOB: D_STR,
    _rc.K_BIT: D_BIT,
    _rc.K_ENUMSET: D_ENUMSET,
}
for _name, _dec in (
    ("K_TIME_HIRES", D_TIME_HIRES),
    ("K_DATETIME_HIRES", D_DATETIME_HIRES),
    ("K_TIMESTAMP_HIRES", D_TIMESTAMP_HIRES),
):
    if hasattr(_rc, _name):
        _KIND_DEC[getattr(_rc, _name)] = _dec
del _name, _dec

# ColumnCodec fields whose meaning this module implements; a codec with another field set
# (a later addition to rowcodec) is decoded by rowcodec.decode_value
cdef frozenset _KNOWN_FIELDS = frozenset(
    {"kind", "size", "signed", "prefix", "fsp", "precision", "scale", "compressed", "pad"}
)

# MariaDB Type_handler_{time,datetime}::hires_bytes
cdef int[7] HIRES_TIME_BYTES
HIRES_TIME_BYTES[:] = [3, 4, 4, 5, 5, 5, 6]
cdef int[7] HIRES_DATETIME_BYTES
HIRES_DATETIME_BYTES[:] = [5, 6, 6, 7, 7, 7, 8]
cdef uint64_t[7] POW10
POW10[:] = [1, 10, 100, 1000, 10000, 100000, 1000000]
cdef int64_t TIME_HIRES_ZERO = 3020400  # (TIME_MAX_VALUE_SECONDS + 1)

cdef frozenset _LENGTH_PREFIXED = frozenset({_rc.K_VARSTR, _rc.K_BLOB, _rc.K_JSON_MYSQL, _rc.K_JSON_TEXT,
                                              _rc.K_TEXT_JSON})


# -- compiled plans -----------------------------------------------------------------------

cdef class _Plan:
    """A RowPlan's codecs as a C array (plus the objects the array points into)."""

    cdef Col* cols
    cdef Py_ssize_t ncols
    cdef object plan
    cdef tuple codecs
    cdef list keep
    cdef dict masks

    def __dealloc__(self):
        PyMem_Free(self.cols)


cdef _Plan _compile(object plan):
    cdef tuple codecs = tuple(plan.columns)
    cdef Py_ssize_t n = len(codecs), i
    cdef _Plan cp = _Plan.__new__(_Plan)
    cdef Col* c
    cdef int dec, intg, frac
    cp.plan = plan
    cp.codecs = codecs
    cp.ncols = n
    cp.keep = []
    cp.masks = {}
    cp.cols = <Col*>PyMem_Malloc((n if n > 0 else 1) * sizeof(Col))
    if cp.cols == NULL:
        raise MemoryError()
    for i in range(n):
        codec = codecs[i]
        c = &cp.cols[i]
        kind = codec.kind
        c.size = codec.size
        c.is_signed = 1 if codec.signed else 0
        c.fsp = codec.fsp
        c.precision = codec.precision
        c.scale = codec.scale
        c.prefix = NULL
        c.prefix_len = 0
        c.pad = 0
        # skipping, as rowcodec.skip_value
        if kind in _LENGTH_PREFIXED:
            c.skip = S_LEN if 0 <= c.size <= 8 else S_BAD
        else:
            c.skip = S_FIXED if c.size >= 0 else S_BAD
        # decoding, as rowcodec.decode_value; D_PY where the codec is not a regular one
        dec = _KIND_DEC.get(kind, D_PY)
        if dec == D_INT or dec == D_BIT or dec == D_ENUMSET:
            if not 0 <= c.size <= 8:
                dec = D_PY
        elif dec == D_DECIMAL:
            intg = c.precision - c.scale
            frac = c.scale
            if (
                c.scale < 0 or intg < 0 or c.precision > MAX_DECIMAL_PRECISION
                or c.size < 1
                or c.size != (intg // 9) * 4 + DIG2BYTES[intg % 9] + (frac // 9) * 4 + DIG2BYTES[frac % 9]
            ):
                dec = D_PY
        elif dec == D_TIME2 or dec == D_DATETIME2 or dec == D_TIMESTAMP2:
            if not 0 <= c.fsp <= 6 or c.size != (
                3 if dec == D_TIME2 else 5 if dec == D_DATETIME2 else 4
            ) + (c.fsp + 1) // 2:
                dec = D_PY
        elif dec == D_TIME_HIRES or dec == D_DATETIME_HIRES or dec == D_TIMESTAMP_HIRES:
            if not 0 <= c.fsp <= 6 or c.size != (
                HIRES_TIME_BYTES[c.fsp] if dec == D_TIME_HIRES
                else HIRES_DATETIME_BYTES[c.fsp] if dec == D_DATETIME_HIRES
                else 4 + (c.fsp + 1) // 2
            ):
                dec = D_PY
        elif dec == D_STR:
            prefix = codec.prefix
            # MariaDB COMPRESSED columns: inflating is rowcodec's job
            if (
                not 0 <= c.size <= 8 or not PyBytes_CheckExact(prefix)
                or getattr(codec, "compressed", False)
            ):
                dec = D_PY
            else:
                cp.keep.append(prefix)
                c.prefix = PyBytes_AS_STRING(prefix)
                c.prefix_len = PyBytes_GET_SIZE(prefix)
                c.pad = max(0, getattr(codec, "pad", 0))
        if dec != D_PY:
            for name in getattr(type(codec), "__dataclass_fields__", ()):
                if name not in _KNOWN_FIELDS and getattr(codec, name):
                    dec = D_PY
        c.dec = dec
    return cp


cdef _Plan _last_plan = None
cdef dict _PLANS = {}


cdef _Plan _get_plan(object plan):
    """Compiled plans are cached by identity for RowPlans (frozen, hence immutable)."""
    global _last_plan
    cdef _Plan cp = _last_plan
    if cp is not None and cp.plan is plan:
        return cp
    key = <Py_ssize_t><void*>plan
    cp = _PLANS.get(key)
    if cp is not None and cp.plan is plan:
        _last_plan = cp
        return cp
    cp = _compile(plan)
    if type(plan) is _rc.RowPlan and type(plan.columns) is tuple and all(
        type(c) is _rc.ColumnCodec for c in cp.codecs
    ):
        if len(_PLANS) >= 1024:
            _PLANS.clear()
        _PLANS[key] = cp
        _last_plan = cp
    return cp


cdef bytes _mask(_Plan cp, object wanted):
    """One byte per column: decode it (1) or skip it (0)."""
    cdef bint cacheable = type(wanted) is frozenset
    cdef bytes m
    if cacheable:
        m = cp.masks.get(wanted)
        if m is not None:
            return m
    m = bytes([1 if i in wanted else 0 for i in range(cp.ncols)])
    if cacheable:
        if len(cp.masks) >= 64:
            cp.masks.clear()
        cp.masks[wanted] = m
    return m


# -- small C helpers ----------------------------------------------------------------------

cdef inline uint64_t rd_le(const unsigned char* s, Py_ssize_t n) noexcept nogil:
    cdef uint64_t v = 0
    while n > 0:
        n -= 1
        v = (v << 8) | s[n]
    return v


cdef inline uint64_t rd_be(const unsigned char* s, Py_ssize_t n) noexcept nogil:
    cdef uint64_t v = 0
    cdef Py_ssize_t k
    for k in range(n):
        v = (v << 8) | s[k]
    return v


cdef inline Py_ssize_t put_u64(char* out, uint64_t v, int width) noexcept nogil:
    """Decimal digits of v, zero-padded to at least ``width``; returns the length."""
    cdef char tmp[24]
    cdef int n = 0, k
    while True:
        tmp[n] = <char>(48 + <int>(v % 10))
        n += 1
        v = v // 10
        if v == 0:
            break
    while n < width:
        tmp[n] = 48
        n += 1
    for k in range(n):
        out[k] = tmp[n - 1 - k]
    return n


cdef inline Py_ssize_t put_i64(char* out, int64_t v, int width) noexcept nogil:
    """Python's f"{v:0{width}d}" (the sign counts towards the width)."""
    if v < 0:
        out[0] = 45  # '-'
        return 1 + put_u64(out + 1, <uint64_t>(-(v + 1)) + 1, width - 1)
    return put_u64(out, <uint64_t>v, width)


cdef inline int64_t floordiv(int64_t a, int64_t b) noexcept nogil:
    cdef int64_t q = a // b
    if (a % b != 0) and ((a < 0) != (b < 0)):
        q -= 1
    return q


cdef inline Py_ssize_t put_usec(char* out, int64_t usec, int fsp) noexcept nogil:
    """rowcodec._usec: f".{usec:06d}"[: fsp + 1] if fsp else ""."""
    cdef char tmp[32]
    cdef Py_ssize_t n
    if fsp == 0:
        return 0
    tmp[0] = 46  # '.'
    n = 1 + put_i64(tmp + 1, usec, 6)
    if n > fsp + 1:
        n = fsp + 1
    memcpy(out, tmp, n)
    return n


cdef inline int64_t frac_usec(const unsigned char* s, int fsp) noexcept nogil:
    """rowcodec._frac."""
    cdef int n
    cdef int64_t v
    if fsp == 0:
        return 0
    n = (fsp + 1) // 2
    v = <int64_t>rd_be(s, n)
    return v * (10000 if n == 1 else 100 if n == 2 else 1)


cdef inline Py_ssize_t put_timestamp(char* out, uint64_t seconds, int64_t usec, int fsp) noexcept nogil:
    """rowcodec._timestamp (seconds < 2**32, usec >= 0)."""
    cdef int64_t z, era, doe, yoe, y, doy, mp, d, m, rem
    cdef Py_ssize_t o = 0
    if seconds == 0 and usec == 0:
        memcpy(out, b"'0000-00-00 00:00:00'", 21)
        return 21
    z = <int64_t>(seconds // 86400)
    rem = <int64_t>(seconds % 86400)
    # days since 1970-01-01 -> civil date (rowcodec._civil_from_days; z >= 0 here)
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    if m <= 2:
        y += 1
    out[o] = 39
    o += 1
    o += put_i64(out + o, y, 4)
    out[o] = 45
    o += 1
    o += put_i64(out + o, m, 2)
    out[o] = 45
    o += 1
    o += put_i64(out + o, d, 2)
    out[o] = 32
    o += 1
    o += put_i64(out + o, rem // 3600, 2)
    out[o] = 58
    o += 1
    o += put_i64(out + o, rem // 60 % 60, 2)
    out[o] = 58
    o += 1
    o += put_i64(out + o, rem % 60, 2)
    o += put_usec(out + o, usec, fsp)
    out[o] = 39
    o += 1
    return o


cdef inline Py_ssize_t put_ymd_hms(
    char* out, int64_t y, int64_t mo, int64_t d, int64_t h, int64_t mi, int64_t s
) noexcept nogil:
    """'YYYY-MM-DD hh:mm:ss (no quotes) with Python's zero-padding rules."""
    cdef Py_ssize_t o = 0
    o += put_i64(out + o, y, 4)
    out[o] = 45
    o += 1
    o += put_i64(out + o, mo, 2)
    out[o] = 45
    o += 1
    o += put_i64(out + o, d, 2)
    out[o] = 32
    o += 1
    o += put_i64(out + o, h, 2)
    out[o] = 58
    o += 1
    o += put_i64(out + o, mi, 2)
    out[o] = 58
    o += 1
    o += put_i64(out + o, s, 2)
    return o


cdef inline Py_ssize_t put_hms(char* out, bint negative, int64_t h, int64_t m, int64_t s) noexcept nogil:
    """'[-]hh:mm:ss (opening quote and sign, no closing quote)."""
    cdef Py_ssize_t o = 0
    out[o] = 39
    o += 1
    if negative:
        out[o] = 45
        o += 1
    o += put_i64(out + o, h, 2)
    out[o] = 58
    o += 1
    o += put_i64(out + o, m, 2)
    out[o] = 58
    o += 1
    o += put_i64(out + o, s, 2)
    return o


cdef Py_ssize_t put_decimal(char* out, const unsigned char* src, Col* c) noexcept nogil:
    """rowcodec._decimal (the codec was checked in _compile: sizes agree)."""
    cdef unsigned char raw[256]
    cdef Py_ssize_t size = c.size, k, o = 0, p = 0, start
    cdef int intg = c.precision - c.scale, frac = c.scale, lead, tail, g
    cdef bint negative = not (src[0] & 0x80)
    memcpy(raw, src, size)
    raw[0] ^= 0x80
    if negative:
        for k in range(size):
            raw[k] ^= 0xFF
        out[0] = 45
        o = 1
    start = o
    lead = DIG2BYTES[intg % 9]
    if lead:
        o += put_u64(out + o, rd_be(raw + p, lead), 0)
        p += lead
    for g in range(intg // 9):
        o += put_u64(out + o, rd_be(raw + p, 4), 9)
        p += 4
    # int_text.lstrip("0") or "0"
    k = start
    while k < o and out[k] == 48:
        k += 1
    if k == o:
        out[start] = 48
        o = start + 1
    elif k > start:
        memcpy(out + start, out + k, o - k)
        o -= k - start
    if frac:
        out[o] = 46
        o += 1
        for g in range(frac // 9):
            o += put_u64(out + o, rd_be(raw + p, 4), 9)
            p += 4
        tail = frac % 9
        if tail:
            o += put_u64(out + o, rd_be(raw + p, DIG2BYTES[tail]), tail)
    return o


# -- values -------------------------------------------------------------------------------

cdef inline Py_ssize_t _skip(Col* c, const unsigned char* p, Py_ssize_t blen, Py_ssize_t pos) noexcept nogil:
    """rowcodec.skip_value; -1 if the value is malformed (runs past the end)."""
    cdef uint64_t length
    if c.skip == S_FIXED:
        if c.size > blen - pos:
            return -1
        return pos + c.size
    if c.skip == S_LEN:
        if c.size > blen - pos:
            return -1
        length = rd_le(p + pos, c.size)
        pos += c.size
        if length > <uint64_t>(blen - pos):
            return -1
        return pos + <Py_ssize_t>length
    return -1


cdef object _py_value(_Plan cp, Py_ssize_t i, object body, Py_ssize_t blen, Py_ssize_t* ppos):
    """One value decoded by rowcodec.decode_value itself."""
    cdef Py_ssize_t pos = ppos[0], npos
    lit, newpos = _rc.decode_value(body, pos, cp.codecs[i])
    npos = newpos
    if npos < pos or npos > blen:
        raise _Fallback
    ppos[0] = npos
    return lit


cdef bytes _str_value(Col* c, const unsigned char* p, Py_ssize_t blen, Py_ssize_t* ppos):
    """c.prefix + escape(data, padded with 0x00 to c.pad bytes) + b"'"."""
    cdef Py_ssize_t pos = ppos[0], n = c.size, length, extra = 0, k, o, padn = 0
    cdef uint64_t ulen
    cdef const unsigned char* data
    cdef unsigned char ch
    cdef char* dst
    cdef bytes out
    if n > blen - pos:
        raise _Fallback
    ulen = rd_le(p + pos, n)
    pos += n
    if ulen > <uint64_t>(blen - pos):
        raise _Fallback
    length = <Py_ssize_t>ulen
    data = p + pos
    for k in range(length):
        ch = data[k]
        if ch == 92 or ch == 39 or ch == 0:
            extra += 1
    if c.pad > length:
        padn = c.pad - length
    out = PyBytes_FromStringAndSize(NULL, c.prefix_len + length + extra + 2 * padn + 1)
    dst = PyBytes_AS_STRING(out)
    memcpy(dst, c.prefix, c.prefix_len)
    o = c.prefix_len
    if extra == 0:
        memcpy(dst + o, data, length)
        o += length
    else:
        for k in range(length):
            ch = data[k]
            if ch == 92 or ch == 39:
                dst[o] = 92
                dst[o + 1] = <char>ch
                o += 2
            elif ch == 0:
                dst[o] = 92
                dst[o + 1] = 48
                o += 2
            else:
                dst[o] = <char>ch
                o += 1
    for k in range(padn):  # escaped 0x00
        dst[o] = 92
        dst[o + 1] = 48
        o += 2
    dst[o] = 39
    ppos[0] = pos + length
    return out


cdef bytes _float_text(double x):
    """repr(x).encode() (float.__repr__ is exactly this call)."""
    cdef char* r = PyOS_double_to_string(x, b'r', 0, Py_DTSF_ADD_DOT_0, NULL)
    try:
        return PyBytes_FromStringAndSize(r, <Py_ssize_t>strlen(r))
    finally:
        PyMem_Free(r)


cdef object _value(_Plan cp, Py_ssize_t i, const unsigned char* p, Py_ssize_t blen,
                   Py_ssize_t* ppos, object body):
    """rowcodec.decode_value: one non-NULL value at ppos[0], advancing it."""
    cdef Col* c = &cp.cols[i]
    cdef int dec = c.dec
    cdef Py_ssize_t pos = ppos[0], adv, n
    cdef const unsigned char* s = p + pos
    cdef char buf[1024]
    cdef Py_ssize_t o = 0
    cdef uint64_t u
    cdef int64_t v, intpart, fracv, packed, ymd, ym, hms, usec, sec, minute, hour, day
    cdef uint32_t f32
    cdef float fv
    cdef double dv
    cdef bint neg

    if dec == D_STR:
        return _str_value(c, p, blen, ppos)
    if dec == D_PY:
        return _py_value(cp, i, body, blen, ppos)

    # fixed-size kinds: how far rowcodec.decode_value advances
    if dec == D_FLOAT or dec == D_TIMESTAMP:
        adv = 4
    elif dec == D_DOUBLE or dec == D_DATETIME:
        adv = 8
    elif dec == D_DATE or dec == D_TIME:
        adv = 3
    elif dec == D_YEAR:
        adv = 1
    else:
        adv = c.size
    if adv > blen - pos:
        raise _Fallback

    if dec == D_INT or dec == D_ENUMSET:  # little-endian, signed per the codec
        n = c.size
        u = rd_le(s, n)
        if c.is_signed and n > 0:
            if n < 8 and (u >> (8 * n - 1)) & 1:
                v = <int64_t>u - (<int64_t>1 << (8 * n))
            else:
                v = <int64_t>u
            o = put_i64(buf, v, 0)
        else:
            o = put_u64(buf, u, 0)
    elif dec == D_DECIMAL:
        o = put_decimal(buf, s, c)
    elif dec == D_DATETIME2:
        v = <int64_t>rd_be(s, 5) - 0x8000000000
        ymd = floordiv(v, 1 << 17)
        hms = <int64_t>(<uint64_t>v & 0x1FFFF)
        ym = floordiv(ymd, 32)
        buf[0] = 39
        o = 1 + put_ymd_hms(
            buf + 1,
            floordiv(ym, 13),
            ym - floordiv(ym, 13) * 13,
            <int64_t>(<uint64_t>ymd & 31),
            hms >> 12,
            (hms >> 6) & 63,
            hms & 63,
        )
        o += put_usec(buf + o, frac_usec(s + 5, c.fsp), c.fsp)
        buf[o] = 39
        o += 1
    elif dec == D_TIMESTAMP2:
        o = put_timestamp(buf, rd_be(s, 4), frac_usec(s + 4, c.fsp), c.fsp)
    elif dec == D_DATE:
        u = rd_le(s, 3)
        buf[0] = 39
        o = 1 + put_i64(buf + 1, <int64_t>(u >> 9), 4)
        buf[o] = 45
        o += 1
        o += put_i64(buf + o, <int64_t>((u >> 5) & 15), 2)
        buf[o] = 45
        o += 1
        o += put_i64(buf + o, <int64_t>(u & 31), 2)
        buf[o] = 39
        o += 1
    elif dec == D_TIME2:
        n = (c.fsp + 1) // 2
        if c.fsp >= 5:
            packed = <int64_t>rd_be(s, 6) - 0x800000000000
        else:
            intpart = <int64_t>rd_be(s, 3) - 0x800000
            # the fraction is unsigned; negative times store it in reverse order
            fracv = <int64_t>rd_be(s + 3, n) if n else 0
            if intpart < 0 and fracv != 0:
                intpart += 1
                fracv -= 0x100 if n == 1 else 0x10000
            packed = intpart * (1 << 24) + fracv * (10000 if n == 1 else 100 if n == 2 else 0)
        neg = packed < 0
        if neg:
            packed = -packed
        hms = packed >> 24
        usec = packed & 0xFFFFFF
        o = put_hms(buf, neg, (hms >> 12) & 0x3FF, (hms >> 6) & 0x3F, hms & 0x3F)
        o += put_usec(buf + o, usec, c.fsp)
        buf[o] = 39
        o += 1
    elif dec == D_DOUBLE:
        u = rd_le(s, 8)
        memcpy(&dv, &u, 8)
        ppos[0] = pos + adv
        return _float_text(dv)
    elif dec == D_FLOAT:
        f32 = <uint32_t>rd_le(s, 4)
        memcpy(&fv, &f32, 4)
        ppos[0] = pos + adv
        return _float_text(<double>fv)
    elif dec == D_TIME_HIRES:
        # big-endian signed microseconds / 10**(6-fsp), offset by the zero point
        v = (<int64_t>rd_be(s, c.size) - TIME_HIRES_ZERO * <int64_t>POW10[c.fsp]) * <int64_t>POW10[6 - c.fsp]
        neg = v < 0
        if neg:
            v = -v
        usec = v % 1000000
        v = v // 1000000
        hms = v % 3600
        o = put_hms(buf, neg, v // 3600, hms // 60, hms % 60)
        o += put_usec(buf + o, usec, c.fsp)
        buf[o] = 39
        o += 1
    elif dec == D_DATETIME_HIRES:
        # big-endian pack_time() / 10**(6-fsp); pack_time = ((((((year*13 + month)*32
        # + day)*24 + hour)*60 + minute)*60 + second)*10**6 + usec
        u = rd_be(s, c.size)
        if u > (<uint64_t>0xFFFFFFFFFFFFFFFF) // POW10[6 - c.fsp]:
            return _py_value(cp, i, body, blen, ppos)  # beyond 64 bits (not a real date)
        u *= POW10[6 - c.fsp]
        usec = <int64_t>(u % 1000000)
        u //= 1000000
        sec = <int64_t>(u % 60)
        u //= 60
        minute = <int64_t>(u % 60)
        u //= 60
        hour = <int64_t>(u % 24)
        u //= 24
        day = <int64_t>(u % 32)
        u //= 32
        buf[0] = 39
        o = 1 + put_ymd_hms(buf + 1, <int64_t>(u // 13), <int64_t>(u % 13), day, hour, minute, sec)
        o += put_usec(buf + o, usec, c.fsp)
        buf[o] = 39
        o += 1
    elif dec == D_TIMESTAMP_HIRES:
        # 4-byte big-endian seconds, then the fraction in units of 10**(fsp-6) s
        o = put_timestamp(
            buf, rd_be(s, 4), <int64_t>(rd_be(s + 4, c.size - 4) * POW10[6 - c.fsp]), c.fsp
        )
    elif dec == D_BIT:
        o = put_u64(buf, rd_be(s, c.size), 0)
    elif dec == D_YEAR:
        if s[0]:
            o = put_u64(buf, 1900 + s[0], 0)
        else:
            buf[0] = 48
            o = 1
    elif dec == D_TIMESTAMP:
        o = put_timestamp(buf, rd_le(s, 4), 0, 0)
    elif dec == D_DATETIME:
        u = rd_le(s, 8)
        v = <int64_t>(u // 1000000)
        hms = <int64_t>(u % 1000000)
        buf[0] = 39
        o = 1 + put_ymd_hms(
            buf + 1, v // 10000, v // 100 % 100, v % 100, hms // 10000, hms // 100 % 100, hms % 100
        )
        buf[o] = 39
        o += 1
    elif dec == D_TIME:
        v = <int64_t>rd_le(s, 3)
        if v & 0x800000:
            v -= 0x1000000
        neg = v < 0
        if neg:
            v = -v
        o = put_hms(buf, neg, v // 10000, v // 100 % 100, v % 100)
        buf[o] = 39
        o += 1
    else:  # pragma: no cover - every mode is handled above
        return _py_value(cp, i, body, blen, ppos)
    ppos[0] = pos + adv
    return PyBytes_FromStringAndSize(buf, o)


# -- images and events --------------------------------------------------------------------

cdef inline Py_ssize_t _popcount(const unsigned char* bitmap, Py_ssize_t ncols) noexcept nogil:
    cdef Py_ssize_t i, n = 0
    for i in range(ncols):
        n += (bitmap[i >> 3] >> (i & 7)) & 1
    return n


cdef tuple _image(_Plan cp, const unsigned char* p, Py_ssize_t blen, Py_ssize_t* ppos,
                  const unsigned char* present, Py_ssize_t npresent,
                  const unsigned char* mask, object body):
    """rowcodec.decode_image."""
    cdef Py_ssize_t ncols = cp.ncols, i, j = 0, pos = ppos[0]
    cdef Py_ssize_t nbytes = (npresent + 7) >> 3
    cdef const unsigned char* nulls
    cdef tuple t
    cdef object val
    if nbytes > blen - pos:
        raise _Fallback
    nulls = p + pos
    pos += nbytes
    t = PyTuple_New(ncols)
    for i in range(ncols):
        if not (present[i >> 3] >> (i & 7)) & 1:
            val = None
        else:
            if (nulls[j >> 3] >> (j & 7)) & 1:
                val = _NULL
            elif mask != NULL and not mask[i]:
                val = None
                pos = _skip(&cp.cols[i], p, blen, pos)
                if pos < 0:
                    raise _Fallback
            else:
                val = _value(cp, i, p, blen, &pos, body)
            j += 1
        Py_INCREF(val)
        PyTuple_SET_ITEM(t, i, val)
    ppos[0] = pos
    return t


cdef list _decode(object plan, object op, object body, object version, object wanted):
    if not PyBytes_CheckExact(body):
        raise _Fallback
    cdef _Plan cp = _get_plan(plan)
    cdef bytes maskobj = None
    cdef const unsigned char* mask = NULL
    if wanted is not None:
        maskobj = _mask(cp, wanted)
        mask = <const unsigned char*>PyBytes_AS_STRING(maskobj)
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(body)
    cdef Py_ssize_t blen = PyBytes_GET_SIZE(body), pos, nb, np1, np2
    cdef uint64_t ncols
    cdef unsigned char first
    cdef const unsigned char* present1
    cdef const unsigned char* present2
    cdef bint is_update = op == _UPDATE
    cdef bint is_delete = False
    cdef list rows = []
    cdef tuple image, after
    if not is_update:
        is_delete = op == _DELETE
    # rowcodec.rows_start and events.packed_int
    if version == 2:
        if blen < 10:
            raise _Fallback
        pos = 8 + (p[8] | (p[9] << 8))
    else:
        pos = 8
    if pos >= blen:
        raise _Fallback
    first = p[pos]
    if first < 251:
        ncols = first
        pos += 1
    elif first == 252:
        if 3 > blen - pos:
            raise _Fallback
        ncols = rd_le(p + pos + 1, 2)
        pos += 3
    elif first == 253:
        if 4 > blen - pos:
            raise _Fallback
        ncols = rd_le(p + pos + 1, 3)
        pos += 4
    else:
        if 9 > blen - pos:
            raise _Fallback
        ncols = rd_le(p + pos + 1, 8)
        pos += 9
    if ncols != <uint64_t>cp.ncols:
        raise _Fallback  # rowcodec raises its DecodeError
    nb = (cp.ncols + 7) >> 3
    if nb > blen - pos:
        raise _Fallback
    present1 = p + pos
    pos += nb
    present2 = present1
    if is_update:
        if nb > blen - pos:
            raise _Fallback
        present2 = p + pos
        pos += nb
    np1 = _popcount(present1, cp.ncols)
    np2 = _popcount(present2, cp.ncols) if is_update else 0
    if pos < blen and np1 == 0 and np2 == 0:
        raise _NoProgress(
            f"rows event for {plan.db}.{plan.table} has row images without any column"
        )
    while pos < blen:
        image = _image(cp, p, blen, &pos, present1, np1, mask, body)
        if is_update:
            after = _image(cp, p, blen, &pos, present2, np2, mask, body)
            rows.append((image, after))
        elif is_delete:
            rows.append((image, None))
        else:
            rows.append((None, image))
    return rows


def decode_keys(plan, op, body, version, wanted=None):
    """All rows of one rows event as (before, after) images, decoding only the columns
    in ``wanted`` (all when None): exactly ``rowcodec.decode_rows``."""
    try:
        return _decode(plan, op, body, version, wanted)
    except _NoProgress as e:  # the same error rowcodec raises for this body
        raise DecodeError(str(e)) from None
    except Exception:
        if _STRICT:
            raise
        return _rc.decode_rows(plan, op, body, version, wanted)

"""MySQL's binary JSON (how a JSON column is stored and binlogged) -> the text MySQL
prints for it, and a SQL expression that rebuilds exactly the same value.

Why our own decoder: a JSON document is more than its text. MySQL keeps integers
signed or unsigned, DECIMALs with their precision and scale, and "opaque" values of
any SQL type (DATE, TIME, DATETIME, TIMESTAMP, DECIMAL, BIT, BLOB...) whose text looks
like a string or a double: ``CAST(1.50 AS JSON)`` prints ``1.50`` but JSON_TYPE says
DECIMAL, which the text ``'1.50'`` would parse back as a DOUBLE. So:

* ``parse(data)`` -> a tree: dict (keys in stored order), list, str, bool, None, int,
  ``UInt`` (an unsigned integer), float (DOUBLE), ``Opaque(type, data)``;
* ``to_text(tree)`` -> MySQL's own text for it, byte for byte what
  ``CAST(j AS CHAR)`` returns (separators ``", "`` and ``": "``, doubles as MySQL's
  ``my_gcvt`` prints them, opaque values as MySQL shows them): what a MariaDB target
  (JSON is LONGTEXT there) stores, and what ``applier check`` compares;
* ``to_sql(tree)`` -> ``CAST('<text>' AS JSON)`` when parsing the text gives the same
  value back, else ``JSON_OBJECT``/``JSON_ARRAY`` around the parts that need it, with
  ``CAST(.. AS UNSIGNED)``, DECIMAL literals, ``CAST(.. AS DATE/TIME(6)/DATETIME(6))``,
  and for opaque types no cast produces (TIMESTAMP, BIT, BINARY, the BLOB types) a
  one-row subquery over ``JSON_TABLE`` whose column has that type (the value then
  carries it). Text, JSON_TYPE at every path and comparisons come out the same; one
  physical detail may not: the precision byte MySQL stores beside a DECIMAL's digits
  (that of the SQL value it came from), which only JSON_STORAGE_SIZE shows. An
  opaque value that no expression can rebuild (another type, or BINARY bytes that are
  not UTF-8) is a ``DecodeError`` naming it: never a silently different value.

Format (MySQL's json_binary.h): a type byte, then the value. Objects and arrays come
in a small (16-bit offsets) and a large (32-bit) form: element count, byte size, key
entries (offset, length), value entries (type, offset or inlined value: literals and
16-bit integers always, 32-bit integers in the large form), keys, values; offsets are
relative to the start of the object. Strings and opaque data carry a length of 7 bits
per byte (high bit: more bytes follow). DATE/TIME/DATETIME/TIMESTAMP are MySQL's 8-byte
packed integers, DECIMAL is precision, scale, then the binary DECIMAL.
"""

from __future__ import annotations

import base64
import json
import struct
from dataclasses import dataclass

from ..db.sql import escape
from ..errors import DecodeError
from .decimal import decimal_size, decimal_text

SMALL_OBJECT, LARGE_OBJECT, SMALL_ARRAY, LARGE_ARRAY, LITERAL = 0, 1, 2, 3, 4
INT16, UINT16, INT32, UINT32, INT64, UINT64, DOUBLE, STRING = 5, 6, 7, 8, 9, 10, 11, 12
OPAQUE = 15

# MySQL field types of opaque values (enum_field_types)
F_DECIMAL, F_TIMESTAMP, F_DATE, F_TIME, F_DATETIME, F_NEWDATE = 0, 7, 10, 11, 12, 14
F_VARCHAR, F_BIT, F_TIMESTAMP2, F_DATETIME2, F_TIME2 = 15, 16, 17, 18, 19
F_NEWDECIMAL, F_TINY_BLOB, F_MEDIUM_BLOB, F_LONG_BLOB, F_BLOB = 246, 249, 250, 251, 252
F_VAR_STRING, F_STRING = 253, 254

_DOUBLE = struct.Struct("<d")
_INT64_MAX = (1 << 63) - 1


class UInt(int):
    """An unsigned JSON integer (JSON_TYPE 'UNSIGNED INTEGER')."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Opaque:
    """A value of another SQL type inside a document: its field type and bytes."""

    type: int
    data: bytes


Node = dict | list | str | bool | int | float | Opaque | None


# ---- parsing ---------------------------------------------------------------------------


def parse(data: bytes) -> Node:
    """A binary JSON document -> its tree. Empty data is JSON null (as MySQL reads it)."""
    if not data:
        return None
    try:
        return _value(data[0], data, 1, len(data))
    except DecodeError:
        raise
    except (IndexError, ValueError, struct.error, RecursionError) as e:
        raise DecodeError(f"malformed MySQL binary JSON value ({type(e).__name__}: {e})") from None


def _uint(buf: bytes, pos: int, n: int) -> int:
    if pos + n > len(buf):
        raise IndexError("value runs past the end of the document")
    return int.from_bytes(buf[pos : pos + n], "little")


def _length(buf: bytes, pos: int) -> tuple[int, int]:
    """A data length: 7 bits per byte, low group first; (length, position after)."""
    value = shift = 0
    for i in range(5):
        b = buf[pos + i]
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos + i + 1
        shift += 7
    raise ValueError("data length longer than 5 bytes")


def _value(t: int, buf: bytes, pos: int, end: int) -> Node:
    if t in (SMALL_OBJECT, LARGE_OBJECT, SMALL_ARRAY, LARGE_ARRAY):
        return _container(t, buf, pos, end)
    if t == LITERAL:
        return _literal(buf[pos])
    if t == INT16:
        return int.from_bytes(buf[pos : pos + 2], "little", signed=True)
    if t == UINT16:
        return UInt(_uint(buf, pos, 2))
    if t == INT32:
        return int.from_bytes(buf[pos : pos + 4], "little", signed=True)
    if t == UINT32:
        return UInt(_uint(buf, pos, 4))
    if t == INT64:
        return int.from_bytes(buf[pos : pos + 8], "little", signed=True)
    if t == UINT64:
        return UInt(_uint(buf, pos, 8))
    if t == DOUBLE:
        return _DOUBLE.unpack_from(buf, pos)[0]
    if t == STRING:
        n, p = _length(buf, pos)
        if p + n > end:
            raise IndexError("string runs past the end of the document")
        return buf[p : p + n].decode("utf-8", "surrogateescape")
    if t == OPAQUE:
        ftype = buf[pos]
        n, p = _length(buf, pos + 1)
        if p + n > end:
            raise IndexError("opaque value runs past the end of the document")
        return Opaque(ftype, bytes(buf[p : p + n]))
    raise DecodeError(f"MySQL binary JSON value of unknown type {t}")


def _literal(v: int) -> Node:
    if v == 0:
        return None
    if v == 1:
        return True
    if v == 2:
        return False
    raise DecodeError(f"MySQL binary JSON literal of unknown value {v}")


def _container(t: int, buf: bytes, start: int, end: int) -> Node:
    large = t in (LARGE_OBJECT, LARGE_ARRAY)
    w = 4 if large else 2
    count = _uint(buf, start, w)
    size = _uint(buf, start + w, w)
    if start + size > end:
        raise IndexError("object or array runs past the end of the document")
    is_object = t in (SMALL_OBJECT, LARGE_OBJECT)
    pos = start + 2 * w
    keys: list[str] = []
    if is_object:
        for _ in range(count):
            offset, length = _uint(buf, pos, w), _uint(buf, pos + w, 2)
            if offset + length > size:
                raise IndexError("object key runs past the end of the object")
            keys.append(buf[start + offset : start + offset + length].decode("utf-8", "surrogateescape"))
            pos += w + 2
    values: list[Node] = []
    for _ in range(count):
        vt = buf[pos]
        if vt == LITERAL or vt in (INT16, UINT16) or (large and vt in (INT32, UINT32)):
            values.append(_value(vt, buf, pos + 1, pos + 1 + w))  # inlined in the entry
        else:
            offset = _uint(buf, pos + 1, w)
            if offset >= size:
                raise IndexError("value offset past the end of the object or array")
            values.append(_value(vt, buf, start + offset, start + size))
        pos += 1 + w
    if is_object:
        return dict(zip(keys, values, strict=True))
    return values


# ---- text (MySQL's own) ------------------------------------------------------------------

_ESCAPES = {0x22: b'\\"', 0x5C: b"\\\\", 0x08: b"\\b", 0x0C: b"\\f", 0x0A: b"\\n", 0x0D: b"\\r",
            0x09: b"\\t"}
_QUOTE_TABLE = {i: (_ESCAPES.get(i) or (f"\\u{i:04x}".encode() if i < 0x20 else bytes([i]))) for i in range(256)}


def _quote(text: str) -> bytes:
    raw = text.encode("utf-8", "surrogateescape")
    if not any(b < 0x20 or b in (0x22, 0x5C) for b in raw):
        return b'"' + raw + b'"'
    table = _QUOTE_TABLE
    return b'"' + b"".join(table[b] for b in raw) + b'"'


def to_text(node: Node) -> bytes:
    """The text MySQL prints for the value (``CAST(j AS CHAR)``), as utf8mb4 bytes."""
    out: list[bytes] = []
    _text(node, out)
    return b"".join(out)


def _text(node: Node, out: list[bytes]) -> None:
    if node is None:
        out.append(b"null")
    elif node is True:
        out.append(b"true")
    elif node is False:
        out.append(b"false")
    elif isinstance(node, str):
        out.append(_quote(node))
    elif isinstance(node, int):
        out.append(str(int(node)).encode())
    elif isinstance(node, float):
        out.append(double_text(node).encode())
    elif isinstance(node, dict):
        out.append(b"{")
        for i, (k, v) in enumerate(node.items()):
            if i:
                out.append(b", ")
            out.append(_quote(k))
            out.append(b": ")
            _text(v, out)
        out.append(b"}")
    elif isinstance(node, list):
        out.append(b"[")
        for i, v in enumerate(node):
            if i:
                out.append(b", ")
            _text(v, out)
        out.append(b"]")
    elif isinstance(node, Opaque):
        out.append(_opaque_text(node))
    else:  # pragma: no cover - parse builds nothing else
        raise DecodeError(f"cannot print JSON node {node!r}")


def double_text(x: float) -> str:
    """A DOUBLE as MySQL's JSON prints it: my_gcvt(x, DOUBLE, MY_GCVT_MAX_FIELD_WIDTH)
    with the shortest digits that read back to x, '.0' added to integral numbers."""
    if x == 0:
        return "-0.0" if str(x).startswith("-") else "0.0"
    sign = "-" if x < 0 else ""
    digits, decpt = _shortest(abs(x))
    length = len(digits)
    width = 34 - (1 if sign else 0)  # MY_GCVT_MAX_FIELD_WIDTH = DBL_DIG + 4 + 15
    exp_len = 1 + (decpt >= 101 or decpt <= -99) + (decpt >= 11 or decpt <= -9)
    f_len = length - decpt + 2 if decpt <= 0 else (length + 1 if decpt < length else decpt)
    have_space = f_len <= width
    force_e = decpt <= 0 and width <= 2 - decpt and width >= 3 + exp_len
    use_f = (have_space or (decpt <= width and (decpt >= -1 or (decpt == -2 and (length > 1 or not force_e)))
                            and not force_e)) and (
        not have_space or (decpt >= -14 and (decpt <= 15 or length > decpt)))
    if use_f:
        if decpt <= 0:
            text = "0." + "0" * -decpt + digits
        elif decpt < length:
            text = digits[:decpt] + "." + digits[decpt:]
        else:
            text = digits + "0" * (decpt - length)
    else:
        e = decpt - 1
        text = digits[0] + ("." + digits[1:] if length > 1 else "") + f"e{e}"
    if all(c.isdigit() for c in text):
        text += ".0"
    return sign + text


def _shortest(x: float) -> tuple[str, int]:
    """The shortest digits that read back to x (as dtoa mode 0) and the decimal point
    position: x = 0.<digits> * 10**decpt."""
    mant, _, exp = repr(x).partition("e")
    whole, _, frac = mant.partition(".")
    all_digits = whole + frac
    digits = all_digits.lstrip("0")
    decpt = len(whole) - (len(all_digits) - len(digits)) + (int(exp) if exp else 0)
    return digits.rstrip("0"), decpt


def _decimal_text(data: bytes) -> str:
    """A JSON DECIMAL (precision, scale, binary DECIMAL) -> its text, every scale digit."""
    precision, scale = data[0], data[1]
    if scale > precision or precision == 0:
        raise DecodeError(f"JSON DECIMAL with precision {precision} and scale {scale}")
    size = decimal_size(precision, scale)
    if len(data) < 2 + size:
        raise DecodeError("JSON DECIMAL value is truncated")
    negative, text = decimal_text(data[2 : 2 + size], precision, scale)
    if negative and any(c not in "0." for c in text):
        text = "-" + text
    return text


def _packed(data: bytes) -> int:
    if len(data) < 8:
        raise DecodeError("JSON temporal value is truncated")
    return int.from_bytes(data[:8], "little", signed=True)


def _datetime_text(data: bytes, with_time: bool) -> str:
    v = _packed(data)
    sign = "-" if v < 0 else ""
    v = abs(v)
    usec, ymdhms = v % (1 << 24), v >> 24
    ymd, hms = ymdhms >> 17, ymdhms % (1 << 17)
    day, ym = ymd % 32, ymd >> 5
    month, year = ym % 13, ym // 13
    date = f"{sign}{year:04d}-{month:02d}-{day:02d}"
    if not with_time:
        return date
    return f"{date} {hms >> 12:02d}:{(hms >> 6) % 64:02d}:{hms % 64:02d}.{usec:06d}"


def _time_text(data: bytes) -> str:
    v = _packed(data)
    sign = "-" if v < 0 else ""
    v = abs(v)
    usec, hms = v % (1 << 24), v >> 24
    return f"{sign}{(hms >> 12) % 1024:02d}:{(hms >> 6) % 64:02d}:{hms % 64:02d}.{usec:06d}"


def _opaque_text(node: Opaque) -> bytes:
    t = node.type
    if t in (F_NEWDECIMAL, F_DECIMAL):
        return _decimal_text(node.data).encode()
    if t in (F_DATE, F_NEWDATE):
        return b'"' + _datetime_text(node.data, False).encode() + b'"'
    if t in (F_DATETIME, F_DATETIME2, F_TIMESTAMP, F_TIMESTAMP2):
        return b'"' + _datetime_text(node.data, True).encode() + b'"'
    if t in (F_TIME, F_TIME2):
        return b'"' + _time_text(node.data).encode() + b'"'
    b64 = base64.b64encode(node.data)
    lines = b"\\n".join(b64[i : i + 76] for i in range(0, len(b64), 76))  # MySQL's base64, JSON-escaped
    return b'"base64:type' + str(t).encode() + b":" + lines + b'"'


# ---- SQL that rebuilds the value -------------------------------------------------------------


def _exact_as_text(node: Node) -> bool:
    """Parsing ``to_text(node)`` gives the same value back: no unsigned integer that
    reads as signed, no opaque value anywhere."""
    if isinstance(node, dict):
        return all(_exact_as_text(v) for v in node.values())
    if isinstance(node, list):
        return all(_exact_as_text(v) for v in node)
    if isinstance(node, UInt):
        return node > _INT64_MAX
    return not isinstance(node, Opaque)


def _string(text: str) -> bytes:
    return b"_utf8mb4'" + escape(text.encode("utf-8", "surrogateescape")) + b"'"


def _json_table(literal: str | int, column_type: str) -> bytes:
    """A one-row subquery whose JSON value comes from a JSON_TABLE column of a type no
    cast produces (the opaque value then carries that type)."""
    doc = json.dumps([literal], ensure_ascii=False)
    return (b"(SELECT CAST(v AS JSON) FROM JSON_TABLE(" + _string(doc) + b", '$[*]' COLUMNS (v "
            + column_type.encode() + b" PATH '$')) AS jt)")


def _opaque_sql(node: Opaque, where: str) -> bytes:
    t, data = node.type, node.data
    if t in (F_NEWDECIMAL, F_DECIMAL):
        # a DECIMAL literal: the same digits, scale and type. The precision byte stored
        # with it is the SQL value's internal one (a literal's own digits, a column's
        # declared precision, a CAST's rounded up to 9s): only JSON_STORAGE_SIZE shows it
        return _decimal_text(data).encode()
    if t in (F_DATE, F_NEWDATE):
        return b"CAST('" + _datetime_text(data, False).encode() + b"' AS DATE)"
    if t in (F_DATETIME, F_DATETIME2):
        return b"CAST('" + _datetime_text(data, True).encode() + b"' AS DATETIME(6))"
    if t in (F_TIME, F_TIME2):
        return b"CAST('" + _time_text(data).encode() + b"' AS TIME(6))"
    if t in (F_TIMESTAMP, F_TIMESTAMP2):  # the target session runs at time_zone '+00:00'
        return _json_table(_datetime_text(data, True), "TIMESTAMP(6)")
    if t == F_VARCHAR:
        return b"_binary X'" + data.hex().encode() + b"'"
    if t in (F_TINY_BLOB, F_BLOB, F_MEDIUM_BLOB, F_LONG_BLOB):
        name = {F_TINY_BLOB: "TINYBLOB", F_BLOB: "BLOB", F_MEDIUM_BLOB: "MEDIUMBLOB",
                F_LONG_BLOB: "LONGBLOB"}[t]
        # UNION with an empty JSON_TABLE column of that type: the result has its type
        return (b"(SELECT CAST(v AS JSON) FROM (SELECT _binary X'" + data.hex().encode()
                + b"' AS v UNION ALL SELECT v FROM JSON_TABLE('[]', '$[*]' COLUMNS (v "
                + name.encode() + b" PATH '$')) AS jt) AS d)")
    if t == F_BIT and 0 < len(data) <= 8:
        return _json_table(int.from_bytes(data, "big"), f"BIT({8 * len(data)})")
    if t == F_STRING and data:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None:
            return _json_table(text, f"BINARY({len(data)})")
    raise DecodeError(
        f"{where} holds a JSON value of MySQL type {t} ({len(data)} bytes: "
        f"{to_text(node).decode('utf-8', 'replace')[:60]}) that no SQL expression rebuilds "
        "exactly: change that document on the source (e.g. store the value as a string)"
    )


def to_sql(node: Node, where: str = "a JSON column") -> bytes:
    """A SQL expression whose value is exactly this JSON value (type, digits and all)."""
    if _exact_as_text(node):
        return b"CAST(_utf8mb4'" + escape(to_text(node)) + b"' AS JSON)"
    if isinstance(node, dict | list):
        return _sql(node, where)
    return b"CAST(" + _sql(node, where) + b" AS JSON)"  # a scalar: DECIMAL, DATE, ... -> JSON


def _sql(node: Node, where: str) -> bytes:
    if _exact_as_text(node):
        if isinstance(node, str):
            return _string(node)
        if isinstance(node, int) and not isinstance(node, bool):
            return str(int(node)).encode()
        return b"CAST(_utf8mb4'" + escape(to_text(node)) + b"' AS JSON)"
    if isinstance(node, dict):
        parts = []
        for k, v in node.items():
            parts.append(_string(k))
            parts.append(_sql(v, where))
        return b"JSON_OBJECT(" + b", ".join(parts) + b")"
    if isinstance(node, list):
        return b"JSON_ARRAY(" + b", ".join(_sql(v, where) for v in node) + b")"
    if isinstance(node, UInt):
        return b"CAST(" + str(int(node)).encode() + b" AS UNSIGNED)"
    assert isinstance(node, Opaque)
    return _opaque_sql(node, where)

"""MySQL binary JSON (applier.binlog.mysqljson): parse, MySQL's text, and the SQL that
rebuilds a value. Documents are built by a small encoder of the format (json_binary.h)
here; tests/integration/test_mysql_binlog.py checks the same against a real MySQL."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from applier.binlog import mysqljson as mj
from applier.errors import DecodeError

# -- an encoder of the binary format ----------------------------------------------------------


def _len(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _scalar(v) -> tuple[int, bytes]:
    if v is None or v is True or v is False:
        return mj.LITERAL, bytes([{None: 0, True: 1, False: 2}[v]])
    if isinstance(v, mj.UInt):
        if v < 1 << 16:
            return mj.UINT16, struct.pack("<H", v)
        if v < 1 << 32:
            return mj.UINT32, struct.pack("<I", v)
        return mj.UINT64, struct.pack("<Q", v)
    if isinstance(v, int):
        if -(1 << 15) <= v < 1 << 15:
            return mj.INT16, struct.pack("<h", v)
        if -(1 << 31) <= v < 1 << 31:
            return mj.INT32, struct.pack("<i", v)
        return mj.INT64, struct.pack("<q", v)
    if isinstance(v, float):
        return mj.DOUBLE, struct.pack("<d", v)
    if isinstance(v, str):
        raw = v.encode()
        return mj.STRING, _len(len(raw)) + raw
    if isinstance(v, mj.Opaque):
        return mj.OPAQUE, bytes([v.type]) + _len(len(v.data)) + v.data
    if isinstance(v, dict | list):
        return _container(v, large=False)
    raise TypeError(v)


def _container(v, large: bool) -> tuple[int, bytes]:
    w = 4 if large else 2
    fmt = "<I" if large else "<H"
    is_obj = isinstance(v, dict)
    items = list(v.items()) if is_obj else [(None, x) for x in v]
    n = len(items)
    header = 2 * w + n * ((w + 2) if is_obj else 0) + n * (1 + w)
    keys = b""
    key_entries = b""
    for k, _ in items if is_obj else ():
        raw = k.encode()
        key_entries += struct.pack(fmt, header + len(keys)) + struct.pack("<H", len(raw))
        keys += raw
    values = b""
    value_entries = b""
    base = header + len(keys)
    for _, x in items:
        t, data = _scalar(x)
        inline = t == mj.LITERAL or t in (mj.INT16, mj.UINT16) or (large and t in (mj.INT32, mj.UINT32))
        if inline:
            value_entries += bytes([t]) + data.ljust(w, b"\0")
        else:
            value_entries += bytes([t]) + struct.pack(fmt, base + len(values))
            values += data
    body = key_entries + value_entries + keys + values
    total = 2 * w + len(body)
    t = (mj.LARGE_OBJECT if large else mj.SMALL_OBJECT) if is_obj else (mj.LARGE_ARRAY if large else mj.SMALL_ARRAY)
    return t, struct.pack(fmt, n) + struct.pack(fmt, total) + body


def doc(v, large: bool = False) -> bytes:
    if large and isinstance(v, dict | list):
        t, data = _container(v, large=True)
    else:
        t, data = _scalar(v)
    return bytes([t]) + data


def decimal_opaque(text: str, precision: int, scale: int) -> mj.Opaque:
    """MySQL's binary DECIMAL of ``text`` (as rowcodec reads it), with its precision."""
    neg = text.startswith("-")
    intpart, _, frac = text.lstrip("-").partition(".")
    frac = frac.ljust(scale, "0")
    intg = precision - scale
    dig2 = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)
    intpart = intpart.rjust(intg, "0")
    out = bytearray()
    lead = intg % 9
    if lead:
        out += int(intpart[:lead]).to_bytes(dig2[lead], "big")
    for i in range(lead, intg, 9):
        out += int(intpart[i : i + 9]).to_bytes(4, "big")
    for i in range(0, scale - scale % 9, 9):
        out += int(frac[i : i + 9]).to_bytes(4, "big")
    if scale % 9:
        out += int(frac[scale - scale % 9 :]).to_bytes(dig2[scale % 9], "big")
    out[0] ^= 0x80
    if neg:
        out = bytearray(b ^ 0xFF for b in out)
    return mj.Opaque(mj.F_NEWDECIMAL, bytes([precision, scale]) + bytes(out))


def packed_datetime(y, mo, d, h=0, mi=0, s=0, us=0, neg=False) -> bytes:
    ymd = ((y * 13 + mo) << 5) | d
    hms = (h << 12) | (mi << 6) | s
    v = (((ymd << 17) | hms) << 24) + us
    return (-v if neg else v).to_bytes(8, "little", signed=True)


def packed_time(h, mi, s, us=0, neg=False) -> bytes:
    v = (((h << 12) | (mi << 6) | s) << 24) + us
    return (-v if neg else v).to_bytes(8, "little", signed=True)


# -- parse and text ----------------------------------------------------------------------------


@pytest.mark.parametrize("large", [False, True])
def test_nested_objects_and_arrays(large):
    tree = {"a": [1, -2, 70000, -70000, 1 << 40, None, True, False, 1.5, "x"],
            "ключ": {"😀": [], "": {}}, "u": mj.UInt(5), "big": mj.UInt((1 << 64) - 1)}
    data = doc(tree, large=large)
    parsed = mj.parse(data)
    assert parsed == tree
    assert isinstance(parsed["u"], mj.UInt) and isinstance(parsed["big"], mj.UInt)
    assert not isinstance(parsed["a"][0], mj.UInt)
    assert mj.to_text(parsed) == (
        '{"a": [1, -2, 70000, -70000, 1099511627776, null, true, false, 1.5, "x"], '
        '"ключ": {"😀": [], "": {}}, "u": 5, "big": 18446744073709551615}'
    ).encode()


def test_empty_document_and_literals():
    assert mj.parse(b"") is None
    assert mj.to_text(mj.parse(doc(None))) == b"null"
    assert mj.to_text(mj.parse(doc({}))) == b"{}"
    assert mj.to_text(mj.parse(doc([]))) == b"[]"


def test_strings_are_escaped_as_mysql_does():
    text = mj.to_text(mj.parse(doc('a"b\\c/\n\r\t\b\f\x01\x1f\x7fé')))
    assert text == '"a\\"b\\\\c/\\n\\r\\t\\b\\f\\u0001\\u001f\x7fé"'.encode()


@pytest.mark.parametrize(("value", "text"), [
    (0.1, "0.1"), (1.0, "1.0"), (100.0, "100.0"), (1e20, "1e20"), (1.5e-7, "0.00000015"),
    (-0.0, "-0.0"), (0.0, "0.0"), (1e15, "1e15"), (123456.789, "123456.789"), (1e-5, "0.00001"),
    (5e-324, "5e-324"), (1.7976931348623157e308, "1.7976931348623157e308"),
    (1234567890123456.0, "1.234567890123456e15"), (-2.5, "-2.5"), (1e-15, "0.000000000000001"),
    (1e-16, "1e-16"),
])
def test_doubles_print_as_mysql_does(value, text):
    assert mj.double_text(value) == text


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_double_text_reads_back(x):
    assert float(mj.double_text(x)) == x


def test_opaque_values_print_as_mysql_does():
    tree = [
        decimal_opaque("1.50", 3, 2),
        decimal_opaque("-0.001", 30, 20),
        decimal_opaque("12345678901234567890.123456789", 65, 30),
        mj.Opaque(mj.F_DATE, packed_datetime(2020, 1, 2)),
        mj.Opaque(mj.F_DATETIME, packed_datetime(2021, 3, 4, 5, 6, 7, 89000)),
        mj.Opaque(mj.F_TIMESTAMP, packed_datetime(2020, 1, 2, 3, 4, 5, 678000)),
        mj.Opaque(mj.F_TIME, packed_time(838, 59, 58, 500000, neg=True)),
        mj.Opaque(mj.F_BIT, b"\x02\xaa"),
        mj.Opaque(mj.F_BLOB, bytes(range(70))),
    ]
    assert mj.to_text(mj.parse(doc(tree))).decode() == (
        '[1.50, -0.00100000000000000000, 12345678901234567890.123456789000000000000000000000, '
        '"2020-01-02", "2021-03-04 05:06:07.089000", "2020-01-02 03:04:05.678000", '
        '"-838:59:58.500000", "base64:type16:Aqo=", '
        '"base64:type252:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4\\n'
        'OTo7PD0+P0BBQkNERQ=="]'  # MySQL's base64: 76 characters a line
    )


def test_malformed_documents_are_decode_errors():
    for bad in (b"\x00\x05\x00", b"\x0c\x05ab", b"\x0f\xf6\x09\x03", b"\x04\x07", b"\x42",
                doc({"a": "b"})[:-1]):
        with pytest.raises(DecodeError):
            mj.to_text(mj.parse(bad))


# -- SQL -------------------------------------------------------------------------------------


def sql(tree) -> str:
    return mj.to_sql(mj.parse(doc(tree))).decode()


def test_documents_that_parse_back_are_one_cast():
    assert sql({"a": [1, 2.5, "x'y"], "n": None}) == """CAST(_utf8mb4'{"a": [1, 2.5, "x\\'y"], "n": null}' AS JSON)"""
    assert sql(mj.UInt(1 << 63)) == "CAST(_utf8mb4'9223372036854775808' AS JSON)"  # > INT64_MAX: reads as unsigned


def test_unsigned_and_decimals_keep_their_type():
    assert sql({"u": mj.UInt(5), "s": [1]}) == "JSON_OBJECT(_utf8mb4'u', CAST(5 AS UNSIGNED), _utf8mb4's', CAST(_utf8mb4'[1]' AS JSON))"
    assert sql(decimal_opaque("1.50", 3, 2)) == "CAST(1.50 AS JSON)"
    assert sql([decimal_opaque("-0.5", 2, 1), True, None, "é"]) == (
        "JSON_ARRAY(-0.5, CAST(_utf8mb4'true' AS JSON), CAST(_utf8mb4'null' AS JSON), _utf8mb4'é')")


def test_temporal_and_binary_opaque_values():
    assert sql([mj.Opaque(mj.F_DATE, packed_datetime(2020, 1, 2))]) == "JSON_ARRAY(CAST('2020-01-02' AS DATE))"
    assert sql([mj.Opaque(mj.F_TIME, packed_time(1, 2, 3, 4))]) == "JSON_ARRAY(CAST('01:02:03.000004' AS TIME(6)))"
    assert sql([mj.Opaque(mj.F_DATETIME, packed_datetime(2020, 1, 2, 3))]) == (
        "JSON_ARRAY(CAST('2020-01-02 03:00:00.000000' AS DATETIME(6)))")
    assert "TIMESTAMP(6)" in sql([mj.Opaque(mj.F_TIMESTAMP, packed_datetime(2020, 1, 2, 3))])
    assert "BIT(16)" in sql([mj.Opaque(mj.F_BIT, b"\x02\xaa")]) and "682" in sql([mj.Opaque(mj.F_BIT, b"\x02\xaa")])
    assert sql([mj.Opaque(mj.F_VARCHAR, b"\xff\x00")]) == "JSON_ARRAY(_binary X'ff00')"
    assert "MEDIUMBLOB" in sql([mj.Opaque(mj.F_MEDIUM_BLOB, b"\xff")])
    assert "BINARY(2)" in sql([mj.Opaque(mj.F_STRING, b"ab")])


def test_opaque_values_no_expression_rebuilds_are_refused():
    with pytest.raises(DecodeError, match="MySQL type 254"):
        sql([mj.Opaque(mj.F_STRING, b"\xff\x00")])
    with pytest.raises(DecodeError, match="MySQL type 245"):
        sql([mj.Opaque(245, b"x")])


# -- JSON columns in row images: native decoder == rowcodec (skipping included) ----------------


def test_json_columns_decode_alike_natively_and_skip_right():
    """A row with MySQL JSON to a MySQL target, MySQL JSON to a MariaDB (LONGTEXT)
    target, MariaDB JSON text to a MySQL JSON target, then an int: the native decoder
    (which leaves JSON to rowcodec) must agree, also when it only skips those columns."""
    from applier.binlog import native, rowcodec
    from applier.binlog import tablemap as tm
    from applier.binlog.events import INSERT
    from applier.db import schema as dbs
    from tests.unit.binlog_encoders import enc_image, rows_body

    def column(name, data_type):
        return dbs.Column(name, data_type, False, "utf8mb4", None, True, False, None)

    plan = rowcodec.RowPlan("db", "t", (
        rowcodec.column_codec(tm.T_JSON, 4, column("a", "json")),
        rowcodec.column_codec(tm.T_JSON, 4, column("b", "longtext")),
        rowcodec.column_codec(tm.T_BLOB, 4, column("c", "json")),
        rowcodec.column_codec(tm.T_LONG, 0, column("d", "int")),
    ))
    assert [c.kind for c in plan.columns] == [rowcodec.K_JSON_MYSQL, rowcodec.K_JSON_TEXT, rowcodec.K_TEXT_JSON,
                                              rowcodec.K_INT]
    docs = [doc({"d": decimal_opaque("1.50", 3, 2)}), doc([1, "x"]), b'{"k":1}']
    images = b""
    for n in (7, 8):
        values = [len(d).to_bytes(4, "little") + d for d in docs] + [n.to_bytes(4, "little")]
        images += enc_image([True] * 4, values)
    body = rows_body(4, INSERT, 2, [True] * 4, None, images)
    for wanted in (None, frozenset({3}), frozenset({1, 3}), frozenset()):
        assert native.decode_rows(plan, INSERT, body, 2, wanted) == rowcodec.decode_rows(plan, INSERT, body, 2, wanted)
    (_, row), _ = rowcodec.decode_rows(plan, INSERT, body, 2)
    assert row == (b"JSON_OBJECT(_utf8mb4'd', 1.50)", b"_utf8mb4'[1, \"x\"]'",
                   b"CAST(_utf8mb4'{\"k\":1}' AS JSON)", b"7")

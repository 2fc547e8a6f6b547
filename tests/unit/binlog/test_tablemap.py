"""TableMap optional metadata: SIGNEDNESS and the ENUM/SET member strings (no server).

Evidence: table maps captured from a MariaDB 10.11 and a MySQL 9.7 source (FULL, MINIMAL
and, on MariaDB, NO_LOG metadata) for tables whose DDL is given with each capture, and
maps built here in the layout both servers write (``Table_map_log_event::
init_metadata_fields``: type byte, packed length, value), for what a capture cannot show
cheaply (several signedness bytes, a bitmap that does not match the columns, truncated
fields). The captures also settle which columns the SIGNEDNESS bitmap covers: both
servers count YEAR (its bit set) besides the integer, DECIMAL, FLOAT and DOUBLE columns,
and neither counts BIT.
"""

from __future__ import annotations

import hashlib

import pytest

from applier.binlog import tablemap as s
from tests.unit.binlog_encoders import enc_packed_int

# -- captures ------------------------------------------------------------------------------

# CREATE TABLE d.a (id INT PRIMARY KEY, ti TINYINT UNSIGNED, y YEAR, si SMALLINT, b BIT(3),
#   mi MEDIUMINT UNSIGNED, f FLOAT, dbl DOUBLE UNSIGNED, dc DECIMAL(10,2) UNSIGNED,
#   bi BIGINT UNSIGNED, y2 YEAR, i2 INT UNSIGNED, e ENUM('x','y','z'), s SET('p','q'),
#   e2 ENUM('only'), v VARCHAR(10)) -- binlog_row_metadata=FULL
MARIADB_A = (
    "16000000000001000164000161001003010d0210090405f6080d03fefefe0f0e030004080a02f701f801f7012800feff"
    "01026be002012d042b02696402746901790273690162026d6901660364626c0264630262690279320269320165017302"
    "653201760a012d05050201700171060d0301780179017a01046f6e6c79080100"
)
MYSQL_A = (
    "6d000000000001000164000161001003010d0210090405f6080d03fefefe0f0e030004080a02f701f801f7012800feff"
    "01026be00203fcff00042b02696402746901790273690162026d6901660364626c026463026269027932026932016501"
    "7302653201760a03fcff0005050201700171060d0301780179017a01046f6e6c790801000c02ffff"
)
A_UNSIGNED = (False, True, True, False, None, True, False, True, True, True, True, True, None, None, None,
              None)
A_MEMBERS = (None,) * 12 + (("x", "y", "z"), ("p", "q"), ("only",), None)

# CREATE TABLE d.c (id INT UNSIGNED PRIMARY KEY, e ENUM('a','b','c') CHARACTER SET latin1,
#   s SET('r','s','t','u') CHARACTER SET utf8mb4, e2 ENUM('é','ü') CHARACTER SET utf8mb4, y YEAR)
# (ENUM_AND_SET_DEFAULT_CHARSET: utf8mb4 by default, latin1 for column e)
MARIADB_C = (
    "18000000000001000164000163000503fefefe0d06f701f801f7011e0101c0040c0269640165017302653201790a032d"
    "00080509040172017301740175060e030161016201630202c3a902c3bc080100"
)
MYSQL_C = (
    "70000000000001000164000163000503fefefe0d06f701f801f7011e0101c0040c0269640165017302653201790a05fc"
    "ff0000080509040172017301740175060e030161016201630202c3a902c3bc0801000c01f8"
)

# CREATE TABLE d.e (id INT PRIMARY KEY,
#   e1 ENUM('it''s','back\\slash','a,b','(x)','é','Up') CHARACTER SET utf8mb4,
#   e2 ENUM('é','ñ','z') CHARACTER SET latin1, s1 SET('Up','down') CHARACTER SET utf8mb3,
#   e3 ENUM('a','b') CHARACTER SET binary)
# (ENUM_AND_SET_COLUMN_CHARSET, one collation per column; e2's members are latin1 bytes)
MARIADB_E = (
    "16000000000001000164000165000503fefefefe08f701f701f801f7011e010100040f02696402653102653202733102"
    "65330b042d08213f05090202557004646f776e062b0604697427730a6261636b5c736c61736803612c620328782902c3"
    "a90255700301e901f1017a0201610162080100"
)
MYSQL_E = (
    "6d000000000001000164000165000503fefefefe08f701f701f801f7011e010100040f02696402653102653202733102"
    "65330b06fcff0008213f05090202557004646f776e062b0604697427730a6261636b5c736c61736803612c6203287829"
    "02c3a90255700301e901f1017a02016101620801000c01f8"
)
E_MEMBERS = (None, ("it's", "back\\slash", "a,b", "(x)", "é", "Up"), ("é", "ñ", "z"), ("Up", "down"),
             ("a", "b"))
MARIADB_E_MINIMAL = "16000000000001000164000165000503fefefefe08f701f701f801f7011e010100"

# MariaDB: CREATE TABLE d.h (id INT PRIMARY KEY, a ENUM('x') COLLATE utf8mb4_uca1400_ai_ci,
#   b ENUM('x') COLLATE utf8mb3_uca1400_as_cs, c ENUM('x') COLLATE ucs2_uca1400_ai_ci,
#   d ENUM('x') COLLATE utf16_uca1400_ai_ci, e ENUM('x') COLLATE utf32_uca1400_ai_ci,
#   f ENUM('x') COLLATE utf8mb4_uca1400_swedish_nopad_ai_ci, g VARCHAR(3) COLLATE utf8mb4_uca1400_ai_ci)
# (collation ids 2304, 2051, 2560, 2816, 3072, 2372: UCS2/UTF16/UTF32 members are 2 or 4 bytes a character)
MARIADB_H = (
    "16000000000001000164000168000803fefefefefefe0f0ef701f701f701f701f701f7010c00fe0101000203fc000904"
    "1102696401610162016301640165016601670b12fc0009fc0308fc000afc000bfc000cfc440906170101780101780102"
    "007801020078010400000078010178080100"
)

# CREATE TABLE d.g (id BIGINT UNSIGNED PRIMARY KEY, y YEAR, e ENUM('a','b'), f FLOAT UNSIGNED)
# with binlog_row_metadata=MINIMAL (SIGNEDNESS only) and MariaDB's NO_LOG (nothing)
MARIADB_G_MINIMAL = "180000000000010001640001670004080dfe0403f701040e0101e0"
MYSQL_G_MINIMAL = "700000000000010001640001670004080dfe0403f701040e0101e0"
MARIADB_G_NO_LOG = "180000000000010001640001670004080dfe0403f701040e"

# MariaDB: CREATE TABLE d.f (id INT PRIMARY KEY, big ENUM('m0', ..., 'm299'), u TINYINT UNSIGNED):
# 300 members, a 2-byte ENUM, packed counts and lengths past 250 (the capture's sha256; the
# bytes are rebuilt by the encoder below)
MARIADB_F_SHA256 = "a6286ddb98a10ded0023711881554506a5550fea8252bc6ad59773a0d4801e57"


@pytest.mark.parametrize("hexmap", [MARIADB_A, MYSQL_A], ids=["mariadb", "mysql"])
def test_captured_signedness_and_members(hexmap):
    tm = s.parse_table_map(bytes.fromhex(hexmap))
    assert tm.names == ("id", "ti", "y", "si", "b", "mi", "f", "dbl", "dc", "bi", "y2", "i2", "e", "s", "e2", "v")
    assert tm.unsigned == A_UNSIGNED
    assert tm.members == A_MEMBERS


@pytest.mark.parametrize("hexmap", [MARIADB_C, MYSQL_C], ids=["mariadb", "mysql"])
def test_captured_default_member_charset_with_an_exception(hexmap):
    tm = s.parse_table_map(bytes.fromhex(hexmap))
    assert tm.types == (s.T_LONG, s.T_ENUM, s.T_SET, s.T_ENUM, s.T_YEAR)
    assert tm.unsigned == (True, None, None, None, True)
    assert tm.members == (None, ("a", "b", "c"), ("r", "s", "t", "u"), ("é", "ü"), None)


@pytest.mark.parametrize("hexmap", [MARIADB_E, MYSQL_E], ids=["mariadb", "mysql"])
def test_captured_members_in_their_column_charsets(hexmap):
    """Quotes, backslashes, commas, parentheses; latin1 bytes decoded as latin1."""
    tm = s.parse_table_map(bytes.fromhex(hexmap))
    assert tm.unsigned == (False, None, None, None, None)
    assert tm.members == E_MEMBERS


def test_captured_wide_character_sets():
    tm = s.parse_table_map(bytes.fromhex(MARIADB_H))
    assert tm.members == (None,) + (("x",),) * 6 + (None,)


@pytest.mark.parametrize("hexmap", [MARIADB_G_MINIMAL, MYSQL_G_MINIMAL], ids=["mariadb", "mysql"])
def test_captured_minimal_metadata(hexmap):
    """MINIMAL: SIGNEDNESS (the YEAR counts, unsigned), no names, no members."""
    tm = s.parse_table_map(bytes.fromhex(hexmap))
    assert tm.types == (s.T_LONGLONG, s.T_YEAR, s.T_ENUM, s.T_FLOAT)
    assert tm.unsigned == (True, True, None, True)
    assert tm.names is None
    assert tm.members is None


def test_captured_minimal_without_character_columns():
    tm = s.parse_table_map(bytes.fromhex(MARIADB_E_MINIMAL))
    assert tm.unsigned == (False, None, None, None, None)
    assert tm.members is None and tm.names is None


def test_captured_no_metadata():
    tm = s.parse_table_map(bytes.fromhex(MARIADB_G_NO_LOG))
    assert (tm.unsigned, tm.members, tm.names) == (None, None, None)


# -- built maps ----------------------------------------------------------------------------


def field(kind: int, value: bytes) -> bytes:
    return bytes([kind]) + enc_packed_int(len(value)) + value


def strings(values: list[bytes]) -> bytes:
    return enc_packed_int(len(values)) + b"".join(enc_packed_int(len(v)) + v for v in values)


def table_map(types: list[int], meta: bytes, optional: bytes = b"", db: str = "d", table: str = "t",
              table_id: int = 7, nullable: bytes | None = None) -> bytes:
    n = len(types)
    return (
        table_id.to_bytes(6, "little") + b"\x01\x00"
        + bytes([len(db)]) + db.encode() + b"\x00"
        + bytes([len(table)]) + table.encode() + b"\x00"
        + enc_packed_int(n) + bytes(types) + enc_packed_int(len(meta)) + meta
        + (nullable if nullable is not None else bytes([0xFF] * ((n + 7) // 8)))
        + optional
    )


def test_encoder_rebuilds_a_captured_map():
    members = [f"m{i}".encode() for i in range(300)]
    names = strings([b"id", b"big", b"u"])[1:]  # COLUMN_NAME has no count
    optional = (field(s.OPT_SIGNEDNESS, b"\x40") + field(s.OPT_COLUMN_NAME, names)
                + field(s.OPT_ENUM_AND_SET_DEFAULT_CHARSET, b"\x2d") + field(s.OPT_ENUM_STR_VALUE, strings(members))
                + field(8, b"\x00"))
    body = table_map([s.T_LONG, s.T_STRING, s.T_TINY], bytes([s.T_ENUM, 2]), optional, table="f",
                     table_id=0x17, nullable=b"\x06")
    assert hashlib.sha256(body).hexdigest() == MARIADB_F_SHA256
    tm = s.parse_table_map(body)
    assert tm.members == (None, tuple(m.decode() for m in members), None)
    assert tm.unsigned == (False, None, True)


def test_signedness_over_several_bytes():
    """Bits from the most significant down, only numeric columns; 11 of them: 2 bytes."""
    types = [s.T_LONG, s.T_VARCHAR] + [s.T_TINY] * 10
    unsigned = [True, False, False, True, True, False, False, False, False, True, True]
    bits = "".join("1" if u else "0" for u in unsigned).ljust(16, "0")
    meta = (40).to_bytes(2, "little")
    tm = s.parse_table_map(table_map(types, meta, field(s.OPT_SIGNEDNESS, int(bits, 2).to_bytes(2, "big"))))
    assert tm.unsigned == (True, None, *unsigned[1:])


def test_year_takes_a_bit_whatever_its_value():
    """MySQL 8.0 logs YEAR's bit as 0 (MariaDB and MySQL 9.7 as 1): the INT after it
    reads its own bit either way."""
    for year_bit in (0, 1):
        bits = (year_bit << 6) | (1 << 5)  # id: 0, y: year_bit, u: 1
        tm = s.parse_table_map(table_map([s.T_LONG, s.T_YEAR, s.T_LONG], b"", field(s.OPT_SIGNEDNESS, bytes([bits]))))
        assert tm.unsigned == (False, bool(year_bit), True)


@pytest.mark.parametrize("nbytes", [0, 2])
def test_signedness_that_does_not_match_the_columns_is_unknown(nbytes):
    """A bitmap of the wrong size (another server's notion of numeric): not guessed at."""
    tm = s.parse_table_map(table_map([s.T_LONG, s.T_LONG], b"", field(s.OPT_SIGNEDNESS, b"\xc0" * nbytes)))
    assert tm.unsigned is None


def test_no_numeric_columns_and_no_signedness():
    tm = s.parse_table_map(table_map([s.T_VARCHAR], (40).to_bytes(2, "little")))
    assert tm.unsigned is None
    tm = s.parse_table_map(table_map([s.T_VARCHAR], (40).to_bytes(2, "little"), field(3, b"\x2d")))
    assert tm.unsigned is None


def test_members_of_enum_and_set_columns_in_order():
    """SET_STR_VALUE lists the SET columns, ENUM_STR_VALUE the ENUM ones, each in column
    order; without a charset field a member is taken as ASCII only."""
    types = [s.T_STRING, s.T_STRING, s.T_STRING, s.T_LONG]
    meta = bytes([s.T_SET, 1, s.T_ENUM, 1, s.T_SET, 1])
    optional = (field(s.OPT_SET_STR_VALUE, strings([b"a", b"b"]) + strings([b"c"]))
                + field(s.OPT_ENUM_STR_VALUE, strings([b"e1", b"e2", b""])))
    tm = s.parse_table_map(table_map(types, meta, optional))
    assert tm.members == (("a", "b"), ("e1", "e2", ""), ("c",), None)


def test_only_one_kind_of_members_logged():
    """A SET_STR_VALUE without ENUM_STR_VALUE: the ENUM columns' members are unknown."""
    types = [s.T_STRING, s.T_STRING]
    meta = bytes([s.T_SET, 1, s.T_ENUM, 1])
    tm = s.parse_table_map(table_map(types, meta, field(s.OPT_SET_STR_VALUE, strings([b"a"]))))
    assert tm.members == (("a",), None)


def test_members_without_a_known_charset():
    """Bytes that are not ASCII in a charset the parser does not know: unknown (None),
    never decoded into something the target's members could wrongly match."""
    types = [s.T_STRING, s.T_STRING]
    meta = bytes([s.T_ENUM, 1, s.T_ENUM, 1])
    optional = (field(s.OPT_ENUM_AND_SET_COLUMN_CHARSET, enc_packed_int(28) + enc_packed_int(28))  # gbk
                + field(s.OPT_ENUM_STR_VALUE, strings([b"ok"]) + strings([b"\xc3\xa9"])))
    tm = s.parse_table_map(table_map(types, meta, optional))
    assert tm.members == (("ok",), None)
    # the servers' latin1 is cp1252, its five holes mapped to the C1 controls
    optional = (field(s.OPT_ENUM_AND_SET_DEFAULT_CHARSET, enc_packed_int(8))
                + field(s.OPT_ENUM_STR_VALUE, strings([b"\x81\x80"]) + strings([b"\xe9"])))
    tm = s.parse_table_map(table_map(types, meta, optional))
    assert tm.members == (("\x81€",), ("é",))


@pytest.mark.parametrize("cut", [1, 2, 3, 5])
def test_truncated_optional_metadata_is_unknown_not_an_error(cut):
    """A field running past the event's end: that field is ignored, the map still parses."""
    types = [s.T_LONG, s.T_STRING]
    optional = field(s.OPT_SIGNEDNESS, b"\x80") + field(s.OPT_ENUM_STR_VALUE, strings([b"xy", b"z"]))
    tm = s.parse_table_map(table_map(types, bytes([s.T_ENUM, 1]), optional[:-cut]))
    assert tm.types == (s.T_LONG, s.T_ENUM)
    assert tm.unsigned == (True, None)
    assert tm.members is None


def test_unknown_field_types_are_skipped():
    types = [s.T_LONG]
    optional = field(12, b"\xff") + field(200, b"abc") + field(s.OPT_SIGNEDNESS, b"\x80")
    tm = s.parse_table_map(table_map(types, b"", optional))
    assert tm.unsigned == (True,)

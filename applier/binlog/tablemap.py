"""The binlog's TableMap: column types, their metadata and, from the optional metadata
(``binlog_row_metadata``, MySQL 8.0+ / MariaDB 10.5+), names, signedness and ENUM/SET
member strings, parsed from the event bytes (``compat`` checks it against the target's
table; ``rowcodec`` decodes integers with the signedness logged here).

Optional metadata (after the NULL bitmap, to the event's end) is a list of fields, each
a type byte, a packed length and the value (``Table_map_log_event::init_metadata_fields``
in both servers, read back by MySQL's ``Table_map_event::Optional_metadata_fields``):

* SIGNEDNESS (1; MINIMAL and FULL): one bit per *numeric* column, in column order, most
  significant bit first, 1 = UNSIGNED, padded to whole bytes. Numeric is what the
  servers give a signedness (MySQL: ``has_signedess_information_type`` in
  sql/field_common_properties.h; MariaDB: every ``Field_num``): TINYINT, SMALLINT,
  MEDIUMINT, INT, BIGINT, FLOAT, DOUBLE, DECIMAL (new and old) and YEAR, whose bit means
  nothing (MariaDB 10.11 and MySQL 9.7 set it, MySQL 8.0 is reported to clear it); not
  BIT, ENUM/SET or the rest. Skipping YEAR's bit would shift every later column's
  (tests/unit/binlog/test_tablemap.py has both servers' bytes). A field of another
  size than the numeric columns need is not guessed at: unknown.
* COLUMN_NAME (4; FULL): per column a packed length and the name.
* SET_STR_VALUE (5) / ENUM_STR_VALUE (6) (FULL): per SET (ENUM) column, in column order,
  a packed member count, then each member as a packed length and its bytes, in the
  column's character set: ENUM_AND_SET_DEFAULT_CHARSET (10: a default collation id,
  then (index among the ENUM and SET columns, collation id) pairs for the others) or
  ENUM_AND_SET_COLUMN_CHARSET (11: a collation id per ENUM/SET column). Members are
  decoded with that character set when it is one of the UTF-8, UCS-2/UTF-16/UTF-32,
  latin1 (the servers' cp1252) or ascii collations (``_MEMBER_CODECS``); in any other
  (or unknown) character set only members that are plain ASCII are read, and a column
  with any other member has unknown members (None), never a guess a target's members
  could wrongly match.
* the rest (charsets of other columns, geometry types, primary keys, MySQL's column
  visibility, ...) is skipped. A field that runs past the event's end is ignored with
  everything after it.

Absent metadata is None (unknown): with NO_LOG (MariaDB), before MySQL 8.0 / MariaDB
10.5, or FULL-only fields under MINIMAL. Keys, foreign keys, charsets and generated
columns come from the target (``db.schema``), which must have the same tables as the
source (it is a replica).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import events as ev

# binlog column type codes (MYSQL_TYPE_*)
T_DECIMAL, T_TINY, T_SHORT, T_LONG, T_FLOAT, T_DOUBLE, T_NULL, T_TIMESTAMP = range(8)
T_LONGLONG, T_INT24, T_DATE, T_TIME, T_DATETIME, T_YEAR, T_NEWDATE, T_VARCHAR = range(8, 16)
T_BIT, T_TIMESTAMP2, T_DATETIME2, T_TIME2 = 16, 17, 18, 19
T_JSON, T_NEWDECIMAL, T_ENUM, T_SET = 245, 246, 247, 248
T_TINY_BLOB, T_MEDIUM_BLOB, T_LONG_BLOB, T_BLOB, T_VAR_STRING, T_STRING, T_GEOMETRY = range(249, 256)
# MariaDB's COMPRESSED columns (binlogged compressed; metadata as VARCHAR / BLOB)
T_BLOB_COMPRESSED, T_VARCHAR_COMPRESSED = 140, 141
T_VECTOR = 242  # MySQL 9.0+ VECTOR(n): n FLOATs as bytes, logged like a BLOB (meta: length bytes)

_META_1 = {T_FLOAT, T_DOUBLE, T_BLOB, T_GEOMETRY, T_JSON, T_TIMESTAMP2, T_DATETIME2, T_TIME2,
           T_TINY_BLOB, T_MEDIUM_BLOB, T_LONG_BLOB, T_BLOB_COMPRESSED, T_VECTOR}
_META_2_LE = {T_VARCHAR, T_VAR_STRING, T_BIT, T_NEWDECIMAL, T_VARCHAR_COMPRESSED}
_META_2_BE = {T_STRING, T_ENUM, T_SET}

# optional metadata field types (Table_map_event::Optional_metadata_field_type)
OPT_SIGNEDNESS = 1
OPT_DEFAULT_CHARSET = 2
OPT_COLUMN_CHARSET = 3
OPT_COLUMN_NAME = 4
OPT_SET_STR_VALUE = 5
OPT_ENUM_STR_VALUE = 6
OPT_ENUM_AND_SET_DEFAULT_CHARSET = 10
OPT_ENUM_AND_SET_COLUMN_CHARSET = 11

# the columns SIGNEDNESS has a bit for (see the module docstring)
NUMERIC = frozenset({T_TINY, T_SHORT, T_INT24, T_LONG, T_LONGLONG, T_FLOAT, T_DOUBLE, T_NEWDECIMAL,
                     T_DECIMAL, T_YEAR})


def _ids(*parts: int | range) -> frozenset[int]:
    out: set[int] = set()
    for part in parts:
        out.update(part if isinstance(part, range) else (part,))
    return frozenset(out)


# collation id -> Python codec of its character set, for ENUM/SET members; ids from
# information_schema.COLLATIONS of MariaDB 10.11 and MySQL 9.7, plus MariaDB's UCA 14.0
# collations (ids 2048..3327: 256 per character set, utf8mb3, utf8mb4, ucs2, utf16, utf32)
_MEMBER_CODECS: tuple[tuple[frozenset[int], str], ...] = (
    (_ids(33, 76, 83, range(192, 216), 223, 576, 577, 578, 1057, 1107, 1216, 1238, range(2048, 2304),
          45, 46, range(224, 248), range(255, 324), 608, 609, 610, 1069, 1070, 1248, 1270,
          range(2304, 2560), 63), "utf-8"),  # utf8mb3, utf8mb4; binary: its bytes as the client reads them
    (_ids(35, 90, range(128, 152), 159, 640, 641, 642, 1059, 1114, 1152, 1174, range(2560, 2816),
          54, 55, range(101, 125), 672, 673, 674, 1078, 1079, 1125, 1147, range(2816, 3072)), "utf-16-be"),
    (_ids(56, 62, 1080, 1086), "utf-16-le"),
    (_ids(60, 61, range(160, 184), 736, 737, 738, 1084, 1085, 1184, 1206, range(3072, 3328)), "utf-32-be"),
    (_ids(5, 8, 15, 31, 47, 48, 49, 94, 1032, 1071), "latin1"),  # the servers' latin1: see _latin1
    (_ids(11, 65, 1035, 1089), "ascii"),
)


@dataclass(frozen=True, slots=True)
class TableMap:
    """A parsed TABLE_MAP event: the binlog's view of one table."""

    table_id: int
    db: str
    table: str
    types: tuple[int, ...]  # real types (STRING meta resolved to ENUM/SET/STRING)
    metas: tuple[int, ...]  # per-type metadata, see parse_table_map
    nullable: tuple[bool, ...]
    names: tuple[str, ...] | None  # with binlog_row_metadata=FULL
    # per column: True = UNSIGNED, False = signed, None = not a numeric column; None when
    # the binlog does not say (no SIGNEDNESS, or one that does not fit the columns)
    unsigned: tuple[bool | None, ...] | None = None
    # per column: an ENUM's / SET's members in order (as text), None for other columns and
    # where unknown; None when no member strings were logged (FULL metadata only)
    members: tuple[tuple[str, ...] | None, ...] | None = None


def parse_table_map(body: bytes) -> TableMap:
    table_id = int.from_bytes(body[:6], "little")
    p = 8
    n = body[p]
    db = body[p + 1 : p + 1 + n].decode()
    p += n + 2
    n = body[p]
    table = body[p + 1 : p + 1 + n].decode()
    p += n + 2
    ncols, p = ev.packed_int(body, p)
    raw_types = body[p : p + ncols]
    p += ncols
    meta_len, p = ev.packed_int(body, p)
    meta_end = p + meta_len
    types: list[int] = []
    metas: list[int] = []
    for t in raw_types:
        if t in _META_1:
            m = body[p]
            p += 1
        elif t in _META_2_LE:
            m = body[p] | body[p + 1] << 8
            p += 2
        elif t in _META_2_BE:
            b0, b1 = body[p], body[p + 1]
            p += 2
            if t == T_STRING and b0 in (T_ENUM, T_SET):
                t, m = b0, b1  # ENUM/SET: pack length in bytes
            elif t == T_STRING and (b0 & 0x30) != 0x30:
                # long CHAR: field length's high bits are folded into the type byte
                m = (((b0 & 0x30) ^ 0x30) << 4) | b1
            else:
                m = b1  # field length in bytes (< 256)
        else:
            m = 0
        types.append(t)
        metas.append(m)
    p = meta_end
    null_bytes = body[p : p + (ncols + 7) // 8]
    nullable = tuple(bool(null_bytes[i >> 3] >> (i & 7) & 1) for i in range(ncols))
    p += (ncols + 7) // 8
    fields = _optional_fields(body, p)
    return TableMap(table_id, db, table, tuple(types), tuple(metas), nullable,
                    _names(fields.get(OPT_COLUMN_NAME), ncols), _signedness(fields.get(OPT_SIGNEDNESS), types),
                    _members(fields, types))


class _Short(Exception):
    """A value runs past the end of its field."""


def _packed(buf: bytes, pos: int) -> tuple[int, int]:
    """``events.packed_int`` that raises _Short instead of reading past ``buf``."""
    if pos >= len(buf):
        raise _Short
    first = buf[pos]
    size = 1 if first < 251 else 3 if first == 252 else 4 if first == 253 else 9
    if pos + size > len(buf):
        raise _Short
    return ev.packed_int(buf, pos)


def _optional_fields(body: bytes, p: int) -> dict[int, bytes]:
    """The optional metadata fields after the NULL bitmap: type -> value (the first of
    each type); a field running past the end ends the list."""
    fields: dict[int, bytes] = {}
    while p < len(body):
        kind = body[p]
        try:
            length, q = _packed(body, p + 1)
        except _Short:
            break
        if q + length > len(body):
            break
        fields.setdefault(kind, body[q : q + length])
        p = q + length
    return fields


def _names(field: bytes | None, ncols: int) -> tuple[str, ...] | None:
    if field is None:
        return None
    names = []
    q = 0
    try:
        for _ in range(ncols):
            n, q = _packed(field, q)
            if q + n > len(field):
                raise _Short
            names.append(field[q : q + n].decode())
            q += n
    except _Short:
        return None
    return tuple(names)


def _signedness(field: bytes | None, types: list[int]) -> tuple[bool | None, ...] | None:
    numeric = [i for i, t in enumerate(types) if t in NUMERIC]
    if field is None or not numeric or len(field) != (len(numeric) + 7) // 8:
        return None
    out: list[bool | None] = [None] * len(types)
    for k, i in enumerate(numeric):
        out[i] = bool(field[k >> 3] & (0x80 >> (k & 7)))
    return tuple(out)


def _strings(field: bytes, ncolumns: int) -> list[list[bytes]] | None:
    """SET_STR_VALUE / ENUM_STR_VALUE: ``ncolumns`` lists of member bytes, or None when
    the field does not hold exactly that many."""
    out: list[list[bytes]] = []
    q = 0
    try:
        while q < len(field):
            count, q = _packed(field, q)
            values = []
            for _ in range(count):
                n, q = _packed(field, q)
                if q + n > len(field):
                    raise _Short
                values.append(field[q : q + n])
                q += n
            out.append(values)
    except _Short:
        return None
    return out if len(out) == ncolumns else None


def _member_collations(fields: dict[int, bytes], ncolumns: int) -> list[int | None]:
    """The collation id of each ENUM/SET column (in column order), None where not logged."""
    out: list[int | None] = [None] * ncolumns
    try:
        if (field := fields.get(OPT_ENUM_AND_SET_COLUMN_CHARSET)) is not None:
            q = 0
            for k in range(ncolumns):
                out[k], q = _packed(field, q)
        elif (field := fields.get(OPT_ENUM_AND_SET_DEFAULT_CHARSET)) is not None:
            default, q = _packed(field, 0)
            out = [default] * ncolumns
            while q < len(field):
                index, q = _packed(field, q)
                collation, q = _packed(field, q)
                if index < ncolumns:
                    out[index] = collation
    except _Short:
        pass
    return out


def _latin1(raw: bytes) -> str:
    """The servers' latin1 is Windows-1252, its five unassigned bytes mapped to the C1
    controls of the same value."""
    return "".join(chr(b) if b in (0x81, 0x8D, 0x8F, 0x90, 0x9D) else bytes([b]).decode("cp1252") for b in raw)


def _member_text(raw: bytes, collation: int | None) -> str | None:
    codec = None
    if collation is not None:
        codec = next((c for ids, c in _MEMBER_CODECS if collation in ids), None)
    try:
        if codec == "latin1":
            return _latin1(raw)
        if codec is not None:
            return raw.decode(codec)
    except UnicodeDecodeError:
        return None
    # a character set not known here: ASCII is the same bytes in all the ASCII-based ones
    # (the others, UCS-2/UTF-16/UTF-32, put NUL bytes in ASCII characters)
    return raw.decode("ascii") if raw.isascii() and b"\0" not in raw else None


def _members(fields: dict[int, bytes], types: list[int]) -> tuple[tuple[str, ...] | None, ...] | None:
    if OPT_ENUM_STR_VALUE not in fields and OPT_SET_STR_VALUE not in fields:
        return None
    kinds = [(i, t) for i, t in enumerate(types) if t in (T_ENUM, T_SET)]
    collations = _member_collations(fields, len(kinds))
    lists: dict[int, list[list[bytes]] | None] = {}
    for kind, field_type in ((T_ENUM, OPT_ENUM_STR_VALUE), (T_SET, OPT_SET_STR_VALUE)):
        field = fields.get(field_type)
        lists[kind] = _strings(field, sum(1 for _, t in kinds if t == kind)) if field is not None else None
    out: list[tuple[str, ...] | None] = [None] * len(types)
    seen = {T_ENUM: 0, T_SET: 0}
    for k, (i, kind) in enumerate(kinds):
        values = lists[kind]
        n = seen[kind]
        seen[kind] += 1
        if values is None:
            continue
        texts = [_member_text(raw, collations[k]) for raw in values[n]]
        if all(x is not None for x in texts):
            out[i] = tuple(x for x in texts if x is not None)
    return tuple(out)



def table_of_map(body: bytes) -> tuple[str, str]:
    """(db, table) straight from TableMap bytes, without a full parse (for filters)."""
    n = body[8]
    db = body[9 : 9 + n].decode()
    p = 9 + n + 1
    m = body[p]
    return db, body[p + 1 : p + 1 + m].decode()

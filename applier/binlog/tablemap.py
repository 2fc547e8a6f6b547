"""The binlog's TableMap: column types, their metadata and (with binlog_row_metadata=FULL)
names, parsed from the event bytes (``compat`` checks it against the target's table).

Keys, foreign keys, signedness, charsets and generated columns come from the target
(``db.schema``), which must have the same tables as the source (it is a replica).
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

OPT_COLUMN_NAME = 4


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
    names = _optional_names(body, p, ncols)
    return TableMap(table_id, db, table, tuple(types), tuple(metas), nullable, names)


def _optional_names(body: bytes, p: int, ncols: int) -> tuple[str, ...] | None:
    while p < len(body):
        kind = body[p]
        length, p = ev.packed_int(body, p + 1)
        if kind == OPT_COLUMN_NAME:
            names = []
            q = p
            for _ in range(ncols):
                n, q = ev.packed_int(body, q)
                names.append(body[q : q + n].decode())
                q += n
            return tuple(names)
        p += length
    return None



def table_of_map(body: bytes) -> tuple[str, str]:
    """(db, table) straight from TableMap bytes, without a full parse (for filters)."""
    n = body[8]
    db = body[9 : 9 + n].decode()
    p = 9 + n + 1
    m = body[p]
    return db, body[p + 1 : p + 1 + m].decode()

"""Table metadata: the binlog's TableMap plus the target's information_schema.

The TableMap gives column types and their binlog metadata (lengths, precision), and,
with binlog_row_metadata=FULL, column names. Keys, foreign keys, signedness, charsets
and generated columns come from the target, which must have the same tables as the
source (it is a replica). Both are cached; DDL invalidates the target side.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from . import events as ev
from .errors import SchemaError

log = logging.getLogger(__name__)

# binlog column type codes (MYSQL_TYPE_*)
T_DECIMAL, T_TINY, T_SHORT, T_LONG, T_FLOAT, T_DOUBLE, T_NULL, T_TIMESTAMP = range(8)
T_LONGLONG, T_INT24, T_DATE, T_TIME, T_DATETIME, T_YEAR, T_NEWDATE, T_VARCHAR = range(8, 16)
T_BIT, T_TIMESTAMP2, T_DATETIME2, T_TIME2 = 16, 17, 18, 19
T_JSON, T_NEWDECIMAL, T_ENUM, T_SET = 245, 246, 247, 248
T_TINY_BLOB, T_MEDIUM_BLOB, T_LONG_BLOB, T_BLOB, T_VAR_STRING, T_STRING, T_GEOMETRY = range(249, 256)
# MariaDB's COMPRESSED columns (binlogged compressed; metadata as VARCHAR / BLOB)
T_BLOB_COMPRESSED, T_VARCHAR_COMPRESSED = 140, 141

_META_1 = {T_FLOAT, T_DOUBLE, T_BLOB, T_GEOMETRY, T_JSON, T_TIMESTAMP2, T_DATETIME2, T_TIME2,
           T_TINY_BLOB, T_MEDIUM_BLOB, T_LONG_BLOB, T_BLOB_COMPRESSED}
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


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    data_type: str  # information_schema DATA_TYPE, lower case
    unsigned: bool
    charset: str | None  # None for non-character columns
    collation: str | None
    nullable: bool
    generated: bool
    # DATETIME_PRECISION (fractional digits of TIME/DATETIME/TIMESTAMP): MariaDB's
    # pre-10.0 temporal formats are binlogged without it (see rowcodec)
    fsp: int | None = None


@dataclass(frozen=True, slots=True)
class UniqueKey:
    name: str
    columns: tuple[int, ...]  # column indexes
    prefixes: tuple[int | None, ...]  # SUB_PART per column (chars/bytes) or None
    nullable: bool  # some column may be NULL (then NULL rows never conflict)


@dataclass(frozen=True, slots=True)
class TableSchema:
    """The target's view of one table: what SQL generation and key hashing need."""

    db: str
    table: str
    columns: tuple[Column, ...]
    unique_keys: tuple[UniqueKey, ...]  # PRIMARY first when present
    has_foreign_keys: bool

    @property
    def row_key(self) -> UniqueKey | None:
        """The key that identifies a row: PRIMARY, else the first non-null unique key
        without prefix parts."""
        for k in self.unique_keys:
            if not k.nullable and all(p is None for p in k.prefixes):
                return k
        return None

    @property
    def barrier_reason(self) -> str:
        if self.has_foreign_keys:
            return f"table {self.db}.{self.table} has foreign keys"
        if self.row_key is None:
            return f"table {self.db}.{self.table} has no primary key or non-null unique key"
        return ""

    @property
    def qualified(self) -> str:
        return f"`{self.db.replace('`', '``')}`.`{self.table.replace('`', '``')}`"


_COLUMNS_SQL = (
    "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, CHARACTER_SET_NAME, COLLATION_NAME, "
    "COALESCE(GENERATION_EXPRESSION, ''), DATETIME_PRECISION FROM information_schema.COLUMNS "
    "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION"
)
_INDEX_SQL = (
    "SELECT INDEX_NAME, NON_UNIQUE, COLUMN_NAME, SUB_PART FROM information_schema.STATISTICS "
    "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME, SEQ_IN_INDEX"
)
_FK_SQL = (
    "SELECT COUNT(*) FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE "
    "(CONSTRAINT_SCHEMA = %s AND TABLE_NAME = %s) OR "
    "(UNIQUE_CONSTRAINT_SCHEMA = %s AND REFERENCED_TABLE_NAME = %s)"
)


def _text(v: object) -> str:
    return v.decode() if isinstance(v, bytes | bytearray) else str(v)


def load_table_schema(conn, db: str, table: str) -> TableSchema:
    """Read one table's schema from the target (``conn``: a MySQLdb connection)."""
    cur = conn.cursor()
    try:
        cur.execute(_COLUMNS_SQL, (db, table))
        rows = cur.fetchall()
        if not rows:
            raise SchemaError(
                f"table {db}.{table} from the source binlog is not on the target: create it there "
                "(same definition) or exclude its database with [apply] ignore_databases"
            )
        columns = tuple(
            Column(
                name=_text(name),
                data_type=_text(dtype).lower(),
                unsigned="unsigned" in _text(ctype).lower(),
                charset=_text(cs) if cs is not None else None,
                collation=_text(coll) if coll is not None else None,
                nullable=_text(nullable) == "YES",
                generated=bool(_text(gen)),
                fsp=int(fsp) if fsp is not None else None,
            )
            for name, dtype, ctype, nullable, cs, coll, gen, fsp in rows
        )
        index_of = {c.name.lower(): i for i, c in enumerate(columns)}
        cur.execute(_INDEX_SQL, (db, table))
        keys: dict[str, list[tuple[int, int | None]]] = {}
        for name, non_unique, col, sub_part in cur.fetchall():
            if int(non_unique):
                continue
            keys.setdefault(_text(name), []).append(
                (index_of[_text(col).lower()], int(sub_part) if sub_part is not None else None)
            )
        unique = tuple(
            UniqueKey(
                name,
                tuple(i for i, _ in parts),
                tuple(p for _, p in parts),
                any(columns[i].nullable for i, _ in parts),
            )
            for name, parts in keys.items()
        )
        cur.execute(_FK_SQL, (db, table, db, table))
        (fks,) = cur.fetchone()
    finally:
        cur.close()
    return TableSchema(db, table, columns, unique, int(fks) > 0)


class SchemaCache:
    """Target table schemas by (db, table); ``invalidate`` after any DDL."""

    def __init__(self, conn) -> None:
        self.conn = conn
        self._tables: dict[tuple[str, str], TableSchema] = {}

    def get(self, db: str, table: str) -> TableSchema:
        key = (db, table)
        schema = self._tables.get(key)
        if schema is None:
            schema = self._tables[key] = load_table_schema(self.conn, db, table)
        return schema

    def invalidate(self) -> None:
        self._tables.clear()


def check_compatible(tmap: TableMap, schema: TableSchema) -> None:
    """The binlog's columns must line up with the target's, by count and (if logged) name."""
    if len(tmap.types) != len(schema.columns):
        raise SchemaError(
            f"table {tmap.db}.{tmap.table} has {len(tmap.types)} columns in the source binlog but "
            f"{len(schema.columns)} on the target: make the target table match the source"
        )
    if tmap.names is not None:
        for i, (a, b) in enumerate(zip(tmap.names, schema.columns, strict=True)):
            if a.lower() != b.name.lower():
                raise SchemaError(
                    f"table {tmap.db}.{tmap.table} column {i + 1} is {a!r} on the source but "
                    f"{b.name!r} on the target: make the target table match the source"
                )

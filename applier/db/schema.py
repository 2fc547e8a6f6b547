"""The target's view of a table, from its information_schema: columns, unique keys,
foreign keys, signedness, charsets, generated columns. Cached per table; DDL
invalidates the cache (``SchemaCache.invalidate``).
"""

from __future__ import annotations

from dataclasses import dataclass

import MySQLdb

from ..errors import SchemaError
from . import codes
from .sql import qualified
from .sql import text as _text


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
    column_type: str = ""  # COLUMN_TYPE as shown ("" when unknown: no type check)
    octet_length: int | None = None  # CHARACTER_OCTET_LENGTH of strings
    precision: int | None = None  # NUMERIC_PRECISION (decimal digits; bits of BIT)
    scale: int | None = None  # NUMERIC_SCALE
    # NOT NULL without a default (nor AUTO_INCREMENT, nor generated): an INSERT that
    # leaves it out is refused by a strict session
    required: bool = False


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
    "COALESCE(GENERATION_EXPRESSION, ''), DATETIME_PRECISION, CHARACTER_OCTET_LENGTH, "
    "NUMERIC_PRECISION, NUMERIC_SCALE, COLUMN_DEFAULT IS NULL AND IS_NULLABLE = 'NO' "
    "AND EXTRA NOT LIKE '%%auto_increment%%' FROM information_schema.COLUMNS "
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


def load_table_schema(conn, db: str, table: str) -> TableSchema:
    """Read one table's schema from the target (``conn``: a MySQLdb connection)."""
    cur = conn.cursor()
    try:
        cur.execute(_COLUMNS_SQL, (db, table))
        rows = cur.fetchall()
        if not rows:
            raise _absent(cur, db, table)
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
                column_type=_text(ctype),  # as the server shows it: ENUM/SET members keep their case
                octet_length=int(octets) if octets is not None else None,
                precision=int(prec) if prec is not None else None,
                scale=int(scale) if scale is not None else None,
                required=bool(int(required)) and not _text(gen),
            )
            for name, dtype, ctype, nullable, cs, coll, gen, fsp, octets, prec, scale, required in rows
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


def _absent(cur, db: str, table: str) -> SchemaError:
    """information_schema shows nothing: the table is missing, or the user may not see it."""
    try:
        cur.execute(f"SELECT 1 FROM {qualified(db, table)} LIMIT 0")
    except MySQLdb.Error as e:
        if codes.code_of(e) in codes.PRIVILEGE:
            return SchemaError(
                f"the target user may not use table {db}.{table} ({codes.message_of(e)}): GRANT "
                f"SELECT, INSERT, UPDATE, DELETE ON {qualified(db, table)} (or on the database) to it"
            )
    return SchemaError(
        f"table {db}.{table} from the source binlog is not on the target: create it there "
        "(same definition) or exclude its database with [apply] ignore_databases"
    )


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



"""Per TableMap, what the applier needs to key and write its rows (``Table``): the row
plan, the target's columns and keys, and the statement heads; cached by TableMap bytes.

The coordinator owns one ``TableCache`` (the intake keys rows with it, the serial path
writes with it); each worker's planner has its own. ``[apply] rewrite_databases``
applies here, to each TableMap as it is parsed (``rewrite``: the coordinator's is set
by ``filters.Filter.bind``, a worker's from its ``WorkerSpec``): its ``Table`` (target
definition, statements, writeset keys) is the rewritten database's.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..binlog import rowcodec as rc
from ..binlog.compat import check_compatible
from ..binlog.tablemap import TableMap, parse_table_map
from ..db.schema import SchemaCache, TableSchema
from ..db.sql import quote_ident


@dataclass(slots=True)
class Table:
    """What the applier needs per table, built once per TableMap bytes."""

    tmap: TableMap
    schema: TableSchema
    plan: rc.RowPlan
    name: bytes  # `db`.`table`
    insert_head: bytes  # INSERT INTO `db`.`t` (`a`,`b`) VALUES
    writable: tuple[int, ...]  # non-generated column indexes
    key: tuple[int, ...] | None  # row key column indexes
    compactable: bool
    col_names: tuple[bytes, ...] = field(default=())
    upsert_tail: bytes = b""  # ON DUPLICATE KEY UPDATE for every non-key column (compactable)
    key_of: Callable[[rc.Row], Any] | None = None  # image -> row key (a literal, or a tuple of them)
    writable_of: Callable[[rc.Row], tuple] | None = None  # image -> its writable literals, in order
    enums: tuple[int, ...] = ()  # ENUM columns (index 0, the error value, needs a lenient session)
    matchers: tuple[tuple[int, bytes, bytes], ...] = ()  # (column, head, tail): see match_image
    partial_upserts: dict = field(default_factory=dict)  # changed columns -> see partial_upsert


class TableCache:
    """TableMap bytes -> Table; target schemas from a SchemaCache."""

    def __init__(self, schemas: SchemaCache, rewrite: Callable[[str], str] | None = None) -> None:
        self.schemas = schemas
        self.rewrite = rewrite  # source database -> target database ([apply] rewrite_databases)
        self._by_map: dict[bytes, Table] = {}

    def get(self, tmap_body: bytes) -> Table:
        table = self._by_map.get(tmap_body)
        if table is None:
            tmap = parse_table_map(tmap_body)
            if self.rewrite is not None and (db := self.rewrite(tmap.db)) != tmap.db:
                tmap = dataclasses.replace(tmap, db=db)
            schema = self.schemas.get(tmap.db, tmap.table)
            check_compatible(tmap, schema)
            table = self._by_map[tmap_body] = build_table(tmap, schema)
        return table

    def invalidate(self) -> None:
        self._by_map.clear()
        self.schemas.invalidate()


def build_table(tmap: TableMap, schema: TableSchema) -> Table:
    plan = rc.build_plan(tmap, schema)
    names = tuple(quote_ident(c.name) for c in schema.columns)
    writable = tuple(i for i, c in enumerate(schema.columns) if not c.generated)
    row_key = schema.row_key
    qualified = schema.qualified.encode()
    head = b"INSERT INTO " + qualified + b" (" + b",".join(names[i] for i in writable) + b") VALUES "
    compactable = row_key is not None and len(schema.unique_keys) == 1 and not schema.has_foreign_keys
    upsert = b""
    if compactable:
        assert row_key is not None
        rest = [names[i] + b"=VALUES(" + names[i] + b")" for i in writable if i not in row_key.columns]
        upsert = b" ON DUPLICATE KEY UPDATE " + b",".join(rest) if rest else b""
    key_cols = row_key.columns if row_key else None
    enums = tuple(i for i in writable if schema.columns[i].data_type == "enum")
    return Table(tmap, schema, plan, qualified, head, writable, key_cols, compactable, names, upsert,
                 operator.itemgetter(*key_cols) if key_cols else None, _getter(writable), enums,
                 tuple(_matcher(i, names[i], plan.columns[i]) for i in writable))


def partial_upsert(table: Table, changed: tuple[int, ...]) -> tuple[bytes, bytes, Callable[[rc.Row], tuple]]:
    """(INSERT head, ON DUPLICATE KEY UPDATE tail, image -> its literals) for rows whose
    ``changed`` non-key columns change: the key, those columns and the columns an
    INSERT may not leave out (NOT NULL without a default: a strict session checks them
    before it finds the row) are written, the changed ones updated (less for the
    target to parse and to update than every column)."""
    got = table.partial_upserts.get(changed)
    if got is None:
        assert table.key is not None
        names = table.col_names
        columns = table.schema.columns
        needed = tuple(i for i in table.writable
                       if columns[i].required and i not in table.key and i not in changed)
        cols = (*table.key, *changed, *needed)
        head = b"INSERT INTO " + table.name + b" (" + b",".join(names[i] for i in cols) + b") VALUES "
        tail = b" ON DUPLICATE KEY UPDATE " + b",".join(names[i] + b"=VALUES(" + names[i] + b")" for i in changed)
        got = table.partial_upserts[changed] = (head, tail, _getter(cols))
    return got


def _matcher(i: int, name: bytes, codec: rc.ColumnCodec) -> tuple[int, bytes, bytes]:
    """How one column is compared with its before-image literal, exactly: strings and
    BLOBs byte for byte (not by collation: 'a' and 'A' differ), FLOAT as the float it
    holds, everything else (numbers, temporal text, ENUM/SET/BIT numbers, JSON) as is;
    NULL-safe."""
    if codec.kind in (rc.K_VARSTR, rc.K_BLOB):
        return i, b"BINARY " + name + b"<=>BINARY ", b""
    if codec.kind == rc.K_FLOAT:
        return i, name + b"<=>CAST(", b" AS FLOAT)"
    return i, name + b"<=>", b""


def match_image(table: Table, image: rc.Row) -> bytes:
    """A WHERE condition true only for the row that holds exactly ``image`` (every
    written column; ``[apply] verify_before_image``)."""
    parts = [head + image[i] + tail for i, head, tail in table.matchers if image[i] is not None]  # type: ignore[operator]
    return b" AND ".join(parts)


def enum_zero(table: Table, rows) -> bool:
    """Some image writes ENUM index 0 (the '' error value a non-strict source session
    stored for an invalid member): a strict session refuses it, the native replica
    copies it; such statements run in a lenient session (``planner.lenient``)."""
    enums = table.enums
    return bool(enums) and any(image[i] == b"0" for image in rows if image is not None for i in enums)


def _getter(indexes: tuple[int, ...]) -> Callable[[rc.Row], tuple]:
    """itemgetter that always returns a tuple (itemgetter of one index returns the item)."""
    if not indexes:
        return lambda row: ()
    if len(indexes) == 1:
        (i,) = indexes
        return lambda row: (row[i],)
    return operator.itemgetter(*indexes)


def values_of(table: Table, image: rc.Row) -> bytes:
    assert table.writable_of is not None
    values = table.writable_of(image)
    if None in values:  # a column the image does not carry
        values = tuple(v or b"DEFAULT" for v in values)
    return b"(" + b",".join(values) + b")"



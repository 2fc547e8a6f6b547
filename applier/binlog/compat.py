"""Do a TableMap's columns fit the target's table? Checked once per TableMap, before any
row of it is applied.

The columns must line up by count and (with binlog_row_metadata=FULL) by name. Then
each column's type as the binlog logs it (type code + metadata: integer size, DECIMAL
precision and scale, string length in bytes, BLOB length bytes, fractional seconds, BIT
width, ENUM/SET size) must fit the target column: the same kind of value and at least
as wide. A narrower or different target column stops the applier with one line naming
the column and both types — a strict target session would refuse the values anyway,
and a non-strict one would cut them. Wider is allowed (INT -> BIGINT, VARCHAR(50) ->
VARCHAR(100) or TEXT, DATETIME(0) -> DATETIME(6), FLOAT -> DOUBLE). Generated columns
are not written and not checked. Character sets are not compared (the binlog carries
them only with binlog_row_metadata=FULL's optional fields, not read here).
"""

from __future__ import annotations

from ..db.schema import Column, TableSchema
from ..errors import SchemaError
from . import tablemap as t

_INT_BYTES = {t.T_TINY: 1, t.T_SHORT: 2, t.T_INT24: 3, t.T_LONG: 4, t.T_LONGLONG: 8}
_TARGET_INT = {"tinyint": 1, "smallint": 2, "mediumint": 3, "int": 4, "integer": 4, "bigint": 8}
_INT_NAMES = {1: "TINYINT", 2: "SMALLINT", 3: "MEDIUMINT", 4: "INT", 8: "BIGINT"}
_LOB_BYTES = {1: (1 << 8) - 1, 2: (1 << 16) - 1, 3: (1 << 24) - 1, 4: (1 << 32) - 1}
_TARGET_LOB = {"tinyblob": 1, "tinytext": 1, "blob": 2, "text": 2, "mediumblob": 3, "mediumtext": 3,
               "longblob": 4, "longtext": 4, "json": 4}
_STRINGS = {"char", "varchar", "binary", "varbinary", "inet6", "inet4", "uuid"}
_GEOMETRY = {"geometry", "point", "linestring", "polygon", "multipoint", "multilinestring",
             "multipolygon", "geometrycollection", "geomcollection"}


def check_compatible(tmap: t.TableMap, schema: TableSchema) -> None:
    """Raise ``SchemaError`` unless every column of ``tmap`` fits the target's."""
    where = f"table {tmap.db}.{tmap.table}"
    if len(tmap.types) != len(schema.columns):
        raise SchemaError(
            f"{where} has {len(tmap.types)} columns in the source binlog but "
            f"{len(schema.columns)} on the target: make the target table match the source"
        )
    if tmap.names is not None:
        for i, (a, b) in enumerate(zip(tmap.names, schema.columns, strict=True)):
            if a.lower() != b.name.lower():
                raise SchemaError(
                    f"{where} column {i + 1} is {a!r} on the source but "
                    f"{b.name!r} on the target: make the target table match the source"
                )
    for btype, meta, col in zip(tmap.types, tmap.metas, schema.columns, strict=True):
        if col.generated or not col.column_type:
            continue
        verdict = _fits(btype, meta, col)
        if verdict:
            raise SchemaError(
                f"{where} column {col.name}: the source logs {describe(btype, meta)} but the target "
                f"column is {col.column_type.upper()} ({verdict}): ALTER the target column to "
                f"{describe(btype, meta)} or wider"
            )


def _fits(btype: int, meta: int, col: Column) -> str:
    """'' when the target column holds every value of the source's, else why not."""
    target = col.data_type
    if btype in _INT_BYTES:
        if target not in _TARGET_INT:
            return "another type"
        return "narrower" if _TARGET_INT[target] < _INT_BYTES[btype] else ""
    if btype == t.T_NEWDECIMAL:
        if target not in ("decimal", "numeric") or col.precision is None or col.scale is None:
            return "another type"
        precision, scale = meta & 0xFF, meta >> 8
        return "narrower" if col.scale < scale or col.precision - col.scale < precision - scale else ""
    if btype in (t.T_FLOAT, t.T_DOUBLE):
        if target not in ("float", "double", "real", "double precision"):
            return "another type"
        return "narrower" if btype == t.T_DOUBLE and target == "float" else ""
    if btype == t.T_YEAR:
        return "" if target == "year" else "another type"
    if btype in (t.T_DATE, t.T_NEWDATE):
        return "" if target == "date" else "another type"
    temporal = {t.T_TIME: "time", t.T_TIME2: "time", t.T_DATETIME: "datetime",
                t.T_DATETIME2: "datetime", t.T_TIMESTAMP: "timestamp", t.T_TIMESTAMP2: "timestamp"}
    if btype in temporal:
        if target != temporal[btype]:
            return "another type"
        fsp = meta if btype in (t.T_TIME2, t.T_DATETIME2, t.T_TIMESTAMP2) else 0
        return "fewer fractional digits" if (col.fsp or 0) < fsp else ""
    if btype in (t.T_VARCHAR, t.T_VAR_STRING, t.T_STRING, t.T_VARCHAR_COMPRESSED):
        if btype == t.T_VARCHAR_COMPRESSED:
            meta -= 1  # the compression header byte is counted in the logged length
        if target in _STRINGS:
            if target in ("inet6", "inet4", "uuid"):
                return ""
            return "shorter" if col.octet_length is not None and col.octet_length < meta else ""
        if target in _TARGET_LOB and target != "json":
            return "shorter" if _LOB_BYTES[_TARGET_LOB[target]] < meta else ""
        return "another type"
    if btype in (t.T_BLOB, t.T_TINY_BLOB, t.T_MEDIUM_BLOB, t.T_LONG_BLOB, t.T_BLOB_COMPRESSED):
        if target in _TARGET_LOB:
            return "shorter" if _TARGET_LOB[target] < meta else ""
        return "another type"
    if btype == t.T_JSON:
        return "" if target in ("json", "longtext", "longblob") else "another type"
    if btype == t.T_GEOMETRY:
        return "" if target in _GEOMETRY else "another type"
    if btype == t.T_VECTOR:
        return "" if target == "vector" else "another type"
    if btype == t.T_BIT:
        bits = (meta >> 8) * 8 + (meta & 0xFF)
        if target != "bit":
            return "another type"
        return "narrower" if col.precision is not None and col.precision < bits else ""
    if btype in (t.T_ENUM, t.T_SET):
        kind = "enum" if btype == t.T_ENUM else "set"
        return "" if target == kind else "another type"
    return ""  # types the row decoder knows nothing special about: its own checks apply


def describe(btype: int, meta: int) -> str:
    """How the binlog describes a column, as a SQL type (lengths in bytes)."""
    if btype in _INT_BYTES:
        return _INT_NAMES[_INT_BYTES[btype]]
    if btype == t.T_NEWDECIMAL:
        return f"DECIMAL({meta & 0xFF},{meta >> 8})"
    if btype in (t.T_TIME2, t.T_DATETIME2, t.T_TIMESTAMP2):
        name = {t.T_TIME2: "TIME", t.T_DATETIME2: "DATETIME", t.T_TIMESTAMP2: "TIMESTAMP"}[btype]
        return f"{name}({meta})" if meta else name
    if btype in (t.T_VARCHAR, t.T_VAR_STRING, t.T_VARCHAR_COMPRESSED):
        return f"VARCHAR of up to {meta} bytes"
    if btype == t.T_STRING:
        return f"CHAR of {meta} bytes"
    if btype in (t.T_BLOB, t.T_TINY_BLOB, t.T_MEDIUM_BLOB, t.T_LONG_BLOB, t.T_BLOB_COMPRESSED):
        return {1: "TINYBLOB/TINYTEXT", 2: "BLOB/TEXT", 3: "MEDIUMBLOB/MEDIUMTEXT", 4: "LONGBLOB/LONGTEXT"}.get(
            meta, "BLOB")
    if btype == t.T_BIT:
        return f"BIT({(meta >> 8) * 8 + (meta & 0xFF)})"
    names = {t.T_FLOAT: "FLOAT", t.T_DOUBLE: "DOUBLE", t.T_YEAR: "YEAR", t.T_DATE: "DATE",
             t.T_NEWDATE: "DATE", t.T_TIME: "TIME", t.T_DATETIME: "DATETIME", t.T_TIMESTAMP: "TIMESTAMP",
             t.T_JSON: "JSON", t.T_GEOMETRY: "GEOMETRY", t.T_ENUM: "ENUM", t.T_SET: "SET",
             t.T_VECTOR: "VECTOR"}
    return names.get(btype, f"type {btype}")

"""Do a TableMap's columns fit the target's table? Checked once per TableMap, before any
row of it is applied.

The columns must line up by count and (with binlog_row_metadata=FULL) by name. Then
each column's type as the binlog logs it (type code + metadata: integer size, DECIMAL
precision and scale, string length in bytes, BLOB length bytes, fractional seconds, BIT
width, ENUM/SET size) must fit the target column: the same kind of value and at least
as wide. A narrower or different target column stops the applier with one line naming
the table, the column, both types and what to ALTER — a strict target session would
refuse the values anyway, and a non-strict one would cut them. Wider is allowed (INT ->
BIGINT, VARCHAR(50) -> VARCHAR(100) or TEXT, DATETIME(0) -> DATETIME(6), FLOAT ->
DOUBLE). Generated columns are not written and not checked.

What the binlog logs as bytes without their meaning is checked when the TableMap's
optional metadata says it (``tablemap``):

* signedness (SIGNEDNESS; binlog_row_metadata=MINIMAL or FULL): the values are decoded
  with the source's signedness (``rowcodec``), so the target must hold them: a signed
  source column (integer, DECIMAL, FLOAT, DOUBLE) into an UNSIGNED target column is
  refused (its negative values), an unsigned integer needs an unsigned target at least
  as wide or a signed one strictly wider (INT UNSIGNED -> BIGINT);
* ENUM/SET members (ENUM_STR_VALUE / SET_STR_VALUE; FULL only): rows carry a member's
  index (ENUM) or a bitmap of them (SET), so the target's members must begin with the
  source's, in the same order; more members at the end are allowed (as an ALTER on the
  server may append them), anything else is refused, showing both member lists
  (shortened). Members compare as text, case included, the way the target's
  COLUMN_TYPE lists them: information_schema shows characters beyond the BMP as ``?``,
  so a difference between two such characters (or one and a ``?``) is not seen; a
  column whose members are unknown (a character set ``tablemap`` does not read) is not
  compared at all.

Without that metadata (binlog_row_metadata=NO_LOG on MariaDB, servers before MySQL 8.0
/ MariaDB 10.5, MINIMAL for the members) those checks do not happen: integers are then
decoded with the *target's* signedness (a value outside the target column's range
comes out as another number, silently), and ENUM/SET need only be ENUM/SET on both
sides. Character sets are not compared (the binlog carries them only in optional
fields not read here).
"""

from __future__ import annotations

import re

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
_TARGET_FLOAT = ("float", "double", "real", "double precision")
# numeric columns whose signedness is checked (YEAR has one too: always unsigned)
_SIGNED_TYPES = frozenset({*_INT_BYTES, t.T_NEWDECIMAL, t.T_FLOAT, t.T_DOUBLE})
_NEGATIVE = "another type: the source's negative values do not fit"


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
    n = len(tmap.types)
    logged_unsigned = tmap.unsigned if tmap.unsigned is not None else (None,) * n
    logged_members = tmap.members if tmap.members is not None else (None,) * n
    for btype, meta, unsigned, members, col in zip(tmap.types, tmap.metas, logged_unsigned, logged_members,
                                                   schema.columns, strict=True):
        if col.generated or not col.column_type:
            continue
        if btype not in _SIGNED_TYPES:
            unsigned = None
        verdict = _fits(btype, meta, col, unsigned)
        if verdict:
            source = describe(btype, meta, unsigned)
            raise SchemaError(
                f"{where} column {col.name}: the source logs {source} but the target "
                f"column is {_target_type(col)} ({verdict}): ALTER the target column to "
                f"{source} or wider"
            )
        if members is not None and btype in (t.T_ENUM, t.T_SET):
            verdict = _member_verdict(members, _target_members(col))
            if verdict:
                kind = "ENUM" if btype == t.T_ENUM else "SET"
                source = _member_list(kind, members)
                raise SchemaError(
                    f"{where} column {col.name}: the source logs {source} but the target column is "
                    f"{_target_type(col)} ({verdict}): ALTER the target column to {source} "
                    f"(new members only at the end)"
                )


def _fits(btype: int, meta: int, col: Column, unsigned: bool | None = None) -> str:
    """'' when the target column holds every value of the source's, else why not.
    ``unsigned``: the source column's signedness when the binlog logs it, else None."""
    target = col.data_type
    if unsigned is False and btype in _SIGNED_TYPES and col.unsigned and _same_kind(btype, target):
        return _NEGATIVE
    if btype in _INT_BYTES:
        if target not in _TARGET_INT:
            return "another type"
        width, needed = _TARGET_INT[target], _INT_BYTES[btype]
        if width < needed:
            return "narrower"
        if unsigned and not col.unsigned and width == needed:
            limit = (1 << (8 * width - 1)) - 1
            return f"narrower: signed, the source's values above {limit} do not fit"
        return ""
    if btype == t.T_NEWDECIMAL:
        if target not in ("decimal", "numeric") or col.precision is None or col.scale is None:
            return "another type"
        precision, scale = meta & 0xFF, meta >> 8
        return "narrower" if col.scale < scale or col.precision - col.scale < precision - scale else ""
    if btype in (t.T_FLOAT, t.T_DOUBLE):
        if target not in _TARGET_FLOAT:
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


def _same_kind(btype: int, target: str) -> bool:
    """A numeric target of the source's kind (else _fits says "another type" anyway)."""
    if btype in _INT_BYTES:
        return target in _TARGET_INT
    if btype == t.T_NEWDECIMAL:
        return target in ("decimal", "numeric")
    return target in _TARGET_FLOAT


def describe(btype: int, meta: int, unsigned: bool | None = None) -> str:
    """How the binlog describes a column, as a SQL type (lengths in bytes); UNSIGNED when
    the binlog says so."""
    sign = " UNSIGNED" if unsigned and btype in _SIGNED_TYPES else ""
    if btype in _INT_BYTES:
        return _INT_NAMES[_INT_BYTES[btype]] + sign
    if btype == t.T_NEWDECIMAL:
        return f"DECIMAL({meta & 0xFF},{meta >> 8}){sign}"
    if btype in (t.T_FLOAT, t.T_DOUBLE) and sign:
        return ("FLOAT" if btype == t.T_FLOAT else "DOUBLE") + sign
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


_DISPLAY_WIDTH = re.compile(r"^(tinyint|smallint|mediumint|int|integer|bigint)\(\d+\)")


def _target_type(col: Column) -> str:
    """The target column's type as the message shows it: COLUMN_TYPE upper case, without
    an integer's display width (MariaDB's ``int(10) unsigned``: INT UNSIGNED), ENUM/SET
    members as listed (shortened)."""
    if col.data_type in ("enum", "set"):
        members = _target_members(col)
        if members is not None:
            return _member_list(col.data_type.upper(), members)
    return _DISPLAY_WIDTH.sub(r"\1", col.column_type).upper()


_ESCAPES = {"0": "\0", "n": "\n", "r": "\r", "Z": "\x1a", "z": "\x1a", "t": "\t", "b": "\b"}


def _target_members(col: Column) -> tuple[str, ...] | None:
    """The members of an ENUM/SET column from its COLUMN_TYPE (``enum('a','it''s')``:
    quotes doubled, backslash escapes), None if it does not read as such."""
    text = col.column_type
    head = f"{col.data_type}("
    if not text.startswith(head):
        return None
    members: list[str] = []
    i = len(head)
    while True:
        if i >= len(text) or text[i] != "'":
            return None
        i += 1
        out = []
        while True:
            if i >= len(text):
                return None
            ch = text[i]
            if ch == "'" and text[i + 1 : i + 2] == "'":
                out.append("'")
                i += 2
            elif ch == "'":
                i += 1
                break
            elif ch == "\\" and i + 1 < len(text):
                out.append(_ESCAPES.get(text[i + 1], text[i + 1]))
                i += 2
            else:
                out.append(ch)
                i += 1
        members.append("".join(out))
        if text[i : i + 1] == ",":
            i += 1
        elif text[i:] == ")" or text[i:].startswith(") "):
            return tuple(members)
        else:
            return None


def _comparable(member: str) -> str:
    """A member as the target's COLUMN_TYPE can show it: characters beyond the BMP as
    ``?`` (information_schema's utf8mb3 has no 4-byte characters: MariaDB shows 😀 as
    ?). Case counts: 'a' and 'A' are other values."""
    return "".join("?" if ord(c) > 0xFFFF else c for c in member)


def _member_verdict(source: tuple[str, ...], target: tuple[str, ...] | None) -> str:
    """'' when every source member has the same position on the target (the target's
    list begins with the source's), else how they differ (compared as _comparable)."""
    if target is None:
        return ""  # not a list this module reads: the kind check already passed
    wanted = tuple(_comparable(m) for m in source)
    target = tuple(_comparable(m) for m in target)
    if target[: len(wanted)] == wanted:
        return ""
    if len(target) < len(wanted) and wanted[: len(target)] == target:
        return "fewer members"
    if set(wanted) <= set(target):
        return "members in another order"
    return "other members"


_LIST_CHARS = 50  # a member list longer than this is shortened in messages
_MEMBER_CHARS = 20


def _member_list(kind: str, members: tuple[str, ...]) -> str:
    """``ENUM('a','b')`` (SQL quoting), shortened past _LIST_CHARS: long members cut, the
    first members, then ``... N members``."""
    def quoted(m: str, limit: int | None = None) -> str:
        if limit is not None and len(m) > limit:
            m = m[:limit] + "..."
        return "'" + m.replace("\\", "\\\\").replace("'", "''") + "'"

    full = f"{kind}({','.join(quoted(m) for m in members)})"
    if len(full) <= _LIST_CHARS:
        return full
    shown: list[str] = []
    size = len(kind) + 1
    for m in members:
        q = quoted(m, _MEMBER_CHARS)
        if shown and size + len(q) + 1 > _LIST_CHARS:
            break
        shown.append(q)
        size += len(q) + 1
    if len(shown) == len(members):
        return f"{kind}({','.join(shown)})"
    return f"{kind}({','.join(shown)},... {len(members)} members)"

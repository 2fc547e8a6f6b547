"""``applier check``: compare every replicated table between source and target.

What is compared: the set of base tables in the selected databases (a table missing on
the target, or only on the target, is a difference), each table's column list (names,
types with integer display widths ignored, character sets) and then the rows.

Rows, for a table with a primary key (or else the first all-NOT-NULL unique BTREE key):
the key is walked in order on the source in chunks of ``chunk_rows`` with keyset
pagination (``WHERE key > last ORDER BY key LIMIT n``; composite keys use the expanded
form ``a >= x AND (a > x OR (a = x AND b > y))`` because MariaDB does not turn a row
constructor comparison into an index range). The source query returns each row's key
and hash; the target returns ``COUNT(*)`` and the exact sum of the row hashes' first
64 bits over the same key range in one aggregate query. When they differ, both sides'
keys and hashes for the chunk are fetched and merged in key order to name the first
differing row (missing on target, extra on target, or which columns differ). The last
chunk is open-ended, so extra rows beyond the source's last key show up in it.

A table without such a key is compared as a multiset: count and sum of row hashes over
the whole table; on a difference, rows are grouped by hash to name one whose number of
copies differs. Its chunk is reported as ``"whole table"``.

Row hash: ``SHA2(CONCAT_WS('#', v1, v2, ..., nullbits), 256)`` (SHA2 because both flavors
have it: MySQL 9.7 dropped MD5 and SHA1) where each ``v`` is exact and
never contains ``#``: integers/DECIMAL as their text, FLOAT/DOUBLE as the shortest text
of ``CAST(col AS DOUBLE)`` (exact), temporal types as text (``time_zone`` is UTC on both
sessions), ``BIT`` as a number, short strings as ``HEX(col)`` (raw bytes, so no charset
conversion is involved), BLOB/TEXT/JSON/geometry as ``SHA2(col, 256)`` of the raw bytes
(MySQL's JSON: of its text form), and
``nullbits`` is ``ISNULL()`` of every nullable column, so NULL and ``''`` differ.

Key values go back into SQL as exact literals: numbers as their text, doubles with an
``e0`` suffix, strings as ``_charset X'..' COLLATE collation`` (bytes and collation of the
source), binary strings as ``_binary X'..'``.

Across flavors (a MySQL source, a MariaDB target or the other way): column types are
compared as both flavors spell them (YEAR is year(4) on MariaDB, JSON is a utf8mb4
LONGTEXT there), and JSON columns, stored normalized on MySQL and as their text on
MariaDB, leave the row hash (only their NULL bit stays) and are compared per chunk as
parsed values once the chunk's hashes agree (numbers by value, objects as members); so
do FLOAT/DOUBLE columns, whose text MySQL prints with at most 16 digits (equal within
the last printed digit).
MySQL's generated invisible primary keys are compared like any column (the MySQL
sessions set show_gipk_in_create_table_and_information_schema=ON).

Filters (``check(..., apply=cfg.apply)``; ``pipeline/filters.py``): each source table is
compared with the target table of its rewritten name (``[apply] rewrite_databases``; the
queries are written once, with the source's name, and the target side runs them with the
target's: ``_Side.renamed``); tables the filters leave out (``databases``,
``ignore_databases``, ``do_tables``, ``ignore_tables``: by their target names, as the
applier decides) are not compared, on either side. ``databases`` / ``ignore_databases``
given to ``check`` select by the target name too.

Read consistency: each side runs in one ``START TRANSACTION WITH CONSISTENT SNAPSHOT``
(REPEATABLE READ). Run the check once the applier has caught up with a quiet source.
"""

from __future__ import annotations

import codecs
import contextlib
import dataclasses
import decimal
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import MySQLdb

from ..config import DEFAULT_IGNORED_DATABASES, ApplyConfig, ServerConfig, TargetConfig
from ..db import codes
from ..db.connect import connect as open_connection
from ..db.sql import qualified as _qname
from ..db.sql import quote_name as _quote
from ..errors import ApplierError, ConfigError, ConnectError
from ..pipeline.filters import Filter, lower_case_table_names

# The checkpoint schema lives on the target only: never compare it.
DEFAULT_CHECK_IGNORED_DATABASES: tuple[str, ...] = (
    *DEFAULT_IGNORED_DATABASES,
    TargetConfig.checkpoint_schema,
)

WHOLE_TABLE = "whole table"

_TABLE_TYPES = ("BASE TABLE", "SYSTEM VERSIONED")

_EXACT = frozenset(
    {"tinyint", "smallint", "mediumint", "int", "integer", "bigint", "decimal", "numeric", "year"}
)
_FLOAT = frozenset({"float", "double", "real", "double precision"})
_TEMPORAL = frozenset({"date", "datetime", "timestamp", "time"})
_NUMBERED = frozenset({"bit", "enum", "set"})  # ordered (and compared as keys) by number
_LOB = frozenset(
    {
        "tinytext",
        "text",
        "mediumtext",
        "longtext",
        "tinyblob",
        "blob",
        "mediumblob",
        "longblob",
        "json",
        "geometry",
        "point",
        "linestring",
        "polygon",
        "multipoint",
        "multilinestring",
        "multipolygon",
        "geometrycollection",
        "geomcollection",
    }
)
_INT_WIDTH = re.compile(r"^(tinyint|smallint|mediumint|int|bigint)\(\d+\)")
_NUMBER = re.compile(r"-?\d+(\.\d+)?")
_FLOAT_TEXT = re.compile(r"-?\d+(\.\d+)?(e[-+]?\d+)?", re.IGNORECASE)
_TEMPORAL_TEXT = re.compile(r"[-0-9:. ]+")
_HEX = re.compile(r"[0-9A-Fa-f]*")
_NAME = re.compile(r"\w+")
_MEMBER = re.compile(r"'((?:[^']|'')*)'")  # ENUM/SET members in COLUMN_TYPE
_SHOW_BYTES = 40  # how much of a string value a report shows


@dataclass(frozen=True)
class TableDiff:
    """One table that differs. ``chunk`` and ``row`` are human readable (or None)."""

    db: str
    table: str
    reason: str
    chunk: str | None = None
    row: str | None = None

    def __str__(self) -> str:
        parts = [f"{_qname(self.db, self.table)}: {self.reason}"]
        if self.chunk:
            parts.append(f"in {self.chunk}")
        if self.row:
            parts.append(f"at row {self.row}")
        return ", ".join(parts)


@dataclass(frozen=True)
class CheckReport:
    tables_checked: int
    rows_checked: int
    diffs: tuple[TableDiff, ...]

    @property
    def ok(self) -> bool:
        return not self.diffs

    def __str__(self) -> str:
        head = f"checked {self.tables_checked} tables, {self.rows_checked} rows: " + (
            "no differences" if self.ok else f"{len(self.diffs)} tables differ"
        )
        return "\n".join([head, *(f"  {d}" for d in self.diffs)])


Connect = Callable[[ServerConfig, str], Any]


def check(
    source: ServerConfig,
    target: ServerConfig,
    databases: Sequence[str] = (),
    ignore_databases: Sequence[str] = DEFAULT_CHECK_IGNORED_DATABASES,
    chunk_rows: int = 1000,
    connect: Connect = open_connection,
    apply: ApplyConfig | None = None,
) -> CheckReport:
    """Compare every base table of the selected databases between source and target.

    ``databases`` limits the check to those databases (empty: all but the ignored ones);
    ``connect(server, role)`` opens a MySQLdb connection (default ``applier.connect``);
    ``apply``: the replication filters to follow (the ``[apply]`` section: tables the
    applier leaves out are not compared, rewritten databases are compared under their
    target name). Raises ``ConnectError`` naming the server when one cannot be reached.
    """
    if chunk_rows < 1:
        raise ConfigError(f"chunk_rows = {chunk_rows!r}: must be at least 1")
    src = _Side.open("source", source, connect)
    try:
        tgt = _Side.open("target", target, connect)
        try:
            filters = None
            if apply is not None:
                schema = target.checkpoint_schema if isinstance(target, TargetConfig) else TargetConfig.checkpoint_schema
                filters = Filter(apply, schema, fold_case=lower_case_table_names(tgt.conn))
            return _Checker(src, tgt, chunk_rows).run(tuple(databases), tuple(ignore_databases), filters)
        finally:
            tgt.close()
    finally:
        src.close()


# -- servers -----------------------------------------------------------------------------


class _Side:
    """One server's connection inside its consistent-snapshot transaction."""

    def __init__(self, role: str, server: ServerConfig, conn: Any) -> None:
        self.role = role
        self.server = server
        self.conn = conn
        self.context = ""  # the table being checked, for error messages
        self.renamed: tuple[str, str] | None = None  # (source's qualified name, this side's): a rewrite
        self.flavor = "mariadb"

    @classmethod
    def open(cls, role: str, server: ServerConfig, connect: Connect) -> _Side:
        try:
            conn = connect(server, role)
        except ApplierError:
            raise
        except (MySQLdb.Error, OSError) as e:
            raise ConnectError(f"{role} {server.describe()}: cannot connect ({e})") from None
        side = cls(role, server, conn)
        try:
            for sql in (
                "SET SESSION time_zone = '+00:00'",
                "SET SESSION sql_mode = ''",
                "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
            ):
                side.query(sql)
            side.flavor = "mariadb" if "mariadb" in _s(side.query("SELECT VERSION()")[0][0]).lower() else "mysql"
            if side.flavor == "mysql":  # generated invisible primary keys are columns too
                with contextlib.suppress(ApplierError):  # (MySQL before 8.0.30: no such keys)
                    side.query("SET SESSION show_gipk_in_create_table_and_information_schema = ON")
            side.query("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        except BaseException:
            side.close()
            raise
        return side

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        if self.renamed is not None:  # (literals are hex, numbers or digits: never a `name`)
            sql = sql.replace(*self.renamed)
        try:
            cur = self.conn.cursor()
            try:
                cur.execute(sql, params)
                return list(cur.fetchall() or ())
            finally:
                cur.close()
        except MySQLdb.Error as e:
            code = e.args[0] if e.args and isinstance(e.args[0], int) else 0
            detail = e.args[1] if len(e.args) > 1 else str(e)
            where = f"{self.role} {self.server.describe()}"
            during = f" while checking {self.context}" if self.context else ""
            if isinstance(e, MySQLdb.OperationalError) and code in codes.GONE:
                raise ConnectError(f"lost the connection to {where}{during}: {detail}") from None
            raise ApplierError(f"check failed on {where}{during} ({code}: {detail})") from None

    def close(self) -> None:
        try:
            self.conn.rollback()
            self.conn.close()
        except MySQLdb.Error:
            pass


# -- table metadata ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Column:
    name: str
    data_type: str
    column_type: str
    charset: str | None
    collation: str | None
    nullable: bool
    by_value: bool = False  # JSON, FLOAT/DOUBLE across flavors: compared as parsed values, not by hash

    @property
    def q(self) -> str:
        return _quote(self.name)

    @property
    def kind(self) -> str:
        t = self.data_type
        if t in _EXACT:
            return "exact"
        if t in _FLOAT:
            return "float"
        if t in _TEMPORAL:
            return "temporal"
        if t in _NUMBERED:
            return "numbered"
        if t in _LOB:
            return "lob"
        if t in ("char", "varchar", "binary", "varbinary"):
            return "string"
        return "other"  # UUID, INET6, ...: compared through their text form

    @property
    def signature(self) -> tuple[str, str, str | None]:
        return (self.name.lower(), _INT_WIDTH.sub(r"\1", self.column_type), self.charset)

    @property
    def cross_signature(self) -> tuple[str, str, str | None]:
        """``signature`` where MySQL and MariaDB only spell a type differently: YEAR is
        year(4) on MariaDB, and MariaDB's JSON is a LONGTEXT (utf8mb4)."""
        name, ctype, charset = self.signature
        if ctype == "year(4)":
            ctype = "year"
        if ctype == "json":
            ctype, charset = "longtext", "utf8mb4"
        return name, ctype, charset

    # SQL for this column ------------------------------------------------------------

    def hash_sql(self) -> str:
        """An exact text form for the row hash: never NULL unless the value is, no '#'."""
        if self.by_value:
            return "'J'"  # compared by ``_Checker._by_value`` (NULL-ness: by the null bits)
        kind = self.kind
        if kind in ("exact", "temporal"):
            return self.q
        if kind == "float":
            return f"CAST({self.q} AS DOUBLE)"
        if self.data_type == "bit":
            return f"({self.q} + 0)"
        if kind == "lob":
            return f"SHA2({self.q}, 256)"
        return f"HEX({self.q})"

    def text_sql(self) -> str:
        """``hash_sql`` as a string, for comparing single rows."""
        return f"CAST({self.hash_sql()} AS CHAR)"

    def show_sql(self) -> str:
        """What a report shows: the text, or ``length:hex-prefix`` for strings."""
        if self.kind in ("exact", "float", "temporal") or self.data_type == "bit":
            return self.text_sql()
        return f"CONCAT(LENGTH({self.q}), ':', HEX(LEFT(CAST({self.q} AS BINARY), {_SHOW_BYTES})))"

    def key_sql(self) -> str:
        """A key value as text from which ``literal`` rebuilds it exactly."""
        kind = self.kind
        if kind in ("exact", "temporal"):
            return f"CAST({self.q} AS CHAR)"
        if kind == "float":
            return f"CAST(CAST({self.q} AS DOUBLE) AS CHAR)"
        if kind == "numbered":
            return f"CAST({self.q} + 0 AS CHAR)"
        if kind == "other":
            return f"HEX(CAST({self.q} AS CHAR))"
        return f"HEX({self.q})"

    def order_sql(self) -> str:
        """A value whose Python order and equality match the server's for this key column."""
        kind = self.kind
        if kind == "exact":
            return self.q
        if kind == "float":
            return f"CAST({self.q} AS DOUBLE)"
        if kind in ("numbered", "temporal"):
            return f"({self.q} + 0)"
        if self.charset and self.charset != "binary":
            return f"HEX(WEIGHT_STRING({self.q}))"
        return f"HEX({self.q})"

    def literal(self, raw: str) -> str:
        """The SQL literal for a ``key_sql`` value, with the source's type and collation."""
        kind = self.kind
        if kind in ("exact", "numbered"):
            return _checked(raw, _NUMBER, self)
        if kind == "float":
            text = _checked(raw, _FLOAT_TEXT, self)
            return text if "e" in text.lower() else f"{text}e0"
        if kind == "temporal":
            return "'" + _checked(raw, _TEMPORAL_TEXT, self) + "'"
        hexed = _checked(raw, _HEX, self)
        if kind == "other":
            return f"CONVERT(_binary X'{hexed}' USING utf8mb4)"
        if not self.charset or self.charset == "binary" or not _NAME.fullmatch(self.charset):
            return f"_binary X'{hexed}'"
        text = f"_{self.charset} X'{hexed}'"
        if self.collation and _NAME.fullmatch(self.collation):
            text += f" COLLATE {self.collation}"
        return text

    def show_key(self, raw: str) -> str:
        kind = self.kind
        if self.data_type in ("enum", "set"):
            members = [m.replace("''", "'") for m in _MEMBER.findall(self.column_type)]
            number = int(raw)
            if self.data_type == "enum":
                names = [members[number - 1]] if 0 < number <= len(members) else [raw]
            else:
                names = [m for i, m in enumerate(members) if number >> i & 1]
            return repr(",".join(names))
        if kind in ("exact", "float", "numbered"):
            return raw
        if kind == "temporal":
            return f"'{raw}'"
        data = bytes.fromhex(raw)
        if kind == "other":
            return repr(data.decode("utf-8", "backslashreplace"))
        return _show_bytes(data, len(data), self.charset)

    def show(self, value: Any) -> str:
        """A ``show_sql`` value for a report."""
        if value is None:
            return "NULL"
        value = _s(value)
        if self.kind in ("exact", "float", "temporal") or self.data_type == "bit":
            return value if self.kind != "temporal" else f"'{value}'"
        length, _, hexed = value.partition(":")
        charset = "utf8mb4" if self.kind == "other" else self.charset
        return _show_bytes(bytes.fromhex(hexed), int(length), charset)


@dataclass(frozen=True)
class _Table:
    db: str
    name: str
    columns: tuple[_Column, ...]
    key: tuple[_Column, ...]  # empty: no usable key, compared as a multiset

    @property
    def fq(self) -> str:
        return _qname(self.db, self.name)

    def row_hash_sql(self) -> str:
        parts = [c.hash_sql() for c in self.columns]
        nullable = [f"ISNULL({c.q})" for c in self.columns if c.nullable]
        if nullable:
            parts.append(f"CONCAT({', '.join(nullable)})")
        return f"SHA2(CONCAT_WS('#', {', '.join(parts)}), 256)"

    def aggregate_sql(self, where: str) -> str:
        """Count and the sum of the row hashes' first 64 bits over ``where``."""
        return (
            f"SELECT COUNT(*), SUM(CAST(CONV(LEFT({self.row_hash_sql()}, 16), 16, 10) "
            f"AS UNSIGNED)) FROM {self.fq} {where}"
        )

    def order_by(self) -> str:
        return "ORDER BY " + ", ".join(c.q for c in self.key)

    def key_name(self) -> str:
        names = [c.name for c in self.key]
        return names[0] if len(names) == 1 else f"({', '.join(names)})"

    def show_key(self, raw: Sequence[str]) -> str:
        return ", ".join(f"{c.name}={c.show_key(v)}" for c, v in zip(self.key, raw, strict=True))

    def show_key_value(self, raw: Sequence[str]) -> str:
        shown = [c.show_key(v) for c, v in zip(self.key, raw, strict=True)]
        return shown[0] if len(shown) == 1 else f"({', '.join(shown)})"

    def literals(self, raw: Sequence[str]) -> list[str]:
        return [c.literal(_s(v)) for c, v in zip(self.key, raw, strict=True)]

    def where(self, lower: Sequence[str] | None, upper: Sequence[str] | None) -> str:
        """``WHERE lower < key <= upper`` (either bound may be open)."""
        cols = [c.q for c in self.key]
        parts = []
        if lower is not None:
            parts.append(_compare(cols, self.literals(lower), ">", ">="))
        if upper is not None:
            parts.append(_compare(cols, self.literals(upper), "<", "<="))
        return "WHERE " + " AND ".join(parts) if parts else ""

    def where_equal(self, raw: Sequence[str]) -> str:
        lits = self.literals(raw)
        return "WHERE " + " AND ".join(f"{c.q} = {v}" for c, v in zip(self.key, lits, strict=True))

    def chunk_label(
        self, number: int, lower: Sequence[str] | None, upper: Sequence[str] | None
    ) -> str:
        lo = "from start" if lower is None else f"after {self.show_key_value(lower)}"
        hi = "to end" if upper is None else f"up to {self.show_key_value(upper)}"
        return f"chunk {number} ({self.key_name()} {lo} {hi})"


def _compare(cols: list[str], lits: list[str], strict: str, inclusive: str) -> str:
    """``key > lits`` (strict ">", inclusive ">=") or ``key <= lits`` ("<", "<="), expanded.

    The last column uses ``>``/``<=``; the leading ``a >= x`` lets the optimizer use an
    index range on composite keys.
    """
    last = ">" if strict == ">" else "<="
    expr = f"{cols[-1]} {last} {lits[-1]}"
    for col, lit in zip(reversed(cols[:-1]), reversed(lits[:-1]), strict=True):
        expr = f"{col} {strict} {lit} OR ({col} = {lit} AND ({expr}))"
    if len(cols) > 1:
        expr = f"{cols[0]} {inclusive} {lits[0]} AND ({expr})"
    return f"({expr})"


# -- the check ---------------------------------------------------------------------------


class _Checker:
    def __init__(self, src: _Side, tgt: _Side, chunk_rows: int) -> None:
        self.src = src
        self.tgt = tgt
        self.chunk_rows = chunk_rows

    def run(self, databases: tuple[str, ...], ignored: tuple[str, ...], filters: Filter | None = None) -> CheckReport:
        src_schemas = _schemas(self.src, databases, ignored, filters, source=True)
        tgt_schemas = _schemas(self.tgt, databases, ignored, filters)
        src_tables = _tables(self.src, src_schemas)
        tgt_tables = _tables(self.tgt, tgt_schemas)
        # by target name: source (db, table) -> target (db, table), filtered tables left out
        origin: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for db, name in sorted(src_tables):
            origin.setdefault((filters.rewrite(db) if filters else db, name), []).append((db, name))
        if filters is not None:
            origin = {k: v for k, v in origin.items() if filters.table(*k)}
            tgt_tables = {k for k in tgt_tables if filters.table(*k)}
        src_columns = _columns(self.src, src_schemas)
        tgt_columns = _columns(self.tgt, tgt_schemas)
        keys = _keys(self.src, src_schemas, src_columns)
        cross = self.src.flavor != self.tgt.flavor

        diffs: list[TableDiff] = []
        rows_checked = 0
        for tdb, name in sorted(origin.keys() | tgt_tables):
            sources = origin.get((tdb, name), ())
            db = sources[0][0] if sources else tdb
            also = "" if db == tdb else f" (as {_qname(tdb, name)})"
            if len(sources) > 1:
                diffs.append(TableDiff(tdb, name, "rewritten from several source tables ("
                                       f"{', '.join(_qname(*s) for s in sources)}): not compared"))
                continue
            if (tdb, name) not in tgt_tables:
                diffs.append(TableDiff(db, name, f"table missing on target{also}"))
                continue
            if not sources:
                diffs.append(TableDiff(db, name, "extra table on target (not on source)"))
                continue
            cols = src_columns.get((db, name), ())
            theirs = tgt_columns.get((tdb, name), ())
            why = _column_difference(cols, theirs, cross)
            if why:
                diffs.append(TableDiff(db, name, f"column list differs: {why}"))
                continue
            if cross:  # JSON: text on MariaDB, normalized on MySQL; doubles: printed apart
                cols = tuple(
                    dataclasses.replace(c, by_value=True)
                    if "json" in (c.data_type, o.data_type) or c.kind == "float" else c
                    for c, o in zip(cols, theirs, strict=True)
                )
            table = _Table(db, name, cols, keys.get((db, name), ()))
            self.src.context = self.tgt.context = table.fq
            self.tgt.renamed = (table.fq, _qname(tdb, name)) if tdb != db else None
            rows, diff = self._check_table(table)
            self.src.context = self.tgt.context = ""
            self.tgt.renamed = None
            rows_checked += rows
            if diff is not None:
                diffs.append(diff)
        return CheckReport(sum(map(len, origin.values())), rows_checked, tuple(diffs))

    def _check_table(self, t: _Table) -> tuple[int, TableDiff | None]:
        if not t.key:
            return self._check_whole(t)
        key_sql = ", ".join(c.key_sql() for c in t.key)
        nkey = len(t.key)
        rows_checked = 0
        lower: tuple[str, ...] | None = None
        number = 0
        while True:
            number += 1
            rows = self.src.query(
                f"SELECT {key_sql}, {t.row_hash_sql()} FROM {t.fq} {t.where(lower, None)} "
                f"{t.order_by()} LIMIT {self.chunk_rows}"
            )
            final = len(rows) < self.chunk_rows
            upper = None if final else tuple(_s(v) for v in rows[-1][:nkey])
            expected = (len(rows), sum(int(_s(r[nkey])[:16], 16) for r in rows))
            got = self._aggregate(self.tgt, t, t.where(lower, upper))
            rows_checked += len(rows)
            if got != expected:
                label = t.chunk_label(number, lower, upper)
                return rows_checked, self._locate(t, lower, upper, label)
            if any(c.by_value for c in t.columns):
                diff = self._by_value(t, lower, upper, t.chunk_label(number, lower, upper))
                if diff is not None:
                    return rows_checked, diff
            if final:
                return rows_checked, None
            lower = upper

    def _by_value(
        self, t: _Table, lower: tuple[str, ...] | None, upper: tuple[str, ...] | None, label: str
    ) -> TableDiff | None:
        """Across flavors, the JSON and FLOAT/DOUBLE columns of a chunk whose rows
        otherwise agree: the first row (in key order) whose document differs as a value
        (objects as sets of members, numbers by value) or whose double differs, or None."""
        nkey = len(t.key)
        cols = [c for c in t.columns if c.by_value]
        sql = (f"SELECT {', '.join(c.key_sql() for c in t.key)}, "
               f"{', '.join(f'CAST({c.q} AS CHAR)' for c in cols)} FROM {t.fq} "
               f"{t.where(lower, upper)} {t.order_by()}")
        src = [(tuple(_s(v) for v in r[:nkey]), r[nkey:]) for r in self.src.query(sql)]
        tgt = dict((tuple(_s(v) for v in r[:nkey]), r[nkey:]) for r in self.tgt.query(sql))
        for key, values in src:
            theirs = tgt.get(key)
            if theirs is None:  # pragma: no cover - the chunk's hashes agreed
                continue
            for c, a, b in zip(cols, values, theirs, strict=True):
                if c.kind == "float":
                    if not _same_double(a, b):
                        return TableDiff(t.db, t.name, f"column `{c.name}` differs: source {_show_json(a)}, "
                                         f"target {_show_json(b)}", label, t.show_key(key))
                elif _json_value(a) != _json_value(b):
                    return TableDiff(t.db, t.name, f"column `{c.name}` differs (as JSON): source "
                                     f"{_show_json(a)}, target {_show_json(b)}", label, t.show_key(key))
        return None

    @staticmethod
    def _aggregate(side: _Side, t: _Table, where: str) -> tuple[int, int]:
        ((count, total),) = side.query(t.aggregate_sql(where))
        return int(count), int(total or 0)

    def _locate(
        self, t: _Table, lower: tuple[str, ...] | None, upper: tuple[str, ...] | None, label: str
    ) -> TableDiff:
        """The first row, in key order, that differs within a chunk."""
        nkey = len(t.key)
        sql = (
            f"SELECT {', '.join(c.order_sql() for c in t.key)}, "
            f"{', '.join(c.key_sql() for c in t.key)}, {t.row_hash_sql()} "
            f"FROM {t.fq} {t.where(lower, upper)} {t.order_by()}"
        )

        def by_order(side: _Side) -> dict[tuple[Any, ...], tuple[tuple[str, ...], str]]:
            return {
                tuple(_s(v) for v in r[:nkey]): (
                    tuple(_s(v) for v in r[nkey : 2 * nkey]),
                    _s(r[2 * nkey]),
                )
                for r in side.query(sql)
            }

        src, tgt = by_order(self.src), by_order(self.tgt)
        for token in sorted(src.keys() | tgt.keys()):
            if token not in tgt:
                return TableDiff(
                    t.db, t.name, "row missing on target", label, t.show_key(src[token][0])
                )
            if token not in src:
                return TableDiff(
                    t.db, t.name, "extra row on target", label, t.show_key(tgt[token][0])
                )
            (src_key, src_hash), (tgt_key, tgt_hash) = src[token], tgt[token]
            if src_hash != tgt_hash:
                why = self._row_difference(t, src_key, tgt_key)
                return TableDiff(t.db, t.name, f"row differs: {why}", label, t.show_key(src_key))
        return TableDiff(
            t.db,
            t.name,
            "chunk checksum differs but no single row does (rows changed during the check?)",
            label,
        )

    def _row_difference(self, t: _Table, src_key: Sequence[str], tgt_key: Sequence[str]) -> str:
        cols = t.columns
        select = ", ".join([*(c.text_sql() for c in cols), *(c.show_sql() for c in cols)])
        src_rows = self.src.query(f"SELECT {select} FROM {t.fq} {t.where_equal(src_key)}")
        tgt_rows = self.tgt.query(f"SELECT {select} FROM {t.fq} {t.where_equal(tgt_key)}")
        if not src_rows or not tgt_rows:  # pragma: no cover - only if rows changed meanwhile
            return "row hash differs"
        s, g, n = src_rows[0], tgt_rows[0], len(cols)
        differing = [i for i in range(n) if s[i] != g[i]]
        if not differing:  # pragma: no cover - a hash difference always has a column
            return "row hash differs"
        names = ", ".join(f"`{cols[i].name}`" for i in differing)
        i = differing[0]
        values = f"source {cols[i].show(s[n + i])}, target {cols[i].show(g[n + i])}"
        if len(differing) == 1:
            return f"column {names} differs: {values}"
        return f"columns {names} differ (`{cols[i].name}`: {values})"

    def _check_whole(self, t: _Table) -> tuple[int, TableDiff | None]:
        """No usable key: the whole table as a multiset of row hashes."""
        expected = self._aggregate(self.src, t, "")
        got = self._aggregate(self.tgt, t, "")
        if got == expected and any(c.by_value for c in t.columns):
            sql = f"SELECT {', '.join(f'CAST({c.q} AS CHAR)' for c in t.columns if c.by_value)} FROM {t.fq}"
            kinds = [c.kind for c in t.columns if c.by_value]
            src = sorted(_canonical(r, kinds) for r in self.src.query(sql))
            if src != sorted(_canonical(r, kinds) for r in self.tgt.query(sql)):
                return expected[0], TableDiff(t.db, t.name, "JSON documents or doubles differ (as values)",
                                              WHOLE_TABLE)
        if got == expected:
            return expected[0], None
        sql = f"SELECT {t.row_hash_sql()} AS h, COUNT(*) FROM {t.fq} GROUP BY h"
        src = {_s(h): int(n) for h, n in self.src.query(sql)}
        tgt = {_s(h): int(n) for h, n in self.tgt.query(sql)}
        for h in sorted(src.keys() | tgt.keys()):
            a, b = src.get(h, 0), tgt.get(h, 0)
            if a == b:
                continue
            side = self.src if a > b else self.tgt
            shown = ", ".join(c.show_sql() for c in t.columns)
            rows = side.query(
                f"SELECT {shown} FROM {t.fq} WHERE {t.row_hash_sql()} = '{_checked(h, _HEX)}' "
                "LIMIT 1"
            )
            row = (
                ", ".join(f"{c.name}={c.show(v)}" for c, v in zip(t.columns, rows[0], strict=True))
                if rows
                else None
            )
            if b == 0:
                reason = (
                    "row missing on target" if a == 1 else f"row ({a} copies) missing on target"
                )
            elif a == 0:
                reason = "extra row on target" if b == 1 else f"extra row on target ({b} copies)"
            else:
                reason = f"row appears {a} times on source, {b} times on target"
            return expected[0], TableDiff(t.db, t.name, reason, WHOLE_TABLE, row)
        return expected[0], TableDiff(  # pragma: no cover - only if rows changed meanwhile
            t.db, t.name, "table checksum differs (rows changed during the check?)", WHOLE_TABLE
        )


# -- information_schema ------------------------------------------------------------------


def _schemas(side: _Side, databases: tuple[str, ...], ignored: tuple[str, ...],
             filters: Filter | None = None, source: bool = False) -> list[str]:
    """The databases of one side to compare: selected by their target name (a source
    database's rewritten one), by ``databases``/``ignored`` and the filters' database
    rules."""
    skip = {d.lower() for d in ignored}
    wanted = set(databases)
    out = []
    for name in (_s(r[0]) for r in side.query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")):
        target = name
        if filters is not None:
            target = filters.target_database(name) if source else (name if filters.compared_on_target(name) else None)
        if target is not None and (not wanted or target in wanted) and target.lower() not in skip:
            out.append(name)
    return sorted(out)


def _in(values: Sequence[str]) -> str:
    return ", ".join(["%s"] * len(values))


def _tables(side: _Side, schemas: list[str]) -> set[tuple[str, str]]:
    if not schemas:
        return set()
    rows = side.query(
        "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES "
        f"WHERE TABLE_SCHEMA IN ({_in(schemas)}) AND TABLE_TYPE IN ({_in(_TABLE_TYPES)})",
        [*schemas, *_TABLE_TYPES],
    )
    return {(_s(db), _s(name)) for db, name in rows}


def _columns(side: _Side, schemas: list[str]) -> dict[tuple[str, str], tuple[_Column, ...]]:
    if not schemas:
        return {}
    rows = side.query(
        "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, "
        "CHARACTER_SET_NAME, COLLATION_NAME, IS_NULLABLE FROM information_schema.COLUMNS "
        f"WHERE TABLE_SCHEMA IN ({_in(schemas)}) "
        "ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION",
        schemas,
    )
    out: dict[tuple[str, str], list[_Column]] = {}
    for db, table, name, data_type, column_type, charset, collation, nullable in rows:
        out.setdefault((_s(db), _s(table)), []).append(
            _Column(
                _s(name),
                _s(data_type).lower(),
                _s(column_type).lower(),
                _s(charset) if charset is not None else None,
                _s(collation) if collation is not None else None,
                _s(nullable) == "YES",
            )
        )
    return {k: tuple(v) for k, v in out.items()}


def _keys(
    side: _Side, schemas: list[str], columns: dict[tuple[str, str], tuple[_Column, ...]]
) -> dict[tuple[str, str], tuple[_Column, ...]]:
    """Per table: the primary key, else the first unique BTREE key with no nullable column."""
    if not schemas:
        return {}
    rows = side.query(
        "SELECT TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, COLUMN_NAME, NULLABLE, INDEX_TYPE "
        "FROM information_schema.STATISTICS "
        f"WHERE TABLE_SCHEMA IN ({_in(schemas)}) AND NON_UNIQUE = 0 "
        "ORDER BY TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX",
        schemas,
    )
    indexes: dict[tuple[str, str], dict[str, list[str]]] = {}
    unusable: set[tuple[str, str, str]] = set()
    for db, table, index, column, nullable, index_type in rows:
        db, table, index = _s(db), _s(table), _s(index)
        indexes.setdefault((db, table), {}).setdefault(index, []).append(_s(column))
        if _s(nullable or "") == "YES" or _s(index_type or "BTREE") != "BTREE":
            unusable.add((db, table, index))
    out: dict[tuple[str, str], tuple[_Column, ...]] = {}
    for (db, table), by_name in indexes.items():
        usable = {n: cols for n, cols in by_name.items() if (db, table, n) not in unusable}
        if not usable:
            continue
        name = "PRIMARY" if "PRIMARY" in usable else min(usable, key=lambda n: (len(usable[n]), n))
        by_column = {c.name.lower(): c for c in columns.get((db, table), ())}
        key = [by_column.get(n.lower()) for n in usable[name]]
        if all(c is not None for c in key):
            out[(db, table)] = tuple(c for c in key if c is not None)
    return out


def _column_difference(src: Sequence[_Column], tgt: Sequence[_Column], cross: bool = False) -> str:
    for i, (a, b) in enumerate(zip(src, tgt, strict=False)):  # lengths compared below
        if (a.cross_signature != b.cross_signature) if cross else (a.signature != b.signature):
            return (
                f"column {i + 1} is `{a.name}` {_describe(a)} on source, "
                f"`{b.name}` {_describe(b)} on target"
            )
    if len(src) > len(tgt):
        missing = ", ".join(f"`{c.name}`" for c in src[len(tgt) :])
        return f"target lacks column(s) {missing}"
    if len(tgt) > len(src):
        extra = ", ".join(f"`{c.name}`" for c in tgt[len(src) :])
        return f"target has extra column(s) {extra}"
    return ""


def _describe(c: _Column) -> str:
    return c.column_type + (f" charset {c.charset}" if c.charset else "")


# -- helpers -----------------------------------------------------------------------------


def _s(value: Any) -> Any:
    """Text from the driver may arrive as bytes (binary metadata); make it str."""
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "surrogateescape")
    return value


def _json_value(text: Any) -> Any:
    """A JSON document's value: numbers exactly (1.50 == 1.5, 1e2 == 100), objects as dicts."""
    if text is None:
        return None
    text = _s(text)
    try:
        return json.loads(text, parse_float=decimal.Decimal, parse_int=decimal.Decimal)
    except ValueError:
        return ("not JSON", text)


def _same_double(a: Any, b: Any) -> bool:
    """Two servers' texts of one FLOAT/DOUBLE: MariaDB prints the shortest exact form,
    MySQL at most 16 digits (DBL_MAX comes out as 1.797693134862316e308), so equal
    within the last printed digit."""
    if a is None or b is None:
        return a is b
    x, y = float(_s(a)), float(_s(b))
    return x == y or math.isclose(x, y, rel_tol=1e-15)


def _canonical(row: Sequence[Any], kinds: Sequence[str]) -> str:
    """A row's by-value columns in one text (the multiset of a table without a key):
    doubles to 15 digits (what both flavors' texts agree on)."""
    return json.dumps([(f"{float(_s(v)):.15g}" if v is not None else None) if kind == "float"
                       else _json_value(v) for v, kind in zip(row, kinds, strict=True)],
                      sort_keys=True, default=str)


def _show_json(text: Any) -> str:
    if text is None:
        return "NULL"
    text = _s(text)
    return repr(text[:_SHOW_BYTES] + ("..." if len(text) > _SHOW_BYTES else ""))


def _checked(raw: Any, pattern: re.Pattern[str], column: _Column | None = None) -> str:
    """``raw`` if it has the shape we expect; it is spliced into SQL."""
    text = str(_s(raw))
    if not pattern.fullmatch(text):
        where = f" for column `{column.name}` ({column.column_type})" if column else ""
        raise ApplierError(f"check: unexpected key value {text!r}{where}")
    return text


_CODECS = {
    "utf8mb4": "utf-8",
    "utf8mb3": "utf-8",
    "utf8": "utf-8",
    "latin1": "cp1252",
    "ucs2": "utf-16-be",
    "utf16": "utf-16-be",
    "utf16le": "utf-16-le",
    "utf32": "utf-32-be",
}


def _show_bytes(data: bytes, length: int, charset: str | None) -> str:
    """A short, readable form of a string value (``0x..`` for binary data)."""
    more = "..." if length > len(data) else ""
    tail = f" ({length} bytes)" if more else ""
    if not charset or charset == "binary":
        return f"0x{data.hex().upper()}{more}{tail}"
    name = _CODECS.get(charset.lower(), charset)
    try:
        codecs.lookup(name)
    except LookupError:
        name = "utf-8"
    return repr(data.decode(name, "backslashreplace")) + more + tail

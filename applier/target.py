"""SQL for the target: decoded row changes -> statements, executed with strict checks.

Two ways to turn a batch of whole transactions into statements:

* ``compacted`` (tables whose only unique key is the row key): changes to one row
  inside the batch collapse to its net effect (insert, delete, or replace by its final
  image), then per table one multi-row DELETE, one multi-row INSERT and, for rows that
  existed and change, one multi-row INSERT ... ON DUPLICATE KEY UPDATE (in place: about
  10% less target work than DELETE + INSERT), keys sorted so concurrent workers lock
  rows in the same order. Rows are independent here (no other
  unique key can make the order of two rows' changes matter), so this leaves the
  target exactly as the source's row-by-row order would.
* ``in order`` (tables with secondary unique keys, tables without a row key, barriers):
  each rows event applied in source order, one statement per row (INSERT per event).

Every statement's affected-row count is checked (connections use CLIENT_FOUND_ROWS):
a row that is missing for UPDATE/DELETE, or an INSERT that does not insert, means the
target has diverged, and the batch is rolled back with an error naming the table.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import MySQLdb

from . import events as ev
from . import rowcodec as rc
from .errors import SchemaError, TargetError
from .schema import SchemaCache, TableMap, TableSchema, check_compatible, parse_table_map
from .transactions import RowsEvent, Statement, Transaction, is_database_statement

log = logging.getLogger(__name__)

decode_rows = rc.fast_decode_rows  # native when built

RETRYABLE = {1213, 1205}  # deadlock, lock wait timeout
NO_FOREIGN_KEY_CHECKS_F = 0x0002  # rows event flag: the source session had foreign_key_checks=0
FK_CHECKS = "foreign_key_checks="  # ``what`` of the session statements that set them
SESSION_STATEMENT = -1  # StatementLog's "expected rows" of a session setting (nothing checked)
SESSION_SETUP = (
    "SET NAMES utf8mb4",
    "SET SESSION time_zone = '+00:00'",
    "SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'",
    "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
)


def quote_ident(name: str) -> bytes:
    return ("`" + name.replace("`", "``") + "`").encode()


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


class TableCache:
    """TableMap bytes -> Table; target schemas from a SchemaCache."""

    def __init__(self, schemas: SchemaCache) -> None:
        self.schemas = schemas
        self._by_map: dict[bytes, Table] = {}

    def get(self, tmap_body: bytes) -> Table:
        table = self._by_map.get(tmap_body)
        if table is None:
            tmap = parse_table_map(tmap_body)
            schema = self.schemas.get(tmap.db, tmap.table)
            check_compatible(tmap, schema)
            table = self._by_map[tmap_body] = _build_table(tmap, schema)
        return table

    def invalidate(self) -> None:
        self._by_map.clear()
        self.schemas.invalidate()


def _build_table(tmap: TableMap, schema: TableSchema) -> Table:
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
    return Table(tmap, schema, plan, qualified, head, writable, key_cols, compactable, names, upsert,
                 operator.itemgetter(*key_cols) if key_cols else None, _getter(writable))


def _getter(indexes: tuple[int, ...]) -> Callable[[rc.Row], tuple]:
    """itemgetter that always returns a tuple (itemgetter of one index returns the item)."""
    if not indexes:
        return lambda row: ()
    if len(indexes) == 1:
        (i,) = indexes
        return lambda row: (row[i],)
    return operator.itemgetter(*indexes)


class Executor:
    """Runs statements on one target connection and checks affected rows."""

    def __init__(self, conn: MySQLdb.connections.Connection) -> None:
        self.conn = conn
        for sql in SESSION_SETUP:
            conn.query(sql)

    def run(self, sql: bytes, expect: int | None, what: str) -> int:
        try:
            self.conn.query(sql)
        except MySQLdb.Error as e:
            code = e.args[0] if e.args else 0
            if code in RETRYABLE:
                raise
            if code == 1146:
                raise SchemaError(f"target: {what}: {e.args[1]}: create the table on the target") from None
            raise TargetError(f"target refused {what}: error {code}: {_msg(e)}") from None
        n = self.conn.affected_rows()
        if expect is not None and n != expect:
            raise TargetError(
                f"target has diverged: {what} affected {n} rows, expected {expect}; "
                "compare with `applier check` and re-seed the target"
            )
        return n


    def session(self, sql: bytes, what: str) -> None:
        """A session setting (no rows, no check)."""
        self.conn.query(sql)


class StatementLog:
    """Stands in for an Executor while a worker plans a batch: records the statements
    (sql, expected affected rows or SESSION_STATEMENT for session settings, what) to run
    later on the target connection (``session.Session.execute``), so planning the next
    batch overlaps the target executing the current one."""

    def __init__(self) -> None:
        self.statements: list[tuple[bytes, int | None, str]] = []

    def run(self, sql: bytes, expect: int | None, what: str) -> int:
        self.statements.append((sql, expect, what))
        return expect or 0

    def session(self, sql: bytes, what: str) -> None:
        self.statements.append((sql, SESSION_STATEMENT, what))

    def take(self) -> list[tuple[bytes, int | None, str]]:
        out, self.statements = self.statements, []
        return out


def _msg(e: MySQLdb.Error) -> str:
    msg = e.args[1] if len(e.args) > 1 else str(e)
    return msg.decode("utf-8", "replace") if isinstance(msg, bytes) else str(msg)


def where_key(table: Table, image: rc.Row) -> bytes:
    names = table.col_names
    if table.key is not None:
        return b" AND ".join(names[i] + b"=" + image[i] for i in table.key)  # type: ignore[operator]
    # no row key: match every stored column, NULL-safe, one row only
    return b" AND ".join(
        names[i] + b"<=>" + image[i] for i in table.writable if image[i] is not None
    )


def _values(table: Table, image: rc.Row) -> bytes:
    assert table.writable_of is not None
    values = table.writable_of(image)
    if None in values:  # a column the image does not carry
        values = tuple(v or b"DEFAULT" for v in values)
    return b"(" + b",".join(values) + b")"


class BatchApplier:
    """Applies whole transactions (a batch) inside the caller's open target transaction."""

    def __init__(self, executor: Executor | StatementLog, tables: TableCache) -> None:
        self.ex = executor
        self.tables = tables
        self._fk_checks = True

    @property
    def fk_checks(self) -> bool:
        """foreign_key_checks as this applier last set them."""
        return self._fk_checks

    def foreign_key_checks(self, on: bool) -> None:
        """Follow the source session's foreign_key_checks (rows event flag, statement
        flags2): with them off there, deletes cascade nothing and orphans are allowed."""
        if on != self._fk_checks:
            flag = b"1" if on else b"0"
            self.ex.session(b"SET SESSION foreign_key_checks = " + flag, FK_CHECKS + flag.decode())
            self._fk_checks = on

    # -- in source order --------------------------------------------------------------

    def apply_event_in_order(self, table: Table, op: int, rows) -> None:
        name = f"{table.tmap.db}.{table.tmap.table}"
        if op == ev.INSERT:
            values = b",".join(_values(table, after) for _, after in rows)
            self.ex.run(table.insert_head + values, len(rows), f"INSERT into {name}")
            return
        limit = b"" if table.key is not None else b" LIMIT 1"
        for before, after in rows:
            if op == ev.DELETE:
                sql = b"DELETE FROM " + table.name + b" WHERE " + where_key(table, before) + limit
                self.ex.run(sql, 1, f"DELETE from {name}")
            else:
                sets = _set_clause(table, before, after)
                if not sets:
                    sets = table.col_names[table.writable[0]] + b"=" + table.col_names[table.writable[0]]
                sql = b"UPDATE " + table.name + b" SET " + sets + b" WHERE " + where_key(table, before) + limit
                self.ex.run(sql, 1, f"UPDATE of {name}")

    def apply_statement(self, stmt: Statement) -> None:
        self.foreign_key_checks(not stmt.no_fk_checks)
        if stmt.charset_id is not None:
            self.ex.conn.query(f"SET character_set_client = {stmt.charset_id}".encode())
        try:
            # CREATE/DROP DATABASE is logged with the database itself as default database
            if stmt.db and not is_database_statement(stmt):
                try:
                    self.ex.conn.query(b"USE " + quote_ident(stmt.db))
                except MySQLdb.Error as e:
                    if not e.args or e.args[0] != 1049:
                        raise
                    # The default database is a filtered one (not on the target): the
                    # statement names its tables qualified. Unqualified names must not
                    # resolve to the previous statement's database: use one where
                    # nothing can be found or created by accident.
                    self.ex.conn.query(b"USE information_schema")
            self.ex.run(stmt.sql, None, f"statement {stmt.sql[:80]!r}")
        finally:
            self.ex.conn.query(b"SET NAMES utf8mb4")
        self.tables.invalidate()

    # -- batch ---------------------------------------------------------------------------

    def apply_batch(self, txns: list[Transaction]) -> int:
        """Apply every transaction of the batch; return rows applied."""
        net = _NetChanges(self)
        total = sum(self.apply_items(txn.table_maps, txn.items, net) for txn in txns)
        net.flush(self)
        return total

    def apply_items(self, txn_maps: dict[int, bytes], items: list[RowsEvent | Statement],
                    net: _NetChanges | None = None) -> int:
        """Apply items in order; changes to compactable tables go through ``net`` (the
        caller's, to compact across calls, or a private one flushed here). ``net`` is
        flushed whenever source order matters (statements, other tables) and when it
        holds ``NET_FLUSH_ROWS`` rows, so memory stays bounded for big transactions."""
        own = net is None
        if net is None:
            net = _NetChanges(self)
        total = 0
        for item in items:
            if isinstance(item, Statement):
                net.flush(self)
                self.apply_statement(item)
                continue
            table = self.tables.get(txn_maps[item.table_id])
            rows = decode_rows(table.plan, item.op, item.body, item.version)
            total += len(rows)
            if table.compactable:
                net.add(table, item.op, rows)
                if net.rows >= NET_FLUSH_ROWS:
                    net.flush(self)
                continue
            net.flush(self)
            # flags follow the 6-byte table id; only barriers (FK tables) get here with them
            self.foreign_key_checks(not item.body[6] & NO_FOREIGN_KEY_CHECKS_F)
            self.apply_event_in_order(table, item.op, rows)
        if own:
            net.flush(self)
        return total

    def new_net(self) -> _NetChanges:
        return _NetChanges(self)


NET_FLUSH_ROWS = 5000  # rows held for compaction before they are written anyway


def _set_clause(table: Table, before: rc.Row, after: rc.Row) -> bytes:
    names = table.col_names
    return b",".join(
        names[i] + b"=" + after[i]  # type: ignore[operator]
        for i in table.writable
        if after[i] is not None and after[i] != before[i]
    )


# net change states of one row within a batch: [state, final image, image the target holds]
_INS, _DEL, _REP = 1, 2, 3


class _NetChanges:
    """Row changes of compactable tables collapsed to their net effect per row key."""

    def __init__(self, applier: BatchApplier) -> None:
        self.applier = applier
        self.tables: dict[bytes, tuple[Table, dict[tuple[bytes, ...], list]]] = {}
        self.rows = 0  # row changes added since the last flush

    def add(self, table: Table, op: int, rows) -> None:
        entry = self.tables.get(table.name)
        if entry is None or entry[0] is not table:
            if entry is not None:
                # Same table, another TableMap: its table_id changed without DDL (source
                # FLUSH TABLES, table cache eviction; DDL never shares a batch). Emit
                # what is pending for it first so its changes keep their order.
                self._emit(self.applier, *entry)
            entry = self.tables[table.name] = (table, {})
        state = entry[1]
        key_of = table.key_of
        assert key_of is not None
        self.rows += len(rows)
        for before, after in rows:
            if before is not None:
                kb = key_of(before)
                if after is not None:
                    ka = key_of(after)
                    if ka == kb:
                        prev = state.get(kb)
                        if prev is None:
                            state[kb] = [_REP, after, before]
                        elif prev[0] == _DEL:  # (an update of a deleted row: the target decides)
                            state[kb] = [_REP, after, prev[2]]
                        else:  # the row's first before image stays: it is what the target holds
                            prev[1] = after
                        continue
                self._delete(state, kb, before)
            if after is not None:
                ka = key_of(after)
                prev = state.get(ka)
                state[ka] = [_REP, after, prev[2]] if prev and prev[0] == _DEL else [_INS, after, None]

    @staticmethod
    def _delete(state: dict, key: tuple, before: rc.Row) -> None:
        prev = state.get(key)
        if prev is not None and prev[0] == _INS:
            del state[key]  # inserted and deleted inside the batch: nothing reaches the target
        else:
            state[key] = [_DEL, None, before]

    def flush(self, applier: BatchApplier) -> None:
        for entry in self.tables.values():
            self._emit(applier, *entry)
        self.tables.clear()
        self.rows = 0

    @staticmethod
    def _emit(applier: BatchApplier, table: Table, state: dict) -> None:
        if not state:
            return
        name = f"{table.tmap.db}.{table.tmap.table}"
        keys = sorted(state)
        deletes, inserts, upserts = [], [], []
        writable_of, upsert = table.writable_of, table.upsert_tail
        for k in keys:
            kind, after, before = state[k]
            if kind == _INS:
                inserts.append(after)
            elif kind == _DEL:
                deletes.append(k)
            elif upsert and _changes(writable_of, before, after):
                upserts.append(after)
            else:
                deletes.append(k)
                inserts.append(after)
        key_cols = table.key
        assert key_cols is not None
        if deletes:
            if len(key_cols) == 1:  # keys are the literals themselves (key_of)
                head, sep, tail = table.col_names[key_cols[0]] + b" IN (", b",", b")"
                conds = deletes
            else:
                head, sep, tail = b"", b" OR ", b""
                conds = [
                    b"(" + b" AND ".join(table.col_names[c] + b"=" + v for c, v in zip(key_cols, k, strict=True)) + b")"
                    for k in deletes
                ]
            for chunk in _chunks(conds):
                cond = head + sep.join(chunk) + tail
                applier.ex.run(b"DELETE FROM " + table.name + b" WHERE " + cond, len(chunk), f"DELETE from {name}")
        if inserts:
            for chunk in _chunks([_values(table, row) for row in inserts]):
                applier.ex.run(table.insert_head + b",".join(chunk), len(chunk), f"INSERT into {name}")
        if upserts:
            # Rows the target holds (before image) that change: updated in place. With
            # CLIENT_FOUND_ROWS each row counts 2 when it existed and changed, 1 when it was
            # missing (inserted) or already held the new values: anything but 2 per row
            # means the target diverged, so the check stays as strict as DELETE + INSERT.
            for chunk in _chunks([_values(table, row) for row in upserts]):
                applier.ex.run(table.insert_head + b",".join(chunk) + upsert, 2 * len(chunk),
                               f"update of {name}")


def _changes(writable_of, before: rc.Row | None, after: rc.Row) -> bool:
    """The final image differs from the one the target holds, which is known whole."""
    if before is None:
        return False
    held = writable_of(before)
    return None not in held and writable_of(after) != held


# A batch's net changes can be far bigger than any source statement (batch_txns x rows x
# width): multi-row statements are split to stay well under max_allowed_packet (4 MiB on
# MySQL 5.7, 16 MiB on MariaDB by default). One part always goes, whatever its size.
MAX_STATEMENT_BYTES = 1 << 20


def _chunks(parts: list[bytes], limit: int = MAX_STATEMENT_BYTES):
    """Consecutive runs of ``parts``, each run's total length under ``limit``."""
    chunk: list[bytes] = []
    size = 0
    for part in parts:
        if chunk and size + len(part) > limit:
            yield chunk
            chunk, size = [], 0
        chunk.append(part)
        size += len(part) + 4
    if chunk:
        yield chunk

"""Replication filters: which row changes and statements reach the target, and into
which database (``[apply] databases``, ``ignore_databases``, ``do_tables``,
``ignore_tables``, ``rewrite_databases``). The one home of these rules: the intake asks
them about every TableMap (``rows``; the native scanner through
``Intake._scan_route``, where a filtered table sends its transactions down the per-event
path, which drops its rows) and every logged statement (``statement``); ``applier
check`` asks which tables it compares (``target_database``, ``compared_on_target``,
``table``); the table caches rewrite TableMaps with ``Rewrite``.

Order, as MySQL's "How Servers Evaluate Replication Filtering Rules" for row events:

1. rewrite: a source database on the left of a ``rewrite_databases`` entry
   (``"from->to"``) becomes the target database on its right, once (not chained: with
   ``a->b`` and ``b->c``, ``a`` goes into ``b``), before any rule below: they all see
   the rewritten name (as MySQL's replicate-rewrite-db);
2. the checkpoint schema is never replicated (neither as a source nor as a target name);
3. database rules: with ``databases`` set, the database must be listed; otherwise it must
   not be in ``ignore_databases``;
4. table rules, when there are any: ``db.table`` patterns with LIKE wildcards (``%`` any
   run of characters, ``_`` any one, ``\\`` makes the next character literal; split at
   the first ``.`` not escaped). A pattern without wildcards is *exact* (MySQL's
   replicate-do-table / replicate-ignore-table), one with a wildcard is *wild*
   (replicate-wild-do-table / replicate-wild-ignore-table), and the first step that
   matches decides:

   a. an exact ``do_tables`` pattern names the table: replicated;
   b. an exact ``ignore_tables`` pattern names it: not;
   c. a wild ``do_tables`` pattern matches it: replicated;
   d. a wild ``ignore_tables`` pattern matches it: not;
   e. nothing matched: not replicated when there are ``do_tables`` patterns, else
      replicated.

   So a named table beats a wildcard either way (``do_tables = ["shop.%"]`` with
   ``ignore_tables = ["shop.secrets"]`` leaves shop.secrets out), and a wild do beats
   a wild ignore (as in MySQL: name the exceptions to a wildcard exactly). ``_`` is a
   wildcard: ``shop.order_items`` also matches ``shop.orderXitems`` and is a wild
   pattern; write ``shop.order\\_items`` for the one table.

Case: names are compared exactly (case-sensitively), unless the target has
``lower_case_table_names`` != 0: then every name, pattern and rewrite compares in
lower case (``bind`` asks the target; ``Filter(..., fold_case=True)``).

Statements (DDL; ``transactions.statement_changes`` tells what one changes). A name is
resolved as the target will run it: a qualified name as written, an unqualified one in
the session's default database, rewritten.

* A table statement (CREATE/ALTER/DROP/RENAME/TRUNCATE TABLE, indexes, views, ...) is
  applied, whole and as logged, when at least one table it changes is replicated, and
  dropped when none is. One that changes both replicated and filtered tables (``RENAME
  TABLE kept.t TO skipped.t``, ``DROP TABLE kept.a, kept.tmp_b``) is applied with a
  warning: the target must then hold its filtered tables as the statement needs them
  (the database ``skipped`` for that rename; for that drop, ``IF EXISTS`` or
  ``kept.tmp_b``); when it does not, the target refuses the statement and the applier
  stops naming it: create what it needs on the target and run again (a DROP the target
  refused for tables it never had is re-run then tolerating "already gone"). (MySQL's
  own filters let the first table that matches a rule decide, or stop; applying keeps
  the replicated side true to the source.)
* CREATE/ALTER/DROP DATABASE: the database rules decide, then, if there are table
  patterns: applied when the database part of a ``do_tables`` pattern matches it (its
  tables are replicated: it must exist), dropped when an ``ignore_tables`` pattern
  ``db.%`` (table part ``%``) matches it, dropped when there are other ``do_tables``
  patterns, else applied. A database that ``rewrite_databases`` renames is never
  created, altered or dropped on the target (the statement names the source database;
  the target database is yours to create): dropped with a warning.
* Other statements (procedures, functions, events, DROP TRIGGER, SAVEPOINT, account
  statements as ``mysql``): the database rules, on the databases of their qualified
  names, else on the (rewritten) default database.

Rewrite and statements: a statement runs with its default database rewritten and its
text unchanged (like MySQL's replicate-rewrite-db): unqualified names land in the
target database; qualified names are not rewritten. A qualified name of a rewritten
database (``a.t`` with ``a->b``) would therefore change the target's ``a.t``, not
``b.t``, which is what it stands for (in a swap ``a->b``, ``b->a`` the target's ``a.t``
even holds the source's ``b.t``): a statement naming one is never run as logged; when
it changes something replicated (through that name or another) it is dropped, whole,
with a warning naming it and its transaction: apply its equivalent on the target by
hand. Nothing is changed by accident, and what follows shows what is missing (rows of a
table it would have created stop the applier naming the target table to create;
``applier check`` shows the rest).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..binlog.transactions import (
    DATABASE_STATEMENT,
    TABLE_STATEMENT,
    RowsEvent,
    Statement,
    Transaction,
    statement_changes,
)
from ..db.sql import like_regex

if TYPE_CHECKING:
    from ..config import ApplyConfig
    from .tables import TableCache

log = logging.getLogger(__name__)

MAX_NAME = 64  # characters of a database or table name
_CACHED = 100_000  # (db, table) decisions kept


def _same(name: str) -> str:
    return name


def _lower(name: str) -> str:
    return name.lower()


# -- syntax (config.py checks every entry with these) -------------------------------------


def _like(part: str, fold: bool) -> tuple[re.Pattern[str], str | None]:
    """A LIKE pattern part -> (regex, its literal text when it has no wildcard)."""
    regex, text = like_regex(part, fold=fold)
    if text is not None and len(text) > MAX_NAME:
        raise ValueError(f"names {text!r}, longer than {MAX_NAME} characters (no database or table name is)")
    return regex, text.lower() if fold and text is not None else text


@dataclass(frozen=True)
class TablePattern:
    """One ``db.table`` pattern of ``do_tables`` / ``ignore_tables``."""

    text: str
    db_re: re.Pattern[str]
    table_re: re.Pattern[str]
    db_literal: str | None  # the database part without wildcards (unescaped), else None
    table_literal: str | None
    table_any: bool  # the table part is only ``%``: every table of the matching databases

    @property
    def exact(self) -> tuple[str, str] | None:
        if self.db_literal is None or self.table_literal is None:
            return None
        return self.db_literal, self.table_literal

    def matches(self, db: str, table: str) -> bool:
        return self.db_re.fullmatch(db) is not None and self.table_re.fullmatch(table) is not None


def parse_table_pattern(text: str, fold: bool = False) -> TablePattern:
    """``db.table`` (LIKE wildcards, ``\\`` escapes) -> TablePattern; ValueError naming
    what is wrong."""
    if text != text.strip():
        raise ValueError("must not start or end with spaces")
    i, n = 0, len(text)
    while i < n and text[i] != ".":
        i += 2 if text[i] == "\\" else 1
    if i >= n:
        raise ValueError("is not db.table: no '.' between the database and the table part "
                         "(a literal '.' is written \\.)")
    db, table = text[:i], text[i + 1 :]
    if not db or not table:
        raise ValueError(f"has an empty {'database' if not db else 'table'} part (every table of a "
                         "database is db.%)")
    db_re, db_literal = _like(db, fold)
    table_re, table_literal = _like(table, fold)
    return TablePattern(text, db_re, table_re, db_literal, table_literal, set(table) == {"%"})


def parse_rewrite(text: str) -> tuple[str, str]:
    """``"from->to"`` (spaces around ``->`` allowed) -> (from, to); ValueError naming what
    is wrong."""
    parts = text.split("->")
    if len(parts) != 2:
        raise ValueError("is not \"from->to\": one '->' between the source and the target database")
    src, dst = (p.strip() for p in parts)
    if not src or not dst:
        raise ValueError(f"has no {'source' if not src else 'target'} database: write \"from->to\"")
    for name in (src, dst):
        if len(name) > MAX_NAME:
            raise ValueError(f"names {name!r}, longer than {MAX_NAME} characters")
    if src == dst:
        raise ValueError(f"rewrites {src!r} into itself")
    return src, dst


class Rewrite:
    """Source database -> target database (``[apply] rewrite_databases``), applied once;
    callable (a name no entry renames is returned as is)."""

    def __init__(self, entries: Iterable[str] = (), fold: bool = False) -> None:
        self.pairs = tuple(parse_rewrite(e) for e in entries)
        self._fold = _lower if fold else _same
        self._map: dict[str, str] = {}
        for src, dst in self.pairs:
            self._map.setdefault(self._fold(src), dst)
        self._into = frozenset(self._fold(dst) for _, dst in self.pairs)

    def __bool__(self) -> bool:
        return bool(self._map)

    def __call__(self, db: str) -> str:
        return self._map.get(self._fold(db), db) if self._map else db

    def renames(self, db: str) -> bool:
        """``db`` is a source database that goes into another one."""
        return self._fold(db) in self._map

    def writes_into(self, db: str) -> bool:
        """Some source database is rewritten into ``db``."""
        return self._fold(db) in self._into


def lower_case_table_names(conn) -> bool:
    """The server compares names in lower case (``lower_case_table_names`` != 0)."""
    cur = conn.cursor()
    try:
        cur.execute("SELECT @@lower_case_table_names")
        (value,) = cur.fetchone()
    finally:
        cur.close()
    return int(value or 0) != 0


def target_rewrite(entries: Iterable[str], conn) -> Rewrite | None:
    """A worker's TableCache rewrite: ``entries`` (``[apply] rewrite_databases``) with the
    case rule of the target behind ``conn``; None without entries (nothing asked)."""
    entries = tuple(entries)
    if not entries:
        return None
    return Rewrite(entries, lower_case_table_names(conn))


# -- the rules ---------------------------------------------------------------------------


class Filter:
    """The rules of one config (see the module docstring). Database and table names
    given to ``database`` and ``table`` are the target's (rewritten); ``rows`` takes a
    TableMap's (the source's)."""

    def __init__(self, apply: ApplyConfig, checkpoint_schema: str, *, fold_case: bool = False) -> None:
        self._apply = apply
        self.checkpoint_schema = checkpoint_schema
        self.set_fold_case(fold_case)

    def set_fold_case(self, fold: bool) -> None:
        """Compare names in lower case (a target with lower_case_table_names) or exactly."""
        a = self._apply
        self.fold_case = fold
        f = self._fold = _lower if fold else _same
        self.only = frozenset(f(d) for d in a.databases)
        self.ignored = frozenset(f(d) for d in (*a.ignore_databases, self.checkpoint_schema))
        self._checkpoint = f(self.checkpoint_schema)
        self.rewrite = Rewrite(a.rewrite_databases, fold)
        self._do = tuple(parse_table_pattern(p, fold) for p in a.do_tables)
        self._ignore = tuple(parse_table_pattern(p, fold) for p in a.ignore_tables)
        self._do_exact = frozenset(p.exact for p in self._do if p.exact)
        self._ignore_exact = frozenset(p.exact for p in self._ignore if p.exact)
        self._do_wild = tuple(p for p in self._do if not p.exact)
        self._ignore_wild = tuple(p for p in self._ignore if not p.exact)
        self._rows: dict[tuple[str, str], bool] = {}
        self._tables: dict[tuple[str, str], bool] = {}

    def bind(self, tables: TableCache) -> None:
        """The coordinator's table cache: its target's case rule (when it has a
        connection) and TableMaps rewritten into their target database, for the intake
        and the serial path alike."""
        conn = getattr(tables.schemas, "conn", None)
        if conn is not None:
            fold = lower_case_table_names(conn)
            if fold != self.fold_case:
                self.set_fold_case(fold)
        tables.rewrite = self.rewrite if self.rewrite else None

    # -- names ---------------------------------------------------------------------------

    def database(self, db: str) -> bool:
        """The database rules, for a target database name (the checkpoint schema never)."""
        db = self._fold(db)
        return db not in self.ignored and (not self.only or db in self.only)

    def allowed(self, db: str) -> bool:
        """The database rules for a source database (rewritten first)."""
        return self.target_database(db) is not None

    def table(self, db: str, table: str) -> bool:
        """Whether the target table ``db.table`` is replicated: database rules, then the
        table rules in MySQL's order (cached)."""
        key = (db, table)
        verdict = self._tables.get(key)
        if verdict is None:
            if len(self._tables) >= _CACHED:
                self._tables.clear()
            verdict = self._tables[key] = self.database(db) and self._table_rules(db, table)
        return verdict

    def _table_rules(self, db: str, table: str) -> bool:
        if not self._do and not self._ignore:
            return True
        key = (self._fold(db), self._fold(table))
        if key in self._do_exact:
            return True
        if key in self._ignore_exact:
            return False
        if any(p.matches(db, table) for p in self._do_wild):
            return True
        if any(p.matches(db, table) for p in self._ignore_wild):
            return False
        return not self._do

    def rows(self, db: str, table: str) -> bool:
        """Whether the rows of a TableMap's ``db.table`` (source names) are applied."""
        key = (db, table)
        verdict = self._rows.get(key)
        if verdict is None:
            if len(self._rows) >= _CACHED:
                self._rows.clear()
            verdict = self._rows[key] = self._fold(db) != self._checkpoint and self.table(self.rewrite(db), table)
        return verdict

    def database_statement(self, db: str) -> bool:
        """Whether CREATE/ALTER/DROP DATABASE ``db`` is applied (module docstring)."""
        if self.rewrite.renames(db) or not self.database(db):
            return False
        if not self._do and not self._ignore:
            return True
        if any(p.db_re.fullmatch(db) for p in self._do):
            return True
        if any(p.table_any and p.db_re.fullmatch(db) for p in self._ignore):
            return False
        return not self._do

    # -- applier check ---------------------------------------------------------------------

    def target_database(self, source_db: str) -> str | None:
        """The target database that a source database's tables go into, or None when the
        database rules leave it out."""
        if self._fold(source_db) == self._checkpoint:
            return None
        db = self.rewrite(source_db)
        return db if self.database(db) else None

    def compared_on_target(self, db: str) -> bool:
        """A target database whose tables ``applier check`` compares: it passes the
        database rules and is not a source database rewritten elsewhere that nothing is
        rewritten into (the target's database of that name is not a replica of it)."""
        return self.database(db) and (not self.rewrite.renames(db) or self.rewrite.writes_into(db))

    # -- statements ------------------------------------------------------------------------

    def _names(self, stmt: Statement) -> tuple[str, list[tuple[str, str | None, bool]]]:
        """(kind, [(database, table or None, qualified)]) as the target would run ``stmt``."""
        changes = statement_changes(stmt)
        default = self.rewrite(stmt.db) if stmt.db else ""
        if changes.kind == DATABASE_STATEMENT:
            return changes.kind, [(db, None, True) for db in changes.databases]
        if changes.kind == TABLE_STATEMENT:
            return changes.kind, [(db or default, table, bool(db)) for db, table in changes.tables]
        if changes.databases:
            return changes.kind, [(db, None, True) for db in changes.databases]
        return changes.kind, [(default, None, False)]

    def _replicated(self, db: str, table: str | None) -> bool:
        if not db:
            return False
        return self.table(db, table) if table is not None else self.database(db)

    def concerns(self, stmt: Statement) -> bool:
        """``stmt`` changes something replicated, in what it stands for (qualified names
        of rewritten databases rewritten too): the STATEMENT-format guard asks this."""
        kind, names = self._names(stmt)
        if kind == DATABASE_STATEMENT:
            return any(self.database(self.rewrite(db)) for db, _, _ in names)
        return any(self._replicated(self.rewrite(db) if qualified else db, table)
                   for db, table, qualified in names)

    def statement(self, stmt: Statement, txn: Transaction | None = None) -> Statement | None:
        """The statement to run on the target (its default database rewritten), or None
        when the filters drop it (module docstring), with a warning when what it drops
        stands for something replicated."""
        kind, names = self._names(stmt)
        if kind == DATABASE_STATEMENT:
            if not names or not all(self.database_statement(db) for db, _, _ in names):
                renamed = [db for db, _, _ in names if self.rewrite.renames(db)]
                if renamed:
                    log.warning("not applied: %r names database %s, which [apply] rewrite_databases renames "
                                "to %s: create, alter or drop the target database yourself",
                                _text(stmt), renamed[0], self.rewrite(renamed[0]))
                return None
            return stmt
        replicated: list[str] = []
        filtered: list[str] = []
        foreign: list[str] = []  # qualified names of rewritten databases
        stands_for_replicated = False
        for db, table, qualified in names:
            shown = f"{db}.{table}" if table is not None else db
            if qualified and self.rewrite.renames(db):
                target = self.rewrite(db)
                stands_for_replicated |= self._replicated(target, table)
                foreign.append(f"{shown} (that is {target}.{table})" if table is not None else
                               f"{shown} (that is {target})")
            elif self._replicated(db, table):
                replicated.append(shown)
            else:
                filtered.append(shown)
        if foreign and (replicated or stands_for_replicated):
            where = f" (transaction {txn.gtid or txn.seq} ending at {txn.file}:{txn.end_pos})" if txn else ""
            log.warning("not applied: %r%s names %s qualified: [apply] rewrite_databases does not rewrite "
                        "statement text, so as logged it would change other tables on the target; apply "
                        "its equivalent there by hand, with the rewritten names", _text(stmt), where,
                        ", ".join(foreign))
            return None
        if not replicated:
            return None
        if filtered:
            log.warning("%r changes replicated %s and filtered %s: applied whole (the target must hold "
                        "what it needs of the filtered ones)", _text(stmt), ", ".join(replicated),
                        ", ".join(filtered))
        default = self.rewrite(stmt.db) if stmt.db else stmt.db
        return stmt if default == stmt.db else dataclasses.replace(stmt, db=default)

    def items(self, items: list[RowsEvent | Statement], txn: Transaction | None = None) -> list[RowsEvent | Statement]:
        """``items`` without the statements the filters drop, the others as ``statement``
        returns them (rows events were filtered as they were read: ``rows``)."""
        if not any(type(i) is Statement for i in items):
            return items
        out: list[RowsEvent | Statement] = []
        for item in items:
            if type(item) is Statement:
                kept = self.statement(item, txn)  # type: ignore[arg-type]
                if kept is None:
                    continue
                item = kept
            out.append(item)
        return out


def _text(stmt: Statement) -> str:
    return stmt.sql[:120].decode("utf-8", "replace")

"""Where planned statements go (``StatementSink``): run at once (``session.Executor``) or
recorded to run later (``StatementLog``: a worker plans the next batch while its
runner executes the current one); and the session settings statements rely on.
"""

from __future__ import annotations

from typing import Protocol

from ..binlog.transactions import Statement

FK_CHECKS = "foreign_key_checks="  # ``what`` of the session statements that set them
SESSION_STATEMENT = -1  # a StatementLog entry's "expected rows" for a session setting
STATEMENT = -2  # ... for a logged statement (DDL, SAVEPOINT): the entry holds the Statement
SQL_MODE = "sql_mode="  # ``what`` of the session statements that switch strictness
# Row changes run strict: a value the target column cannot hold is an error, never cut
# (binlog.compat refuses narrower columns before that); dates the source could store
# (zero, invalid with ALLOW_INVALID_DATES there) are taken as they are, as the native
# replica takes them; NO_AUTO_VALUE_ON_ZERO keeps an explicit 0 in an AUTO_INCREMENT column.
ROW_SQL_MODE = "STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION,ALLOW_INVALID_DATES"
# Not strict: for logged statements whose source sql_mode cannot be used (another flavor's
# bits) and for rows holding ENUM index 0 (tables.enum_zero).
LENIENT_SQL_MODE = "NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION,ALLOW_INVALID_DATES"

Planned = tuple  # (sql bytes | Statement, expected rows | None | SESSION_STATEMENT | STATEMENT, what)


class StatementSink(Protocol):
    """Where planned statements go: run now (``session.Executor``) or later
    (``StatementLog``). ``fk_checks`` is the session's foreign_key_checks as the sink
    leaves them: for an executor the connection's own (whoever set them last: DDL,
    barriers and streamed transactions share the coordinator's connection), for a log
    what its statements so far set."""

    fk_checks: bool

    def run(self, sql: bytes, expect: int | None, what: str) -> int:
        """A statement that must affect ``expect`` rows (None: any number)."""
        ...

    def session(self, sql: bytes, what: str) -> None:
        """A session setting (no rows, no check)."""
        ...

    def statement(self, stmt: Statement) -> None:
        """A statement logged by the source (DDL, SAVEPOINT), in its session's context."""
        ...


class StatementLog:
    """A sink that records statements to run later (``session.Session.execute``)."""

    def __init__(self) -> None:
        self.statements: list[Planned] = []
        self.fk_checks = True

    def run(self, sql: bytes, expect: int | None, what: str) -> int:
        self.statements.append((sql, expect, what))
        return expect or 0

    def session(self, sql: bytes, what: str) -> None:
        last = self.statements[-1] if self.statements else None
        if what == _LENIENT and last is not None and last[2] == _STRICT:
            # back to strict, then lenient again: stay lenient (one round trip less
            # each; a batch of upserts of many tables has dozens of them)
            self.statements.pop()
            return
        if what.startswith(FK_CHECKS):
            self.fk_checks = what.endswith("1")
        self.statements.append((sql, SESSION_STATEMENT, what))

    def statement(self, stmt: Statement) -> None:
        self.statements.append((stmt, STATEMENT, "statement"))

    def take(self) -> list[Planned]:
        out, self.statements = self.statements, []
        return out


_LENIENT, _STRICT = SQL_MODE + "lenient", SQL_MODE + "strict"


def lenient(sink: StatementSink, sql: bytes, expect: int | None, what: str) -> None:
    """Run one statement in a lenient session (see ``tables.enum_zero``)."""
    sink.session(f"SET SESSION sql_mode = '{LENIENT_SQL_MODE}'".encode(), _LENIENT)
    sink.run(sql, expect, what)
    sink.session(f"SET SESSION sql_mode = '{ROW_SQL_MODE}'".encode(), _STRICT)

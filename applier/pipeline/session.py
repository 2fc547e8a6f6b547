"""A target session: one connection, its checkpoint row, and the one place that runs a
planned batch on the target.

``Executor`` runs statements on the connection and checks each one's affected-row count
(a missing row or a duplicate means the target has diverged). ``Session.execute`` runs
a ``PlannedBatch`` with the session's checkpoint row in one target transaction and is
the only retry loop of the applier: a deadlock or lock-wait timeout rolls the whole
transaction back and runs it again (its statements do not depend on what the target
holds; only the checkpoint row does, and it is rebuilt), up to ``retries`` times with
exponential backoff. Workers and the coordinator's serial path both commit through it.

With ``preserve_commit_order`` a batch holds consecutive tickets and runs only once the
ticket before its first has committed (``turn``, a shared counter).
"""

from __future__ import annotations

import contextlib
import time

import MySQLdb

from ..binlog.collations import (
    CollationError,
    TargetCollations,
    mysql_comments_for_mariadb,
    rewrite_names,
)
from ..binlog.transactions import Statement, is_database_statement
from ..config import TargetConfig
from ..db import codes
from ..db.connect import connect
from ..db.sql import quote_ident
from ..errors import ApplierError, SchemaError, TargetError, TargetLost
from .checkpoint import COORDINATOR_ROW, CheckpointRow
from .planner import PlannedBatch
from .sink import FK_CHECKS, LENIENT_SQL_MODE, ROW_SQL_MODE, SESSION_STATEMENT, SQL_MODE, STATEMENT

ORDER_GIVE_UP_SECONDS = 3600.0

SESSION_SETUP = (
    "SET NAMES utf8mb4",
    "SET SESSION time_zone = '+00:00'",
    f"SET SESSION sql_mode = '{ROW_SQL_MODE}'",
    "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
)


def lost(e: MySQLdb.Error, what: str) -> TargetLost:
    return TargetLost(f"lost the connection to the target {what} ({codes.code_of(e)}: "
                      f"{codes.message_of(e)}): run again to resume from the checkpoint")


class Executor:
    """Runs statements on one target connection and checks affected rows (a
    ``planner.StatementSink`` that runs at once). It knows the session state statements
    rely on, as the connection holds it: ``fk_checks`` (foreign_key_checks) and
    ``lenient`` (sql_mode is LENIENT_SQL_MODE), whichever planner set them last."""

    def __init__(self, conn: MySQLdb.connections.Connection, source_flavor: str | None = None) -> None:
        self.conn = conn
        self.fk_checks = True
        self.lenient = False
        self.flavor = "mariadb" if "mariadb" in conn.get_server_info().lower() else "mysql"
        self.source_flavor = source_flavor  # None: unknown, a statement's sql_mode is not used
        self._catalog: TargetCollations | None = None  # the target's collations (other flavor's source)
        for sql in SESSION_SETUP:
            conn.query(sql)
        conn.query(b"SELECT @@max_allowed_packet")
        self.max_packet = int(conn.store_result().fetch_row()[0][0])

    def run(self, sql: bytes, expect: int | None, what: str) -> int:
        try:
            self.conn.query(sql)
        except MySQLdb.Error as e:
            if codes.code_of(e) in codes.RETRYABLE:
                raise
            raise self._refused(e, len(sql), what) from None
        n = self.conn.affected_rows()
        if expect is not None and n != expect:
            raise TargetError(
                f"target has diverged: {what} affected {n} rows, expected {expect}; "
                "compare with `applier check` and re-seed the target"
            )
        return n

    def _refused(self, e: MySQLdb.Error, size: int, what: str) -> ApplierError:
        """What a statement the target refused becomes: lost, too big for the target's
        max_allowed_packet, a missing table, or a refusal; a TargetError carries the
        server's ``code`` (a re-run DDL's "already done" is told by it)."""
        code = codes.code_of(e)
        if size >= self.max_packet and (code in codes.GONE or code in codes.PACKET_TOO_LARGE):
            err: ApplierError = TargetError(
                f"target refused {what}: the statement has {size} bytes and the target's "
                f"max_allowed_packet is {self.max_packet}: raise max_allowed_packet on the target "
                f"(SET GLOBAL max_allowed_packet = {_round_up(size)}, and in its config file)"
            )
        elif code in codes.GONE:
            return lost(e, f"running {what}")
        elif code == codes.ER_NO_SUCH_TABLE:
            err = SchemaError(f"target: {what}: {codes.message_of(e)}: create the table on the target")
        else:
            err = TargetError(f"target refused {what}: error {code}: {codes.message_of(e)}")
        if isinstance(err, TargetError):
            err.code = code
        return err

    def session(self, sql: bytes, what: str) -> None:
        """A session setting (no rows, no check)."""
        self.conn.query(sql)
        if what.startswith(FK_CHECKS):
            self.fk_checks = what.endswith("1")
        elif what.startswith(SQL_MODE):
            self.lenient = what.endswith("lenient")

    def settle(self, fk_checks: bool) -> None:
        """The session as planned statements assume it: ``fk_checks``, sql_mode strict."""
        if fk_checks != self.fk_checks:
            flag = b"1" if fk_checks else b"0"
            self.session(b"SET SESSION foreign_key_checks = " + flag, FK_CHECKS + flag.decode())
        if self.lenient:  # a statement failed between a lenient switch and its end
            self.session(f"SET SESSION sql_mode = '{ROW_SQL_MODE}'".encode(), SQL_MODE + "strict")

    def statement(self, stmt: Statement) -> None:
        """A logged statement (DDL, SAVEPOINT) in its source session's context: default
        database, client character set, connection and server collations, and sql_mode
        when source and target are of one flavor (the bits differ between flavors).
        Across flavors, collations are mapped (``binlog.collations``): the session's
        ids, and the names the statement writes out; one without an equivalent on the
        target stops the applier naming it, before the statement runs. MySQL's
        ``/*!80023 INVISIBLE */`` (generated invisible primary keys) reaches MariaDB as
        INVISIBLE."""
        conn = self.conn
        sql = stmt.sql
        settings = (("character_set_client", stmt.charset_id),
                    ("collation_connection", stmt.collation_connection),
                    ("collation_server", stmt.collation_server))
        other = self.source_flavor is not None and self.source_flavor != self.flavor
        if other:
            catalog = self._collations()
            context = []
            for name, value in settings:
                if value is None:
                    continue
                try:
                    resolved = catalog.resolve(value, self.source_flavor, self.flavor)
                except CollationError as e:
                    raise CollationError(
                        f"target ({self.flavor}) has no equivalent of the source's {e} ({name} of "
                        f"statement {sql[:80]!r}): run such statements on the source with a collation "
                        "both flavors have (e.g. utf8mb4_unicode_ci or utf8mb4_bin)"
                    ) from None
                context.append(f"{name} = {catalog.charset(resolved) if name == 'character_set_client' else resolved}")
            sql = rewrite_names(sql, lambda n: catalog.rename(n, self.flavor))
            if self.flavor == "mariadb":
                sql = mysql_comments_for_mariadb(sql)
        else:
            context = [f"{name} = {value}" for name, value in settings if value is not None]
        same = stmt.sql_mode is not None and self.source_flavor == self.flavor
        context.append(f"sql_mode = {stmt.sql_mode}" if same else f"sql_mode = '{LENIENT_SQL_MODE}'")
        try:
            conn.query(("SET SESSION " + ", ".join(context)).encode())
        except MySQLdb.Error as e:
            raise TargetError(
                f"target cannot take the session of statement {stmt.sql[:80]!r} ({', '.join(context)}): "
                f"{codes.code_of(e)}: {codes.message_of(e)}"
            ) from None
        try:
            # CREATE/DROP DATABASE is logged with the database itself as default database
            if stmt.db and not is_database_statement(stmt):
                try:
                    conn.query(b"USE " + quote_ident(stmt.db))
                except MySQLdb.Error as e:
                    if codes.code_of(e) != codes.ER_BAD_DB_ERROR:
                        raise
                    # The default database is a filtered one (not on the target): the
                    # statement names its tables qualified. Unqualified names must not
                    # resolve to the previous statement's database: use one where
                    # nothing can be found or created by accident.
                    conn.query(b"USE information_schema")
            self.run(sql, None, f"statement {stmt.sql[:80]!r}")
        finally:
            conn.query(b"SET NAMES utf8mb4")
            conn.query(f"SET SESSION collation_server = DEFAULT, sql_mode = '{ROW_SQL_MODE}'".encode())
            self.lenient = False

    def _collations(self) -> TargetCollations:
        if self._catalog is None:
            self._catalog = TargetCollations.read(self.conn, self.flavor)
        return self._catalog


def _round_up(size: int) -> int:
    """A max_allowed_packet value (a multiple of 1 MiB) that holds ``size`` bytes and more."""
    return ((size + 1024) // (1 << 20) + 1) << 20


class Session:
    """A target connection with its executor and checkpoint row (a worker's, or row 0:
    the coordinator's serial path)."""

    def __init__(self, target: TargetConfig, worker_id: int, source_flavor: str | None = None) -> None:
        self.target = target
        self.conn = connect(target, "target", autocommit=False, found_rows=True, stay_open=True)
        self.executor = Executor(self.conn, source_flavor)
        self.row = CheckpointRow(target.checkpoint_schema, worker_id)
        if worker_id != COORDINATOR_ROW:  # row 0 never holds done entries
            self.row.resume(self.conn)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()

    def execute(self, batch: PlannedBatch, retries: int, backoff: float, turn=None) -> int:
        """Run the batch with the checkpoint in one target transaction, retrying it whole
        on deadlock or lock-wait timeout. With ``turn`` (preserve_commit_order: a shared
        counter of the last committed ticket) the batch waits until the ticket before
        its first has committed before it runs anything: it holds no lock an earlier
        transaction could need (gap locks of a duplicate check, foreign keys) while it
        waits, so the wait can never turn into a deadlock. Returns how many times it ran
        again."""
        txns, last = batch.txns, batch.last
        if turn is not None and not wait_turn(turn, txns[0].ticket - 1, ORDER_GIVE_UP_SECONDS):
            raise TargetError(
                f"transaction {txns[0].gtid or txns[0].seq} waited {ORDER_GIVE_UP_SECONDS:g}s "
                "for its turn to commit: an earlier one is stuck"
            )
        attempt = 0
        while True:
            try:
                self._run_statements(batch)
                self.conn.query(
                    self.row.statement(
                        last.watermark, last.watermark_file, last.watermark_gtid,
                        [t.end_ordinal for t in txns], txns[-1].gtid, len(txns), txns[-1].timestamp,
                    )
                )
                self.conn.commit()
                if turn is not None:
                    turn.value = txns[-1].ticket
                self.row.committed()
                return attempt
            except MySQLdb.Error as e:
                with contextlib.suppress(MySQLdb.Error):
                    self.conn.rollback()
                code = codes.code_of(e)
                if code in codes.GONE:
                    raise lost(e, "committing a batch") from None
                if code not in codes.RETRYABLE:
                    raise TargetError(f"target error {code} applying a batch: {codes.message_of(e)}") from None
                if attempt == retries:
                    raise TargetError(
                        f"target kept failing with error {code} ({codes.message_of(e)}) after {retries} "
                        "retries: raise [apply] retries or look for long transactions on the target"
                    ) from None
                time.sleep(backoff * (2**attempt))
                attempt += 1
            except ApplierError:
                with contextlib.suppress(MySQLdb.Error):
                    self.conn.rollback()
                raise

    def _run_statements(self, batch: PlannedBatch) -> None:
        ex = self.executor
        ex.settle(batch.fk_checks_at_start)  # as planned (after a retry, or another planner's statements)
        for sql, expect, what in batch.statements:
            if expect == SESSION_STATEMENT:
                ex.session(sql, what)
            elif expect == STATEMENT:
                ex.statement(sql)  # type: ignore[arg-type]
            else:
                ex.run(sql, expect, what)


def wait_turn(turn, ticket: int, seconds: float) -> bool:
    """Wait until ``turn`` (the last committed ticket) reaches ``ticket``."""
    if turn.value >= ticket:
        return True
    deadline = time.monotonic() + seconds
    pause = 0.00005
    while turn.value < ticket:
        if time.monotonic() > deadline:
            return False
        time.sleep(pause)
        pause = min(pause * 2, 0.002)
    return True

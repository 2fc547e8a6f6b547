"""A target session: one connection, its checkpoint row, and batches planned then run.

Applying a batch has two halves with different bottlenecks: *planning* (decode the row
images, collapse changes per row, build the multi-row statements: the worker's Python
CPU) and *executing* (the target's CPU, and a commit that may wait for a redo flush).
Done one after the other, each waits for the other. So a worker plans the next batch
(``BatchPlan``, on its own schema connection) while a thread runs the current one
(``Session.execute``, on the session connection; MySQLdb releases the GIL while the
target works). Planning records statements instead of running them
(``target.StatementLog``); executing runs them with the same affected-row checks.

Every batch commits with the worker's checkpoint row in one target transaction, and a
deadlock or lock-wait timeout rolls it back and runs its statements again (they do not
depend on what the target holds, only the checkpoint row does, so it is rebuilt).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import MySQLdb

from .checkpoint import COORDINATOR_ROW, CheckpointRow
from .config import TargetConfig
from .connect import connect
from .errors import ApplierError, TargetError
from .schema import SchemaCache
from .target import (
    FK_CHECKS,
    RETRYABLE,
    SESSION_STATEMENT,
    BatchApplier,
    Executor,
    StatementLog,
    TableCache,
)
from .transactions import Transaction, pack, unpack

ORDER_ROLLBACK_SECONDS = 1.0  # waiting this long for our turn: assume we block an earlier one
ORDER_GIVE_UP_SECONDS = 3600.0


@dataclass(slots=True)
class Work:
    """Transactions for one worker plus the coordinator's watermark when they were sent.
    Shipped as ``to_wire()`` tuples: several transactions per queue message keeps the
    per-transaction cost of crossing processes small."""

    txns: list[Transaction]
    watermark: int
    watermark_file: str
    watermark_gtid: str
    schema_version: int

    def to_wire(self) -> tuple:
        return (self.watermark, self.watermark_file, self.watermark_gtid, self.schema_version,
                [pack(t) for t in self.txns])

    @classmethod
    def from_wire(cls, data: tuple) -> Work:
        w, wf, wg, sv, txns = data
        return cls([unpack(t) for t in txns], w, wf, wg, sv)


@dataclass(slots=True)
class PlannedBatch:
    """Statements of whole transactions, to run in one target transaction."""

    statements: list[tuple[bytes, int | None, str]]
    fk_checks_at_start: bool  # the session's foreign_key_checks the statements assume
    txns: list[Transaction]
    rows: int
    last: Work  # the newest message: its watermark goes into the checkpoint row


class BatchPlan:
    """Accumulates messages into one batch's statements; ``finish`` when the executor
    is ready for it (the longer it accumulates, the less work per transaction)."""

    def __init__(self, planner: BatchApplier) -> None:
        self.planner = planner
        self.net = planner.new_net()
        self.fk_checks_at_start = planner.fk_checks
        self.txns: list[Transaction] = []
        self.rows = 0
        self.last: Work | None = None

    def add(self, work: Work) -> None:
        planner, net = self.planner, self.net
        for txn in work.txns:
            self.rows += planner.apply_items(txn.table_maps, txn.items, net)
        self.txns.extend(work.txns)
        self.last = work

    def finish(self) -> PlannedBatch:
        assert self.last is not None, "an empty batch"
        self.net.flush(self.planner)
        log = self.planner.ex
        assert isinstance(log, StatementLog)
        return PlannedBatch(log.take(), self.fk_checks_at_start, self.txns, self.rows, self.last)


class Session:
    """A target connection with its applier and checkpoint row (workers and barriers)."""

    def __init__(self, target: TargetConfig, worker_id: int) -> None:
        self.target = target
        self.conn = connect(target, "target", autocommit=False, found_rows=True)
        self.applier = BatchApplier(Executor(self.conn), TableCache(SchemaCache(self.conn)))
        self.row = CheckpointRow(target.checkpoint_schema, worker_id)
        if worker_id != COORDINATOR_ROW:  # row 0 never holds done entries
            self.row.resume(self.conn)
        self._planner: BatchApplier | None = None
        self._schema_version = 0
        self._fk_checks = True  # the connection's foreign_key_checks, as executed

    # -- planning (a worker's main thread) ---------------------------------------------

    def new_plan(self, schema_version: int) -> BatchPlan:
        """A plan for messages of ``schema_version`` (DDL the coordinator applied since
        the last plan makes cached table definitions stale)."""
        if self._planner is None:
            # its own connection: schema lookups must not share the executing one
            conn = connect(self.target, "target", autocommit=True)
            self._planner = BatchApplier(StatementLog(), TableCache(SchemaCache(conn)))
        if schema_version != self._schema_version:
            self._planner.tables.invalidate()
            self._schema_version = schema_version
        return BatchPlan(self._planner)

    def plan(self, batch: list[Work]) -> PlannedBatch:
        plan = self.new_plan(batch[-1].schema_version)
        for work in batch:
            plan.add(work)
        return plan.finish()

    # -- executing ---------------------------------------------------------------------

    def apply_batch(self, batch: list[Work], retries: int, backoff: float, turn=None) -> int:
        """Plan and execute in one go; returns the rows applied."""
        planned = self.plan(batch)
        self.execute(planned, retries, backoff, turn)
        return planned.rows

    def execute(self, batch: PlannedBatch, retries: int, backoff: float, turn=None) -> None:
        """Run the batch with the checkpoint in one target transaction. With ``turn``
        (preserve_commit_order: a shared counter of the last committed ticket), the
        batch holds consecutive tickets and commits only when the ticket before its
        first has committed."""
        txns, last = batch.txns, batch.last
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
                if turn is not None and not wait_turn(turn, txns[0].ticket - 1, ORDER_ROLLBACK_SECONDS):
                    # An earlier transaction may be waiting for a lock we hold while we
                    # wait for it to commit: release ours, wait for our turn, redo.
                    self.conn.rollback()
                    if not wait_turn(turn, txns[0].ticket - 1, ORDER_GIVE_UP_SECONDS):
                        raise TargetError(
                            f"transaction {txns[0].gtid or txns[0].seq} waited "
                            f"{ORDER_GIVE_UP_SECONDS}s for its turn to commit: an earlier one is stuck"
                        )
                    continue
                self.conn.commit()
                if turn is not None:
                    turn.value = txns[-1].ticket
                self.row.committed()
                return
            except MySQLdb.Error as e:
                with contextlib.suppress(MySQLdb.Error):
                    self.conn.rollback()
                code = e.args[0] if e.args else 0
                if code not in RETRYABLE:
                    raise TargetError(f"target error {code} applying a batch: {e.args[-1]}") from None
                if attempt == retries:
                    raise TargetError(
                        f"target kept failing with error {code} ({e.args[-1]}) after {retries} retries: "
                        "raise [apply] retries or look for long transactions on the target"
                    ) from None
                time.sleep(backoff * (2**attempt))
                attempt += 1
            except ApplierError:
                with contextlib.suppress(MySQLdb.Error):
                    self.conn.rollback()
                raise

    def _run_statements(self, batch: PlannedBatch) -> None:
        ex = self.applier.ex
        assert isinstance(ex, Executor)
        if batch.fk_checks_at_start != self._fk_checks:  # e.g. after a retried batch
            self._set_fk_checks(batch.fk_checks_at_start)
        for sql, expect, what in batch.statements:
            if expect == SESSION_STATEMENT:
                ex.session(sql, what)
                if what.startswith(FK_CHECKS):
                    self._fk_checks = what.endswith("1")
            else:
                ex.run(sql, expect, what)

    def _set_fk_checks(self, on: bool) -> None:
        self.conn.query(b"SET SESSION foreign_key_checks = " + (b"1" if on else b"0"))
        self._fk_checks = on


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

"""Intake: what the source sends -> whole transactions with their keys, as plain items.

The reader (``source.DumpSource``) offers bytes; the native scanner (native/_scan.pyx)
turns the common transaction (GTID, TableMaps, rows events, XID) into one record with
its keys straight from them, and everything else (DDL, Rotate, heartbeats, filtered or
barrier tables, big transactions) goes event by event through ``TransactionBuilder``
and ``writeset``, from the start of its transaction: a transaction is never half native,
half Python. A MySQL compressed transaction (a TRANSACTION_PAYLOAD_EVENT after its GTID)
is read from the events it holds (``binlog.payload``): by the scanner, which gets them
uncompressed from ``_expand``, or event by event (``_payload``). The coordinator gets,
in source order:

* ``Routed(txn, keys)``: a whole transaction for the workers (no items left: filtered);
* ``Barrier(txn)``: a whole transaction to apply alone (DDL, foreign keys, no key);
* ``Stream(txn, items, first)`` ... ``StreamEnd(txn)``: a transaction above
  ``big_txn_rows`` rows, handed over as it is read (never held whole); ``StreamAbort``
  if its end never comes (a relay log's partial transaction);
* ``IDLE``: nothing more to read right now.

Reading never calls back into dispatch: the intake only yields.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from ..binlog import events as ev
from ..binlog import payload
from ..binlog.native import NATIVE, decode_rows, scan
from ..binlog.rowcodec import missing_columns
from ..binlog.tablemap import table_of_map
from ..binlog.transactions import (
    RowsEvent,
    Statement,
    Transaction,
    TransactionBuilder,
    changes_rows,
)
from ..config import ApplyConfig
from ..errors import DecodeError, MissingTableMap, SourceError
from .filters import Filter
from .tables import Table, TableCache
from .writeset import TableKeys, Weigher, database_key, event_keys, scan_route, table_key

_NO_COLUMNS: frozenset[int] = frozenset()  # decode_rows: walk the rows, decode no column
IDLE_SECONDS = 0.25  # while the source is quiet: how often the coordinator gets IDLE
SCAN_PAYLOAD_BYTES = 4 << 20  # compressed transactions up to this size (uncompressed) are scanned


@dataclass(slots=True)
class Routed:
    txn: Transaction
    keys: set[int]


@dataclass(slots=True)
class Barrier:
    txn: Transaction


@dataclass(slots=True)
class Stream:
    txn: Transaction
    items: list[RowsEvent | Statement]
    first: bool = False


@dataclass(slots=True)
class StreamEnd:
    txn: Transaction


@dataclass(slots=True)
class StreamAbort:
    """The streamed transaction will not end (its rest never comes): roll it back."""

    txn: Transaction


class Idle:
    def __repr__(self) -> str:
        return "IDLE"


IDLE = Idle()
Item = Routed | Barrier | Stream | StreamEnd | StreamAbort | Idle


@dataclass(slots=True)
class _Current:
    """Per-transaction state while its events arrive (Python path)."""

    txn: Transaction
    keys: set[int] = field(default_factory=set)
    streaming: bool = False
    after_statement: bool = False  # rows follow a statement: CREATE TABLE ... SELECT
    # rows events counted but not hashed yet (writeset policy): hashed at the end of a
    # transaction that did not turn out big, never for one that is streamed
    unhashed: list[tuple[TableKeys, Table, RowsEvent]] = field(default_factory=list)


class Intake:
    def __init__(self, apply: ApplyConfig, filter_: Filter, tables: TableCache,
                 weigher: Weigher | None) -> None:
        self.cfg = apply
        self.filter = filter_  # filters.Filter: which rows and statements, into which database
        self.tables = tables
        filter_.bind(tables)  # the target's case rule; TableMaps rewritten ([apply] rewrite_databases)
        self.weigher = weigher
        self.builder = TransactionBuilder()
        self.scanned = 0  # transactions the native scanner read
        self._tkeys: dict[bytes, TableKeys] = {}
        self._cur: _Current | None = None
        self._scanner = None
        self._big_ahead = False  # the next rows event starts a transaction known to be big
        self._context = ""  # a statement-only event (INTVAR, RAND, USER_VAR...) came in this transaction

    @property
    def partial(self) -> bool:
        """A transaction is partly read."""
        return not self.builder.at_boundary()

    def forget_tables(self) -> None:
        """After DDL: table definitions (and the scanner's routes) are stale."""
        self._tkeys.clear()
        if self._scanner is not None:
            self._scanner.forget_tables()

    def abandon(self) -> None:
        """Forget a partly read transaction (the connection broke)."""
        self._cur = None
        self._big_ahead = False
        self._context = ""
        self.builder.reset()

    # -- the read loop ----------------------------------------------------------------------

    def items(self, reader) -> Iterator[Item]:
        """Items from one reader (one connection) until it ends or raises."""
        scanner = None
        if scan is not None and self.cfg.native_scan:
            scanner = scan.Scanner(self._scan_route, checksum=reader.checksum,
                                   max_rows=self.cfg.big_txn_rows, expand=self._expand)
        self._scanner = scanner
        python = scanner is None
        builder = self.builder
        while True:
            if python:
                e = reader.next_event()
                if e is None:
                    yield from self._wait(reader)
                    continue
                yield from self._on_event(e, reader.file)
                python = scanner is None or not builder.at_boundary()
                continue
            off, records, python = scanner.scan(reader.buf, reader.off)
            reader.off = off
            if records:
                builder.file = reader.file
                self.scanned += len(records)
                whole = builder.whole
                for gtid, timestamp, end_pos, payload, keys, rows in records:
                    yield Routed(whole(gtid, timestamp, end_pos, payload, rows), keys)
            if python:
                self._big_ahead = scanner.big
            else:  # the buffer ends inside a packet or a transaction
                yield from self._wait(reader)

    @staticmethod
    def _wait(reader) -> Iterator[Item]:
        if reader.fill(0):
            return
        yield IDLE
        while not reader.fill(IDLE_SECONDS):
            yield IDLE

    # -- the Python path -------------------------------------------------------------------

    def _on_event(self, e: ev.Event, file: str) -> Iterator[Item]:
        builder = self.builder
        t = e.type
        if t == ev.MYSQL_TRANSACTION_PAYLOAD:
            yield from self._payload(e, file)
            return
        if t in ev.STATEMENT_ONLY:
            self._context = ev.STATEMENT_ONLY[t]
        done = builder.add(e, file)
        cur = self._cur
        if cur is not None and cur.txn is not builder.current and cur.txn is not done:
            # A transaction started before the last one ended: the rest of that one will
            # never come (a relay log written by an IO thread that reconnected in the
            # middle of it, and fetched it again from its start). Forget it.
            self._cur = None
            if cur.streaming:
                yield StreamAbort(cur.txn)
        if t in ev.ROWS_EVENTS:
            txn = builder.current
            assert txn is not None
            cur = self._cur
            if cur is None or cur.txn is not txn:
                cur = self._cur = _Current(txn, after_statement=txn.is_ddl)
            yield from self._on_rows(cur, txn.items[-1])  # type: ignore[arg-type]
            return
        if t == ev.QUERY:
            txn = done or builder.current
            if txn is not None and txn.items and isinstance(txn.items[-1], Statement):
                self._check_statement(txn, txn.items[-1], e)
        if done is not None:
            cur = self._cur if self._cur is not None and self._cur.txn is done else _Current(done)
            self._cur = None
            self._big_ahead = False
            self._context = ""
            yield self._whole(cur)
        elif t == ev.QUERY and self._cur is not None and self._cur.streaming:
            # SAVEPOINT / ROLLBACK TO inside a streamed transaction: applied in place
            txn = self._cur.txn
            stmt = self.filter.statement(txn.items.pop(), txn)  # type: ignore[arg-type]
            if stmt is not None:
                yield Stream(txn, [stmt])
        elif t == ev.HEARTBEAT:
            yield IDLE

    def _payload(self, e: ev.Event, file: str) -> Iterator[Item]:
        """A compressed transaction (binlog_transaction_compression=ON) on the Python path:
        its GTID event came just before, the rest of it is inside ``e``, decompressed as
        it is read (a big one is never held uncompressed whole). The native scanner
        reads the others itself (``_expand``)."""
        txn = self.builder.current
        try:
            inner = payload.events(e)
            while True:
                try:
                    inner_event = next(inner)
                except StopIteration:
                    return
                yield from self._on_event(inner_event, file)
        except DecodeError as x:
            if "compressed transaction" not in str(x):
                raise
            where = f"{txn.gtid or '(no GTID)'} " if txn is not None else ""
            raise DecodeError(f"{x} (transaction {where}ending at {file}:{e.log_pos})") from None

    @staticmethod
    def _expand(body: bytes) -> bytes | None:
        """For the native scanner: a compressed transaction's events, uncompressed, when
        it is at most SCAN_PAYLOAD_BYTES; else (or when it does not decompress: the
        Python path says why) None."""
        try:
            if not 0 <= payload.header(body)[2] <= SCAN_PAYLOAD_BYTES:
                return None
            return payload.decompress(body)
        except DecodeError:
            return None

    # -- guards: what the applier cannot apply exactly stops it, before anything of it ----

    def _where(self, txn: Transaction, e_pos: int) -> str:
        return f"transaction {txn.gtid or '(no GTID)'} at {self.builder.file}:{e_pos}"

    def _check_statement(self, txn: Transaction, stmt: Statement, e: ev.Event) -> None:
        """A statement that changes rows (or follows statement-only context events) comes
        from binlog_format=STATEMENT/MIXED: run as text it would not be exact."""
        if not (changes_rows(stmt) or self._context):
            return
        if not self.filter.concerns(stmt):
            return
        after = f", after a {self._context} event" if self._context else ""
        raise SourceError(
            f"source logged {self._where(txn, e.log_pos)} as a statement ({stmt.sql[:60]!r}{after}), "
            "not as row events: that session ran with binlog_format=STATEMENT or MIXED; the "
            "applier needs binlog_format=ROW in every session (SET GLOBAL binlog_format=ROW and "
            "keep clients from changing it); nothing of this transaction was applied"
        )

    def _check_images(self, cur: _Current, body: bytes, item: RowsEvent) -> None:
        """Every column the applier writes must be in the row images (FULL): with NOBLOB
        or MINIMAL an unchanged column would be written as its default, or a row
        matched by a part of it. Generated columns may be absent (computed anyway)."""
        missing = missing_columns(item.body, item.op, item.version)
        if not missing:
            return
        db, name = table_of_map(body)
        names = [f"column {i + 1}" for i in missing]
        if not cur.after_statement:
            columns = self.tables.get(body).schema.columns
            missing = [i for i in missing if i >= len(columns) or not columns[i].generated]
            if not missing:
                return
            names = [columns[i].name if i < len(columns) else f"column {i + 1}" for i in missing]
            blobs = all(i < len(columns) and columns[i].data_type.endswith(("blob", "text", "json"))
                        for i in missing)
        else:
            blobs = False
        setting = "binlog_row_image=NOBLOB" if blobs else "binlog_row_image=MINIMAL (or NOBLOB)"
        raise SourceError(
            f"source logged a rows event of {db}.{name} without {', '.join(names)} "
            f"({self._where(cur.txn, self.builder.pos)}): that session ran with {setting}; the "
            "applier needs binlog_row_image=FULL in every session (SET GLOBAL binlog_row_image=FULL "
            "and keep clients from changing it); nothing of this transaction was applied"
        )

    def _on_rows(self, cur: _Current, item: RowsEvent) -> Iterator[Item]:
        txn = cur.txn
        if txn.headless:  # its start was not read: the coordinator skips it or stops
            txn.items.pop()
            return
        body = txn.table_maps.get(item.table_id)
        if body is None:
            raise MissingTableMap(
                f"a rows event of table id {item.table_id} without its TableMap "
                f"({self._where(txn, self.builder.pos)}): the events before it did not reach the applier"
            )
        if not self.filter.rows(*table_of_map(body)):
            txn.items.pop()
            return
        self._check_images(cur, body, item)
        if cur.streaming:
            txn.items.pop()
            yield Stream(txn, [item])
            return
        if self._big_ahead and not cur.after_statement:
            # the scanner already counted more than big_txn_rows rows in this transaction:
            # stream it from here instead of hashing rows until the threshold says so
            self._big_ahead = False
            yield self._begin_streaming(cur)
            return
        if cur.after_statement:
            # CREATE TABLE ... SELECT: the new table's rows share the statement's
            # transaction and the table is not on the target before the statement ran
            # there, so no lookup (nor streaming): the serial path applies it in order
            return
        table = self.tables.get(body)
        reason = table.schema.barrier_reason
        if reason and not txn.barrier:
            txn.barrier = reason
        policy = self.cfg.policy
        if policy == "writeset" and not reason and NATIVE:
            # counted now (the native decoder walks the rows, decoding no column),
            # hashed in _whole once the transaction has ended without becoming big
            txn.rows += len(decode_rows(table.plan, item.op, item.body, item.version, _NO_COLUMNS))
            cur.unhashed.append((self._table_keys(body, table), table, item))
        elif policy == "writeset" and not reason:  # the Python decoder: one pass, hashing
            txn.rows += event_keys(self._table_keys(body, table), table.plan, item.op, item.body,
                                   item.version, cur.keys)
        else:
            txn.rows += len(decode_rows(table.plan, item.op, item.body, item.version, _NO_COLUMNS))
            if policy == "table":
                cur.keys.add(table_key(table.tmap.db, table.tmap.table))
            elif policy == "database":
                cur.keys.add(database_key(table.tmap.db))
        if txn.rows > self.cfg.big_txn_rows:
            yield self._begin_streaming(cur)

    def _begin_streaming(self, cur: _Current) -> Stream:
        """From here the transaction goes to the coordinator as it is read: what was read
        of it so far now, the rest as it arrives."""
        cur.streaming = True
        cur.unhashed = []
        txn = cur.txn
        items, txn.items = txn.items, []
        txn.rows = 0  # counted again as they are applied
        return Stream(txn, self.filter.items(items, txn), first=True)

    def _whole(self, cur: _Current) -> Item:
        txn = cur.txn
        if cur.streaming:
            return StreamEnd(txn)
        txn.items = self.filter.items(txn.items, txn)
        if txn.items and (txn.is_ddl or txn.barrier):
            return Barrier(txn)
        for tkeys, table, item in cur.unhashed:
            event_keys(tkeys, table.plan, item.op, item.body, item.version, cur.keys)
        return Routed(txn, cur.keys)

    # -- keys --------------------------------------------------------------------------------

    def _scan_route(self, body: bytes):
        """The native scanner met a TableMap: how to key its rows events, or None to
        leave its transactions to the Python path (filtered tables, barriers)."""
        db, table_name = table_of_map(body)
        if not self.filter.rows(db, table_name):
            return None
        table = self.tables.get(body)
        if table.schema.barrier_reason:
            return None
        policy = self.cfg.policy
        if policy == "writeset":
            return scan_route(self._table_keys(body, table), table.plan)
        db = table.tmap.db  # the target's (rewritten) name, as the Python path keys it
        extra = {"table": (table_key(db, table_name),), "database": (database_key(db),)}.get(policy, ())
        return scan_route(None, table.plan, extra)

    def _table_keys(self, body: bytes, table: Table) -> TableKeys:
        """How to hash one TableMap's unique keys (cached until the next DDL)."""
        tkeys = self._tkeys.get(body)
        if tkeys is None:
            tkeys = self._tkeys[body] = TableKeys(table.schema, table.plan, self.weigher)
        return tkeys

"""The plain values that cross between the coordinator and its worker processes.

``Work`` goes to a worker: whole transactions plus the coordinator's watermark when they
were sent (it rides into the worker's checkpoint row). ``Done`` and ``Failed`` come
back. On the wire everything is tuples and bytes (``to_wire``/``from_wire``): several
transactions per queue message and no per-object pickling of dataclasses keep the cost
of crossing processes small.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..binlog.native import unpack_payload
from ..binlog.transactions import RowsEvent, Statement, Transaction
from ..errors import ApplierError


@dataclass(slots=True)
class Work:
    """Transactions for one worker, in its queue order."""

    txns: list[Transaction]
    watermark: int  # every transaction ending at or before it has committed
    watermark_file: str
    watermark_gtid: str
    schema_version: int  # DDL the coordinator applied so far (stale table definitions)

    def to_wire(self) -> tuple:
        return (self.watermark, self.watermark_file, self.watermark_gtid, self.schema_version,
                [pack(t) for t in self.txns])

    @classmethod
    def from_wire(cls, data: tuple) -> Work:
        w, wf, wg, sv, txns = data
        return cls([unpack(t) for t in txns], w, wf, wg, sv)


@dataclass(frozen=True, slots=True)
class Done:
    """A worker committed these transactions (one target transaction)."""

    worker: int  # 0-based
    seqs: tuple[int, ...]
    rows: int
    ticket: int  # the last one's ticket: the worker's queue is done up to it
    retries: int = 0  # times the batch ran again (deadlock, lock-wait timeout)


@dataclass(frozen=True, slots=True)
class Failed:
    """A worker stopped on an error; it committed nothing of its open batch."""

    worker: int
    error: ApplierError


def pack(txn: Transaction) -> tuple:
    """A compact, cheap-to-pickle form of a transaction (plain tuples and bytes)."""
    if txn.payload:
        return (txn.seq, txn.gtid, txn.file, txn.end_pos, txn.timestamp, None, txn.payload, txn.ticket)
    items = [
        (i.op, i.table_id, i.version, i.body) if isinstance(i, RowsEvent)
        else (0, i.db, i.sql, (i.charset_id, i.no_fk_checks, i.sql_mode, i.collation_connection,
                                 i.collation_server))
        for i in txn.items
    ]
    return (txn.seq, txn.gtid, txn.file, txn.end_pos, txn.timestamp, txn.table_maps, items, txn.ticket)


def unpack(data: tuple) -> Transaction:
    seq, gtid, file, end_pos, timestamp, table_maps, items, ticket = data
    if table_maps is None:  # a scanner payload
        table_maps, rows_events = unpack_payload(items, RowsEvent)
        txn = Transaction(seq, gtid, file, end_pos, timestamp, table_maps, rows_events)
    else:
        txn = Transaction(seq, gtid, file, end_pos, timestamp, table_maps)
        txn.items = [RowsEvent(a, b, c, d) if a else Statement(b, c, *d) for a, b, c, d in items]
    txn.ticket = ticket
    return txn

"""Row changes of compactable tables collapsed to their net effect per row key.

A table is compactable when its only unique key is the row key: no other unique key can
make the order of two rows' changes matter, so per table one multi-row DELETE, one
multi-row INSERT and, for rows that existed and change, one multi-row INSERT ... ON
DUPLICATE KEY UPDATE (in place: about 10% less target work than DELETE + INSERT) leave
the target exactly as the source's row-by-row order would. Keys are sorted so
concurrent workers lock rows in the same order.
"""

from __future__ import annotations

from ..binlog import rowcodec as rc
from .sink import StatementSink, lenient
from .tables import Table, enum_zero, match_image, partial_upsert, values_of

NET_FLUSH_ROWS = 5000  # rows held for compaction before they are written anyway


# net change states of one row within a batch: [state, final image, image the target holds]
_INS, _DEL, _REP = 1, 2, 3


class NetChanges:
    """Row changes of compactable tables collapsed to their net effect per row key."""

    def __init__(self, sink: StatementSink, verify: bool = False) -> None:
        self.sink = sink
        self.verify = verify  # deletes match the whole before image; no in-place updates
        self.tables: dict[bytes, tuple[Table, dict[tuple[bytes, ...], list]]] = {}
        self.rows = 0  # row changes added since the last flush

    def add(self, table: Table, op: int, rows) -> None:
        entry = self.tables.get(table.name)
        if entry is None or entry[0] is not table:
            if entry is not None:
                # Same table, another TableMap: its table_id changed without DDL (source
                # FLUSH TABLES, table cache eviction; DDL never shares a batch). Emit
                # what is pending for it first so its changes keep their order.
                self._emit(self.sink, *entry, self.verify)
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
        if prev is None:
            state[key] = [_DEL, None, before]
        elif prev[0] == _INS:
            del state[key]  # inserted and deleted inside the batch: nothing reaches the target
        else:
            # changed, then deleted: the target still holds the image before the changes
            # (a re-insert compares against that one)
            state[key] = [_DEL, None, prev[2]]

    def flush(self) -> None:
        """Write what is held (whenever source order matters, and at the end)."""
        for entry in self.tables.values():
            self._emit(self.sink, *entry, self.verify)
        self.tables.clear()
        self.rows = 0

    @staticmethod
    def _emit(sink: StatementSink, table: Table, state: dict, verify: bool) -> None:
        if not state:
            return
        name = f"{table.tmap.db}.{table.tmap.table}"
        keys = sorted(state)
        deletes, inserts, held = [], [], []
        upserts: list = []  # final images of rows the target holds that change
        changed_any: set[int] = set()  # the columns any of them changes
        changes = _changes if table.upsert_tail else None
        for k in keys:
            kind, after, before = state[k]
            if kind == _INS:
                inserts.append(after)
            elif verify:  # the row must hold exactly its before image: DELETE matching it all
                held.append(before)
                if kind == _REP:
                    inserts.append(after)
            elif kind == _DEL:
                deletes.append(k)
            elif changes is not None and (changed := changes(table, before, after)):
                upserts.append(after)
                changed_any.update(changed)
            else:
                deletes.append(k)
                inserts.append(after)
        key_cols = table.key
        assert key_cols is not None
        if held:
            conds = [b"(" + match_image(table, image) + b")" for image in held]
            for chunk in _chunks(conds):
                sink.run(b"DELETE FROM " + table.name + b" WHERE " + b" OR ".join(chunk), len(chunk),
                         f"DELETE (before image verified) from {name}")
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
                sink.run(b"DELETE FROM " + table.name + b" WHERE " + cond, len(chunk), f"DELETE from {name}")
        if inserts:
            # an ENUM index 0 among the rows: the statements run in a lenient session
            run = lenient if enum_zero(table, inserts) else _run
            for chunk in _chunks([values_of(table, row) for row in inserts]):
                run(sink, table.insert_head + b",".join(chunk), len(chunk), f"INSERT into {name}")
        if upserts:
            # Rows the target holds (before image) that change: updated in place, in one
            # statement per table, writing the key and the columns any of them changes
            # (and those an INSERT may not leave out); a row's columns it does not change
            # get the value it holds (its after image: known whole). With
            # CLIENT_FOUND_ROWS each row counts 2 when it existed and changed (each one
            # changes some column), 1 when it already held the new values: anything but
            # 2 per row means the target diverged, so the check stays as strict as
            # DELETE + INSERT. A missing row would be inserted and count 1: the batch
            # rolls back all the same. Strict, like every row change: a value the column
            # cannot hold stops the applier. (One statement per set of changed columns
            # instead: four or five per table on sysbench, more round trips and parsing
            # than the columns saved.)
            head, tail, values = partial_upsert(table, tuple(sorted(changed_any)))
            run = lenient if enum_zero(table, upserts) else _run
            for chunk in _chunks([b"(" + b",".join(values(row)) + b")" for row in upserts]):
                run(sink, head + b",".join(chunk) + tail, 2 * len(chunk), f"update of {name}")


def _run(sink: StatementSink, sql: bytes, expect: int | None, what: str) -> None:
    sink.run(sql, expect, what)


def _changes(table: Table, before: rc.Row | None, after: rc.Row) -> tuple[int, ...]:
    """The non-key columns in which the final image differs from the one the target
    holds, which must be known whole (else: none, and the row is replaced)."""
    if before is None:
        return ()
    key = table.key or ()
    out = []
    for i in table.writable:
        b, a = before[i], after[i]
        if b is None:
            return ()
        if a != b and i not in key:
            out.append(i)
    return tuple(out)


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

"""Compaction -> statements without a server: any valid history of row changes to a
table whose only unique key is its row key, compacted by ``NetChanges`` and written as
multi-row DELETE / INSERT / INSERT ... ON DUPLICATE KEY UPDATE, must (a) meet every
statement's expected affected-row count on a target that holds the source's starting
state and (b) leave that target equal to the source. A target that diverged (a row
missing, or already holding the new values) must fail a check.

The statements are interpreted by a tiny model of the target (a dict of rows) that
counts affected rows the way the server does with CLIENT_FOUND_ROWS.
"""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from applier.binlog import events as ev
from applier.binlog import tablemap as tm
from applier.db import schema as dbs
from applier.pipeline.compaction import NetChanges
from applier.pipeline.sink import SESSION_STATEMENT, StatementLog
from applier.pipeline.tables import build_table

INT = tm.T_LONG


def make_table(key_cols: int):
    ncols = key_cols + 2
    tmap = tm.TableMap(1, "d", "t", (INT,) * ncols, (0,) * ncols, (False,) * ncols, None)
    columns = tuple(dbs.Column(f"c{i}", "int", False, None, None, False, False) for i in range(ncols))
    key = dbs.UniqueKey("PRIMARY", tuple(range(key_cols)), (None,) * key_cols, False)
    table = build_table(tmap, dbs.TableSchema("d", "t", columns, (key,), False))
    assert table.compactable
    return table


def row(values) -> tuple[bytes, ...]:
    return tuple(str(v).encode() for v in values)


_TUPLE = re.compile(rb"\(([^()]*)\)")


class Target:
    """Rows by key; runs the statements NetChanges writes, counting affected rows."""

    def __init__(self, rows: dict, key_cols: int) -> None:
        self.rows = dict(rows)
        self.k = key_cols

    def run(self, sql: bytes, expect: int | None, what: str) -> int:
        if expect == SESSION_STATEMENT:  # (the tests replay a StatementLog's entries here)
            self.session(sql, what)
            return 0
        if sql.startswith(b"DELETE"):
            where = sql.split(b" WHERE ", 1)[1]
            if b"<=>" in where:  # verify_before_image: every column must match
                n = 0
                for part in where.split(b" OR "):
                    image = tuple(int(v) for v in re.findall(rb"<=>(-?\d+)", part))
                    if self.rows.get(image[: self.k]) == image:
                        del self.rows[image[: self.k]]
                        n += 1
            elif self.k == 1:
                keys = [(int(v),) for v in re.search(rb"IN \((.*)\)$", where).group(1).split(b",")]
            else:
                keys = [tuple(int(v) for v in re.findall(rb"=(-?\d+)", part)) for part in where.split(b" OR ")]
            if b"<=>" not in where:
                n = 0
                for key in keys:
                    n += self.rows.pop(key, None) is not None
        else:
            values, _, upsert = sql.partition(b" ON DUPLICATE KEY UPDATE ")
            head, _, values = values.partition(b" VALUES ")
            cols = [int(c) for c in re.findall(rb"`c(\d+)`", head.split(b"(", 1)[1])]
            assert cols[: self.k] == list(range(self.k)), head  # the key comes first
            n = 0
            for t in (tuple(int(v) for v in t.split(b",")) for t in _TUPLE.findall(values)):
                key = t[: self.k]
                if key in self.rows:
                    if not upsert:
                        raise AssertionError(f"duplicate key {key}")  # the server refuses it
                    row = list(self.rows[key])
                    for c, v in zip(cols, t, strict=True):
                        row[c] = v
                    n += 2 if tuple(row) != self.rows[key] else 1
                else:  # a missing row: inserted, the other columns at their default (0)
                    assert upsert or len(cols) == self.k + 2, head
                    row = [0] * (self.k + 2)
                    for c, v in zip(cols, t, strict=True):
                        row[c] = v
                    n += 1
                self.rows[key] = tuple(row)
        if expect is not None and n != expect:
            raise Divergence(f"{what} affected {n} rows, expected {expect}")
        return n

    def session(self, sql, what):
        assert what.startswith("sql_mode="), what  # upserts run lenient (see compaction)


class Divergence(Exception):
    pass


def history(rng: random.Random, start: dict, key_cols: int, length: int):
    """Valid source changes from ``start``: (op, [(before, after)]) rows events."""
    state = dict(start)
    events = []
    for _ in range(length):
        op = rng.choice((ev.INSERT, ev.UPDATE, ev.DELETE))
        rows = []
        for _ in range(rng.randint(1, 3)):
            if op == ev.INSERT or not state:
                key = tuple(rng.randrange(6) for _ in range(key_cols))
                if key in state:
                    continue
                after = (*key, rng.randrange(3), rng.randrange(3))
                state[key] = after
                rows.append((None, after))
                op = ev.INSERT
            elif op == ev.DELETE:
                key = rng.choice(sorted(state))
                rows.append((state.pop(key), None))
            else:
                key = rng.choice(sorted(state))
                before = state[key]
                new_key = key if rng.random() < 0.7 else tuple(rng.randrange(6) for _ in range(key_cols))
                if new_key != key and new_key in state:
                    continue
                after = (*new_key, rng.randrange(3), rng.randrange(3))
                del state[key]
                state[new_key] = after
                rows.append((before, after))
        if rows:
            events.append((op, [(row(b) if b else None, row(a) if a else None) for b, a in rows]))
    return events, state


def start_state(rng: random.Random, key_cols: int) -> dict:
    state = {}
    for _ in range(rng.randrange(8)):
        key = tuple(rng.randrange(6) for _ in range(key_cols))
        state[key] = (*key, rng.randrange(3), rng.randrange(3))
    return state


def compact(table, events, flush_every: int | None = None, verify: bool = False) -> list:
    log = StatementLog()
    net = NetChanges(log, verify)
    for i, (op, rows) in enumerate(events):
        net.add(table, op, rows)
        if flush_every and i % flush_every == flush_every - 1:
            net.flush()
    net.flush()
    return log.take()


@settings(max_examples=400, deadline=None)
@given(seed=st.integers(0, 2**32), key_cols=st.sampled_from([1, 2]), length=st.integers(1, 25),
       flush_every=st.sampled_from([None, 1, 3]), verify=st.booleans())
def test_compacted_statements_leave_the_target_equal(seed, key_cols, length, flush_every, verify):
    rng = random.Random(seed)
    table = make_table(key_cols)
    start = start_state(rng, key_cols)
    events, final = history(rng, start, key_cols, length)
    target = Target(start, key_cols)
    for sql, expect, what in compact(table, events, flush_every, verify):
        target.run(sql, expect, what)
    assert target.rows == final


def test_verify_before_image_catches_a_drifted_column():
    """A row whose non-key column differs from the before image: by default the update
    writes the columns it changes and does not look at the others; a divergence with
    verify_before_image."""
    table = make_table(1)
    events = [(ev.UPDATE, [(row((1, 0, 0)), row((1, 5, 0)))])]
    drifted = {(1,): (1, 0, 7)}  # c2 changed on the target behind the applier's back
    target = Target(drifted, 1)
    for sql, expect, what in compact(table, events):
        target.run(sql, expect, what)
    assert target.rows == {(1,): (1, 5, 7)}
    target = Target(drifted, 1)
    with pytest.raises(Divergence, match="before image verified"):
        for sql, expect, what in compact(table, events, verify=True):
            target.run(sql, expect, what)


def test_each_row_is_written_once_per_batch():
    table = make_table(1)
    events = [(ev.INSERT, [(None, row((1, 0, 0)))]),
              (ev.UPDATE, [(row((1, 0, 0)), row((1, 1, 0)))]),
              (ev.UPDATE, [(row((1, 1, 0)), row((1, 2, 0)))]),
              (ev.UPDATE, [(row((5, 0, 0)), row((5, 0, 9)))]),
              (ev.DELETE, [(row((7, 0, 0)), None)])]
    statements = [s for s in compact(table, events) if s[1] != SESSION_STATEMENT]
    assert [s[1] for s in statements] == [1, 1, 2]  # DELETE 7, INSERT 1, upsert 5 (2 per row)
    assert statements[1][0].endswith(b"VALUES (1,2,0)")
    assert statements[2][0].endswith(b"(`c0`,`c2`) VALUES (5,9) ON DUPLICATE KEY UPDATE `c2`=VALUES(`c2`)")


@pytest.mark.parametrize("damage", ["missing", "already-new"])
def test_a_diverged_target_fails_a_check(damage):
    table = make_table(1)
    start = {(1,): (1, 0, 0), (2,): (2, 0, 0)}
    events = [(ev.UPDATE, [(row((1, 0, 0)), row((1, 5, 0))), (row((2, 0, 0)), row((2, 5, 0)))])]
    held = dict(start)
    if damage == "missing":
        del held[(2,)]
    else:
        held[(2,)] = (2, 5, 0)
    target = Target(held, 1)
    with pytest.raises(Divergence, match="expected 4"):
        for sql, expect, what in compact(table, events):
            target.run(sql, expect, what)

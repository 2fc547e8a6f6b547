"""A source disconnect in the middle of a transaction that is read event by event (the
per-event Python path): DDL, a barrier table without a primary key, a streamed big
transaction (above ``big_txn_rows``), and a plain transaction (read by the native
scanner, or event by event too with ``[apply] native_scan = false``). The
``FaultProxy`` cuts the dump connection right before a chosen packet of each (the
applier has read the transaction's first events, not its end), one after the other in
one run.

After each reconnect the applier must go on to the end with its watermark advancing:
exit 0, the checkpoint's position at the source's end, per-row counters, ledger and
``applier check`` equal, every transaction counted once. This is the test of the
suspicion that ``TransactionBuilder`` numbered a transaction when it started and a
reset after a disconnect dropped that number, which would leave the watermark waiting
for it for the rest of the run (the checkpoint frozen, and after the next disconnect a
resume from the frozen position applying transactions a second time: the cuts come one
after the other in one run, so the second one would show it). It did, before commit
790866e: at the cut in the DDL, then "Duplicate column name" at the next reconnect.

The run resumes from a checkpoint (a first catch-up applies the tables), so no start
check opens a dump connection of its own before the one the cuts are meant for.
"""

from __future__ import annotations

import signal
import time

import pytest

from tests.faults import faultlib as fl

BIG = 400  # rows per statement of the big transaction: 3 statements, big_txn_rows = 500
QUIET_ROWS = 120_000  # about 6 MB of rows events before the source goes quiet


def _marker(name: str) -> bytes:
    return f"cut-here-{name}".encode()


def _contains(marker: bytes):
    return lambda payload: marker in payload


def _tables(cur, db: str) -> None:
    cur.execute(f"CREATE DATABASE `{db}`")
    cur.execute(f"CREATE TABLE `{db}`.sbtest1 (id INT PRIMARY KEY, n INT NOT NULL, "
                "note VARCHAR(40) NOT NULL DEFAULT '')")
    cur.execute(f"CREATE TABLE `{db}`.ledger (run INT NOT NULL, conn INT NOT NULL, seq INT NOT NULL, "
                "PRIMARY KEY (run, conn, seq))")
    cur.execute(f"CREATE TABLE `{db}`.nopk (a INT NOT NULL, b VARCHAR(40) NOT NULL)")  # a barrier
    cur.execute(f"CREATE TABLE `{db}`.big (id INT PRIMARY KEY, b VARCHAR(40) NOT NULL)")
    cur.execute(f"INSERT INTO `{db}`.sbtest1 SELECT seq, 0, '' FROM `{db}`.seq_1_to_50")


class Txns:
    """Transactions on the source, each counted in ``ledger`` (seq) and ``n``."""

    def __init__(self, conn, db: str) -> None:
        self.conn, self.db, self.seq = conn, db, 0
        self.cur = conn.cursor()

    def run(self, *statements: str) -> None:
        self.seq += 1
        cur = self.cur
        cur.execute("BEGIN")
        cur.execute(f"UPDATE `{self.db}`.sbtest1 SET n = n + 1 WHERE id = %s", (self.seq % 50 + 1,))
        for sql in statements:
            cur.execute(sql)
        cur.execute(f"INSERT INTO `{self.db}`.ledger VALUES (1, 0, %s)", (self.seq,))
        cur.execute("COMMIT")

    def plain(self, count: int) -> None:
        for _ in range(count):
            self.run()


def _stream(source, db: str) -> list[tuple[str, bytes]]:
    """The transactions to cut, between plain ones; [(what, marker of the packet to cut
    before)] in binlog order."""
    conn = source.connect()
    try:
        t = Txns(conn, db)
        t.plain(20)
        # DDL: its GTID event is read, the cut comes before its Query event
        ddl = _marker("ddl").decode().replace("-", "_")
        t.cur.execute(f"ALTER TABLE `{db}`.sbtest1 ADD COLUMN {ddl} INT NOT NULL DEFAULT 7")
        t.plain(20)
        # a barrier (table without a key): its first rows event is read, not the second
        t.run(f"INSERT INTO `{db}`.nopk SELECT seq, 'first' FROM `{db}`.seq_1_to_5",
              f"INSERT INTO `{db}`.nopk VALUES (6, '{_marker('nopk').decode()}')")
        t.plain(20)
        # a big transaction: 800 rows are read (streaming began), the cut comes before the rest
        t.run(f"INSERT INTO `{db}`.big SELECT seq, 'first' FROM `{db}`.seq_1_to_{BIG}",
              f"INSERT INTO `{db}`.big SELECT seq, 'second' FROM `{db}`.seq_{BIG + 1}_to_{2 * BIG}",
              f"INSERT INTO `{db}`.big VALUES ({2 * BIG + 1}, '{_marker('big').decode()}')",
              f"INSERT INTO `{db}`.big SELECT seq, 'third' FROM `{db}`.seq_{2 * BIG + 2}_to_{3 * BIG}")
        t.plain(20)
        # a plain transaction: its UPDATE is read, not its INSERT
        t.run(f"UPDATE `{db}`.sbtest1 SET note = '{_marker('plain').decode()}' WHERE id = 50")
        t.plain(20)
    finally:
        conn.close()
    return [("ddl", ddl.encode()), ("nopk", _marker("nopk")), ("big", _marker("big")),
            ("plain", _marker("plain"))]


@pytest.mark.parametrize("native_scan", [True, False], ids=["native-scan", "per-event-only"])
def test_disconnect_in_the_middle_of_a_transaction(source, target, dbname, tmp_path, spawn,
                                                   proxies, native_scan):
    proxy = proxies(source)
    db, schema = dbname, f"ckpt_{dbname}"
    before = fl.source_transactions(source)
    start = source.binlog_position()
    conn = source.connect()
    try:
        _tables(conn.cursor(), db)
    finally:
        conn.close()
    secs = fl.sections(source, target, [db], start=start, schema=schema,
                       source_addr=(proxy.host, proxy.port), big_txn_rows=500,
                       native_scan=native_scan, workers=2,
                       source_extra={"reconnect_attempts": 5, "reconnect_backoff_seconds": 0.05})
    config = fl.write(tmp_path / "applier.toml", secs)
    fl.catch_up(spawn, config)  # the tables, and a checkpoint to resume from

    cuts = _stream(source, db)
    proxy.cut_before(*(_contains(marker) for _, marker in cuts))
    app = fl.catch_up(spawn, config)
    assert not proxy.armed, (f"only {len(cuts) - proxy.armed} of {len(cuts)} cuts happened "
                             f"({[w for w, _ in cuts]}); {app.describe()}")
    assert fl.log_count(app, "source connection lost") >= len(cuts), app.describe()

    total = fl.source_transactions(source) - before
    end = source.binlog_position()
    assert fl.checkpoint_position(target, schema) == end, "the watermark stopped advancing"
    fl.assert_equal(source, target, [db], schema, total)
    for table in ("nopk", "big"):  # not workload tables: compared here too
        sums = [server.query(f"SELECT COUNT(*), SUM(CRC32(b)) FROM `{db}`.{table}")
                for server in (source, target)]
        assert sums[0] == sums[1], f"{table}: source {sums[0]}, target {sums[1]}"


@pytest.mark.parametrize("native_scan", [True, False], ids=["native-scan", "per-event-only"])
def test_a_quiet_source_inside_a_streamed_transaction_commits_none_of_it(source, target, dbname,
                                                                         tmp_path, spawn, proxies,
                                                                         native_scan):
    """The source goes quiet in the middle of a big transaction the applier streams (its
    first rows already written in an open target transaction): neither the idle loop
    (row 0 taking the position once the workers are quiet) nor a SIGTERM then may commit
    a part of it. The stop rolls it back and exits 0 at the position before it; the next
    run applies it whole."""
    proxy = proxies(source)
    db, schema = dbname, f"ckpt_{dbname}"
    start = source.binlog_position()
    conn = source.connect()
    try:
        _tables(conn.cursor(), db)
    finally:
        conn.close()
    secs = fl.sections(source, target, [db], start=start, schema=schema,
                       source_addr=(proxy.host, proxy.port), big_txn_rows=500, workers=2,
                       native_scan=native_scan)
    config = fl.write(tmp_path / "applier.toml", secs)
    fl.catch_up(spawn, config)

    proxy.stall_before(_contains(_marker("big")))
    app = spawn(config, verbose=True)  # follows the source until SIGTERM
    conn = source.connect()
    try:
        # transactions for the workers first: the watermark moves past what row 0 last
        # recorded; then one over the native scanner's 4 MiB (it streams from there),
        # and the quiet point inside it
        t = Txns(conn, db)
        t.plain(20)
        before = source.binlog_position()  # where the big transaction begins
        t.run(
            f"INSERT INTO `{db}`.big SELECT seq, RPAD('first', 40, 'x') FROM `{db}`.seq_1_to_{QUIET_ROWS}",
            f"INSERT INTO `{db}`.big VALUES ({QUIET_ROWS + 1}, '{_marker('big').decode()}')",
            f"INSERT INTO `{db}`.big SELECT seq, 'third' FROM `{db}`.seq_{QUIET_ROWS + 2}_to_{QUIET_ROWS + BIG}")
    finally:
        conn.close()
    fl.wait_for("the source to go quiet inside the big transaction", lambda: proxy.stalls == 1, app=app)
    fl.wait_for("the streamed rows", lambda: "streaming it" in app.stderr, app=app)
    time.sleep(2.5)  # the idle loop runs many times (row 0 may record at most once a second)
    assert target.query(f"SELECT COUNT(*) FROM `{db}`.big")[0][0] == 0, "a part of it committed"
    app.signal(signal.SIGTERM, group=False)
    assert app.wait(fl.APPLY_SECONDS) == 0, app.describe()
    app.assert_gone()
    assert target.query(f"SELECT COUNT(*) FROM `{db}`.big")[0][0] == 0, "a part of it committed"
    assert fl.checkpoint_position(target, schema) == before

    proxy.release()
    fl.catch_up(spawn, config)
    assert target.query(f"SELECT COUNT(*) FROM `{db}`.big")[0][0] == QUIET_ROWS + BIG
    fl.assert_equal(source, target, [db])

"""preserve_commit_order: workers apply in parallel but commit in source order. The
target here writes its own binlog, whose order is its commit order: the ledger rows
(one per source transaction) must appear there in the order of the source's binlog."""

from __future__ import annotations

import threading
import time
from multiprocessing import Value
from pathlib import Path

import pytest

from applier import config
from applier.binlog.events import INSERT
from applier.binlog.position import BinlogPosition
from applier.binlog.rowcodec import build_plan, decode_rows
from applier.binlog.tablemap import parse_table_map
from applier.binlog.transactions import RowsEvent, TransactionBuilder
from applier.db.schema import SchemaCache
from applier.harness import sandbox, workload
from applier.pipeline import checkpoint
from applier.pipeline.messages import Work
from applier.pipeline.planner import BatchPlanner
from applier.pipeline.session import Session
from applier.pipeline.source import DumpSource, EndOfBinlog
from applier.pipeline.tables import TableCache
from tests.support import assert_same, run_applier


@pytest.fixture
def logged_target(request, flavor, tmp_path):
    """A target (of the test's flavor) that keeps a binlog, so its commit order can be
    read back."""
    if flavor == "mysql":
        request.getfixturevalue("mysql_available")
    server = sandbox.FLAVORS[flavor]("logged-target", Path(tmp_path / "ordered"), sandbox.free_port(), 3,
                                     True, sandbox.source_options(flavor))
    server.start()
    yield server
    server.stop()


def ledger_order(server: sandbox.LocalMariadb, start: tuple[str, int], db: str) -> list[list[tuple[bytes, ...]]]:
    """Per transaction in ``server``'s binlog (in binlog = commit order), the
    (run, conn, seq) of its ledger inserts."""
    sc = server.server_config()
    src = DumpSource(config.SourceConfig(host=sc.host, port=sc.port, user=sc.user, password=sc.password,
                                           server_id=9999), server.flavor, non_blocking=True)
    src.open(BinlogPosition(*start))
    builder = TransactionBuilder()
    order: list[list[tuple[bytes, ...]]] = []
    try:
        for e in src.events():
            txn = builder.add(e, src.file)
            if txn is None:
                continue
            rows: list[tuple[bytes, ...]] = []
            for item in txn.items:
                if not isinstance(item, RowsEvent) or item.op != INSERT:
                    continue
                tmap = parse_table_map(txn.table_maps[item.table_id])
                if (tmap.db, tmap.table) != (db, "ledger"):
                    continue
                for _, after in decode_rows(build_plan(tmap, None), item.op, item.body, item.version):
                    rows.append(tuple(after))  # type: ignore[arg-type]
            if rows:
                order.append(rows)
    except EndOfBinlog:
        pass
    finally:
        src.close()
    return order


@pytest.mark.flavors("mariadb", "mysql")
def test_commits_follow_source_order(source, logged_target, dbname):
    sc, tc = source.server_config(), logged_target.server_config()
    src_start = source.binlog_position()
    tgt_start = logged_target.binlog_position()
    workload.prepare(sc, dbname, tables=4, rows=200)
    workload.run(sc, dbname, "uniform", 600, 6, tables=4, rows=200)
    cfg = config.Config(
        source=config.SourceConfig(host=sc.host, port=sc.port, user=sc.user, password=sc.password,
                                   start_file=src_start[0], start_pos=src_start[1]),
        target=config.TargetConfig(host=tc.host, port=tc.port, user=tc.user, password=tc.password,
                                   checkpoint_schema=f"ckpt_{dbname}"),
        apply=config.ApplyConfig(workers=4, batch_txns=5, preserve_commit_order=True,
                                 stop_at_end=True, databases=(dbname,), adapt_workers=False),
    )  # (every worker fed: their commits must still follow source order)
    m = run_applier(cfg)
    assert m.transactions >= 600
    assert_same(source, logged_target, dbname)
    source_commits = ledger_order(source, src_start, dbname)
    assert all(len(rows) == 1 for rows in source_commits) and len(source_commits) == 600
    position = {rows[0]: i for i, rows in enumerate(source_commits)}
    # a target commit holds a batch of whole source transactions (rows inside it may be
    # reordered by compaction); in commit order the batches must follow source order
    target_commits = [sorted(position[r] for r in rows) for rows in ledger_order(logged_target, tgt_start, dbname)]
    assert [i for batch in target_commits for i in batch] == list(range(600))
    assert len(target_commits) >= 600 // 5  # really in batches of at most batch_txns


def test_a_later_transaction_waits_for_its_turn_before_it_runs(source, target, dbname):
    """The ordering deadlock that must not happen: ticket 2 applied and holding a row
    lock while it waits for ticket 1 to commit, and ticket 1 needing that lock. (The
    scheduler never routes two transactions touching one row to different workers; gap
    or foreign-key locks could still do this.) Ticket 2 runs nothing before its turn,
    so ticket 1 commits first and both end in source order."""
    start = source.binlog_position()
    source.execute(f"CREATE DATABASE {dbname}")
    source.execute(f"CREATE TABLE {dbname}.t (id INT PRIMARY KEY, v INT NOT NULL)")
    target.execute(f"CREATE DATABASE {dbname}")
    target.execute(f"CREATE TABLE {dbname}.t (id INT PRIMARY KEY, v INT NOT NULL)")
    target.execute(f"INSERT INTO {dbname}.t VALUES (1, 0)")
    source.execute(f"INSERT INTO {dbname}.t VALUES (1, 0)")
    first_update = source.binlog_position()
    source.execute(f"UPDATE {dbname}.t SET v = 1 WHERE id = 1")
    source.execute(f"UPDATE {dbname}.t SET v = 2 WHERE id = 1")

    sc = source.server_config()
    src = DumpSource(config.SourceConfig(host=sc.host, port=sc.port, user=sc.user, password=sc.password,
                                           server_id=9998), "mariadb", non_blocking=True)
    src.open(BinlogPosition(*first_update))
    builder, txns = TransactionBuilder(), []
    try:
        for e in src.events():
            txn = builder.add(e, src.file)
            if txn is not None and txn.items:
                txns.append(txn)
    except EndOfBinlog:
        pass
    finally:
        src.close()
    assert len(txns) == 2 and start
    txns[0].ticket, txns[1].ticket = 1, 2

    tc = target.server_config()
    tcfg = config.TargetConfig(host=tc.host, port=tc.port, user=tc.user, password=tc.password,
                               checkpoint_schema=f"ckpt_{dbname}")
    conn = target.connect()
    checkpoint.ensure_table(conn, tcfg.checkpoint_schema)
    sessions = [Session(tcfg, 1), Session(tcfg, 2)]
    for s in sessions:
        s.row.insert_if_missing(s.conn, None)
    turn = Value("q", 0)
    errors: list[BaseException] = []

    def apply(session: Session, txn) -> None:
        try:
            planner = BatchPlanner(TableCache(SchemaCache(target.connect())))
            session.execute(planner.plan([Work([txn], 0, "", "", 0)]), 3, 0.01, turn)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    later = threading.Thread(target=apply, args=(sessions[1], txns[1]))
    later.start()  # waits for ticket 1 before it runs anything
    time.sleep(0.3)
    earlier = threading.Thread(target=apply, args=(sessions[0], txns[0]))
    earlier.start()  # the row is free: it commits, then ticket 2 runs
    earlier.join(30)
    later.join(30)
    assert not errors, errors
    assert turn.value == 2
    assert list(target.query(f"SELECT v FROM {dbname}.t WHERE id = 1")) == [(2,)]

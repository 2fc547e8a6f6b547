"""StatementLog: consecutive lenient statements share one lenient region (a strict
setting right before a lenient one cancels out), and every batch ends strict."""

from __future__ import annotations

from applier.pipeline.sink import SESSION_STATEMENT, StatementLog, lenient


def test_consecutive_lenient_statements_share_one_region():
    log = StatementLog()
    log.run(b"DELETE 1", 1, "delete")
    lenient(log, b"UPSERT a", 2, "update of a")
    lenient(log, b"UPSERT b", 4, "update of b")
    log.run(b"INSERT c", 1, "insert")
    lenient(log, b"UPSERT d", 2, "update of d")
    kinds = [(what if expect == SESSION_STATEMENT else sql.decode()) for sql, expect, what in log.take()]
    assert kinds == ["DELETE 1", "sql_mode=lenient", "UPSERT a", "UPSERT b", "sql_mode=strict", "INSERT c",
                     "sql_mode=lenient", "UPSERT d", "sql_mode=strict"]
    assert log.take() == []

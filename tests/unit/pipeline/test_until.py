"""``UntilTracker`` (pipeline/until.py): nothing past the UNTIL point is applied, even when
the point comes before the first transaction read; GTIDs applied before the run (the
start position, a MySQL target's gtid_executed) count as read."""

from __future__ import annotations

import logging

from applier.binlog.transactions import Transaction
from applier.pipeline.until import Until, UntilTracker

U = "3e11fa47-71ca-11e1-9e33-c80aa9429562"


def txn(gtid: str, end_pos: int = 1000, ts: int = 1_700_000_000) -> Transaction:
    return Transaction(1, gtid, "mysql-bin.000001", end_pos, ts)


def settle(tracker: UntilTracker, gtids: list[str]) -> list[str]:
    """The coordinator's calls: before() says "do not apply", after() "that was the last";
    the GTIDs applied."""
    applied = []
    for g in gtids:
        t = txn(g)
        if tracker.before(t):
            break
        applied.append(g)
        if tracker.after(t):
            break
    return applied


def test_mariadb_until_gtid_stops_after_it():
    tracker = UntilTracker(Until(gtid="0-1-5"), "")
    assert settle(tracker, [f"0-1-{n}" for n in range(3, 9)]) == ["0-1-3", "0-1-4", "0-1-5"]
    assert tracker.reached


def test_mariadb_until_gtid_before_the_first_transaction_applies_nothing(caplog):
    tracker = UntilTracker(Until(gtid="0-1-5"), "")
    with caplog.at_level(logging.WARNING, logger="applier.pipeline.until"):
        assert settle(tracker, [f"0-1-{n}" for n in range(10, 14)]) == []
    assert tracker.reached
    assert "nothing applied" in caplog.text and "0-1-10" in caplog.text


def test_mariadb_until_gtid_past_in_its_domain_stops_before():
    # a gap in the domain: 0-1-5 never comes, 0-1-6 is past the point
    tracker = UntilTracker(Until(gtid="0-1-5"), "")
    assert settle(tracker, ["0-1-3", "1-1-40", "0-1-4", "0-1-6", "0-1-7"]) == ["0-1-3", "1-1-40", "0-1-4"]


def test_mysql_until_gtid_counts_what_was_applied_before_the_run():
    """The PITR call: a backup holds uuid:1-7 (never read by this run), --until-gtid
    uuid:1-10: reached after uuid:10, not at the end of the files."""
    tracker = UntilTracker(Until(gtid=f"{U}:1-10", applied=f"{U}:1-7"), "")
    assert not tracker.read_all()
    assert settle(tracker, [f"{U}:{n}" for n in range(8, 15)]) == [f"{U}:8", f"{U}:9", f"{U}:10"]
    assert tracker.reached
    assert UntilTracker(Until(gtid=f"{U}:1-7", applied=f"{U}:1-9"), "").read_all()  # nothing to apply


def test_mysql_until_gtid_before_the_first_transaction_applies_nothing():
    tracker = UntilTracker(Until(gtid=f"{U}:1-5"), "")
    assert settle(tracker, [f"{U}:{n}" for n in range(9, 12)]) == []
    assert tracker.reached


def test_mysql_transactions_of_other_sources_and_tags_are_not_past_the_point():
    other = "11111111-2222-3333-4444-555555555555"
    tracker = UntilTracker(Until(gtid=f"{U}:tag_b:3"), f"{U}:tag_b:1-2")
    gtids = [f"{other}:90", f"{U}:tag_a:8", f"{U}:tag_b:3", f"{U}:tag_b:4"]
    assert settle(tracker, gtids) == gtids[:3]


def test_until_time_before_the_first_transaction_applies_nothing(caplog):
    tracker = UntilTracker(Until(time=1_600_000_000.0), "")
    with caplog.at_level(logging.WARNING, logger="applier.pipeline.until"):
        assert settle(tracker, ["0-1-1", "0-1-2"]) == []
    assert tracker.reached and "nothing applied" in caplog.text

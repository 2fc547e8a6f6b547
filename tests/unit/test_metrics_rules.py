"""What the metrics say, without a server: the lag rule (metrics.lag_seconds), the
transactions behind the source from GTID positions (exporter.transactions_past) and the
batch histogram's buckets. The same figures are scraped from a running applier on real
servers in tests/integration/test_metrics.py."""

from __future__ import annotations

import time

import pytest

from applier.metrics import BATCH_BUCKETS, Metrics, lag_seconds
from applier.ops.exporter import transactions_past

NOW = 1_700_000_000.25
U = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
V = "4f22fa47-71ca-11e1-9e33-c80aa9429562"


# -- lag ------------------------------------------------------------------------------------


def test_lag_is_the_age_of_the_oldest_transaction_not_committed():
    # read and not committed: its source commit time, whatever the reading does
    assert lag_seconds(int(NOW) - 30, int(NOW) - 1, False, now=NOW) == pytest.approx(30.25)
    assert lag_seconds(int(NOW) - 30, int(NOW) - 1, True, now=NOW) == pytest.approx(30.25)


def test_lag_is_0_only_when_caught_up_and_idle():
    assert lag_seconds(0, int(NOW) - 3600, True, now=NOW) == 0.0  # an hour idle: not an hour behind


def test_lag_while_reading_a_backlog_with_nothing_in_flight():
    # everything read has committed but the reading is not at the end (e.g. a stretch of
    # filtered transactions): the next one committed on the source no earlier than the last read
    assert lag_seconds(0, int(NOW) - 12, False, now=NOW) == pytest.approx(12.25)


def test_lag_unknown_before_anything_was_read():
    assert lag_seconds(0, 0, False, now=NOW) is None
    assert lag_seconds(0, 0, True, now=NOW) == 0.0  # idle from the start: caught up


def test_lag_never_negative_with_a_source_clock_ahead():
    assert lag_seconds(int(NOW) + 5, 0, False, now=NOW) == 0.0


def test_metrics_lag_for_the_progress_line():
    now = int(time.time())
    m = Metrics(last_source_timestamp=now - 100)
    assert 7 <= m.lag_seconds(now - 7, reading_idle=True) < 9
    assert m.lag_seconds(0, reading_idle=True) == 0.0
    assert Metrics().lag_seconds() == 0.0  # nothing read: not known


def test_batch_histogram_buckets():
    m = Metrics()
    for n in (1, 2, 3, 5, 6, BATCH_BUCKETS[-1], BATCH_BUCKETS[-1] + 1):
        m.batch(n, retries=1 if n == 3 else 0)
    counts = dict(zip((*BATCH_BUCKETS, "inf"), m.batch_counts, strict=True))
    assert (counts[1], counts[2], counts[5], counts[10]) == (1, 1, 2, 1)
    assert counts[BATCH_BUCKETS[-1]] == 1 and counts["inf"] == 1
    assert m.batches == 7 and m.retries == 1


# -- transactions behind the source, from GTIDs ----------------------------------------------


@pytest.mark.parametrize("applied, source, before_file, behind", [
    ("0-1-10", "0-1-25", None, 15),
    ("0-1-10,1-2-5", "0-1-12,1-2-9", None, 6),
    ("0-1-30", "0-1-25", None, 0),  # a source read before the last commits: never below 0
    ("0-1-10", "0-2-25", None, 15),  # another server in the same domain: one sequence
    # a domain the run applied nothing of: resolved by the position where the applied
    # position's binlog file starts (BINLOG_GTID_POS(file, 4))
    ("0-1-10", "0-1-12,5-1-3", "0-1-8,5-1-3", 2),
    ("0-1-10", "0-1-12,5-1-3", "0-1-8,5-1-1", None),  # domain 5 wrote in or after that file
    ("0-1-10", "0-1-12,5-1-3", "0-1-8", None),
    ("0-1-10", "0-1-12,5-1-3", None, None),  # that position unknown
    ("", "0-1-12", "0-1-1", None),  # no applied GTIDs (a run from a file position, before its first)
    ("0-1-10", "", None, None),  # a source without GTIDs
])
def test_mariadb_by_sequence_numbers_per_domain(applied, source, before_file, behind):
    assert transactions_past(applied, source, before_file) == behind


@pytest.mark.parametrize("applied, source, before_file, behind", [
    (f"{U}:1-100", f"{U}:1-130", None, 30),
    # a run started from a file position knows only what it applied: counted past the
    # highest applied, not the whole history before it
    (f"{U}:57-100", f"{U}:1-130", None, 30),
    (f"{U}:1-100", f"{U}:1-100:105-110", None, 6),
    (f"{U}:1-100,{V}:1-5", f"{U}:1-101,{V}:1-7", None, 3),
    (f"{U}:1-140", f"{U}:1-130", None, 0),
    # keys the run applied nothing of (a tag, another uuid): resolved by the file's Previous_gtids
    (f"{U}:1-100", f"{U}:1-130:tag_a:1-4", f"{U}:1-90:tag_a:1-4", 30),
    (f"{U}:1-100", f"{U}:1-130,{V}:1-9", f"{U}:1-90,\n{V}:1-9", 30),
    (f"{U}:1-100", f"{U}:1-130:tag_a:1-4", f"{U}:1-90:tag_a:1-3", None),
    (f"{U}:1-100", f"{U}:1-130,{V}:1-9", f"{U}:1-90", None),
    (f"{U}:1-100", f"{U}:1-130,{V}:1-9", None, None),
    ("", f"{U}:1-130", f"{U}:1-10", None),
    (f"{U}:1-100", "0-1-12", None, None),  # flavors differ: nothing comparable
])
def test_mysql_by_gtid_sets_per_uuid_and_tag(applied, source, before_file, behind):
    assert transactions_past(applied, source, before_file) == behind

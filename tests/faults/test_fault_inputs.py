"""Bad input, most of it arriving mid-stream (after the applier started and applied some):
each must stop the applier before anything of the offending transaction is applied,
with one ``error:`` line naming the setting at fault, a non-zero exit and no traceback;
after the cause is fixed, a restart behaves.

* on the source, per session: ``binlog_row_image`` NOBLOB / MINIMAL (an UPDATE of a
  table with a TEXT column), ``binlog_format`` STATEMENT / MIXED (an INSERT with RAND()
  or a user variable). The binlog cannot be re-done, so the fix is the operator's: the
  test first checks that a restart refuses again (nothing applied), then re-seeds the
  database on the target from the source, drops the checkpoint and starts from a fresh
  position after the bad transaction: later transactions apply and the copy is equal;
* a target column narrower than the source's (BIGINT->SMALLINT, VARCHAR(50)->VARCHAR(5),
  DATETIME(6)->DATE) with values that do not fit: the line names the column and both
  types; fix: ALTER the target column, the restart applies the refused transaction;
* a start position inside an event or inside a transaction: no checkpoint is left, the
  corrected config works;
* a row larger than the target's max_allowed_packet (1 MiB, a 2 MiB row): the line
  names max_allowed_packet and the size; fix: raise it, the restart applies it;
* a target user without privileges on one table: the line says privilege (not "missing
  table"); fix: GRANT, the restart applies it;
* bad config values: one line naming the key (never printing a password back), nothing
  created on the target; fix: the corrected config works.

Servers: this module's own pair (``own_pair``): global settings change on its target,
and statement-logged events land in its source's binlog.
"""

from __future__ import annotations

import re
import secrets

import pytest

from applier.errors import ConfigError, SourceError
from tests.appliers import Applier
from tests.faults import faultlib as fl
from tests.integration.test_cli_errors import run_cli
from tests.support import assert_same

REFUSE_SECONDS = 45  # bound on the wait for a refusal


# ---- helpers ----------------------------------------------------------------------------------


def _exists(server, db: str) -> bool:
    return bool(server.query("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (db,)))


def _rows(server, db: str, table: str) -> list[tuple]:
    return server.query(f"SELECT * FROM `{db}`.`{table}` ORDER BY 1")


def _count(server, db: str, table: str) -> int:
    """Rows of ``db.table``; 0 while the applier has not created it yet."""
    if not server.query("SELECT 1 FROM information_schema.tables WHERE table_schema = %s "
                        "AND table_name = %s", (db, table)):
        return 0
    return int(server.query(f"SELECT COUNT(*) FROM `{db}`.`{table}`")[0][0])


def _state(server, db: str) -> str:
    """``db``'s tables on ``server``, short (for failure messages)."""
    if server is None or not _exists(server, db):
        return "-"
    out = []
    for (table,) in server.query(f"SHOW TABLES FROM `{db}`"):
        rows = [tuple(str(v)[:40] for v in r) for r in _rows(server, db, table)]
        out.append(f"{table}: {rows[:12]}{' ...' if len(rows) > 12 else ''}")
    return "; ".join(out)


def _no_checkpoint(target, db: str) -> bool:
    """No checkpoint row (an empty table is no checkpoint: nothing to resume from)."""
    return not _count(target, f"ckpt_{db}", "checkpoint")


def _assert_tables_equal(source, target, db: str, tables: tuple[str, ...]) -> None:
    """Row by row (the per-row counters included), then ``applier check``."""
    for table in tables:
        assert _rows(source, db, table) == _rows(target, db, table), f"{db}.{table} differs"
    assert_same(source, target, db)


def _config(tmp_path, source, target, db, start, name="applier.toml", *, target_extra=None,
            source_extra=None, **apply):
    secs = fl.sections(source, target, [db], start=start, schema=f"ckpt_{db}", workers=2,
                       target_extra={"reconnect_attempts": 1, **(target_extra or {})},
                       source_extra=source_extra, **apply)
    return fl.write(tmp_path / name, secs), secs


def _source_session(source, **session):
    conn = source.connect()
    cur = conn.cursor()
    for key, value in session.items():
        cur.execute(f"SET SESSION {key} = %s", (value,))
    return conn, cur


def _wait_refusal(app: Applier, after_applied, target=None, db: str = "") -> None:
    """Wait for the applier to stop; fail at once if it applied ``after_applied`` (a
    transaction written after the bad one: it went past it), showing ``db``'s tables."""
    def settled():
        if app.proc.poll() is not None:
            return True
        if after_applied():
            app.kill_all()
            raise AssertionError(f"the applier went past the bad transaction; {app.describe()}; "
                                 f"target: {_state(target, db)}")
        return False

    fl.wait_for("the applier to refuse", settled, REFUSE_SECONDS, pause=0.05)
    app.assert_gone()


def _reseed(source, target, db: str) -> tuple[str, int]:
    """What an operator does after the source wrote something the applier cannot
    apply: copy the database to the target again (the source is quiet meanwhile) and
    start from the position of the copy. Returns that position."""
    target.execute(f"DROP DATABASE IF EXISTS `{db}`")
    target.execute(f"DROP DATABASE IF EXISTS `ckpt_{db}`")
    target.execute(f"CREATE DATABASE `{db}`")
    position = source.binlog_position()
    for (table,) in source.query(f"SHOW TABLES FROM `{db}`"):
        ddl = source.query(f"SHOW CREATE TABLE `{db}`.`{table}`")[0][1]
        conn = target.connect(db)
        try:
            cur = conn.cursor()
            cur.execute(ddl)
            rows = _rows(source, db, table)
            if rows:
                marks = ", ".join(["%s"] * len(rows[0]))
                cur.executemany(f"INSERT INTO `{table}` VALUES ({marks})", rows)
        finally:
            conn.close()
    assert source.binlog_position() == position, "the source wrote during the copy"
    return position


# ---- binlog_row_image and binlog_format of one source session ------------------------------------


def _doc_tables(source, db: str) -> None:
    cur = source.connect().cursor()
    cur.execute(f"CREATE DATABASE `{db}`")
    cur.execute(f"CREATE TABLE `{db}`.doc (id INT PRIMARY KEY, n INT NOT NULL, body TEXT NOT NULL, "
                "note VARCHAR(20) NOT NULL DEFAULT '')")
    cur.execute(f"CREATE TABLE `{db}`.marks (id INT PRIMARY KEY, what VARCHAR(64) NOT NULL)")
    for i in range(1, 21):
        cur.execute(f"INSERT INTO `{db}`.doc VALUES (%s, 0, %s, '')", (i, f"body {i} " * 40))


def _source_side(own_pair, db, tmp_path, spawn, bad, fragments: tuple[str, ...]) -> None:
    """The doc tables, an applier that applied them, then ``bad()`` (one transaction on
    a misconfigured session: doc rows 1-5 and marks row 1) and a good transaction on doc
    row 1 after it. Refused, nothing of it applied; refused again on restart; after a
    re-seed from a fresh position, later transactions apply."""
    source, target = own_pair
    start = source.binlog_position()
    _doc_tables(source, db)
    config, _ = _config(tmp_path, source, target, db, start)
    app = spawn(config)
    fl.wait_for("the first rows", lambda: _count(target, db, "doc") == 20, app=app)
    bad()
    # after it, a transaction on a row it changed: applied only if the applier went past it
    source.execute(f"UPDATE `{db}`.doc SET note = 'after' WHERE id = 1")
    _wait_refusal(app, lambda: _count(target, db, "marks") or _rows(target, db, "doc")[0][3],
                  target, db)
    assert _rows(target, db, "marks") == [], "the bad transaction (or a later one) was applied"
    assert [r[1] for r in _rows(target, db, "doc")] == [0] * 20, "the bad transaction was half applied"
    again = run_cli("run", "--config", str(config), "--stop-at-end")  # the cause is still there
    assert again.returncode != 0 and _rows(target, db, "marks") == [], again.stderr

    fresh = _reseed(source, target, db)
    source.execute(f"UPDATE `{db}`.doc SET n = n + 1, note = 'fixed' WHERE id > 10")
    source.execute(f"INSERT INTO `{db}`.marks VALUES (3, 'after the re-seed')")
    fixed, _ = _config(tmp_path, source, target, db, fresh, "fixed.toml")
    fl.catch_up(spawn, fixed)
    _assert_tables_equal(source, target, db, ("doc", "marks"))
    # the lines last: what works today is checked even where they are not right yet
    passwords = (source.password, target.password)
    fl.app_error(app, None, *fragments, secrets=passwords)
    fl.error_line(again.stderr, again.returncode, None, *fragments, secrets=passwords,
                  stdout=again.stdout)


@pytest.mark.parametrize("image", ["NOBLOB", "MINIMAL"])
def test_partial_row_image_in_one_session(own_pair, dbname, tmp_path, spawn, image):
    source, _ = own_pair

    def bad() -> None:
        conn, cur = _source_session(source, binlog_row_image=image)
        try:
            cur.execute("BEGIN")
            cur.execute(f"UPDATE `{dbname}`.doc SET n = n + 1, note = 'partial' WHERE id <= 5")
            cur.execute(f"INSERT INTO `{dbname}`.marks VALUES (1, 'in the partial-image transaction')")
            cur.execute("COMMIT")
        finally:
            conn.close()

    _source_side(own_pair, dbname, tmp_path, spawn, bad, ("binlog_row_image",))


@pytest.mark.parametrize("fmt, how", [("STATEMENT", "rand"), ("STATEMENT", "user variable"),
                                      ("MIXED", "rand"), ("MIXED", "user variable")])
def test_row_change_logged_as_a_statement(own_pair, dbname, tmp_path, spawn, fmt, how):
    source, _ = own_pair

    def bad() -> None:
        conn, cur = _source_session(source, binlog_format=fmt)
        try:
            cur.execute("BEGIN")
            if how == "rand":
                cur.execute(f"INSERT INTO `{dbname}`.marks VALUES (1, CONCAT('rand ', RAND()))")
            else:
                cur.execute("SET @mark = CONCAT('variable ', CONNECTION_ID())")
                cur.execute(f"INSERT INTO `{dbname}`.marks VALUES (1, @mark)")
            cur.execute(f"UPDATE `{dbname}`.doc SET n = n + 1 WHERE id <= 5")
            cur.execute("COMMIT")
        finally:
            conn.close()

    _source_side(own_pair, dbname, tmp_path, spawn, bad, ("binlog_format",))


# ---- a narrower target column ---------------------------------------------------------------------


NARROW = [
    ("BIGINT", "SMALLINT", 9_000_000_000, ("bigint", "smallint")),
    ("VARCHAR(50)", "VARCHAR(5)", "far longer than five", ("varchar", "varchar(5)")),
    ("DATETIME(6)", "DATE", "2024-05-06 07:08:09.123456", ("datetime(6)", "date")),
]


@pytest.mark.parametrize("source_type, target_type, value, types", NARROW,
                         ids=["bigint-smallint", "varchar50-varchar5", "datetime6-date"])
def test_target_column_narrower_than_the_source(own_pair, dbname, tmp_path, spawn,
                                                source_type, target_type, value, types):
    source, target = own_pair
    db = dbname
    conn, cur = _source_session(source, sql_log_bin=0)  # the tables exist on both already
    try:
        cur.execute(f"CREATE DATABASE `{db}`")
        cur.execute(f"CREATE TABLE `{db}`.ok (id INT PRIMARY KEY, n INT NOT NULL)")
        cur.execute(f"CREATE TABLE `{db}`.wide (id INT PRIMARY KEY, v {source_type} NOT NULL)")
    finally:
        conn.close()
    target.execute(f"CREATE DATABASE `{db}`")
    target.execute(f"CREATE TABLE `{db}`.ok (id INT PRIMARY KEY, n INT NOT NULL)")
    target.execute(f"CREATE TABLE `{db}`.wide (id INT PRIMARY KEY, v {target_type} NOT NULL)")
    start = source.binlog_position()
    for i in range(1, 11):
        source.execute(f"INSERT INTO `{db}`.ok VALUES (%s, 0)", (i,))
    config, _ = _config(tmp_path, source, target, db, start)
    app = spawn(config)
    fl.wait_for("the first rows", lambda: _count(target, db, "ok") == 10, app=app)
    conn = source.connect()
    try:
        cur = conn.cursor()
        cur.execute("BEGIN")
        cur.execute(f"UPDATE `{db}`.ok SET n = n + 1 WHERE id <= 5")
        cur.execute(f"INSERT INTO `{db}`.wide VALUES (1, %s)", (value,))
        cur.execute("COMMIT")
    finally:
        conn.close()
    source.execute(f"UPDATE `{db}`.ok SET n = n + 10 WHERE id = 1")  # waits behind it
    _wait_refusal(app, lambda: _rows(target, db, "ok")[0][1], target, db)
    assert _rows(target, db, "wide") == [], "a value that does not fit reached the target"
    assert [r[1] for r in _rows(target, db, "ok")] == [0] * 10, "the transaction was half applied"

    target.execute(f"ALTER TABLE `{db}`.wide MODIFY v {source_type} NOT NULL")
    fl.catch_up(spawn, config)
    _assert_tables_equal(source, target, db, ("ok", "wide"))
    fl.app_error(app, None, f"{db}.wide", "v", *types, secrets=(source.password, target.password))


def test_a_value_too_long_in_a_compacted_update_stops(own_pair, dbname, tmp_path, spawn):
    """Compacted updates write only the key and the changed columns. A target column
    with as many bytes as the source's but fewer characters (latin1 VARCHAR(20) into
    utf8mb4 VARCHAR(5): 20 bytes each) passes the type check; a longer value must then
    stop the applier (a strict session), never be cut to fit."""
    source, target = own_pair
    db = dbname
    conn, cur = _source_session(source, sql_log_bin=0)  # the tables exist on both already
    try:
        cur.execute(f"CREATE DATABASE `{db}`")
        cur.execute(f"CREATE TABLE `{db}`.narrow (id INT PRIMARY KEY, v VARCHAR(20) CHARACTER SET latin1 "
                    "NOT NULL, n INT NOT NULL, t TEXT NOT NULL)")
        cur.execute(f"INSERT INTO `{db}`.narrow VALUES (1, 'abc', 0, 'x'), (2, 'abc', 0, 'x')")
    finally:
        conn.close()
    target.execute(f"CREATE DATABASE `{db}`")
    target.execute(f"CREATE TABLE `{db}`.narrow (id INT PRIMARY KEY, v VARCHAR(5) CHARACTER SET utf8mb4 "
                   "NOT NULL, n INT NOT NULL, t TEXT NOT NULL)")
    target.execute(f"INSERT INTO `{db}`.narrow VALUES (1, 'abc', 0, 'x'), (2, 'abc', 0, 'x')")
    start = source.binlog_position()
    source.execute(f"UPDATE `{db}`.narrow SET n = n + 1")  # fits: applied
    config, _ = _config(tmp_path, source, target, db, start)
    app = spawn(config)
    fl.wait_for("the first update", lambda: _rows(target, db, "narrow")[0][2] == 1, app=app)
    source.execute(f"UPDATE `{db}`.narrow SET v = 'abcdefghij' WHERE id = 1")
    source.execute(f"UPDATE `{db}`.narrow SET n = n + 10 WHERE id = 1")  # waits behind it
    _wait_refusal(app, lambda: _rows(target, db, "narrow")[0][2] == 11, target, db)
    assert _rows(target, db, "narrow")[0][1] == "abc", "a value was cut to fit the target column"
    fl.app_error(app, None, f"{db}.narrow", secrets=(source.password, target.password))

    target.execute(f"ALTER TABLE `{db}`.narrow MODIFY v VARCHAR(20) CHARACTER SET latin1 NOT NULL")
    fl.catch_up(spawn, config)
    _assert_tables_equal(source, target, db, ("narrow",))


# ---- start positions -------------------------------------------------------------------------------


@pytest.mark.parametrize("where", [
    "inside an event",
    "inside a transaction",
])
def test_start_position_in_the_middle(own_pair, dbname, tmp_path, spawn, where):
    source, target = own_pair
    db = dbname
    start = source.binlog_position()
    source.execute(f"CREATE DATABASE `{db}`")
    source.execute(f"CREATE TABLE `{db}`.t (id INT PRIMARY KEY, n INT NOT NULL)")
    begin = source.binlog_position()
    source.execute(f"INSERT INTO `{db}`.t VALUES (1, 1), (2, 2)")
    events = source.query(f"SHOW BINLOG EVENTS IN '{begin[0]}' FROM {begin[1]}")
    table_map = next(e for e in events if e[2] == "Table_map")
    pos = table_map[1] + 3 if where == "inside an event" else table_map[1]
    fragment = "not the start of an event" if where == "inside an event" else "inside a transaction"
    config, _ = _config(tmp_path, source, target, db, (begin[0], pos))
    result = run_cli("run", "--config", str(config), "--stop-at-end")
    assert result.returncode != 0, result.stderr
    assert _no_checkpoint(target, db), "a refused start left a checkpoint"
    assert not _exists(target, db)

    config, _ = _config(tmp_path, source, target, db, start, "fixed.toml")
    fl.catch_up(spawn, config)
    _assert_tables_equal(source, target, db, ("t",))
    fl.error_line(result.stderr, result.returncode, SourceError.exit_code, fragment, "start_pos",
                  secrets=(source.password, target.password), stdout=result.stdout)


# ---- the target's max_allowed_packet ---------------------------------------------------------------


def test_row_larger_than_the_targets_max_allowed_packet(own_pair, dbname, tmp_path, spawn):
    source, target = own_pair
    db = dbname
    start = source.binlog_position()
    source.execute(f"CREATE DATABASE `{db}`")
    source.execute(f"CREATE TABLE `{db}`.blobs (id INT PRIMARY KEY, b LONGBLOB NOT NULL)")
    source.execute(f"CREATE TABLE `{db}`.marks (id INT PRIMARY KEY, what VARCHAR(64) NOT NULL)")
    for i in range(1, 6):
        source.execute(f"INSERT INTO `{db}`.blobs VALUES (%s, REPEAT('s', 1000))", (i,))
    original = int(target.query("SELECT @@GLOBAL.max_allowed_packet")[0][0])
    target.execute("SET GLOBAL max_allowed_packet = 1048576")
    try:
        config, _ = _config(tmp_path, source, target, db, start)
        app = spawn(config)
        fl.wait_for("the first rows", lambda: _count(target, db, "blobs") == 5, app=app)
        conn = source.connect()
        try:
            cur = conn.cursor()
            cur.execute("BEGIN")
            cur.execute(f"INSERT INTO `{db}`.marks VALUES (1, 'with the big row')")
            cur.execute(f"INSERT INTO `{db}`.blobs VALUES (100, REPEAT('b', 2 * 1024 * 1024))")
            cur.execute("COMMIT")
        finally:
            conn.close()
        source.execute(f"UPDATE `{db}`.marks SET what = 'after' WHERE id = 1")  # waits behind it
        _wait_refusal(app, lambda: _count(target, db, "marks"), target, db)
        assert _rows(target, db, "marks") == [], "the transaction was half applied"
        assert len(_rows(target, db, "blobs")) == 5
        target.execute("SET GLOBAL max_allowed_packet = 67108864")
        fl.catch_up(spawn, config)
    finally:
        target.execute("SET GLOBAL max_allowed_packet = %s", (original,))
    _assert_tables_equal(source, target, db, ("blobs", "marks"))
    line = fl.app_error(app, None, "max_allowed_packet", "1048576",
                        secrets=(source.password, target.password))
    sizes = [int(x) for x in re.findall(r"\d+", line.replace(",", ""))]
    assert any(s >= 2 * 1024 * 1024 for s in sizes), f"the size is not in the line: {line}"


# ---- a target user without privileges on one table ---------------------------------------------------


def test_target_user_without_privileges_on_a_table(own_pair, dbname, tmp_path, spawn):
    source, target = own_pair
    db = dbname
    user, password = f"lim_{db[2:10]}", secrets.token_urlsafe(12)
    hosts = ("127.0.0.1", "localhost")
    conn, cur = _source_session(source, sql_log_bin=0)
    try:
        cur.execute(f"CREATE DATABASE `{db}`")
        cur.execute(f"CREATE TABLE `{db}`.ok (id INT PRIMARY KEY, n INT NOT NULL)")
        cur.execute(f"CREATE TABLE `{db}`.secret (id INT PRIMARY KEY, n INT NOT NULL)")
    finally:
        conn.close()
    target.execute(f"CREATE DATABASE `{db}`")
    target.execute(f"CREATE TABLE `{db}`.ok (id INT PRIMARY KEY, n INT NOT NULL)")
    target.execute(f"CREATE TABLE `{db}`.secret (id INT PRIMARY KEY, n INT NOT NULL)")
    for host in hosts:
        target.execute(f"CREATE USER '{user}'@'{host}' IDENTIFIED BY %s", (password,))
        target.execute(f"GRANT ALL ON `ckpt_{db}`.* TO '{user}'@'{host}'")
        target.execute(f"GRANT ALL ON `{db}`.`ok` TO '{user}'@'{host}'")
    try:
        start = source.binlog_position()
        for i in range(1, 11):
            source.execute(f"INSERT INTO `{db}`.ok VALUES (%s, 0)", (i,))
        config, _ = _config(tmp_path, source, target, db, start,
                            target_extra={"user": user, "password": password})
        app = spawn(config)
        fl.wait_for("the first rows", lambda: _count(target, db, "ok") == 10, app=app)
        conn = source.connect()
        try:
            cur = conn.cursor()
            cur.execute("BEGIN")
            cur.execute(f"UPDATE `{db}`.ok SET n = n + 1 WHERE id <= 5")
            cur.execute(f"INSERT INTO `{db}`.secret VALUES (1, 1)")
            cur.execute("COMMIT")
        finally:
            conn.close()
        source.execute(f"UPDATE `{db}`.ok SET n = n + 10 WHERE id = 1")  # waits behind it
        _wait_refusal(app, lambda: _rows(target, db, "ok")[0][1], target, db)
        assert [r[1] for r in _rows(target, db, "ok")] == [0] * 10, "the transaction was half applied"
        assert _rows(target, db, "secret") == []

        for host in hosts:
            target.execute(f"GRANT ALL ON `{db}`.`secret` TO '{user}'@'{host}'")
        fl.catch_up(spawn, config)
        _assert_tables_equal(source, target, db, ("ok", "secret"))
    finally:
        for host in hosts:
            target.execute(f"DROP USER IF EXISTS '{user}'@'{host}'")
    line = fl.app_error(app, None, f"{db}.secret", secrets=(source.password, target.password, password))
    # a privilege problem, said as such (the word, or the GRANT to run), not a missing table
    assert re.search(r"privilege|\bgrant\b", line, re.I), line
    assert not re.search(r"not on the target|missing|doesn't exist|no such table", line, re.I), line


# ---- bad config values -------------------------------------------------------------------------------


PASSWORD_VALUE = 918273645  # a password given as a number: must not be printed back

BAD_VALUES = [
    ("apply", "retry_backoff_seconds", -1),
    ("source", "reconnect_attempts", -5),
    ("target", "reconnect_attempts", -5),
    ("source", "heartbeat_seconds", 0),
    ("source", "password", PASSWORD_VALUE),
    ("target", "password", PASSWORD_VALUE),
]


@pytest.mark.parametrize("section, key, value", BAD_VALUES,
                         ids=[f"{s}-{k}" for s, k, _ in BAD_VALUES])
def test_bad_config_value(own_pair, dbname, tmp_path, spawn, section, key, value):
    source, target = own_pair
    db = dbname
    start = source.binlog_position()
    source.execute(f"CREATE DATABASE `{db}`")
    source.execute(f"CREATE TABLE `{db}`.t (id INT PRIMARY KEY, n INT NOT NULL)")
    source.execute(f"INSERT INTO `{db}`.t VALUES (1, 1), (2, 2)")
    config, secs = _config(tmp_path, source, target, db, start)
    good = secs[section].get(key)
    secs[section][key] = value
    fl.write(config, secs)
    result = run_cli("run", "--config", str(config), "--stop-at-end")
    line = fl.error_line(result.stderr, result.returncode, ConfigError.exit_code, f"[{section}] {key}",
                         secrets=(str(PASSWORD_VALUE), source.password, target.password),
                         stdout=result.stdout)
    assert "Traceback" not in line
    assert not _exists(target, db) and _no_checkpoint(target, db), "something was applied"

    if good is None:
        del secs[section][key]
    else:
        secs[section][key] = good
    fl.write(config, secs)
    fl.catch_up(spawn, config)
    _assert_tables_equal(source, target, db, ("t",))

"""Replication filters on real servers (applier/pipeline/filters.py): ``do_tables`` /
``ignore_tables`` with wildcards and MySQL's rule order, over row changes and DDL;
statements that rename tables across the filters, both ways (applied whole; the target
must hold what the filtered side needs, else the applier stops naming the statement,
and a run after the DBA provided it goes on); ``rewrite_databases`` over rows (worker
processes, the serial path, a streamed big transaction, a table without a key), DDL
(its default database rewritten) and ``applier check`` (which compares the rewritten
tables, and sees a difference in them); a qualified name of a rewritten database in
DDL: not run as logged (a warning names it), and the DBA's way past what it leaves
missing; the checkpoint schema, never replicated even when a pattern names it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from applier.errors import TargetError
from applier.ops.check import check
from tests.scenarios.helpers import rows
from tests.support import config_toml, make_config, run_applier

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.flavors("mariadb", "mysql")  # MariaDB -> MariaDB, MySQL -> MySQL


def tables_of(server, db: str) -> set[str]:
    return {str(r[0]) for r in rows(server, "SELECT TABLE_NAME FROM information_schema.TABLES "
                                            "WHERE TABLE_SCHEMA = %s", (db,))}


def has_database(server, db: str) -> bool:
    return bool(rows(server, "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (db,)))


def checked(source, target, cfg):
    """``applier check`` as the CLI runs it for ``cfg``, with its filters."""
    return check(cfg.source, cfg.target, databases=cfg.apply.databases,
                 ignore_databases=(*cfg.apply.ignore_databases, cfg.target.checkpoint_schema), apply=cfg.apply)


def test_table_patterns_rows_and_ddl(source, target, dbname):
    """do_tables ``d.order%`` (wild) and ``d.keep\\_me`` (exact), ignore_tables
    ``d.order\\_secret`` (exact: beats the wild do): only orders, order_lines and keep_me
    reach the target, with their DDL; filtered tables' DDL (ALTER, TRUNCATE, DROP, an
    index) is dropped; a rename out of the replicated set is applied whole."""
    d = dbname
    cfg = make_config(source, target, d, workers=3, do_tables=(f"{d}.order%", f"{d}.keep\\_me"),
                      ignore_tables=(f"{d}.order\\_secret",))
    src = source.connect()
    src.cursor().execute(f"CREATE DATABASE {d}")
    src.select_db(d)
    cur = src.cursor()
    names = ("orders", "order_lines", "order_secret", "keep_me", "keepXme", "other", "order_old")
    for t in names:
        cur.execute(f"CREATE TABLE {t} (id INT PRIMARY KEY, n INT NOT NULL)")
    for i in range(40):
        cur.execute("BEGIN")
        for t in names:
            cur.execute(f"INSERT INTO {t} VALUES (%s, %s)", (i, i))
        cur.execute("UPDATE orders SET n = n + 1 WHERE id <= %s", (i,))
        cur.execute("UPDATE other SET n = n + 1 WHERE id <= %s", (i,))
        cur.execute("DELETE FROM order_secret WHERE id = %s", (i // 2,))
        cur.execute("COMMIT")
    cur.execute("ALTER TABLE other ADD COLUMN extra INT")
    cur.execute("ALTER TABLE order_secret ADD COLUMN extra INT")
    cur.execute("CREATE INDEX i_n ON other (n)")
    cur.execute("CREATE INDEX i_n ON orders (n)")
    cur.execute("ALTER TABLE order_lines ADD COLUMN note VARCHAR(10)")
    cur.execute("UPDATE order_lines SET note = 'x' WHERE id < 5")
    cur.execute("TRUNCATE TABLE other")
    cur.execute("RENAME TABLE order_old TO archive")  # replicated -> filtered: applied whole
    cur.execute("INSERT INTO archive VALUES (100, 1)")  # filtered now
    cur.execute("INSERT INTO orders VALUES (100, 1)")
    cur.execute("DROP TABLE order_secret")
    src.close()

    run_applier(cfg)
    assert tables_of(target, d) == {"orders", "order_lines", "keep_me", "archive"}
    assert rows(target, f"SELECT COUNT(*), MAX(id) FROM {d}.archive") == [(40, 39)]  # as renamed
    assert rows(target, "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s "
                        "AND TABLE_NAME = 'orders' AND INDEX_NAME = 'i_n'", (d,)) == [(1,)]
    report = checked(source, target, cfg)
    assert report.ok, str(report)
    assert report.tables_checked == 3  # orders, order_lines, keep_me (archive is filtered)
    # without the filters, the same check sees what was left out
    plain = check(source.server_config(), target.server_config(), databases=(d,))
    assert not plain.ok and {x.table for x in plain.diffs} == {"keepXme", "other", "archive"}


def test_rename_across_filtered_databases(source, target, dbname):
    """``RENAME TABLE a.t TO b.t`` with b filtered moves the table out of the replicated
    set: applied whole, so the target needs database b (without it the applier stops
    naming the statement; once the DBA created it, the run goes on). The other way,
    ``RENAME TABLE b.u TO a.u``, brings a table in: the target needs b.u as the source
    had it (the applier stops until the DBA provides it, then applies the rename and the
    rows that follow)."""
    a, b = f"{dbname}_a", f"{dbname}_b"
    cfg = make_config(source, target, dbname, databases=(a,), workers=2)
    src = source.connect()
    cur = src.cursor()
    for db in (a, b):
        cur.execute(f"CREATE DATABASE {db}")
    for table in (f"{a}.keep", f"{a}.t", f"{b}.u"):
        cur.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY, n INT NOT NULL)")
        cur.executemany(f"INSERT INTO {table} VALUES (%s, %s)", [(i, i) for i in range(10)])
    cur.execute(f"RENAME TABLE {a}.t TO {b}.t")
    cur.execute(f"INSERT INTO {b}.t VALUES (10, 10)")
    cur.execute(f"INSERT INTO {a}.keep VALUES (10, 10)")

    with pytest.raises(TargetError, match=rf"RENAME TABLE {a}\.t TO {b}\.t"):
        run_applier(cfg)
    assert tables_of(target, a) == {"keep", "t"} and not has_database(target, b)
    target.execute(f"CREATE DATABASE {b}")  # what the statement needs on the target
    run_applier(cfg)
    assert tables_of(target, a) == {"keep"} and tables_of(target, b) == {"t"}
    assert rows(target, f"SELECT COUNT(*) FROM {b}.t") == [(10,)]  # filtered since the rename
    report = checked(source, target, cfg)
    assert report.ok and report.tables_checked == 1, str(report)

    cur.execute(f"RENAME TABLE {b}.u TO {a}.u")  # filtered -> replicated
    cur.execute(f"INSERT INTO {a}.u VALUES (10, 10)")
    cur.execute(f"UPDATE {a}.u SET n = n + 1 WHERE id < 3")
    src.close()
    with pytest.raises(TargetError, match=rf"RENAME TABLE {b}\.u TO {a}\.u"):
        run_applier(cfg)
    # the DBA gives the target b.u as the source had it at the rename
    target.execute(f"CREATE TABLE {b}.u (id INT PRIMARY KEY, n INT NOT NULL)")
    target.execute(f"INSERT INTO {b}.u VALUES " + ",".join(f"({i},{i})" for i in range(10)))
    run_applier(cfg)
    report = checked(source, target, cfg)
    assert report.ok and report.tables_checked == 2, str(report)
    assert tables_of(target, b) == {"t"}


def test_rewrite_rows_ddl_and_check(source, target, dbname):
    """``src->dst``: rows from worker processes (concurrent transactions), the serial
    path (a table without a key) and a streamed big transaction land in dst; DDL runs
    with dst as its default database; the source database itself is never created on
    the target; ``applier check`` compares src.x with dst.x and finds a difference
    there."""
    s, t = f"{dbname}_src", f"{dbname}_dst"
    cfg = make_config(source, target, dbname, databases=(t,), rewrite_databases=(f"{s}->{t}",),
                      workers=4, batch_txns=8, big_txn_rows=50)
    target.execute(f"CREATE DATABASE {t}")  # the target database is the DBA's to create
    src = source.connect()
    src.cursor().execute(f"CREATE DATABASE {s}")
    src.select_db(s)
    cur = src.cursor()
    cur.execute("CREATE TABLE a (id INT PRIMARY KEY, v VARCHAR(20) NOT NULL, UNIQUE KEY (v))")
    cur.execute("CREATE TABLE b (id INT PRIMARY KEY, n INT NOT NULL)")
    cur.execute("CREATE TABLE nokey (x INT, y INT)")
    for i in range(60):
        cur.execute("BEGIN")
        cur.execute("INSERT INTO a VALUES (%s, %s)", (i, f"v{i}"))
        cur.execute("INSERT INTO b VALUES (%s, 0) ON DUPLICATE KEY UPDATE n = n + 1", (i % 7,))
        if i % 10 == 0:
            cur.execute("INSERT INTO nokey VALUES (%s, %s)", (i, i))
        cur.execute("COMMIT")
    cur.execute("BEGIN")
    cur.executemany("INSERT INTO b VALUES (%s, %s)", [(1000 + i, i) for i in range(120)])  # streamed
    cur.execute("COMMIT")
    cur.execute("UPDATE a SET v = CONCAT('w', id) WHERE id % 3 = 0")
    cur.execute("DELETE FROM b WHERE id BETWEEN 1000 AND 1010")
    cur.execute("ALTER TABLE a ADD COLUMN c INT NOT NULL DEFAULT 7")
    cur.execute("UPDATE a SET c = id WHERE id < 30")
    cur.execute("CREATE TABLE c LIKE b")
    cur.execute("INSERT INTO c SELECT * FROM b WHERE id < 5")
    cur.execute("CREATE TABLE d SELECT id, v FROM a WHERE id < 10")  # DDL + its rows
    cur.execute("RENAME TABLE b TO b2")
    cur.execute("INSERT INTO b2 VALUES (5000, 1)")
    cur.execute("DELETE FROM nokey WHERE x = 20")
    src.close()

    m = run_applier(cfg)
    assert m.barriers >= 1
    assert not has_database(target, s)
    assert tables_of(target, t) == {"a", "b2", "c", "d", "nokey"}
    assert rows(target, f"SELECT COUNT(*) FROM {t}.b2 WHERE id >= 1000") == [(110,)]
    report = checked(source, target, cfg)
    assert report.ok, str(report)
    assert report.tables_checked == 5

    target.execute(f"UPDATE {t}.a SET v = 'drift' WHERE id = 1")
    report = checked(source, target, cfg)
    assert not report.ok
    (diff,) = report.diffs
    assert (diff.db, diff.table) == (s, "a") and "row differs" in diff.reason and "`v`" in diff.reason


def test_qualified_ddl_of_a_rewritten_database(source, target, dbname, tmp_path):
    """``CREATE TABLE src.q`` (qualified) with ``src->dst``: as logged it would create
    src.q on the target, so it is not run (a warning names it); the rows that follow for
    q stop `applier run` with one line naming the target table to create (dst.q, exit 5);
    once the DBA created it, the run goes on."""
    s, t = f"{dbname}_src", f"{dbname}_dst"
    cfg = make_config(source, target, dbname, databases=(t,), rewrite_databases=(f"{s}->{t}",), workers=2)
    target.execute(f"CREATE DATABASE {t}")
    src = source.connect()
    src.cursor().execute(f"CREATE DATABASE {s}")
    src.select_db(s)
    cur = src.cursor()
    cur.execute("CREATE TABLE a (id INT PRIMARY KEY)")
    cur.execute("INSERT INTO a VALUES (1), (2)")
    cur.execute(f"CREATE TABLE {s}.q (id INT PRIMARY KEY)")
    cur.execute("INSERT INTO q VALUES (1)")
    cur.execute("INSERT INTO a VALUES (3)")
    src.close()

    path = tmp_path / "applier.toml"
    path.write_text(config_toml(cfg))
    result = subprocess.run([sys.executable, "-m", "applier.cli", "run", "--config", str(path)],
                            capture_output=True, text=True, timeout=120, cwd=REPO, stdin=subprocess.DEVNULL)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 5 and len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"{t}.q" in errors[0], errors
    warned = [line for line in result.stderr.splitlines() if "WARNING" in line]
    assert any(f"'CREATE DATABASE {s}'" in w for w in warned), result.stderr  # the source database
    assert any(f"'CREATE TABLE {s}.q" in w and f"{s}.q (that is {t}.q)" in w and "by hand" in w
               for w in warned), result.stderr
    assert tables_of(target, t) == {"a"} and not has_database(target, s)

    target.execute(f"CREATE TABLE {t}.q (id INT PRIMARY KEY)")  # by hand, under its target name
    run_applier(cfg)
    report = checked(source, target, cfg)
    assert report.ok and report.tables_checked == 2, str(report)
    # the CLI's check follows the same filters: src.* compared with dst.*, exit 0
    result = subprocess.run([sys.executable, "-m", "applier.cli", "check", "--config", str(path)],
                            capture_output=True, text=True, timeout=120, cwd=REPO, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 tables" in result.stdout or "tables: 2" in result.stdout, result.stdout


def test_checkpoint_schema_never_replicated(source, target, dbname):
    """A source database named like the target's checkpoint schema (an applier feeding
    the source writes one), even with a pattern naming it: neither its DDL nor its
    rows reach the target's checkpoint schema."""
    ckpt = f"ckpt_{dbname}"  # make_config's checkpoint schema
    cfg = make_config(source, target, dbname, databases=(), workers=2,
                      do_tables=(f"{dbname}.%", f"{ckpt}.%"))
    src = source.connect()
    cur = src.cursor()
    cur.execute(f"CREATE DATABASE {dbname}")
    cur.execute(f"CREATE TABLE {dbname}.t (id INT PRIMARY KEY)")
    cur.execute(f"CREATE DATABASE {ckpt}")
    cur.execute(f"CREATE TABLE {ckpt}.foreign_rows (id INT PRIMARY KEY)")
    for i in range(5):
        cur.execute("BEGIN")
        cur.execute(f"INSERT INTO {dbname}.t VALUES (%s)", (i,))
        cur.execute(f"INSERT INTO {ckpt}.foreign_rows VALUES (%s)", (i,))
        cur.execute("COMMIT")
    cur.execute(f"DROP DATABASE {ckpt}")
    src.close()

    run_applier(cfg)
    assert tables_of(target, ckpt) == {"checkpoint"}
    assert rows(target, f"SELECT COUNT(*) FROM {dbname}.t") == [(5,)]
    report = checked(source, target, cfg)
    assert report.ok and report.tables_checked == 1, str(report)


def test_mixed_drop(source, target, dbname):
    """``DROP TABLE b, tmp2`` (tmp% ignored) is applied whole: the target refuses tmp2,
    which it never had, so the applier stops naming the statement (MariaDB dropped b all
    the same; MySQL's DROP is atomic and dropped nothing); run again, the statement is
    re-run with IF EXISTS (b is gone on both flavors) and the run goes on. ``IF EXISTS``
    needs nothing."""
    d = dbname
    cfg = make_config(source, target, d, workers=2, ignore_tables=(f"{d}.tmp%",))
    src = source.connect()
    src.cursor().execute(f"CREATE DATABASE {d}")
    src.select_db(d)
    cur = src.cursor()
    for table in ("a", "b", "c", "tmp1", "tmp2"):
        cur.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY)")
    cur.execute("DROP TABLE IF EXISTS a, tmp1")
    cur.execute("INSERT INTO b VALUES (1)")
    cur.execute("DROP TABLE b, tmp2")
    cur.execute("INSERT INTO c VALUES (1)")
    src.close()
    with pytest.raises(TargetError, match="DROP TABLE `b`,`tmp2`"):
        run_applier(cfg)
    assert tables_of(target, d) == ({"c"} if source.flavor == "mariadb" else {"b", "c"})
    run_applier(cfg)
    assert tables_of(target, d) == {"c"}
    report = checked(source, target, cfg)
    assert report.ok and report.tables_checked == 1, str(report)

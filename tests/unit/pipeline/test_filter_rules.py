"""Replication filters (applier/pipeline/filters.py), no server: the pattern syntax, the
rule order (MySQL's "How Servers Evaluate Replication Filtering Rules"), the rewrite,
what a statement changes (binlog/transactions.statement_changes) and what the filters
make of it, the config checks of the keys, the table cache's rewrite (what a worker's
planner writes) and the intake with rewrites and table rules on both of its paths
(the native scanner and the per-event Python path give the same transactions, keys
and statements)."""

from __future__ import annotations

import dataclasses
import logging
import socket

import pytest

from applier import config
from applier.binlog import events as ev
from applier.binlog.events import INSERT
from applier.binlog.transactions import (
    DATABASE_STATEMENT,
    OTHER_STATEMENT,
    TABLE_STATEMENT,
    Statement,
    statement_changes,
    statement_databases,
)
from applier.config import ApplyConfig
from applier.errors import ApplierError, ConfigError
from applier.pipeline import writeset
from applier.pipeline.filters import Filter, Rewrite, parse_rewrite, parse_table_pattern
from applier.pipeline.intake import Intake
from applier.pipeline.tables import TableCache
from tests.unit.streams import STATUS, TEMPLATES, Schemas, TableDef, dml, simple_insert
from tests.unit.streams import Stream as DumpStream

CKPT = "mts_applier"


def flt(fold: bool = False, **apply) -> Filter:
    return Filter(ApplyConfig(**apply), CKPT, fold_case=fold)


def stmt(sql: str, db: str = "d") -> Statement:
    return Statement(db, sql.encode(), None)


# -- 1. patterns ------------------------------------------------------------------------


@pytest.mark.parametrize(("pattern", "db", "table", "hit"), [
    ("shop.orders", "shop", "orders", True),
    ("shop.orders", "shop", "orders2", False),
    ("shop.orders", "Shop", "orders", False),  # case-sensitive by default
    ("shop.%", "shop", "anything", True),
    ("shop.%", "shops", "t", False),
    ("sh%.o%", "shop", "orders", True),
    ("sh%.o%", "shop", "lines", False),
    ("shop.t_", "shop", "t1", True),
    ("shop.t_", "shop", "t", False),
    ("shop.t_", "shop", "t12", False),
    ("shop.order_items", "shop", "orderXitems", True),  # _ is a wildcard
    ("shop.order\\_items", "shop", "orderXitems", False),  # \_ is not
    ("shop.order\\_items", "shop", "order_items", True),
    ("shop.100\\%", "shop", "100%", True),
    ("shop.100\\%", "shop", "1000", False),
    ("a\\.b.t", "a.b", "t", True),  # a literal . in the database part
    ("%.%", "x", "y", True),
    ("shop.a.b", "shop", "a.b", True),  # split at the first .
    ("sh(p|o).t", "shop", "t", False),  # no regex: ( | ) are literal
    ("sh(p|o).t", "sh(p|o)", "t", True),
])
def test_pattern_like_semantics(pattern: str, db: str, table: str, hit: bool) -> None:
    assert parse_table_pattern(pattern).matches(db, table) is hit


def test_pattern_exact_or_wild() -> None:
    assert parse_table_pattern("shop.orders").exact == ("shop", "orders")
    assert parse_table_pattern("shop.order\\_items").exact == ("shop", "order_items")
    assert parse_table_pattern("shop.order_items").exact is None
    assert parse_table_pattern("shop.%").exact is None
    assert parse_table_pattern("shop.%").table_any and parse_table_pattern("s%.%%").table_any
    assert not parse_table_pattern("shop.t%").table_any
    assert parse_table_pattern("s\\%.t").db_literal == "s%"


def test_pattern_case_folded() -> None:
    p = parse_table_pattern("Shop.Or%", fold=True)
    assert p.matches("shop", "ORDERS") and p.matches("SHOP", "or")
    assert parse_table_pattern("Shop.T", fold=True).exact == ("shop", "t")


@pytest.mark.parametrize(("pattern", "why"), [
    ("shop", "no '.'"),
    ("shop\\.t", "no '.'"),
    (".t", "empty database part"),
    ("shop.", "empty table part"),
    ("shop.t\\", "lone \\"),
    (" shop.t", "spaces"),
    ("shop.t ", "spaces"),
    ("shop." + "x" * 65, "longer than 64"),
])
def test_malformed_patterns(pattern: str, why: str) -> None:
    with pytest.raises(ValueError, match=None) as e:
        parse_table_pattern(pattern)
    assert why in str(e.value)


def test_rewrite_syntax() -> None:
    assert parse_rewrite("a->b") == ("a", "b")
    assert parse_rewrite(" a -> b ") == ("a", "b")
    for bad in ("a", "a->", "->b", "a->b->c", "a->a", "a=>b"):
        with pytest.raises(ValueError):
            parse_rewrite(bad)


def test_rewrite_once_not_chained() -> None:
    r = Rewrite(["a->b", "b->c", "x->y"])
    assert (r("a"), r("b"), r("c"), r("q")) == ("b", "c", "c", "q")
    assert r.renames("a") and r.renames("b") and not r.renames("c")
    assert r.writes_into("b") and r.writes_into("c") and not r.writes_into("a")
    swap = Rewrite(["a->b", "b->a"])
    assert (swap("a"), swap("b")) == ("b", "a")
    assert Rewrite(["Shop->copy"], fold=True)("SHOP") == "copy"
    assert Rewrite(["Shop->copy"])("shop") == "shop"
    assert not Rewrite()


# -- 2. the rule order --------------------------------------------------------------------


def test_no_rules_everything_but_system_and_checkpoint() -> None:
    f = flt()
    assert f.table("shop", "t") and f.rows("shop", "t")
    assert not f.table("mysql", "user") and not f.table(CKPT, "checkpoint")
    assert not f.rows(CKPT, "checkpoint")


def test_exact_do_beats_wild_ignore() -> None:
    f = flt(do_tables=("shop.orders",), ignore_tables=("shop.%",))
    assert f.table("shop", "orders")
    assert not f.table("shop", "lines")  # wild ignore
    assert not f.table("crm", "x")  # do patterns exist, none matched


def test_exact_ignore_beats_wild_do() -> None:
    f = flt(do_tables=("shop.%",), ignore_tables=("shop.secrets",))
    assert f.table("shop", "orders") and not f.table("shop", "secrets")
    assert not f.table("crm", "x")


def test_wild_do_beats_wild_ignore() -> None:
    """As MySQL (step 5 before step 6): a wildcard exception to a wildcard has no effect;
    exceptions are named exactly."""
    f = flt(do_tables=("shop.%",), ignore_tables=("shop.tmp%",))
    assert f.table("shop", "tmp_1")


def test_exact_do_beats_exact_ignore_order_only() -> None:
    # config.py refuses the same pattern in both lists; the rules alone: do first
    f = flt(do_tables=("shop.t",), ignore_tables=("shop.t\\%",))
    assert f.table("shop", "t")


def test_ignore_only() -> None:
    f = flt(ignore_tables=("shop.tmp%", "crm.audit"))
    assert f.table("shop", "orders") and f.table("other", "x")
    assert not f.table("shop", "tmp_x") and not f.table("crm", "audit")


def test_database_rules_come_first() -> None:
    f = flt(databases=("shop",), do_tables=("crm.%", "shop.t"))
    assert not f.table("crm", "x")  # the database rule says no before any table rule
    assert f.table("shop", "t") and not f.table("shop", "u")
    g = flt(ignore_databases=("crm",), do_tables=("%.%",))
    assert not g.table("crm", "x") and g.table("shop", "x")


def test_checkpoint_never_even_when_named() -> None:
    f = flt(databases=(), ignore_databases=(), do_tables=(f"{CKPT}.%",))
    assert not f.table(CKPT, "checkpoint") and not f.rows(CKPT, "x")
    assert not f.database_statement(CKPT)


def test_case_follows_lower_case_table_names() -> None:
    exact = flt(databases=("Shop",), do_tables=("Shop.Orders",))
    assert exact.table("Shop", "Orders") and not exact.table("shop", "orders")
    folded = flt(True, databases=("Shop",), do_tables=("Shop.Orders",))
    assert folded.table("shop", "orders") and folded.table("SHOP", "ORDERS")
    assert not flt(True).table(CKPT.upper(), "x")


def test_rewrite_before_rules() -> None:
    f = flt(databases=("copy",), rewrite_databases=("shop->copy",), do_tables=("copy.o%",))
    assert f.rows("shop", "orders")  # shop -> copy: listed, and copy.o% matches
    assert not f.rows("shop", "lines")
    assert not f.rows("copy2", "orders")
    assert f.target_database("shop") == "copy" and f.target_database("crm") is None
    assert f.rows("copy", "orders")  # the source's own copy database lands in copy too
    assert f.compared_on_target("copy") and not f.compared_on_target("shop")


def test_rows_decisions_cached_and_bounded() -> None:
    f = flt(do_tables=("s.%",))
    for i in range(5):
        assert f.rows("s", f"t{i}")
    assert len(f._rows) == 5


# -- 3. what a statement changes ------------------------------------------------------------


@pytest.mark.parametrize(("sql", "kind", "names"), [
    ("CREATE TABLE t (id INT)", TABLE_STATEMENT, [("", "t")]),
    ("CREATE TABLE IF NOT EXISTS `x`.`t``q` (id INT) SELECT * FROM y.z", TABLE_STATEMENT, [("x", "t`q")]),
    ("CREATE TABLE t2 LIKE other.t", TABLE_STATEMENT, [("", "t2")]),
    ("DROP TABLE IF EXISTS `a`,`b`.`c` /* generated by server */", TABLE_STATEMENT, [("", "a"), ("b", "c")]),
    ("RENAME TABLE a.t TO b.t, c TO d", TABLE_STATEMENT, [("a", "t"), ("b", "t"), ("", "c"), ("", "d")]),
    ("ALTER TABLE t ADD COLUMN x INT, RENAME COLUMN a TO b, RENAME TO o.u", TABLE_STATEMENT,
     [("", "t"), ("o", "u")]),
    ("ALTER TABLE s.t RENAME u", TABLE_STATEMENT, [("s", "t"), ("s", "u")]),
    ("ALTER TABLE t COMMENT 'RENAME TO x'", TABLE_STATEMENT, [("", "t")]),
    ("ALTER ONLINE IGNORE TABLE t ENGINE=InnoDB", TABLE_STATEMENT, [("", "t")]),
    ("TRUNCATE t", TABLE_STATEMENT, [("", "t")]),
    ("/* hi */ TRUNCATE TABLE x.t", TABLE_STATEMENT, [("x", "t")]),
    ("/*!40000 ALTER TABLE `t` DISABLE KEYS */", TABLE_STATEMENT, [("", "t")]),
    ("CREATE UNIQUE INDEX i ON x.t (a)", TABLE_STATEMENT, [("x", "t")]),
    ("DROP INDEX i ON t", TABLE_STATEMENT, [("", "t")]),
    ("CREATE OR REPLACE ALGORITHM=UNDEFINED DEFINER=`root`@`localhost` SQL SECURITY DEFINER "
     "VIEW `v` AS select 1 from other.t", TABLE_STATEMENT, [("", "v")]),
    ("DROP VIEW v1, x.v2", TABLE_STATEMENT, [("", "v1"), ("x", "v2")]),
    ("CREATE DEFINER=`root`@`localhost` TRIGGER trg BEFORE INSERT ON t FOR EACH ROW SET NEW.a = 1",
     TABLE_STATEMENT, [("", "t")]),
    ("CREATE SEQUENCE s", TABLE_STATEMENT, [("", "s")]),
    ("OPTIMIZE TABLE t1, x.t2", TABLE_STATEMENT, [("", "t1"), ("x", "t2")]),
    ("INSERT IGNORE INTO t VALUES (1)", TABLE_STATEMENT, [("", "t")]),
    ("UPDATE x.t SET a = 1", TABLE_STATEMENT, [("x", "t")]),
    ("DELETE FROM t WHERE 1", TABLE_STATEMENT, [("", "t")]),
    ("CREATE TABLE café (id INT)", TABLE_STATEMENT, [("", "café")]),
    ("CREATE DATABASE IF NOT EXISTS `new`", DATABASE_STATEMENT, ["new"]),
    ("DROP SCHEMA old", DATABASE_STATEMENT, ["old"]),
    ("ALTER DATABASE CHARACTER SET utf8", DATABASE_STATEMENT, ["d"]),
    ("DROP TRIGGER IF EXISTS x.trg", OTHER_STATEMENT, ["x"]),
    ("CREATE PROCEDURE p() BEGIN INSERT INTO q.t VALUES (1); END", OTHER_STATEMENT, ["q"]),
    ("GRANT SELECT ON *.* TO u", OTHER_STATEMENT, ["mysql"]),
    ("SAVEPOINT s1", OTHER_STATEMENT, []),
])
def test_statement_changes(sql: str, kind: str, names: list) -> None:
    ch = statement_changes(stmt(sql))
    assert ch.kind == kind
    assert (list(ch.tables) if kind == TABLE_STATEMENT else list(ch.databases)) == names


def test_statement_databases_from_changes() -> None:
    assert statement_databases(stmt("CREATE TABLE t2 LIKE other.t", "d")) == {"d"}
    assert statement_databases(stmt("RENAME TABLE a.t TO t", "d")) == {"a", "d"}
    assert statement_databases(stmt("SAVEPOINT s", "d")) == {"d"}
    assert statement_databases(stmt("DROP DATABASE x", "x")) == {"x"}


# -- 4. statements through the filters ------------------------------------------------------


def test_table_statements_by_their_tables() -> None:
    f = flt(do_tables=("shop.%",), ignore_tables=("shop.tmp\\_t",))  # exact: beats the wildcard
    assert f.statement(stmt("CREATE TABLE t (id INT)", "shop")) is not None
    assert f.statement(stmt("CREATE TABLE tmp_t (id INT)", "shop")) is None
    assert f.statement(stmt("CREATE TABLE crm.t (id INT)", "shop")) is None  # qualified counts
    assert f.statement(stmt("CREATE TABLE shop.t (id INT)", "crm")) is not None
    assert f.statement(stmt("CREATE TABLE t LIKE crm.x", "shop")) is not None  # only read


def test_mixed_statement_applied_whole_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    f = flt(databases=("kept", "moved"), ignore_tables=("kept.tmp%",))
    s = stmt("RENAME TABLE kept.t TO moved.t, kept.tmp1 TO kept.u", "kept")
    with caplog.at_level(logging.WARNING):
        assert f.statement(s) is s
    assert "applied whole" in caplog.text and "kept.tmp1" in caplog.text
    assert f.statement(stmt("RENAME TABLE kept.tmp1 TO kept.tmp2")) is None


def test_cross_database_rename_either_way() -> None:
    f = flt(databases=("a",))
    assert f.statement(stmt("RENAME TABLE a.t TO b.t")) is not None  # out of the replicated set
    assert f.statement(stmt("RENAME TABLE b.t TO a.t")) is not None  # into it
    assert f.statement(stmt("RENAME TABLE b.t TO c.t")) is None


def test_database_statements() -> None:
    assert flt().statement(stmt("CREATE DATABASE x", "x")) is not None
    assert flt().statement(stmt("CREATE DATABASE mysql", "mysql")) is None
    assert flt(databases=("x",)).statement(stmt("DROP DATABASE y", "y")) is None
    f = flt(do_tables=("shop.orders", "crm%.%"), ignore_tables=("old.%",))
    assert f.database_statement("shop")  # holds a replicated table: must exist
    assert f.database_statement("crm2")
    assert not f.database_statement("old") and not f.database_statement("other")
    g = flt(ignore_tables=("old.%", "new.t%"))
    assert not g.database_statement("old")
    assert g.database_statement("new") and g.database_statement("other")


def test_other_statements_by_database() -> None:
    f = flt(databases=("shop",), do_tables=("shop.orders",))
    assert f.statement(stmt("CREATE PROCEDURE p() SELECT 1", "shop")) is not None
    assert f.statement(stmt("CREATE PROCEDURE crm.p() SELECT 1", "shop")) is None
    assert f.statement(stmt("GRANT SELECT ON *.* TO u", "shop")) is None  # as mysql
    assert f.statement(stmt("SAVEPOINT a", "")) is None


def test_rewrite_of_the_default_database() -> None:
    f = flt(rewrite_databases=("a->b",))
    got = f.statement(stmt("CREATE TABLE t (id INT)", "a"))
    assert got is not None and got.db == "b" and got.sql == b"CREATE TABLE t (id INT)"
    same = stmt("CREATE TABLE t (id INT)", "c")
    assert f.statement(same) is same
    assert f.items([same, stmt("CREATE TABLE u (id INT)", "a")])[1].db == "b"


def test_database_statement_of_a_rewritten_database_dropped(caplog: pytest.LogCaptureFixture) -> None:
    f = flt(rewrite_databases=("a->b",))
    with caplog.at_level(logging.WARNING):
        assert f.statement(stmt("DROP DATABASE a", "a")) is None
    assert "rewrite_databases renames" in caplog.text
    assert f.statement(stmt("CREATE DATABASE b", "b")) is not None


def test_qualified_name_of_a_rewritten_database(caplog: pytest.LogCaptureFixture) -> None:
    """As logged it would change the target's a.t, not b.t (what it stands for): never run
    as logged; dropped with a warning when it changes something replicated."""
    f = flt(rewrite_databases=("a->b",), ignore_tables=("b.tmp%",))
    with caplog.at_level(logging.WARNING):
        assert f.statement(stmt("CREATE TABLE a.t (id INT)", "a")) is None
    assert "a.t (that is b.t)" in caplog.text and "by hand" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # its replicated part (t, that is b.t) goes with it
        assert f.statement(stmt("RENAME TABLE t TO a.tmp_old", "a")) is None
    assert "a.tmp_old (that is b.tmp_old)" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # stands for a filtered table only: dropped quietly
        assert f.statement(stmt("CREATE TABLE a.tmp1 (id INT)", "x")) is None
    assert caplog.text == ""
    # unqualified: runs in b
    assert f.statement(stmt("CREATE TABLE tmp2 (id INT)", "a")) is None
    assert f.statement(stmt("CREATE TABLE t3 (id INT)", "a")).db == "b"  # type: ignore[union-attr]
    swap = flt(rewrite_databases=("a->b", "b->a"))
    assert swap.statement(stmt("DROP TABLE a.t", "b")) is None  # the target's a.t holds the source's b.t
    assert swap.statement(stmt("DROP TABLE t", "b")).db == "a"  # type: ignore[union-attr]


def test_concerns_for_the_statement_format_guard() -> None:
    f = flt(rewrite_databases=("a->b",), do_tables=("b.t",))
    assert f.concerns(stmt("INSERT INTO t VALUES (1)", "a"))
    assert f.concerns(stmt("INSERT INTO a.t VALUES (1)", "x"))  # stands for b.t
    assert not f.concerns(stmt("INSERT INTO a.u VALUES (1)", "a"))
    assert not f.concerns(stmt("UPDATE x.t SET v = 1", "a"))


# -- 5. config checks ------------------------------------------------------------------------


@pytest.mark.parametrize(("apply", "key", "fragment"), [
    ({"do_tables": ["shop"]}, "do_tables", "is not db.table"),
    ({"ignore_tables": ["shop.t\\"]}, "ignore_tables", "lone"),
    ({"do_tables": [".t"]}, "do_tables", "empty database part"),
    ({"do_tables": ["s.t"], "ignore_tables": ["s.t"]}, "ignore_tables", "also in do_tables"),
    ({"rewrite_databases": ["a"]}, "rewrite_databases", "from->to"),
    ({"rewrite_databases": ["a->"]}, "rewrite_databases", "no target database"),
    ({"rewrite_databases": ["->b"]}, "rewrite_databases", "no source database"),
    ({"rewrite_databases": ["a->b", "a->c"]}, "rewrite_databases", "twice"),
    ({"rewrite_databases": ["a->a"]}, "rewrite_databases", "into itself"),
    ({"rewrite_databases": ["a->b"], "ignore_databases": ["b"]}, "rewrite_databases", "ignore_databases lists"),
    ({"rewrite_databases": ["a->mysql"]}, "rewrite_databases", "ignore_databases lists"),
    ({"rewrite_databases": ["a->b"], "databases": ["a"]}, "rewrite_databases", "list 'b'"),
    ({"rewrite_databases": ["a->b"], "do_tables": ["a.t"]}, "do_tables", "table rules see the rewritten"),
    ({"rewrite_databases": ["a->mts_applier"]}, "rewrite_databases", "checkpoint_schema"),
    ({"rewrite_databases": ["mts_applier->x"]}, "rewrite_databases", "checkpoint_schema"),
    ({"rewrite_databases": ["sys->x"]}, "rewrite_databases", "would not leave 'sys' out"),
    ({"databases": ["shop"], "do_tables": ["crm.t"]}, "do_tables", "databases does not list"),
    ({"do_tables": ["mysql.user"]}, "do_tables", "ignore_databases lists"),
])
def test_config_errors_name_the_key(apply: dict, key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as e:
        config.from_dict({"apply": apply}, environ={})
    message = str(e.value)
    assert message.startswith(f"[apply] {key} = ") and fragment in message and "\n" not in message


def test_config_accepts_filters_and_environment_lists() -> None:
    cfg = config.from_dict({"apply": {"rewrite_databases": ["a -> b", "b->a"], "databases": ["a", "b"],
                                      "do_tables": ["b.%", "a.t\\_1"], "ignore_tables": ["a.tmp%"]}},
                           environ={})
    assert cfg.apply.rewrite_databases == ("a -> b", "b->a")
    env = config.load(None, environ={"APPLIER_APPLY_REWRITE_DATABASES": "shop->copy",
                                     "APPLIER_APPLY_DO_TABLES": "copy.o%,copy.lines"})
    assert env.apply.rewrite_databases == ("shop->copy",)
    assert env.apply.do_tables == ("copy.o%", "copy.lines")


# -- 6. the table caches: rewritten TableMaps ----------------------------------------------------


def test_table_cache_rewrites_what_workers_write() -> None:
    src = TableDef(TEMPLATES["plain"], 7, "shop", "orders")
    dst = TableDef(TEMPLATES["plain"], 7, "copy", "orders")
    schemas = Schemas([dst])
    table = TableCache(schemas, Rewrite(["shop->copy"])).get(src.map_body)
    assert schemas.asked == [("copy", "orders")]
    assert table.tmap.db == "copy" and table.name == b"`copy`.`orders`"
    assert table.insert_head.startswith(b"INSERT INTO `copy`.`orders` ")
    plain = TableCache(Schemas([src])).get(src.map_body)
    assert plain.tmap.db == "shop"


# -- 7. the intake: both paths, rewritten keys and statements --------------------------------------


@pytest.fixture
def reading():
    """The intake tests' reading helpers (a fake socket always readable)."""
    ti = pytest.importorskip("tests.unit.pipeline.test_intake")
    a, b = socket.socketpair()
    b.sendall(b"x")
    ti._READABLE.append(a)
    yield ti
    ti._READABLE.remove(a)
    a.close()
    b.close()


def read_all(ti, data: bytes, targets: list[TableDef], cfg: ApplyConfig, native_scan: bool):
    cfg = dataclasses.replace(cfg, native_scan=native_scan)
    intake = Intake(cfg, Filter(cfg, CKPT), TableCache(Schemas(targets)), None)
    result = ti.Run(intake)
    try:
        for item in intake.items(ti.make_source(data, False)):
            result.record(item)
    except (ti.SourceDisconnected, ti.EndOfBinlog, ApplierError) as exc:
        result.end = ti.outcome(exc)
    return result


@pytest.mark.parametrize("policy", ["writeset", "table", "database"])
def test_intake_rewrites_keys_on_both_paths(reading, policy: str) -> None:
    """Rows of shop.orders are keyed as copy.orders (the target's table), whichever path
    reads them; the target is only ever asked about copy.*; a table rule on the
    rewritten name drops copy.audit's rows (its transactions leave the scanner)."""
    orders, audit = (TableDef(TEMPLATES["plain"], 10, "shop", "orders"),
                     TableDef(TEMPLATES["narrow"], 11, "shop", "audit"))
    targets = [TableDef(TEMPLATES["plain"], 10, "copy", "orders"),
               TableDef(TEMPLATES["narrow"], 11, "copy", "audit")]
    st_ = DumpStream(False)
    dml(st_, orders, [1, 2])
    dml(st_, audit, [1])
    st_.gtid()
    st_.table_map(audit)
    st_.rows(INSERT, 2, simple_insert(audit, [2]))
    st_.table_map(orders)
    st_.rows(INSERT, 2, simple_insert(orders, [3]))
    st_.xid()
    st_.ddl(b"CREATE TABLE t (id INT PRIMARY KEY)")  # default database "db": not rewritten
    st_.gtid(flags=ev.MARIADB_FL_STANDALONE | 0x20)
    st_.query(b"ALTER TABLE orders ADD COLUMN x INT", STATUS, db=b"shop")
    cfg = ApplyConfig(policy=policy, rewrite_databases=("shop->copy",), ignore_tables=("copy.audit",))
    got = read_all(reading, bytes(st_.data), targets, cfg, True)
    ref = read_all(reading, bytes(st_.data), targets, cfg, False)
    assert got.end == ref.end and got.entries == ref.entries
    assert got.kinds[:3] == ["native", "routed", "routed"]
    first, skipped, mixed = got.seen[:3]
    if policy == "writeset":
        assert set(first[7]) == _keys_as(targets[0], orders, [1, 2])
        assert set(first[7]) != _keys_as(orders, orders, [1, 2])  # not the source's name
    elif policy == "table":
        assert set(first[7]) == {writeset.table_key("copy", "orders")}
    else:
        assert set(first[7]) == {writeset.database_key("copy")}
    assert skipped[9] == [] and [i.table_id for i in mixed[9]] == [orders.table_id]
    assert all(db == "copy" for db, _ in got.intake.tables.schemas.asked)
    assert all(db == "copy" for db, _ in ref.intake.tables.schemas.asked)
    ddl = [e for e in got.seen if e[0] == "barrier"]
    assert [i.db for e in ddl for i in e[9]] == ["db", "copy"]


def _keys_as(t: TableDef, source: TableDef, ids: list[int]) -> set[int]:
    """The writeset keys of ``source``'s rows as table ``t`` (its database) hashes them."""
    keys: set[int] = set()
    writeset.event_keys(t.table_keys(), t.plan, INSERT, simple_insert(source, ids), 2, keys)
    return keys


def test_intake_drops_a_qualified_rewritten_name(reading) -> None:
    orders = TableDef(TEMPLATES["plain"], 10, "shop", "orders")
    st_ = DumpStream(False)
    st_.gtid(flags=ev.MARIADB_FL_STANDALONE | 0x20)
    st_.query(b"CREATE TABLE shop.t2 (id INT PRIMARY KEY)", STATUS, db=b"shop")
    dml(st_, orders, [1])
    cfg = ApplyConfig(rewrite_databases=("shop->copy",))
    targets = [TableDef(TEMPLATES["plain"], 10, "copy", "orders")]
    got = read_all(reading, bytes(st_.data), targets, cfg, True)
    ref = read_all(reading, bytes(st_.data), targets, cfg, False)
    assert got.entries == ref.entries
    assert got.kinds[:2] == ["routed", "native"] and got.seen[0][9] == []  # the DDL: nothing left


def test_intake_drops_what_table_rules_filter(reading) -> None:
    kept, tmp = TableDef(TEMPLATES["plain"], 10, "db", "kept"), TableDef(TEMPLATES["narrow"], 11, "db", "tmp_1")
    st_ = DumpStream(False)
    dml(st_, kept, [1])
    dml(st_, tmp, [1])
    st_.ddl(b"DROP TABLE tmp_1")
    st_.ddl(b"DROP TABLE kept, tmp_1")
    cfg = ApplyConfig(ignore_tables=("db.tmp\\_%",))
    got = read_all(reading, bytes(st_.data), [kept], cfg, True)
    ref = read_all(reading, bytes(st_.data), [kept], cfg, False)
    assert got.entries == ref.entries
    assert got.kinds[:4] == ["native", "routed", "routed", "barrier"]
    assert got.seen[1][9] == [] and got.seen[2][9] == []  # tmp_1's rows and its DROP: nothing
    assert isinstance(got.seen[3][9][0], Statement) and got.seen[3][9][0].sql == b"DROP TABLE kept, tmp_1"
    assert ("db", "tmp_1") not in got.intake.tables.schemas.asked

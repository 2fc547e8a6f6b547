"""Collations across flavors (applier.binlog.collations): which target collation a
source session's id becomes, and collation names written in a statement. The catalogs
are MySQL 9.7's and MariaDB 10.11's (tests/integration/test_cross_flavor.py runs DDL
through real servers of both)."""

from __future__ import annotations

import pytest

from applier.binlog import collations as c

MARIADB = c.TargetCollations(
    {8: "latin1_swedish_ci", 45: "utf8mb4_general_ci", 46: "utf8mb4_bin", 245: "utf8mb4_croatian_mysql561_ci",
     1070: "utf8mb4_nopad_bin", 2308: "utf8mb4_uca1400_nopad_ai_ci", 2311: "utf8mb4_uca1400_nopad_as_cs",
     2500: "utf8mb4_uca1400_german2_nopad_ai_ci"},
    {"latin1_swedish_ci", "utf8mb4_general_ci", "utf8mb4_bin", "utf8mb4_croatian_mysql561_ci", "utf8mb4_nopad_bin",
     "utf8mb4_uca1400_nopad_ai_ci", "utf8mb4_uca1400_nopad_as_cs", "utf8mb4_uca1400_german2_nopad_ai_ci"},
)
MYSQL = c.TargetCollations(
    {8: "latin1_swedish_ci", 45: "utf8mb4_general_ci", 255: "utf8mb4_0900_ai_ci", 278: "utf8mb4_0900_as_cs",
     309: "utf8mb4_0900_bin", 256: "utf8mb4_de_pb_0900_ai_ci"},
    {"latin1_swedish_ci", "utf8mb4_general_ci", "utf8mb4_0900_ai_ci", "utf8mb4_0900_as_cs",
     "utf8mb4_0900_bin", "utf8mb4_de_pb_0900_ai_ci"},
)


def test_tables_hold_the_ids_only_one_flavor_has():
    assert c.MYSQL_ONLY[255] == "utf8mb4_0900_ai_ci" and c.MYSQL_ONLY[309] == "utf8mb4_0900_bin"
    assert c.MARIADB_ONLY[2304] == "utf8mb4_uca1400_ai_ci" and c.MARIADB_ONLY[1070] == "utf8mb4_nopad_bin"
    assert not set(c.MYSQL_ONLY) & {8, 33, 45, 46, 63, 224, 245}  # ids both have


@pytest.mark.parametrize(("cid", "want"), [
    (45, "45"),  # both flavors: by id
    (245, "245"),  # MySQL's utf8mb4_croatian_ci is MariaDB's *_croatian_mysql561_ci, same id
    (255, "'utf8mb4_uca1400_nopad_ai_ci'"),  # MySQL's default: NO PAD, ai_ci
    (278, "'utf8mb4_uca1400_nopad_as_cs'"),
    (256, "'utf8mb4_uca1400_german2_nopad_ai_ci'"),
    (309, "'utf8mb4_nopad_bin'"),
])
def test_mysql_session_collations_on_mariadb(cid, want):
    assert MARIADB.resolve(cid, "mysql", "mariadb") == want


@pytest.mark.parametrize(("cid", "want"), [
    (45, "45"), (2304, "'utf8mb4_0900_ai_ci'"), (2308, "'utf8mb4_0900_ai_ci'"), (2311, "'utf8mb4_0900_as_cs'"),
    (1070, "'utf8mb4_0900_bin'"),
])
def test_mariadb_session_collations_on_mysql(cid, want):
    assert MYSQL.resolve(cid, "mariadb", "mysql") == want


@pytest.mark.parametrize(("cid", "source", "target", "name"), [
    (303, "mysql", MARIADB, "utf8mb4_ja_0900_as_cs"), (249, "mysql", MARIADB, "gb18030_bin"),
    (2305, "mariadb", MYSQL, "utf8mb4_uca1400_ai_cs"), (609, "mariadb", MYSQL, "utf8mb4_myanmar_ci"),
])
def test_collations_without_equivalent_are_named(cid, source, target, name):
    with pytest.raises(c.CollationError, match=rf"collation {name} \(id {cid}\)"):
        target.resolve(cid, source, "mariadb" if target is MARIADB else "mysql")


def test_a_target_that_has_the_name_gets_it():
    newer = c.TargetCollations({255: "utf8mb4_0900_ai_ci"}, {"utf8mb4_0900_ai_ci"})  # MariaDB 11.4
    assert newer.resolve(255, "mysql", "mariadb") == "'utf8mb4_0900_ai_ci'"
    assert MARIADB.charset("'utf8mb4_uca1400_nopad_ai_ci'") == "'utf8mb4'" and MARIADB.charset("45") == "45"


def test_names_in_statements_outside_strings_and_comments():
    sql = (b"CREATE TABLE t (a VARCHAR(5) COLLATE utf8mb4_0900_ai_ci COMMENT 'x\\' utf8mb4_0900_ai_ci', "
           b'b INT COMMENT "utf8mb4_0900_bin", `utf8mb4_0900_ai_ci` INT) /* utf8mb4_0900_ai_ci */ '
           b"/*!40101 COLLATE=UTF8MB4_0900_BIN */ # utf8mb4_0900_ai_ci\n COLLATE utf8mb4_general_ci")
    got = c.rewrite_names(sql, lambda n: MARIADB.rename(n, "mariadb"))
    assert got == (
        b"CREATE TABLE t (a VARCHAR(5) COLLATE utf8mb4_uca1400_nopad_ai_ci COMMENT 'x\\' utf8mb4_0900_ai_ci', "
        b'b INT COMMENT "utf8mb4_0900_bin", `utf8mb4_0900_ai_ci` INT) /* utf8mb4_0900_ai_ci */ '
        b"/*!40101 COLLATE=utf8mb4_nopad_bin */ # utf8mb4_0900_ai_ci\n COLLATE utf8mb4_general_ci")
    plain = b"ALTER TABLE t ADD COLUMN x INT"
    assert c.rewrite_names(plain, lambda n: MARIADB.rename(n, "mariadb")) is plain


def test_mysql8_invisible_comments_become_plain_invisible_for_mariadb():
    sql = (b"CREATE TABLE `d`.`g` (\n  `my_row_id` bigint unsigned NOT NULL AUTO_INCREMENT /*!80023 INVISIBLE */,\n"
           b"  `a` int /*!80023 invisible*/, /*!80016 DEFAULT ENCRYPTION='N' */ PRIMARY KEY (`my_row_id`))")
    assert c.mysql_comments_for_mariadb(sql) == (
        b"CREATE TABLE `d`.`g` (\n  `my_row_id` bigint unsigned NOT NULL AUTO_INCREMENT INVISIBLE,\n"
        b"  `a` int invisible, /*!80016 DEFAULT ENCRYPTION='N' */ PRIMARY KEY (`my_row_id`))")

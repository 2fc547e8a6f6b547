"""compat.check_compatible: signedness and ENUM/SET members, when the binlog says them
(TableMap SIGNEDNESS / ENUM_STR_VALUE / SET_STR_VALUE), and nothing new when it does not.

The target's columns are given as information_schema describes them (DATA_TYPE,
COLUMN_TYPE lower case, as ``db.schema`` loads them)."""

from __future__ import annotations

import pytest

from applier.binlog import compat
from applier.binlog import tablemap as s
from applier.db import schema as dbs
from applier.errors import SchemaError

_INT_TYPES = {"tinyint": s.T_TINY, "smallint": s.T_SHORT, "mediumint": s.T_INT24, "int": s.T_LONG,
              "bigint": s.T_LONGLONG}


def target_column(column_type: str, name: str = "v") -> dbs.Column:
    data_type = column_type.split("(")[0].split()[0]
    precision = scale = None
    if data_type == "decimal":
        precision, scale = (int(x) for x in column_type.split("(")[1].split(")")[0].split(","))
    return dbs.Column(name, data_type, "unsigned" in column_type, None, None, False, False,
                      column_type=column_type, precision=precision, scale=scale)


def check(btype: int, meta: int, target: str, *, unsigned: bool | None = None,
          members: tuple[str, ...] | None = None, names: bool = True) -> None:
    tmap = s.TableMap(
        7, "d", "t", (s.T_LONG, btype), (0, meta), (False, False),
        ("id", "v") if names else None,
        unsigned=(False, unsigned) if unsigned is not None else None,
        members=(None, members) if members is not None else None,
    )
    schema = dbs.TableSchema("d", "t", (target_column("int", "id"), target_column(target)), (), False)
    compat.check_compatible(tmap, schema)


def refused(*args, **kw) -> str:
    with pytest.raises(SchemaError) as e:
        check(*args, **kw)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("table d.t column v: "), msg
    return msg


# -- integers ------------------------------------------------------------------------------

@pytest.mark.parametrize("source, target", [
    ("int", "int unsigned"), ("int", "bigint unsigned"), ("tinyint", "smallint unsigned"),
    ("bigint", "bigint unsigned"),
])
def test_signed_into_unsigned_is_refused(source, target):
    msg = refused(_INT_TYPES[source], 0, target, unsigned=False)
    name = source.upper()
    assert f"the source logs {name} but the target column is {target.upper()} (another type: " in msg
    assert "negative" in msg
    assert f"ALTER the target column to {name} or wider" in msg


@pytest.mark.parametrize("source, target", [
    ("int", "int"), ("tinyint", "tinyint"), ("mediumint", "mediumint"), ("bigint", "bigint"),
    ("int", "smallint"), ("bigint", "int"),
])
def test_unsigned_into_signed_of_the_same_width_or_narrower_is_refused(source, target):
    msg = refused(_INT_TYPES[source], 0, target, unsigned=True)
    assert f"the source logs {source.upper()} UNSIGNED but the target column is {target.upper()} (narrower" in msg
    assert f"ALTER the target column to {source.upper()} UNSIGNED or wider" in msg


@pytest.mark.parametrize("source, target", [
    ("int", "bigint"), ("tinyint", "smallint"), ("smallint", "mediumint"), ("mediumint", "int"),
    ("smallint", "int"), ("tinyint", "bigint"),
    ("int", "int unsigned"), ("int", "bigint unsigned"), ("bigint", "bigint unsigned"),
    ("tinyint", "tinyint unsigned"),
])
def test_unsigned_into_wide_enough(source, target):
    check(_INT_TYPES[source], 0, target, unsigned=True)


def test_unsigned_into_narrower_unsigned_is_refused():
    msg = refused(s.T_LONG, 0, "smallint unsigned", unsigned=True)
    assert "INT UNSIGNED but the target column is SMALLINT UNSIGNED (narrower)" in msg


@pytest.mark.parametrize("source, target", [("int", "int"), ("int", "bigint"), ("tinyint", "int")])
def test_signed_into_signed(source, target):
    check(_INT_TYPES[source], 0, target, unsigned=False)


@pytest.mark.parametrize("target", ["int unsigned", "int", "bigint"])
def test_unknown_signedness_checks_widths_only(target):
    """No SIGNEDNESS in the binlog: as before, the width decides (and the target's
    signedness decodes the values)."""
    check(s.T_LONG, 0, target)
    with pytest.raises(SchemaError, match=r"logs INT but the target column is SMALLINT UNSIGNED \(narrower\)"):
        check(s.T_LONG, 0, "smallint unsigned")


# -- other numbers -------------------------------------------------------------------------

def test_decimal_float_double_signedness():
    dec = 10 | 2 << 8
    msg = refused(s.T_NEWDECIMAL, dec, "decimal(10,2) unsigned", unsigned=False)
    assert "DECIMAL(10,2) but the target column is DECIMAL(10,2) UNSIGNED (another type: " in msg
    check(s.T_NEWDECIMAL, dec, "decimal(10,2)", unsigned=True)  # every unsigned value fits
    check(s.T_NEWDECIMAL, dec, "decimal(10,2) unsigned", unsigned=True)
    refused(s.T_FLOAT, 4, "float unsigned", unsigned=False)
    refused(s.T_DOUBLE, 8, "double unsigned", unsigned=False)
    check(s.T_DOUBLE, 8, "double", unsigned=True)
    check(s.T_FLOAT, 4, "float unsigned")  # unknown: not checked


def test_year_is_not_about_signedness():
    check(s.T_YEAR, 0, "year", unsigned=True)


# -- ENUM / SET ----------------------------------------------------------------------------

ENUM = (s.T_ENUM, 1)
SET = (s.T_SET, 1)


@pytest.mark.parametrize("kind", [ENUM, SET])
def test_same_or_appended_members(kind):
    word = "enum" if kind == ENUM else "set"
    check(*kind, f"{word}('x','y','z')", members=("x", "y", "z"))
    check(*kind, f"{word}('x','y','z','w')", members=("x", "y", "z"))


@pytest.mark.parametrize("kind", [ENUM, SET])
@pytest.mark.parametrize("target, why", [
    ("('z','y','x')", "members in another order"),
    ("('x','y')", "fewer members"),
    ("('x','q','z')", "other members"),
    ("('w','x','y','z')", "members in another order"),
])
def test_other_members_are_refused(kind, target, why):
    word = "enum" if kind == ENUM else "set"
    msg = refused(*kind, f"{word}{target}", members=("x", "y", "z"))
    big = word.upper()
    assert f"the source logs {big}('x','y','z') but the target column is {big}{target} ({why})" in msg
    assert f"ALTER the target column to {big}('x','y','z') (new members only at the end)" in msg


def test_members_compare_as_the_target_lists_them():
    """COLUMN_TYPE as the server shows it ('' for a quote, \\\\ for a backslash), the
    members' case kept: another case is another value."""
    members = ("It's", "back\\slash", "a,b", "(x)", "É")
    check(*ENUM, "enum('It''s','back\\\\slash','a,b','(x)','É')", members=members)
    msg = refused(*ENUM, "enum('It''s','a,b','back\\\\slash','(x)','É')", members=members)
    assert "ENUM('It''s','back\\\\slash','a,b','(x)','É') but the target column is " in msg
    msg = refused(*ENUM, "enum('it''s','back\\\\slash','a,b','(x)','é')", members=members)
    assert "(other members)" in msg


def test_members_beyond_the_bmp():
    """information_schema (utf8mb3) shows a 4-byte character as '?': seen as equal."""
    check(*ENUM, "enum('a','?','Z')", members=("a", "😀", "Z"))
    check(*ENUM, "enum('a','😀','Z')", members=("a", "😀", "Z"))
    msg = refused(*ENUM, "enum('?','a')", members=("a", "😀"))
    assert "ENUM('a','😀') but the target column is ENUM('?','a') (members in another order)" in msg


def test_long_member_lists_are_shortened():
    members = tuple(f"member_{i}" for i in range(300))
    target = "enum(" + ",".join(f"'member_{i}'" for i in reversed(range(300))) + ")"
    msg = refused(s.T_ENUM, 2, target, members=members)
    assert len(msg) < 400, msg
    assert "ENUM('member_0','member_1'," in msg and ",... 300 members)" in msg
    assert "ENUM('member_299','member_298'," in msg
    long = ("x" * 200, "y")
    msg = refused(*ENUM, "enum('y','" + "x" * 200 + "')", members=long)
    assert len(msg) < 400, msg
    assert "ENUM('" + "x" * 20 + "...','y') but the target column is ENUM('y','" + "x" * 20 + "...') (" in msg


def test_unknown_members_check_the_kind_only():
    check(*ENUM, "enum('z','y','x')")
    check(*SET, "set('b')")
    with pytest.raises(SchemaError, match="another type"):
        check(*ENUM, "set('x')")


def test_members_unknown_for_one_column_only():
    """members logged, but None for this column (a charset that could not be read)."""
    tmap = s.TableMap(7, "d", "t", (s.T_LONG, s.T_ENUM), (0, 1), (False, False), ("id", "v"),
                      unsigned=(False, None), members=(None, None))
    schema = dbs.TableSchema("d", "t", (target_column("int", "id"), target_column("enum('b','a')")), (), False)
    compat.check_compatible(tmap, schema)


def test_generated_target_columns_are_not_checked():
    tmap = s.TableMap(7, "d", "t", (s.T_LONG, s.T_LONG), (0, 0), (False, False), ("id", "v"),
                      unsigned=(False, False))
    gen = dbs.Column("v", "int", True, None, None, False, True, column_type="int unsigned")
    compat.check_compatible(tmap, dbs.TableSchema("d", "t", (target_column("int", "id"), gen), (), False))

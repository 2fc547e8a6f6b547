"""LIKE patterns (db/sql.like_regex), the one home of ``%``/``_``/``\\`` matching used by
the filters and by database-level grants (db/grants.py)."""

from __future__ import annotations

import pytest

from applier.db.grants import _pattern
from applier.db.sql import like_regex


@pytest.mark.parametrize(("pattern", "name", "hit"), [
    ("shop", "shop", True),
    ("shop", "shops", False),
    ("shop%", "shop_eu", True),
    ("sh_p", "ship", True),
    ("sh_p", "shp", False),
    ("a\\_b", "a_b", True),
    ("a\\_b", "axb", False),
    ("a\\%", "a%", True),
    ("%", "", True),
    ("x.y", "xzy", False),  # a dot is itself
    ("line\nbreak%", "line\nbreak!", True),
])
def test_like_regex_matches_like_the_server(pattern, name, hit):
    assert (like_regex(pattern)[0].fullmatch(name) is not None) is hit


def test_literal_text_and_folding():
    assert like_regex("a\\_b")[1] == "a_b"
    assert like_regex("a_b")[1] is None
    assert like_regex("Shop%", fold=True)[0].fullmatch("SHOP1")
    assert not like_regex("Shop%")[0].fullmatch("SHOP1")
    with pytest.raises(ValueError, match="lone"):
        like_regex("db\\")


def test_a_grant_name_ending_in_a_backslash_is_that_name():
    assert _pattern("db\\").fullmatch("db\\") and not _pattern("db\\").fullmatch("db")
    assert _pattern("shop\\_%").fullmatch("shop_1") and not _pattern("shop\\_%").fullmatch("shopx1")

"""GTID sets and binlog positions in both flavours, including the MySQL dump encoding."""

from __future__ import annotations

import pytest

from applier.binlog.position import BinlogPosition, MariadbGtid, MariadbGtidPos, MysqlGtidSet
from applier.errors import ConfigError

UUID = "3e11fa47-71ca-11e1-9e33-c80aa9429562"


def test_binlog_position_parse_and_order():
    a = BinlogPosition.parse("mysql-bin.000002:120")
    b = BinlogPosition.parse("mysql-bin.000010:4")
    assert a.ordinal < b.ordinal
    assert BinlogPosition.from_ordinal(a.ordinal, "mysql-bin") == a
    with pytest.raises(ConfigError):
        BinlogPosition.parse("nonsense")


def test_mariadb_gtid_pos_keeps_last_per_domain():
    pos = MariadbGtidPos.parse("0-1-10,1-2-5")
    pos.advance(MariadbGtid.parse("0-1-11"))
    assert str(pos) == "0-1-11,1-2-5"
    with pytest.raises(ConfigError):
        MariadbGtid.parse("0-1")


def test_mysql_gtid_set_merges_intervals():
    s = MysqlGtidSet.parse(f"{UUID}:1-5:7")
    s.add(f"{UUID}:6")
    assert str(s) == f"{UUID}:1-7"
    assert f"{UUID}:3" in s and f"{UUID}:8" not in s
    with pytest.raises(ConfigError):
        MysqlGtidSet.parse("not-a-uuid:1-2")


def test_mysql_gtid_set_encoding_matches_server_format():
    enc = MysqlGtidSet.parse(f"{UUID}:1-5").encode()
    assert enc[:8] == (1).to_bytes(8, "little")
    assert enc[8:24] == bytes.fromhex(UUID.replace("-", ""))
    assert enc[24:32] == (1).to_bytes(8, "little")
    # intervals are half-open on the wire: [1, 6)
    assert enc[32:48] == (1).to_bytes(8, "little") + (6).to_bytes(8, "little")

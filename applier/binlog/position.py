"""Source positions: binlog file:pos and GTID sets in both flavours.

A ``BinlogPosition`` orders transactions within one source: the file's numeric suffix
then the offset. ``ordinal`` packs both into one int (suffix << 32 | pos; binlog offsets
are 32-bit in the event header) so checkpoints can store and compare them cheaply.

MariaDB GTIDs are ``domain-server-seqno``; a MariaDB position is one GTID per domain.
MySQL GTIDs are ``uuid:n``; a MySQL GTID set is ``uuid:1-5:7,uuid2:1-3``.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from ..errors import ConfigError

_SUFFIX = re.compile(r"\.(\d+)$")


@dataclass(frozen=True, slots=True)
class BinlogPosition:
    """A point in the source's binlog: the offset of the next event to read."""

    file: str
    pos: int

    @property
    def ordinal(self) -> int:
        return file_number(self.file) << 32 | self.pos

    def __str__(self) -> str:
        return f"{self.file}:{self.pos}"

    @classmethod
    def parse(cls, text: str) -> BinlogPosition:
        name, sep, pos = text.rpartition(":")
        if not sep or not name or not pos.isdigit():
            raise ConfigError(f"bad binlog position {text!r}: expected FILE:POS, e.g. mysql-bin.000003:4")
        return cls(name, int(pos))

    @classmethod
    def from_ordinal(cls, ordinal: int, base_name: str) -> BinlogPosition:
        """Inverse of ``ordinal`` given the file's base name (``mysql-bin``)."""
        return cls(f"{base_name}.{ordinal >> 32:06d}", ordinal & 0xFFFFFFFF)


@functools.lru_cache(maxsize=256)  # called per transaction: binlog names repeat
def file_number(name: str) -> int:
    m = _SUFFIX.search(name)
    if not m:
        raise ConfigError(f"binlog file name {name!r} has no numeric suffix")
    return int(m.group(1))


def file_base(name: str) -> str:
    return _SUFFIX.sub("", name)


# ---- MariaDB -------------------------------------------------------------------------

_MARIADB_GTID = re.compile(r"^(\d+)-(\d+)-(\d+)$")


@dataclass(frozen=True, slots=True)
class MariadbGtid:
    domain: int
    server_id: int
    seq: int

    def __str__(self) -> str:
        return f"{self.domain}-{self.server_id}-{self.seq}"

    @classmethod
    def parse(cls, text: str) -> MariadbGtid:
        m = _MARIADB_GTID.match(text.strip())
        if not m:
            raise ConfigError(f"bad MariaDB GTID {text!r}: expected domain-server-seqno, e.g. 0-1-42")
        return cls(int(m.group(1)), int(m.group(2)), int(m.group(3)))


class MariadbGtidPos:
    """A MariaDB replication position: the last GTID applied in each domain."""

    def __init__(self, gtids: dict[int, MariadbGtid] | None = None) -> None:
        self._by_domain: dict[int, MariadbGtid] = dict(gtids or {})

    @classmethod
    def parse(cls, text: str) -> MariadbGtidPos:
        pos = cls()
        for part in filter(None, (p.strip() for p in text.split(","))):
            pos.advance(MariadbGtid.parse(part))
        return pos

    def advance(self, gtid: MariadbGtid) -> None:
        self._by_domain[gtid.domain] = gtid

    def __str__(self) -> str:
        return ",".join(str(self._by_domain[d]) for d in sorted(self._by_domain))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MariadbGtidPos) and self._by_domain == other._by_domain

    def __bool__(self) -> bool:
        return bool(self._by_domain)


# ---- MySQL ---------------------------------------------------------------------------

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class MysqlGtidSet:
    """A MySQL GTID set: per source uuid, a sorted list of closed intervals [lo, hi]."""

    def __init__(self) -> None:
        self._sets: dict[str, list[tuple[int, int]]] = {}

    @classmethod
    def parse(cls, text: str) -> MysqlGtidSet:
        gset = cls()
        for part in filter(None, (p.strip() for p in text.replace("\n", "").split(","))):
            uuid, *ranges = part.split(":")
            if not _UUID.match(uuid) or not ranges:
                raise ConfigError(f"bad MySQL GTID set element {part!r}: expected uuid:1-5[:7-9]")
            for r in ranges:
                lo, _, hi = r.partition("-")
                if not lo.isdigit() or (hi and not hi.isdigit()):
                    raise ConfigError(f"bad interval {r!r} in MySQL GTID set element {part!r}")
                gset.add_interval(uuid, int(lo), int(hi or lo))
        return gset

    def add(self, gtid: str) -> None:
        uuid, _, n = gtid.rpartition(":")
        if not _UUID.match(uuid) or not n.isdigit():
            raise ConfigError(f"bad MySQL GTID {gtid!r}: expected uuid:n")
        self.add_interval(uuid, int(n), int(n))

    def add_interval(self, uuid: str, lo: int, hi: int) -> None:
        if lo < 1 or hi < lo:
            raise ConfigError(f"bad GTID interval {uuid}:{lo}-{hi}")
        intervals = self._sets.setdefault(uuid.lower(), [])
        intervals.append((lo, hi))
        intervals.sort()
        merged: list[tuple[int, int]] = []
        for a, b in intervals:
            if merged and a <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(merged[-1][1], b))
            else:
                merged.append((a, b))
        self._sets[uuid.lower()] = merged

    def __contains__(self, gtid: str) -> bool:
        uuid, _, n = gtid.rpartition(":")
        return any(a <= int(n) <= b for a, b in self._sets.get(uuid.lower(), ()))

    def __str__(self) -> str:
        parts = []
        for uuid in sorted(self._sets):
            ranges = ":".join(f"{a}" if a == b else f"{a}-{b}" for a, b in self._sets[uuid])
            parts.append(f"{uuid}:{ranges}")
        return ",".join(parts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MysqlGtidSet) and self._sets == other._sets

    def __bool__(self) -> bool:
        return bool(self._sets)

    def encode(self) -> bytes:
        """The binary form COM_BINLOG_DUMP_GTID expects (MySQL's Gtid_set::encode)."""
        out = bytearray(len(self._sets).to_bytes(8, "little"))
        for uuid in sorted(self._sets):
            out += bytes.fromhex(uuid.replace("-", ""))
            intervals = self._sets[uuid]
            out += len(intervals).to_bytes(8, "little")
            for a, b in intervals:
                out += a.to_bytes(8, "little") + (b + 1).to_bytes(8, "little")
        return bytes(out)

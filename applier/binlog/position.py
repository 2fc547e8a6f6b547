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


def bytes_between(file_a: str, pos_a: int, file_b: str, pos_b: int, sizes: dict[str, int]) -> int:
    """Binlog bytes from ``file_a:pos_a`` to ``file_b:pos_b``; ``sizes``: SHOW BINARY
    LOGS (name -> size) for the files in between."""
    if file_a == file_b:
        return max(0, pos_b - pos_a)
    na, nb = file_number(file_a), file_number(file_b)
    total = max(0, sizes.get(file_a, pos_a) - pos_a) + pos_b
    return total + sum(size for name, size in sizes.items() if na < file_number(name) < nb)


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

    def domains(self) -> dict[int, MariadbGtid]:
        """The last GTID of each domain."""
        return dict(self._by_domain)

    def reached(self, other: MariadbGtidPos) -> bool:
        """Every domain of ``other`` is at or beyond its GTID here."""
        mine = self._by_domain
        return all(d in mine and mine[d].seq >= g.seq for d, g in other._by_domain.items())

    def __str__(self) -> str:
        return ",".join(str(self._by_domain[d]) for d in sorted(self._by_domain))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MariadbGtidPos) and self._by_domain == other._by_domain

    def __bool__(self) -> bool:
        return bool(self._by_domain)


# ---- MySQL ---------------------------------------------------------------------------

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_TAG = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,31}$")


class MysqlGtidSet:
    """A MySQL GTID set: per (source uuid, tag), sorted closed intervals [lo, hi].
    Text: ``uuid:1-5:7,uuid2:1-3``; tagged GTIDs (MySQL 8.3+): ``uuid:1-5:tag:1-2``
    (a tag applies to the intervals after it, until the next tag)."""

    def __init__(self) -> None:
        self._sets: dict[tuple[str, str], list[tuple[int, int]]] = {}

    @classmethod
    def parse(cls, text: str) -> MysqlGtidSet:
        gset = cls()
        for part in filter(None, (p.strip() for p in text.replace("\n", "").split(","))):
            uuid, *ranges = part.split(":")
            if not _UUID.match(uuid) or not ranges:
                raise ConfigError(f"bad MySQL GTID set element {part!r}: expected uuid:1-5[:7-9]")
            tag = ""
            for r in ranges:
                if _TAG.match(r):
                    tag = r.lower()
                    continue
                lo, _, hi = r.partition("-")
                if not lo.isdigit() or (hi and not hi.isdigit()):
                    raise ConfigError(f"bad interval {r!r} in MySQL GTID set element {part!r}")
                gset.add_interval(uuid, int(lo), int(hi or lo), tag)
        return gset

    @staticmethod
    def split(gtid: str) -> tuple[str, str, int]:
        """``uuid[:tag]:n`` -> (uuid, tag, n)."""
        uuid, _, rest = gtid.partition(":")
        tag, _, n = rest.rpartition(":")
        if not _UUID.match(uuid) or not n.isdigit() or (tag and not _TAG.match(tag)):
            raise ConfigError(f"bad MySQL GTID {gtid!r}: expected uuid:n or uuid:tag:n")
        return uuid.lower(), tag.lower(), int(n)

    def add(self, gtid: str) -> None:
        uuid, tag, n = self.split(gtid)
        intervals = self._sets.get((uuid, tag))
        if intervals and intervals[-1][1] + 1 == n:  # the common case: the next one
            intervals[-1] = (intervals[-1][0], n)
            return
        self.add_interval(uuid, n, n, tag)

    def add_interval(self, uuid: str, lo: int, hi: int, tag: str = "") -> None:
        if lo < 1 or hi < lo:
            raise ConfigError(f"bad GTID interval {uuid}:{lo}-{hi}")
        key = (uuid.lower(), tag.lower())
        intervals = self._sets.setdefault(key, [])
        intervals.append((lo, hi))
        intervals.sort()
        merged: list[tuple[int, int]] = []
        for a, b in intervals:
            if merged and a <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(merged[-1][1], b))
            else:
                merged.append((a, b))
        self._sets[key] = merged

    def update(self, other: MysqlGtidSet) -> None:
        for (uuid, tag), intervals in other._sets.items():
            for a, b in intervals:
                self.add_interval(uuid, a, b, tag)

    def __contains__(self, gtid: str) -> bool:
        uuid, tag, n = self.split(gtid)
        return any(a <= n <= b for a, b in self._sets.get((uuid, tag), ()))

    def issubset(self, other: MysqlGtidSet) -> bool:
        return not self.difference(other)

    def difference(self, other: MysqlGtidSet) -> MysqlGtidSet:
        """The GTIDs of this set that ``other`` lacks."""
        out = MysqlGtidSet()
        for key, intervals in self._sets.items():
            theirs = other._sets.get(key, [])
            for a, b in intervals:
                lo = a
                for c, d in theirs:
                    if d < lo or c > b:
                        continue
                    if c > lo:
                        out.add_interval(key[0], lo, c - 1, key[1])
                    lo = max(lo, d + 1)
                if lo <= b:
                    out.add_interval(key[0], lo, b, key[1])
        return out

    def count(self) -> int:
        return sum(b - a + 1 for intervals in self._sets.values() for a, b in intervals)

    def __str__(self) -> str:
        parts = []
        for uuid in sorted({u for u, _ in self._sets}):
            ranges = []
            for tag in sorted(t for u, t in self._sets if u == uuid):
                if tag:
                    ranges.append(tag)
                ranges += [f"{a}" if a == b else f"{a}-{b}" for a, b in self._sets[(uuid, tag)]]
            parts.append(f"{uuid}:" + ":".join(ranges))
        return ",".join(parts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MysqlGtidSet) and self._sets == other._sets

    def __bool__(self) -> bool:
        return bool(self._sets)

    def encode(self) -> bytes:
        """The binary form COM_BINLOG_DUMP_GTID expects (MySQL's Gtid_set::encode). With a
        tagged GTID the whole set takes the tagged format (MySQL 8.3+): the count field
        is ``1 << 56 | count << 8 | 1`` and every entry has its tag (a one-byte length
        ``len << 1``, then the tag; 0 for none) after its uuid."""
        tagged = any(tag for _, tag in self._sets)
        count = len(self._sets)
        out = bytearray(((1 << 56 | count << 8 | 1) if tagged else count).to_bytes(8, "little"))
        for uuid, tag in sorted(self._sets):
            out += bytes.fromhex(uuid.replace("-", ""))
            if tagged:
                out += bytes([len(tag) << 1]) + tag.encode()
            intervals = self._sets[(uuid, tag)]
            out += len(intervals).to_bytes(8, "little")
            for a, b in intervals:
                out += a.to_bytes(8, "little") + (b + 1).to_bytes(8, "little")
        return bytes(out)


# ---- either ------------------------------------------------------------------------------


class GtidPosition:
    """What has been applied, as GTIDs, in the source's flavor: a MariaDB position (the
    last GTID per domain) or a MySQL GTID set. The flavor comes from the start text or
    the first GTID added. ``str()`` is cached: it rides in every message to a worker."""

    __slots__ = ("_maria", "_mysql", "_text")

    def __init__(self, text: str = "") -> None:
        self._maria: MariadbGtidPos | None = None
        self._mysql: MysqlGtidSet | None = None
        self._text: str | None = None
        text = text.strip()
        if text:
            if _MARIADB_GTID.match(text.split(",")[0].strip()):
                self._maria = MariadbGtidPos.parse(text)
            else:
                self._mysql = MysqlGtidSet.parse(text)

    def add(self, gtid: str) -> None:
        self._text = None
        if self._maria is not None:
            d, s, n = gtid.split("-")
            self._maria.advance(MariadbGtid(int(d), int(s), int(n)))
        elif self._mysql is not None:
            self._mysql.add(gtid)
        elif ":" in gtid:
            self._mysql = MysqlGtidSet()
            self._mysql.add(gtid)
        else:
            self._maria = MariadbGtidPos()
            self.add(gtid)

    def __contains__(self, gtid: str) -> bool:
        """``gtid`` is at or before this position (MariaDB: in its domain) or in the set."""
        if self._maria is not None:
            d, s, n = gtid.split("-")
            last = self._maria.domains().get(int(d))
            return last is not None and int(n) <= last.seq
        return self._mysql is not None and gtid in self._mysql

    @property
    def mariadb(self) -> MariadbGtidPos | None:
        return self._maria

    @property
    def mysql(self) -> MysqlGtidSet | None:
        return self._mysql

    def __str__(self) -> str:
        if self._text is None:
            self._text = str(self._maria or self._mysql or "")
        return self._text

    def __bool__(self) -> bool:
        return bool(self._maria or self._mysql)

"""Writesets: the 64-bit keys a transaction touches, for conflict detection.

Policy ``writeset``: for every row image (before and after), for every unique key of
the table (PRIMARY included) one xxh3_64 of ``db NUL table NUL index NUL values``.
Values are the canonical SQL literals of ``rowcodec`` (deterministic per value).
Strings of case/accent-insensitive collations must hash equal whenever the target's
collation says they are equal ('a' = 'A', 'ß' = 'ss', ignorable characters): the
coordinator hashes their ``WEIGHT_STRING`` from the target (``Weigher``, cached per
value), the server's own definition. Without a weigher (unit use), a local fold is
used: pad spaces stripped, case and accents folded, which misses some collation rules
(tests/scenarios/test_writeset_collations.py). ``_bin`` collations only strip pad
spaces. A missed conflict breaks source order while a false one only costs speed, so
when unsure this over-approximates. A unique key with a NULL part never
conflicts and yields nothing. Keys are de-duplicated per transaction.

Policies ``table`` and ``database`` hash just ``db NUL table`` or ``db``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

import xxhash

from ..binlog import rowcodec as rc
from ..binlog.native import decode_rows as decode_keys
from ..binlog.native import scan as native_scan
from ..db.schema import TableSchema, UniqueKey
from ..db.sql import unescape

_NON_ASCII_CHARSETS = frozenset({"ucs2", "utf16", "utf16le", "utf32"})
_xxh = xxhash.xxh3_64_intdigest


def fold_text(text: str) -> str:
    """Collation-insensitive canonical form: strip pad spaces, fold case and accents."""
    text = text.rstrip(" ")
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


class Weigher:
    """Collation weights from the target's own WEIGHT_STRING: the server's definition of
    "equal" (expansions like ß = ss, ignorable characters, language rules), which no
    local folding models exactly. One query per distinct value, cached."""

    MAX_CACHED = 200_000

    def __init__(self, conn) -> None:
        self.conn = conn
        self._cache: dict[tuple[str, bytes], bytes] = {}

    def weight(self, charset: str, collation: str, raw: bytes) -> bytes:
        key = (collation, raw)
        w = self._cache.get(key)
        if w is None:
            if len(self._cache) >= self.MAX_CACHED:
                self._cache.clear()
            cur = self.conn.cursor()
            cur.execute(
                f"SELECT WEIGHT_STRING(CONVERT(X'{raw.hex()}' USING {charset}) COLLATE {collation})"
            )
            (w,) = cur.fetchone()
            cur.close()
            w = self._cache[key] = bytes(w or b"")
        return w


class KeyColumn:
    """How to canonicalise one key column's literal."""

    __slots__ = ("index", "mode", "prefix_len", "literal_prefix", "charset", "collation", "weigher")

    # modes
    EXACT, FOLD, PAD, COARSE, FLOAT = range(5)

    def __init__(self, index: int, schema: TableSchema, prefix_len: int | None, codec: rc.ColumnCodec,
                 weigher: Weigher | None = None):
        col = schema.columns[index]
        self.index = index
        self.prefix_len = prefix_len
        self.literal_prefix = len(codec.prefix)
        self.charset = col.charset
        self.collation = col.collation
        self.weigher = weigher
        if codec.kind in (rc.K_FLOAT, rc.K_DOUBLE):
            self.mode = self.FLOAT
        elif col.charset is None or col.charset == "binary" or codec.kind not in (rc.K_VARSTR, rc.K_BLOB):
            self.mode = self.EXACT
        elif col.charset in _NON_ASCII_CHARSETS:
            self.mode = self.COARSE
        elif (col.collation or "").endswith("_bin"):
            self.mode = self.PAD
        else:
            self.mode = self.FOLD

    def canonical(self, literal: bytes) -> bytes:
        mode = self.mode
        if mode == self.EXACT:
            if self.prefix_len is not None and literal.endswith(b"'"):
                body = literal[self.literal_prefix : -1]
                return body[: self.prefix_len]
            return literal
        if mode == self.FLOAT:
            return b"0.0" if literal == b"-0.0" else literal
        body = literal[self.literal_prefix : -1]
        if self.weigher is not None and mode in (self.FOLD, self.COARSE) and self.collation:
            return self._weighed(unescape(body))
        if mode == self.COARSE:
            return b"*"
        text = body.decode(_pycodec(self.charset), "surrogateescape")
        text = fold_text(text) if mode == self.FOLD else text.rstrip(" ")
        if self.prefix_len is not None:
            text = text[: self.prefix_len]
        return text.encode("utf-8", "surrogateescape")


    def _weighed(self, raw: bytes) -> bytes:
        if self.prefix_len is not None:  # prefix parts count characters
            text = raw.decode(_pycodec(self.charset), "surrogateescape")[: self.prefix_len]
            raw = text.encode(_pycodec(self.charset), "surrogateescape")
        if self.charset not in _NON_ASCII_CHARSETS:
            raw = raw.rstrip(b" ")  # PAD SPACE; for NO PAD collations a harmless over-match
        assert self.weigher is not None and self.charset and self.collation
        return self.weigher.weight(self.charset, self.collation, raw)


def _pycodec(charset: str | None) -> str:
    return {"utf8mb4": "utf-8", "utf8mb3": "utf-8", "utf8": "utf-8", "latin1": "cp1252", "ascii": "ascii"}.get(
        charset or "", "latin-1"
    )


class TableKeys:
    """Per table: which columns to decode and how to hash each unique key."""

    __slots__ = ("head", "keys", "wanted")

    def __init__(self, schema: TableSchema, plan: rc.RowPlan, weigher: Weigher | None = None) -> None:
        self.head = f"{schema.db}\0{schema.table}\0".encode()
        self.keys: list[tuple[bytes, list[KeyColumn]]] = []
        wanted: set[int] = set()
        for key in schema.unique_keys:
            self.keys.append((self.head + key.name.encode() + b"\0", _key_columns(key, schema, plan, weigher)))
            wanted.update(key.columns)
        self.wanted = frozenset(wanted)

    def hashes(self, image: rc.Row, out: set[int]) -> None:
        for head, cols in self.keys:
            parts = []
            for kc in cols:
                lit = image[kc.index]
                if lit is None or lit == rc.NULL:
                    break
                parts.append(kc.canonical(lit))
            else:
                out.add(_xxh(head + b"\0".join(parts)))


def _key_columns(key: UniqueKey, schema: TableSchema, plan: rc.RowPlan,
                 weigher: Weigher | None) -> list[KeyColumn]:
    return [KeyColumn(i, schema, p, plan.columns[i], weigher)
            for i, p in zip(key.columns, key.prefixes, strict=True)]


def table_key(db: str, table: str) -> int:
    return _xxh(f"{db}\0{table}".encode())


def database_key(db: str) -> int:
    return _xxh(db.encode())


def row_hashes(tkeys: TableKeys, rows: Iterable[tuple[rc.Row | None, rc.Row | None]], out: set[int]) -> None:
    for before, after in rows:
        if before is not None:
            tkeys.hashes(before, out)
        if after is not None:
            tkeys.hashes(after, out)


def event_keys(
    tkeys: TableKeys, plan: rc.RowPlan, op: int, body: bytes, version: int, out: set[int]
) -> int:
    """Add the keys of one rows event to ``out``; return its row count. Uses the
    native decoder when it is built (same results, see native/)."""
    rows = decode_keys(plan, op, body, version, tkeys.wanted)
    row_hashes(tkeys, rows, out)
    return len(rows)


def scan_route(tkeys: TableKeys | None, plan: rc.RowPlan, extra: tuple[int, ...] = ()):
    """How the native scanner computes one table's keys: itself when every key column
    hashes its literal as is, else through ``event_keys`` (collation-aware columns).
    ``tkeys`` None: no row keys, only ``extra`` (policies table, database, serial)."""
    assert native_scan is not None
    if tkeys is None:
        return native_scan.TableRoute(decode=decode_keys, plan=plan, extra=extra)
    if all(kc.mode == KeyColumn.EXACT and kc.prefix_len is None for _, cols in tkeys.keys for kc in cols):
        return native_scan.TableRoute(
            decode=decode_keys, plan=plan, wanted=tkeys.wanted,
            heads=[head for head, _ in tkeys.keys],
            cols=[[kc.index for kc in cols] for _, cols in tkeys.keys],
            extra=extra,
        )

    def call(op: int, body: bytes, version: int, out: set[int]) -> int:
        return event_keys(tkeys, plan, op, body, version, out)

    return native_scan.TableRoute(call=call, extra=extra)

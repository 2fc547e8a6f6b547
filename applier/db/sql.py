"""SQL text: identifiers, literals, and driver values back to text. The one home of
quoting and escaping (the target's statements, checkpoints, check, preflight).

Literals are built as bytes: every target session runs with the utf8mb4 client
character set, in which no multibyte sequence contains a quote or backslash byte, so
escaping arbitrary bytes this way is safe.
"""

from __future__ import annotations

import re


def quote_ident(name: str) -> bytes:
    """`name` with backticks doubled, as bytes (for statements built as bytes)."""
    return ("`" + name.replace("`", "``") + "`").encode()


def quote_name(name: str) -> str:
    """`name` with backticks doubled, as text."""
    return "`" + name.replace("`", "``") + "`"


def qualified(db: str, table: str) -> str:
    """`db`.`table`."""
    return f"{quote_name(db)}.{quote_name(table)}"


def escape(data: bytes) -> bytes:
    """Escape bytes for a quoted literal (client character set utf8mb4)."""
    if b"\\" in data:
        data = data.replace(b"\\", b"\\\\")
    if b"'" in data:
        data = data.replace(b"'", b"\\'")
    if b"\x00" in data:
        data = data.replace(b"\x00", b"\\0")
    return data


_ESCAPED = re.compile(rb"\\(.)", re.S)


def unescape(body: bytes) -> bytes:
    """Inverse of ``escape``."""
    if b"\\" not in body:
        return body
    return _ESCAPED.sub(lambda m: b"\0" if m.group(1) == b"0" else m.group(1), body)


def string_literal(text: str) -> bytes:
    """'text' as a utf8mb4 literal."""
    return b"'" + escape(text.encode()) + b"'"


def text(value: object) -> str:
    """A value from the driver as text: bytes (binary metadata) decoded, None as ''."""
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return "" if value is None else str(value)


def like_regex(pattern: str, *, fold: bool = False) -> tuple[re.Pattern[str], str | None]:
    """An SQL LIKE pattern (``%`` any run, ``_`` one character, ``\\`` escapes the next)
    -> (a regex for ``fullmatch``, the pattern's text when it has no wildcard, else
    None). ValueError for a lone ``\\`` at the end. ``fold``: case-insensitive."""
    out: list[str] = []
    literal: list[str] = []
    wild = False
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 == n:
                raise ValueError("ends with a lone \\ (it escapes the next character)")
            out.append(re.escape(pattern[i + 1]))
            literal.append(pattern[i + 1])
            i += 2
            continue
        if c in "%_":
            out.append(".*" if c == "%" else ".")
            wild = True
        else:
            out.append(re.escape(c))
            literal.append(c)
        i += 1
    regex = re.compile("".join(out), re.S | (re.I if fold else 0))
    return regex, None if wild else "".join(literal)


_DROP = re.compile(rb"\A(\s*DROP\s+(?:TEMPORARY\s+)?(?:TABLE|VIEW))(\s+)(?!IF\s+EXISTS\b)", re.I)


def drop_if_exists(sql: bytes) -> bytes | None:
    """``DROP [TEMPORARY] TABLE|VIEW names`` with ``IF EXISTS`` added, or None for any
    other statement (or one that has it). A re-run DROP that failed on an unknown table
    (1051) runs so: MariaDB dropped the others the first time, MySQL (atomic DDL) none."""
    m = _DROP.match(sql)
    if m is None:
        return None
    return m.group(1) + b" IF EXISTS" + m.group(2) + sql[m.end():]

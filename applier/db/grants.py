"""What a server lets the connected user do: ``Grants.read`` parses ``SHOW GRANTS``
(and the grants of roles granted to the user, recursively); ``ALL PRIVILEGES`` on
``*.*`` counts for everything; database-level grants match by their LIKE pattern."""

from __future__ import annotations

import re

import MySQLdb

from .sql import like_regex, text


def _query(conn, sql: str) -> list[tuple]:
    cur = conn.cursor()
    try:
        cur.execute(sql)
        return list(cur.fetchall())
    finally:
        cur.close()


def _unquote(ident: str) -> str:
    if ident.startswith("`") and ident.endswith("`"):
        return ident[1:-1].replace("``", "`")
    return ident


def _pattern(name: str) -> re.Pattern[str]:
    try:
        return like_regex(name)[0]
    except ValueError:  # a name ending in a lone backslash: that character itself
        return re.compile(re.escape(name))


_IDENT = r"(?:\*|`(?:[^`]|``)*`|[^\s.`]+)"
_GRANT_ON = re.compile(
    rf"^GRANT (?P<privs>.+?) ON (?:(?:PROCEDURE|FUNCTION|PACKAGE BODY|PACKAGE) )?"
    rf"(?P<db>{_IDENT})\.(?P<obj>{_IDENT}) TO ",
    re.IGNORECASE,
)
_GRANT_ROLE = re.compile(r"^GRANT (?P<roles>.+?) TO ", re.IGNORECASE)
_COLUMNS = re.compile(r"\s*\([^)]*\)")


class Grants:
    """Privileges from SHOW GRANTS: global ones and database-level ones (by name pattern)."""

    def __init__(self, user: str) -> None:
        self.user = user
        self.global_privs: set[str] = set()
        self.db_privs: list[tuple[re.Pattern[str], set[str]]] = []

    @classmethod
    def read(cls, conn) -> Grants:
        user = text(_query(conn, "SELECT CURRENT_USER()")[0][0])
        name, _, host = user.rpartition("@")
        grants = cls(f"'{name}'@'{host}'" if name else user)
        roles = grants._parse(_query(conn, "SHOW GRANTS"))
        seen: set[str] = set()
        while roles:  # privileges held through granted roles (and their roles)
            role = roles.pop()
            if role in seen:
                continue
            seen.add(role)
            try:
                rows = _query(conn, f"SHOW GRANTS FOR {role}")
            except MySQLdb.Error:
                continue
            roles.extend(grants._parse(rows))
        return grants

    def _parse(self, rows) -> list[str]:
        roles: list[str] = []
        for (line,) in rows:
            line = text(line).strip()
            m = _GRANT_ON.match(line)
            if m:
                privs = {p.strip().upper() for p in _COLUMNS.sub("", m.group("privs")).split(",")}
                if "ALL" in privs:
                    privs.add("ALL PRIVILEGES")
                db, obj = m.group("db"), m.group("obj")
                if db == "*" and obj == "*":
                    self.global_privs |= privs
                elif obj == "*":
                    self.db_privs.append((_pattern(_unquote(db)), privs))
                continue
            if " ON " in line.upper():
                continue  # PROXY and anything else we do not need
            m = _GRANT_ROLE.match(line)
            if m:
                roles.extend(r.strip() for r in m.group("roles").split(",") if r.strip())
        return roles

    def has(self, priv: str, db: str | None = None) -> bool:
        if priv in self.global_privs or "ALL PRIVILEGES" in self.global_privs:
            return True
        if db is None:
            return False
        return any(
            pattern.fullmatch(db) and (priv in privs or "ALL PRIVILEGES" in privs)
            for pattern, privs in self.db_privs
        )

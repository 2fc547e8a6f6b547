"""Preflight checks with clear errors, run before anything is applied.

``inspect_source`` connects to the source, reads what the applier depends on
(``SourceFacts``) and raises for what can only be seen on a live connection: binary
logging off, missing replication grants, our ``server_id`` clashing with the source's.
``check_source`` judges the facts: ROW format, FULL row image, no partial JSON updates
(MySQL's binlog_row_value_options=PARTIAL_JSON), no compressed events (MariaDB's
log_bin_compress), the start file still on the source. MySQL's compressed transactions
(binlog_transaction_compression) are read, and encrypted binlogs (binlog_encryption,
MariaDB's encrypt_binlog) are fine: the dump connection sends them decrypted. A session
can still change binlog_format, binlog_row_image or binlog_row_value_options: what it
logs is refused when it arrives, naming the setting. ``inspect_target`` checks the
target is reachable, writable and lets us create the checkpoint schema;
``check_tables_exist`` checks binlog tables exist there.

Every error is one line naming the server, the setting and what to do. Grants are read
by ``db.grants``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import MySQLdb

from ..binlog.position import file_base, file_number
from ..config import ServerConfig, SourceConfig, TargetConfig
from ..db import codes
from ..db.connect import connect, flavor_and_version
from ..db.grants import Grants
from ..db.replica import Replica
from ..db.sql import text as _text
from ..errors import (
    BinlogPurgedError,
    ConfigError,
    SchemaError,
    SourceError,
    TargetError,
    TargetLost,
)

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class SourceFacts:
    """What the applier needs to know about the source, read by ``inspect_source``."""

    flavor: str  # "mariadb" | "mysql"
    version: tuple[int, int, int]
    server_id: int
    binlog_format: str
    row_image: str
    row_metadata: str  # "" when the server has no binlog_row_metadata variable
    checksum: str  # binlog_checksum: CRC32 | NONE
    gtid_mode: str | None  # MySQL's gtid_mode; None on MariaDB (GTIDs always logged)
    binlog_files: tuple[tuple[str, int], ...]  # SHOW BINARY LOGS: (name, size), oldest first
    current: tuple[str, int]  # the source's current write position (file, pos)
    server: str = "source"  # "source user@host:port", for messages
    row_value_options: str = ""  # MySQL's binlog_row_value_options ("" or PARTIAL_JSON)
    transaction_compression: bool = False  # MySQL's binlog_transaction_compression
    log_bin_compress: bool = False  # MariaDB's log_bin_compress
    encryption: bool = False  # MySQL's binlog_encryption, MariaDB's encrypt_binlog


# ---- source ------------------------------------------------------------------------------


def inspect_source(server: SourceConfig) -> SourceFacts:
    """Connect to the source and read its facts.

    Raises ``ConnectError`` (unreachable, bad credentials), ``SourceError`` (binary
    logging off, missing grants) or ``ConfigError`` (flavor or server_id clash).
    """
    where = f"source {server.describe()}"
    conn = connect(server, "source")
    try:
        flavor, version = flavor_and_version(conn)
        if server.flavor != "auto" and server.flavor != flavor:
            raise ConfigError(
                f"[source] flavor = {server.flavor!r} but {where} runs {_product(flavor, version)}: "
                f'set flavor = "auto" or "{flavor}"'
            )
        var = _variables(
            conn,
            "log_bin",
            "binlog_format",
            "binlog_row_image",
            "binlog_row_metadata",
            "binlog_checksum",
            "server_id",
            "gtid_mode",
            "binlog_row_value_options",
            "binlog_transaction_compression",
            "log_bin_compress",
            "binlog_encryption",
            "encrypt_binlog",
        )
        if var.get("log_bin", "OFF").upper() not in ("ON", "1"):
            raise SourceError(
                f"{_address_of(server, 'source')} has binary logging disabled: start it with "
                f"--log-bin (and binlog_format=ROW, binlog_row_image=FULL)"
            )
        _check_source_grants(conn, where, flavor, version)
        source_id = int(var.get("server_id", "0"))
        if source_id == server.server_id:
            raise ConfigError(
                f"[source] server_id = {server.server_id} is the server_id of {where} itself: "
                f"pick an id no other server or replica uses"
            )
        files = _binlog_files(conn, where, flavor, version)
        current = _binlog_status(conn, where, flavor, version)
    finally:
        conn.close()
    return SourceFacts(
        flavor=flavor,
        version=version,
        server_id=source_id,
        binlog_format=var.get("binlog_format", "").upper(),
        row_image=var.get("binlog_row_image", "").upper(),
        row_metadata=var.get("binlog_row_metadata", "").upper(),
        checksum=var.get("binlog_checksum", "NONE").upper(),
        gtid_mode=var.get("gtid_mode", "").upper() if flavor == "mysql" else None,
        row_value_options=var.get("binlog_row_value_options", "").upper(),
        transaction_compression=_on(var.get("binlog_transaction_compression")),
        log_bin_compress=_on(var.get("log_bin_compress")),
        encryption=_on(var.get("binlog_encryption")) or _on(var.get("encrypt_binlog")),
        binlog_files=files,
        current=current,
        server=where,
    )


def check_source(
    facts: SourceFacts, *, start_file: str | None, start_gtid: str | None = None
) -> None:
    """Raise ``SourceError`` if the source's binlog cannot feed the applier.

    ``start_file`` (when given) must still be on the source: ``BinlogPurgedError`` if not.
    A binlog_row_metadata other than FULL is only a warning.
    """
    where = facts.server
    if facts.binlog_format != "ROW":
        raise SourceError(
            f"{where} has binlog_format={facts.binlog_format or '?'}: the applier needs row "
            f"events: set binlog_format=ROW (SET GLOBAL and in the server config), then "
            f"FLUSH BINARY LOGS and start from the new file"
        )
    if facts.row_image != "FULL":
        raise SourceError(
            f"{where} has binlog_row_image={facts.row_image or '?'}: the applier needs whole "
            f"rows: set binlog_row_image=FULL (SET GLOBAL and in the server config), then "
            f"FLUSH BINARY LOGS and start from the new file"
        )
    if "PARTIAL_JSON" in facts.row_value_options:
        raise SourceError(
            f"{where} has binlog_row_value_options={facts.row_value_options}: partial JSON updates "
            "(PARTIAL_UPDATE_ROWS_EVENT) carry only the change of a document, which the applier "
            "does not apply: SET GLOBAL binlog_row_value_options='' (and in the server config), "
            "then FLUSH BINARY LOGS and start from the new file"
        )
    if facts.log_bin_compress:
        raise SourceError(
            f"{where} has log_bin_compress=ON: the applier cannot read MariaDB's compressed binlog "
            "events: SET GLOBAL log_bin_compress=OFF (and in the server config), then FLUSH "
            "BINARY LOGS and start from the new file"
        )
    if facts.row_metadata != "FULL":
        have = (
            f"binlog_row_metadata={facts.row_metadata}"
            if facts.row_metadata
            else "no binlog_row_metadata"
        )
        log.warning(
            "%s has %s (not FULL): column names will come from the target's "
            "information_schema, so source and target tables must have the same columns "
            "in the same order; set binlog_row_metadata=FULL to avoid this",
            where,
            have,
        )
    if start_gtid and facts.flavor == "mysql" and facts.gtid_mode != "ON":
        raise SourceError(
            f"{where} has gtid_mode={facts.gtid_mode}: cannot start from GTID {start_gtid!r}: "
            f"set gtid_mode=ON on the source or start from a binlog file/position"
        )
    if start_file:
        _check_start_file(facts, start_file)


def _check_start_file(facts: SourceFacts, start_file: str) -> None:
    where = facts.server
    names = [name for name, _ in facts.binlog_files]
    if start_file in names:
        return
    if not names:
        raise BinlogPurgedError(
            f"binlog file {start_file} is not on {where}: it lists no binlog files; "
            f"restart from a full copy or a later position"
        )
    oldest, newest = names[0], names[-1]
    if file_base(start_file) != file_base(oldest):
        raise SourceError(
            f"binlog file {start_file} is not on {where}: its binlog files are named "
            f"{file_base(oldest)}.NNNNNN ({oldest} .. {newest}): fix [source] start_file"
        )
    if file_number(start_file) > file_number(newest):
        raise SourceError(
            f"binlog file {start_file} is not on {where} yet: newest is {newest}: "
            f"fix [source] start_file"
        )
    raise BinlogPurgedError(
        f"binlog file {start_file} is not on {where} (purged?): oldest is {oldest}; "
        f"restart from a full copy or a later position"
    )


def _check_source_grants(conn, where: str, flavor: str, version: tuple[int, int, int]) -> None:
    if flavor == "mariadb" and version >= (10, 5, 2):
        # 10.5.2 split SUPER; REPLICATION CLIENT became an alias of BINLOG MONITOR.
        needed = [("REPLICATION SLAVE",), ("BINLOG MONITOR", "REPLICATION CLIENT")]
    else:
        needed = [("REPLICATION SLAVE",), ("REPLICATION CLIENT", "SUPER")]
    grants = Grants.read(conn)
    missing = [alts[0] for alts in needed if not any(grants.has(p) for p in alts)]
    if missing:
        names = " and ".join(missing)
        plural = "s" if len(missing) > 1 else ""
        raise SourceError(
            f"{where}: user {grants.user} lacks the {names} privilege{plural} needed to read "
            f"the binlog: run GRANT {', '.join(a[0] for a in needed)} ON *.* TO {grants.user}"
        )


def _binlog_files(conn, where: str, flavor: str, version) -> tuple[tuple[str, int], ...]:
    try:
        rows = _query(conn, "SHOW BINARY LOGS")
    except MySQLdb.OperationalError as e:
        raise _source_query_error(e, where, flavor, version, "SHOW BINARY LOGS") from None
    return tuple((_text(r[0]), int(r[1])) for r in rows)


def _binlog_status(conn, where: str, flavor: str, version) -> tuple[str, int]:
    # MySQL 8.2 added SHOW BINARY LOG STATUS and 8.4 removed SHOW MASTER STATUS.
    sql = (
        "SHOW BINARY LOG STATUS"
        if flavor == "mysql" and version >= (8, 2, 0)
        else "SHOW MASTER STATUS"
    )
    try:
        rows = _query(conn, sql)
    except MySQLdb.OperationalError as e:
        raise _source_query_error(e, where, flavor, version, sql) from None
    if not rows:
        raise SourceError(
            f"{where}: {sql} returned nothing, binary logging looks disabled: start it with --log-bin"
        )
    return _text(rows[0][0]), int(rows[0][1])


def _source_query_error(e, where, flavor, version, sql) -> SourceError:
    code = e.args[0] if e.args else 0
    if code == codes.ER_NO_BINARY_LOGGING:
        return SourceError(f"{where} has binary logging disabled: start it with --log-bin")
    if code in codes.PRIVILEGE:
        grant = (
            "BINLOG MONITOR"
            if flavor == "mariadb" and version >= (10, 5, 2)
            else "REPLICATION CLIENT"
        )
        return SourceError(
            f"{where}: {sql} was refused ({e.args[1]}): GRANT {grant} ON *.* to the user"
        )
    return SourceError(f"{where}: {sql} failed ({code}: {e.args[1] if len(e.args) > 1 else e})")


# ---- target ------------------------------------------------------------------------------


def inspect_target(target: TargetConfig, *, check_replica: bool = True) -> None:
    """Raise unless the target is reachable, writable and can hold the checkpoint schema.

    ``ConnectError`` for an unreachable target or bad credentials, ``TargetError`` for
    read_only (without the privilege to bypass it), missing grants on the schema, or the
    target's own replica SQL thread running (it would apply the same changes).
    """
    where = f"target {target.describe()}"
    conn = connect(target, "target")
    try:
        flavor, version = flavor_and_version(conn)
        var = _variables(conn, "read_only", "super_read_only",
                         "show_gipk_in_create_table_and_information_schema")
        grants = Grants.read(conn)
        if var.get("show_gipk_in_create_table_and_information_schema", "ON").upper() in ("OFF", "0"):
            raise TargetError(
                f"{where} has show_gipk_in_create_table_and_information_schema=OFF: its "
                "information_schema hides generated invisible primary keys (my_row_id), which "
                "the source's binlog carries, so tables would not line up: SET GLOBAL "
                "show_gipk_in_create_table_and_information_schema=ON on the target"
            )
        if _on(var.get("super_read_only")):
            raise TargetError(
                f"{where} has super_read_only=ON: nobody can write: "
                f"SET GLOBAL super_read_only=OFF on the target"
            )
        if _on(var.get("read_only")):
            if flavor == "mariadb" and version >= (10, 5, 2):
                bypass: tuple[str, ...] = ("READ_ONLY ADMIN",)
                if version < (10, 11, 0):
                    bypass += ("SUPER",)  # MDEV-29596: SUPER no longer implies it in 10.11
            else:
                bypass = ("SUPER", "CONNECTION_ADMIN")
            if not any(grants.has(p) for p in bypass):
                raise TargetError(
                    f"{where} has read_only=ON and user {grants.user} lacks {bypass[0]}: "
                    f"SET GLOBAL read_only=OFF on the target or GRANT {bypass[0]} ON *.* TO {grants.user}"
                )
        schema = target.checkpoint_schema
        exists = bool(
            _query(
                conn, "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (schema,)
            )
        )
        needed = ("SELECT", "INSERT", "UPDATE", "DELETE", "CREATE")
        missing = [p for p in needed if not grants.has(p, db=schema)]
        if missing:
            what = "use" if exists else "create"
            raise TargetError(
                f"{where}: user {grants.user} cannot {what} the checkpoint schema {schema!r} "
                f"(lacks {', '.join(missing)}): GRANT {', '.join(needed)} ON `{schema}`.* TO "
                f"{grants.user}, or set [target] checkpoint_schema"
            )
        running = _running_sql_threads(conn, flavor, where) if check_replica else []
        if running:
            name = f" (connection {running[0]!r})" if running[0] else ""
            raise TargetError(
                f"{where}: its own replica SQL thread runs{name} and would apply the same "
                "changes: run `applier takeover` (or STOP SLAVE) first"
            )
    finally:
        conn.close()


def _running_sql_threads(conn, flavor: str, where: str) -> list[str]:
    try:
        return Replica(conn, flavor, where).running_sql_threads()
    except TargetLost:
        raise  # the target is gone: not a missing privilege
    except TargetError as e:  # no privilege to look: say so, the run goes on
        log.warning("%s; cannot check that the target's own SQL thread is stopped", e)
        return []


def check_tables_exist(target_conn, tables: Iterable[tuple[str, str]]) -> None:
    """Raise ``SchemaError`` naming every (db, table) that does not exist on the target."""
    wanted = list(dict.fromkeys(tables))
    if not wanted:
        return
    lower = int(_query(target_conn, "SELECT @@lower_case_table_names")[0][0] or 0) != 0
    schemas = sorted({db for db, _ in wanted})
    marks = ", ".join(["%s"] * len(schemas))
    rows = _query(
        target_conn,
        f"SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA IN ({marks})",
        tuple(schemas),
    )

    def norm(db: str, t: str) -> tuple[str, str]:
        return (db.lower(), t.lower()) if lower else (db, t)

    present = {norm(_text(db), _text(t)) for db, t in rows}
    missing = [f"{db}.{t}" for db, t in wanted if norm(db, t) not in present]
    if not missing:
        return
    if len(missing) == 1:
        raise SchemaError(
            f"table {missing[0]} is not on the target: create it (same columns as on the "
            f"source) or leave its database out of [apply] databases"
        )
    shown = ", ".join(missing[:10]) + (
        f" and {len(missing) - 10} more" if len(missing) > 10 else ""
    )
    raise SchemaError(
        f"{len(missing)} tables are not on the target: {shown}: create them (same columns as "
        f"on the source) or leave their databases out of [apply] databases"
    )


# ---- helpers -----------------------------------------------------------------------------


def _query(conn, sql: str, params: tuple | None = None) -> list[tuple]:
    cur = conn.cursor()
    try:
        cur.execute(sql, params)
        return list(cur.fetchall())
    finally:
        cur.close()


def _variables(conn, *names: str) -> dict[str, str]:
    marks = ", ".join(["%s"] * len(names))
    rows = _query(conn, f"SHOW GLOBAL VARIABLES WHERE Variable_name IN ({marks})", names)
    return {_text(k).lower(): _text(v) for k, v in rows}


def _on(value: str | None) -> bool:
    return (value or "").upper() in ("ON", "1")


def _address_of(server: ServerConfig, role: str) -> str:
    return f"{role} {server.socket or f'{server.host}:{server.port}'}"


def _product(flavor: str, version: tuple[int, int, int]) -> str:
    return f"{'MariaDB' if flavor == 'mariadb' else 'MySQL'} {'.'.join(map(str, version))}"

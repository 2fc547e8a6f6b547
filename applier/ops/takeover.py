"""`applier takeover` and `applier handback`: switch a replica between its native SQL
thread and the applier at one exact position, nothing lost, nothing applied twice.

takeover: the target is a native replica of the configured source. Its IO and SQL
threads are stopped (the SQL thread finishes the transaction it applies; both flavors
commit in source order, MySQL's parallel workers only with replica_preserve_commit_order,
so the executed position has no gaps there — with gaps on MySQL the GTID set is used),
its executed position (source binlog coordinates and GTIDs) becomes the applier's start
in the checkpoint table, and it is printed. A MariaDB replica by GTID whose gtid_slave_pos
is not the source's GTID position at its file position (set by hand to skip a
transaction, or domains left apart by parallel replication) is taken over at its
gtid_slave_pos alone: that is where it would continue.

handback: with no applier running, the target is first brought to one exact position
(if workers committed out of order before a crash, exactly the transactions in the
gaps are applied: `applier run --until-position <the highest committed>`), then the
native replica is pointed there (MariaDB: gtid_slave_pos from the source's
BINLOG_GTID_POS with MASTER_USE_GTID=slave_pos, or file/pos; MySQL: the applied GTIDs
added to gtid_executed with gtid_purged='+...' and SOURCE_AUTO_POSITION=1, or file/pos)
and started; the checkpoint table is marked as handed back, so a later `applier run`
refuses until the next takeover. It then waits (``replica.CONNECT_SECONDS``) until the
IO thread is connected to the source: one that cannot connect is an error naming its
``Last_IO_Error`` (exit 5); a rerun of handback checks again.

A target that was never a replica gets its connection from ``[source]``: host, port,
user, password (a statement parameter, never shown) and the TLS of ``ssl_mode``:
``disabled`` -> ``MASTER_SSL=0`` / ``SOURCE_SSL=0``; ``preferred`` -> TLS when the
source offers it (asked over a connection of our own); ``required`` -> ``*_SSL=1``;
``verify_ca`` -> and ``*_SSL_CA``; ``verify_identity`` -> and
``*_SSL_VERIFY_SERVER_CERT=1``; ``ssl_cert``/``ssl_key`` -> ``*_SSL_CERT``/``*_SSL_KEY``
(paths the target's server must be able to read: the same files on its host). On MySQL
without TLS, ``GET_SOURCE_PUBLIC_KEY=1``: caching_sha2_password (MySQL 9's only
password plugin) then exchanges the password RSA-encrypted.

Every driver error (a lost or refused connection to the target or the source) is one
line in the applier's families: ``TargetLost``/``Unreachable`` (exit 4: rerun once the
server is back; both commands are safe to rerun) or ``TargetError``/``SourceError``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from ..binlog.position import BinlogPosition, GtidPosition, MariadbGtidPos, file_base
from ..config import Config
from ..db.connect import connect, driver_errors, encrypted, flavor_and_version
from ..db.replica import Replica, same_server
from ..db.sql import text
from ..errors import ConfigError, TargetError
from ..pipeline import checkpoint
from ..pipeline.lock import CheckpointLock
from ..pipeline.relay import add_gtids
from ..pipeline.until import Until

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Position:
    file: str  # "" when only GTIDs say where
    pos: int
    gtid: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.pos}" if self.file else ""
        gtid = f"GTID {self.gtid}" if self.gtid else ""
        return " ".join(x for x in (where, f"({gtid})" if where and gtid else gtid) if x)


def takeover(cfg: Config, *, force: bool = False) -> Position:
    t = cfg.target
    where = f"target {t.describe()}"
    with CheckpointLock(t, "applier takeover") as lock, \
            driver_errors(t, "target", "taking over", "applier takeover"):
        conn = connect(t, "target", autocommit=True)
        try:
            flavor, _ = flavor_and_version(conn)
            replica = Replica(conn, flavor, where)
            st = replica.status()
            if st is None:
                raise ConfigError(
                    f"{where} is not a replica (SHOW {'SLAVE' if flavor == 'mariadb' else 'REPLICA'} "
                    "STATUS is empty): nothing to take over; start with [source] start_file/start_pos "
                    "or start_gtid instead"
                )
            if st.sql_errno:
                raise TargetError(
                    f"{where}: its SQL thread stopped on error {st.sql_errno} ({st.sql_error}): fix it "
                    "and let the native replica go on (START SLAVE) before taking over"
                )
            if not same_server(st.host, st.port, cfg.source):
                raise ConfigError(
                    f"{where} replicates from {st.host}:{st.port} but [source] is "
                    f"{cfg.source.describe()}: point [source] at the replica's source"
                )
            checkpoint.ensure_table(conn, t.checkpoint_schema)
            rec = checkpoint.load(conn, t.checkpoint_schema)
            if rec.exists and not rec.handed_back and not force:
                raise ConfigError(
                    f"checkpoint schema {t.checkpoint_schema!r} already holds a position "
                    f"({rec.start or rec.gtid}): the applier has taken over already; give --force "
                    "to replace it with the native replica's position"
                )
            relay = cfg.source.mode == "relay-log"  # the IO thread goes on filling the relay log
            st = replica.stop("SQL_THREAD" if relay else "")
            if st.sql_errno:
                raise TargetError(f"{where}: its SQL thread stopped on error {st.sql_errno} "
                                  f"({st.sql_error}) while stopping: fix it first")
            gtid = replica.gtid_position()
            position = _executed(conn, flavor, st.exec_file, st.exec_pos, gtid)
            if flavor == "mariadb" and st.auto_position and position.file and gtid:
                position = _gtid_replica(cfg, position)
            start = BinlogPosition(position.file, position.pos) if position.file else None
            lock.check()
            checkpoint.replace(conn, t.checkpoint_schema, start, position.gtid,
                               f"taken over at {_now()}")
        finally:
            conn.close()
    return position


def _executed(conn, flavor: str, file: str, pos: int, gtid: str) -> Position:
    """Where the stopped replica is. MySQL with GTIDs and parallel workers that may commit
    out of order: the executed GTID set (exact with gaps), no file position."""
    if flavor == "mysql" and gtid:
        cur = conn.cursor()
        cur.execute("SELECT @@GLOBAL.replica_parallel_workers, @@GLOBAL.replica_preserve_commit_order")
        workers, ordered = cur.fetchone()
        cur.close()
        if int(workers) > 1 and not int(ordered):
            return Position("", 0, gtid)
    if not file:
        raise TargetError("the replica reports no executed position (Relay_Master_Log_File is "
                          "empty): let it apply something first, or start from a position")
    return Position(file, pos, gtid)


def _gtid_replica(cfg: Config, position: Position) -> Position:
    """A MariaDB replica by GTID (MASTER_USE_GTID = slave_pos) continues after its
    gtid_slave_pos, not after its file position: the two differ when gtid_slave_pos was
    set by hand while it was stopped (to skip a transaction) or when parallel
    replication left its GTID domains at different points. Then the GTID position alone
    is where it is (the applier reads from it by GTID, every domain exactly)."""
    start = BinlogPosition(position.file, position.pos)
    with driver_errors(cfg.source, "source", f"reading BINLOG_GTID_POS at {start}", "applier takeover"):
        conn = connect(cfg.source, "source")
        try:
            cur = conn.cursor()
            cur.execute("SELECT BINLOG_GTID_POS(%s, %s)", (start.file, start.pos))
            value = cur.fetchone()[0]
        finally:
            conn.close()
    if value is None:  # purged, or not a position of this source's binlog: the file position
        return position
    at = MariadbGtidPos.parse(text(value))
    if at == MariadbGtidPos.parse(position.gtid):
        return position
    log.warning("the replica's gtid_slave_pos %s is not the GTID position at its executed file "
                "position %s (%s): taking over at the GTID position, which the replica "
                "(MASTER_USE_GTID = slave_pos) would continue from", position.gtid, start, at)
    return Position("", 0, position.gtid)


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


# -- handback --------------------------------------------------------------------------------


def handback(cfg: Config, *, use_gtid: bool | None = None) -> Position:
    """Hand the target back to its native replica; returns the position it starts at.
    ``use_gtid``: None follows the replica's own setting (MASTER_USE_GTID /
    SOURCE_AUTO_POSITION), else GTIDs (True) or file/pos (False)."""
    t = cfg.target
    where = f"target {t.describe()}"
    with CheckpointLock(t, "applier handback") as lock, \
            driver_errors(t, "target", "handing back", "applier handback"):
        conn = connect(t, "target", autocommit=True)
        try:
            return _handback(cfg, lock, conn, where, use_gtid)
        finally:
            conn.close()


def _handback(cfg: Config, lock: CheckpointLock, conn, where: str, use_gtid: bool | None) -> Position:
    from ..pipeline.coordinator import Coordinator

    t = cfg.target
    checkpoint.ensure_table(conn, t.checkpoint_schema)
    rec = checkpoint.load(conn, t.checkpoint_schema)
    if rec.handed_back:
        return _resume_handed_back(conn, t, rec, where)
    if not rec.exists or (rec.start is None and not rec.gtid):
        raise ConfigError(f"checkpoint schema {t.checkpoint_schema!r} holds no position: "
                          "there is nothing to hand back")
    if rec.done:
        # transactions committed out of order beyond the watermark: apply exactly the
        # ones in the gaps, to one exact position
        highest = BinlogPosition.from_ordinal(max(rec.done), file_base(rec.start.file if rec.start else "mysql-bin"))
        log.info("applying the transactions in gaps, up to %s", highest)
        run_cfg = cfg.with_overrides("apply", stop_at_end=False)
        Coordinator(run_cfg, Until(position=highest), locked=True).run()
        lock.check()
        rec = checkpoint.load(conn, t.checkpoint_schema)
        if rec.done:
            beyond = BinlogPosition.from_ordinal(max(rec.done), file_base(rec.start.file if rec.start else "mysql-bin"))
            raise TargetError(
                f"checkpoint schema {t.checkpoint_schema!r}: after applying the gaps up to {highest} "
                f"it still holds {len(rec.done)} transactions committed out of order, up to {beyond}, "
                f"beyond its position {rec.start or rec.gtid}: nothing was handed back; run "
                f"`applier run --until-position {beyond}`, then `applier handback` again")
    flavor, _ = flavor_and_version(conn)
    replica = Replica(conn, flavor, where)
    st = replica.status()
    if st is not None and (st.sql_running or st.io_running):
        replica.stop()
    gtid = use_gtid if use_gtid is not None else (st.auto_position if st is not None else False)
    lock.check()
    if flavor == "mariadb":
        position = _point_mariadb(cfg, replica, rec, configured=st is not None, use_gtid=gtid)
    else:
        position = _point_mysql(cfg, replica, rec, configured=st is not None, use_gtid=gtid)
    checkpoint.replace(conn, t.checkpoint_schema, rec.start, rec.gtid,
                       f"{checkpoint.HANDED_BACK} at {_now()} ({position})")
    replica.start(connected=True)
    return position


def _resume_handed_back(conn, t, rec, where: str) -> Position:
    """Handback ran to its end before, or was killed between marking the checkpoint handed
    back and START SLAVE (the replica is already pointed at the position): a rerun is
    idempotent. It starts a replica left stopped (or half stopped) without an error, does
    nothing when it runs, and refuses when it stopped on an error."""
    flavor, _ = flavor_and_version(conn)
    replica = Replica(conn, flavor, where)
    st = replica.status()
    said = f"checkpoint schema {t.checkpoint_schema!r}: already {rec.handed_back}"
    if st is None:
        raise ConfigError(f"{said}, but {where} is no longer a replica: "
                          "configure it with CHANGE MASTER/REPLICATION SOURCE")
    if st.sql_errno:
        raise ConfigError(f"{said}; the native replica stopped on error {st.sql_errno} "
                          f"({st.sql_error}): fix that, then START SLAVE/REPLICA")
    if st.sql_running and st.io_running:
        log.info("%s; the native replica runs: nothing to do", said)  # a rerun: done before
    elif st.sql_running and st.io_connecting:
        log.info("%s; the native replica runs, its IO thread is connecting", said)
        replica.wait_connected()
    else:
        if st.io_errno:
            log.info("%s; the IO thread stopped on error %s (%s): starting it again", said,
                     st.io_errno, st.io_error)
        else:
            log.info("%s; starting the native replica, which was left stopped", said)
        replica.start(connected=True)
    if rec.start is not None and not st.auto_position:
        return Position(rec.start.file, rec.start.pos, rec.gtid)
    return Position("", 0, rec.gtid)


def _source_clause(cfg: Config, mariadb: bool) -> tuple[str, tuple]:
    """The connection part of CHANGE MASTER/REPLICATION SOURCE for a target that was never
    a replica: the configured source with its TLS (see the module docstring; its password
    is passed as a parameter, never shown)."""
    s = cfg.source
    if s.socket:
        raise ConfigError("[source] socket: the native replica needs host/port of the source")
    word = "MASTER" if mariadb else "SOURCE"
    head = f"{word}_HOST = %s, {word}_PORT = %s, {word}_USER = %s, {word}_PASSWORD = %s, "
    params: tuple = (s.host, s.port, s.user, s.password)
    tls = s.ssl_mode != "disabled" and (s.ssl_mode != "preferred" or _source_offers_tls(cfg))
    head += f"{word}_SSL = {int(tls)}, "
    if tls:
        if s.ssl_mode in ("verify_ca", "verify_identity"):
            head += f"{word}_SSL_CA = %s, "
            params += (s.ssl_ca,)
        if s.ssl_cert:
            head += f"{word}_SSL_CERT = %s, {word}_SSL_KEY = %s, "
            params += (s.ssl_cert, s.ssl_key)
        head += f"{word}_SSL_VERIFY_SERVER_CERT = {int(s.ssl_mode == 'verify_identity')}, "
    elif not mariadb:
        head += "GET_SOURCE_PUBLIC_KEY = 1, "  # caching_sha2_password without TLS
    return head, params


def _source_offers_tls(cfg: Config) -> bool:
    """[source] ssl_mode = "preferred": does the source offer TLS (our own connection
    with the same settings comes out encrypted)?"""
    with driver_errors(cfg.source, "source", "asking whether it offers TLS", "applier handback"):
        conn = connect(cfg.source, "source")
        try:
            return encrypted(conn)
        finally:
            conn.close()


def _point_mariadb(cfg: Config, replica: Replica, rec, *, configured: bool, use_gtid: bool) -> Position:
    source = ("", ()) if configured else _source_clause(cfg, True)
    if rec.start is None or use_gtid:
        gtid = _source_gtid_pos(cfg, rec.start) if rec.start is not None else rec.gtid
        replica.point_at("", 0, gtid, use_gtid=True, source=source)
        return Position("", 0, gtid)
    replica.point_at(rec.start.file, rec.start.pos, "", use_gtid=False, source=source)
    return Position(rec.start.file, rec.start.pos, "")


def _source_gtid_pos(cfg: Config, start: BinlogPosition) -> str:
    """MariaDB's own GTID position at a binlog position of the source: every domain."""
    with driver_errors(cfg.source, "source", f"reading BINLOG_GTID_POS at {start}", "applier handback"):
        conn = connect(cfg.source, "source")
        try:
            cur = conn.cursor()
            cur.execute("SELECT BINLOG_GTID_POS(%s, %s)", (start.file, start.pos))
            value = cur.fetchone()[0]
        finally:
            conn.close()
    if value is None:
        raise TargetError(f"source {cfg.source.describe()} cannot tell the GTID position at {start} "
                          "(BINLOG_GTID_POS is NULL: purged?): use --file-position")
    return text(value)


def _point_mysql(cfg: Config, replica: Replica, rec, *, configured: bool, use_gtid: bool) -> Position:
    source = ("", ()) if configured else _source_clause(cfg, False)
    applied = GtidPosition(rec.gtid).mysql
    if rec.start is None or use_gtid:
        if applied is None:
            raise ConfigError("the checkpoint holds no GTIDs: hand back with --file-position")
        add_gtids(replica, applied)
        replica.point_at("", 0, str(applied), use_gtid=True, source=source)
        return Position("", 0, str(applied))
    replica.point_at(rec.start.file, rec.start.pos, "", use_gtid=False, source=source)
    return Position(rec.start.file, rec.start.pos, "")



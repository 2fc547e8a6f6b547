"""Throwaway local servers for tests, ``applier demo`` and benchmarks.

Why: the applier is only meaningful against a real ROW binlog, and Docker is not always
there. Two flavors with one interface (``localserver.LocalServer``):

* ``LocalMariadb`` (``flavor="mariadb"``, the default): the host's ``mariadbd``,
  everything under ``basedir`` (``mariadb.py``);
* ``LocalMysql`` (``flavor="mysql"``): Oracle MySQL 9.7 from a Debian sid chroot
  (``$MTS_MYSQL_CHROOT``, default ``/opt/mts-mysql-sid``, made by
  ``scripts/bootstrap.sh``), its files inside the chroot (``mysql.py``).

Each server: ``start()``/``stop()``/``kill()``, ``running``, ``port``, ``flavor``,
``server_config()``, ``connect()``, ``query()``, ``execute()``, ``binlog_position()``,
``gtid_position()``; the ``mts`` user has a random password that is never logged.
"""

from __future__ import annotations

from pathlib import Path

from . import mariadb, mysql
from .localserver import LocalServer, free_port
from .mariadb import INSTALL_HINT, LocalMariadb, find_mariadb_binaries
from .mysql import LocalMysql, find_mysql

__all__ = [
    "FLAVORS",
    "INSTALL_HINT",
    "LocalMariadb",
    "LocalMysql",
    "LocalServer",
    "find_mariadb_binaries",
    "find_mysql",
    "free_port",
    "make_source",
    "make_target",
    "source_options",
    "start_pair",
    "target_options",
]

FLAVORS: dict[str, type[LocalServer]] = {"mariadb": LocalMariadb, "mysql": LocalMysql}
_OPTIONS = {"mariadb": mariadb, "mysql": mysql}


def _flavor(flavor: str) -> str:
    if flavor not in FLAVORS:
        raise ValueError(f"unknown server flavor {flavor!r}: one of {', '.join(FLAVORS)}")
    return flavor


def source_options(flavor: str = "mariadb") -> dict[str, str]:
    """What the applier needs from a source: full ROW images with metadata, GTIDs."""
    return _OPTIONS[_flavor(flavor)].source_options()


def target_options(flavor: str = "mariadb") -> dict[str, str]:
    """A target needs no binlog; durability is relaxed because the data is throwaway."""
    return _OPTIONS[_flavor(flavor)].target_options()


def binlog_options(flavor: str = "mariadb") -> dict[str, str]:
    """A replica's binlog as production keeps it: ROW, synced at every commit, with the
    replicated changes (and, on MySQL, GTIDs as its source has them)."""
    return _OPTIONS[_flavor(flavor)].binlog_options()


def make_source(basedir: Path, name: str = "source", flavor: str = "mariadb") -> LocalServer:
    """An unstarted source (server_id 1, ROW binlog) under ``basedir``."""
    cls = FLAVORS[_flavor(flavor)]
    return cls(name, Path(basedir), free_port(), 1, True, source_options(flavor))


def make_target(basedir: Path, name: str = "target", flavor: str = "mariadb") -> LocalServer:
    """An unstarted target (server_id 2, no binlog) under ``basedir``."""
    cls = FLAVORS[_flavor(flavor)]
    return cls(name, Path(basedir), free_port(), 2, False, target_options(flavor))


def start_pair(basedir: Path, flavor: str = "mariadb") -> tuple[LocalServer, LocalServer]:
    """A started source (``basedir/source``) and target (``basedir/target``)."""
    source = make_source(Path(basedir) / "source", flavor=flavor)
    target = make_target(Path(basedir) / "target", flavor=flavor)
    source.start()
    try:
        target.start()
    except BaseException:
        source.stop()
        raise
    return source, target

"""TOML config -> frozen dataclasses. Only this module and ``cli`` know TOML or click.

Every key has a documented default (see ``examples/applier.toml``); unknown keys and
bad values raise one ``ConfigError`` line naming the key, in the form
``[section] key = value: why`` (``(from APPLIER_SECTION_KEY)`` after the value when the
environment set it).

Where a value comes from, the first that sets it wins:

1. flags of the command line (``applier run --workers 8``): ``Config.with_overrides``;
2. environment variables ``APPLIER_<SECTION>_<KEY>`` (``APPLIER_APPLY_WORKERS=8``,
   ``APPLIER_TARGET_PASSWORD=...``): ``load``; the text is read with the key's type
   (integers, numbers, ``true``/``false``/``1``/``0``, comma-separated lists); an
   ``APPLIER_*`` variable that names no key is an error naming the variable
   (``APPLIER_NO_NATIVE``, a switch of the build, is the one exception);
3. the TOML file;
4. the defaults (the dataclasses below).

Passwords. A server section (``[source]``, ``[target]``) takes at most one of
``password`` (the password itself), ``password_env`` (the name of an environment
variable holding it) and ``password_file`` (a file holding it, UTF-8; one trailing
newline is stripped; a relative path is from the working directory). The three are one
setting across the layers above: a layer that sets any of them replaces the choice of
the layers below (``APPLIER_SOURCE_PASSWORD`` wins over a file's ``password_file``); two
of them in one layer are an error. ``password_env`` and ``password_file`` are resolved
when the config is built: the resulting ``ServerConfig`` holds the password and empty
``password_env``/``password_file``. A variable that is unset or empty, or a file that is
unreadable or empty, is an error naming the key. A password file readable by its group
or by others is used, with a logged warning (not refused: ``root:applier 0640`` is a
legitimate setup the applier cannot judge; ``0600`` owned by the user the applier runs
as silences it).

The start position is one setting the same way: ``--start-gtid`` replaces a file's
``start_file``/``start_pos``; ``--start-file`` a file's ``start_gtid`` and ``start_pos``
(position 4 unless ``--start-pos`` is given too); ``start_pos`` alone keeps the lower
layer's ``start_file``.

The value of a key whose name contains ``password`` never appears in an error, a log
line or a repr (not even the variable name or the path: a password pasted into
``password_env`` by mistake must not be printed either).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import ssl
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError

log = logging.getLogger(__name__)

POLICIES = ("writeset", "table", "database", "serial")
SOURCE_MODES = ("dump", "relay-log")
# TLS to a server, as the MySQL client's --ssl-mode (db/connect.py maps them onto the drivers)
SSL_MODES = ("disabled", "preferred", "required", "verify_ca", "verify_identity")
SSL_FILE_KEYS = ("ssl_ca", "ssl_cert", "ssl_key")
DEFAULT_IGNORED_DATABASES = ("mysql", "information_schema", "performance_schema", "sys")
SYSTEM_SCHEMAS = DEFAULT_IGNORED_DATABASES

ENV_PREFIX = "APPLIER_"
# APPLIER_* variables that are not config overrides (setup.py: build without native/).
ENV_NOT_OVERRIDES = frozenset({"APPLIER_NO_NATIVE"})
PASSWORD_KEYS = ("password", "password_env", "password_file")
START_KEYS = ("start_file", "start_pos", "start_gtid")

MAX_WORKERS = 256
MAX_QUEUE_SIZE = 10_000  # messages per worker: more only costs memory
MAX_BATCH_TXNS = 100_000  # transactions per target commit: more holds locks and undo too long
MAX_RETRIES = 1_000
MAX_RETRY_WAIT_SECONDS = 3600.0  # the longest single wait of the retry backoff
MAX_RECONNECT_ATTEMPTS = 1_000  # each waits up to 30 s: beyond, let a service manager restart
MIN_HEARTBEAT_SECONDS = 0.001  # the servers' heartbeat resolution
MAX_HEARTBEAT_SECONDS = 4_294_967.0  # the servers' limit (MASTER_HEARTBEAT_PERIOD)
MAX_BINLOG_POS = 2**32 - 1  # COM_BINLOG_DUMP carries a 32-bit position
MAX_NAME = 64  # identifier length (database names)
MAX_PASSWORD_FILE_BYTES = 65_536

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TRUE, _FALSE = ("true", "1"), ("false", "0")


def is_secret(key: str) -> bool:
    """Keys whose values are never shown: every key whose name contains ``password``."""
    return "password" in key


@dataclass(frozen=True)
class ServerConfig:
    """How to reach one server. The password never appears in repr or logs; after
    ``from_dict``/``load`` it is resolved (``password_env``/``password_file`` empty)."""

    host: str = "127.0.0.1"
    port: int = 3306
    user: str = "root"
    password: str = field(default="", repr=False)
    socket: str = ""
    password_env: str = field(default="", repr=False)  # name of an environment variable
    password_file: str = field(default="", repr=False)  # path of a file holding the password
    # TLS over TCP (a unix socket never uses it): SSL_MODES, like the MySQL client's
    # --ssl-mode; verify_ca/verify_identity need ssl_ca; a client certificate needs its key
    ssl_mode: str = "preferred"
    ssl_ca: str = ""  # PEM file: the CA certificate that signed the server's certificate
    ssl_cert: str = ""  # PEM file: a client certificate (with ssl_key)
    ssl_key: str = ""  # PEM file: the client certificate's private key (not encrypted)

    def describe(self) -> str:
        return f"{self.user}@{self.socket or f'{self.host}:{self.port}'}"


@dataclass(frozen=True)
class SourceConfig(ServerConfig):
    """The source we replicate from, as a replica with ``server_id``."""

    server_id: int = 4242
    flavor: str = "auto"  # auto | mariadb | mysql
    start_file: str = ""  # binlog file to start from when there is no checkpoint
    start_pos: int = 4
    start_gtid: str = ""  # GTID position to start from (MariaDB d-s-n,..., MySQL uuid:1-n)
    heartbeat_seconds: float = 5.0
    reconnect_attempts: int = 10
    reconnect_backoff_seconds: float = 0.5
    # "dump": read the source's binlog over a replication connection; "relay-log": the
    # target is a native replica whose IO thread runs: apply what it writes to its relay log
    mode: str = "dump"
    relay_log_index: str = ""  # relay-log mode: the index file (default: the target's @@relay_log_index)
    relay_log_purge_bytes: int = 256 << 20  # relay-log mode: applied relay logs kept at most this big


@dataclass(frozen=True)
class TargetConfig(ServerConfig):
    """The server we apply to."""

    port: int = 3307
    checkpoint_schema: str = "mts_applier"
    reconnect_attempts: int = 10  # after a lost target connection: reconnect, resume from the checkpoint
    reconnect_backoff_seconds: float = 0.5


@dataclass(frozen=True)
class MetricsConfig:
    """Prometheus metrics of `applier run` / `replay` (``ops/exporter.py``)."""

    listen: str = ""  # "127.0.0.1:9104" to serve /metrics there; "" (the default): off


@dataclass(frozen=True)
class ApplyConfig:
    """Parallelism and batching knobs."""

    workers: int = 4
    policy: str = "writeset"
    queue_size: int = 64  # messages (up to 16 transactions each) per worker queue: backpressure
    batch_txns: int = 1000  # whole source transactions per target commit, at most (+ one queue message)
    big_txn_rows: int = 10_000  # above this a transaction is a barrier, streamed
    preserve_commit_order: bool = False
    retries: int = 10  # deadlock / lock-wait retries before stopping
    retry_backoff_seconds: float = 0.05
    databases: tuple[str, ...] = ()  # replicate only these (empty = all but ignored)
    ignore_databases: tuple[str, ...] = DEFAULT_IGNORED_DATABASES
    stop_at_end: bool = False  # exit when the source has no more events (catch-up mode)
    native_scan: bool = True  # read common transactions with the Cython scanner when it is built
    verify_before_image: bool = False  # updates/deletes must match the whole before image (drift detector)
    # new work goes to as many of the workers as commit fastest, measured (pipeline/width.py);
    # false: always to all of them
    adapt_workers: bool = True
    # replication filters (pipeline/filters.py): db.table LIKE patterns, as MySQL's
    # replicate-(wild-)do-table / ignore-table, and "from->to" as replicate-rewrite-db
    do_tables: tuple[str, ...] = ()
    ignore_tables: tuple[str, ...] = ()
    rewrite_databases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Config:
    source: SourceConfig = field(default_factory=SourceConfig)
    target: TargetConfig = field(default_factory=TargetConfig)
    apply: ApplyConfig = field(default_factory=ApplyConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)

    def with_overrides(self, section: str, **values: Any) -> Config:
        """A copy with some keys of one section replaced (used by CLI flags: they win
        over the environment and the file). ``None`` values are ignored."""
        values = {k: v for k, v in values.items() if v is not None}
        if not values:
            return self
        merged = _layer(_asdict(getattr(self, section)), values)
        built = _build(type(getattr(self, section)), merged, section, {}, os.environ)
        cfg = replace(self, **{section: built})
        _validate_config(cfg)
        return cfg


# ---- building and checking one section ---------------------------------------------------------


def _asdict(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def _label(section: str, key: str, value: Any, origins: Mapping[str, str]) -> str:
    """``[section] key = value`` (no value for secrets), and where it came from."""
    if isinstance(value, tuple):
        value = list(value)  # as TOML writes it
    text = f"[{section}] {key}" if is_secret(key) else f"[{section}] {key} = {value!r}"
    origin = origins.get(key)
    return f"{text} (from {origin})" if origin else text


def _num(x: float) -> str:
    return str(int(x)) if x == int(x) else repr(x)


def _error(section: str, key: str, value: Any, origins: Mapping[str, str], why: str) -> ConfigError:
    return ConfigError(f"{_label(section, key, value, origins)}: {why}")


def _build(cls: type, data: dict[str, Any], section: str, origins: Mapping[str, str],
           environ: Mapping[str, str]) -> Any:
    known = {f.name: f for f in fields(cls)}
    for key in data:
        if key not in known:
            raise ConfigError(
                f"unknown config key [{section}] {key!r}; known keys: {', '.join(sorted(known))}"
            )
    values: dict[str, Any] = {}
    for key, value in data.items():
        default = known[key].default
        if default is dataclasses.MISSING:  # pragma: no cover - all fields have defaults
            default = known[key].default_factory()  # type: ignore[misc]
        values[key] = _coerce(section, key, value, default, origins)
    if issubclass(cls, ServerConfig):
        _resolve_password(section, values, origins, environ)
        _normalize_tls(values)
    obj = cls(**values)
    _validate(section, obj, origins)
    return obj


def _coerce(section: str, key: str, value: Any, default: Any, origins: Mapping[str, str]) -> Any:
    def bad(why: str) -> ConfigError:
        return _error(section, key, value, origins, why)

    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad("must be true or false")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("must be an integer")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad("must be a number")
        if not math.isfinite(value):
            raise bad("must be a finite number")
        return float(value)
    if isinstance(default, tuple):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise bad("must be a list of names")
        if any("\x00" in v for v in value):
            raise bad("names must not contain a NUL character")
        return tuple(value)
    if not isinstance(value, str):
        raise bad("must be a string")
    if "\x00" in value:
        raise bad("must not contain a NUL character")
    return value


def _resolve_password(section: str, values: dict[str, Any], origins: Mapping[str, str],
                      environ: Mapping[str, str]) -> None:
    """Replace ``password_env``/``password_file`` by the password they lead to (in place)."""
    chosen = [k for k in PASSWORD_KEYS if values.get(k)]
    if len(chosen) > 1:
        raise ConfigError(
            f"[{section}] {' and '.join(chosen)} are {'both' if len(chosen) == 2 else 'all'} set: "
            f"set only one of "
            f"{', '.join(PASSWORD_KEYS)}"
        )
    secret_source = values.get(chosen[0]) if chosen else ""
    values["password_env"] = values["password_file"] = ""
    if chosen == ["password_env"]:
        values["password"] = _password_from_env(section, origins, secret_source, environ)
    elif chosen == ["password_file"]:
        values["password"] = _password_from_file(section, origins, secret_source)


def _password_from_env(section: str, origins: Mapping[str, str], name: str,
                       environ: Mapping[str, str]) -> str:
    def bad(why: str) -> ConfigError:
        return _error(section, "password_env", None, origins, why)

    if not _ENV_NAME.fullmatch(name):
        raise bad("must be the name of an environment variable (letters, digits and _), "
                  "not the password itself")
    secret = environ.get(name)
    if secret is None:
        raise bad("the environment variable it names is not set")
    if not secret:
        raise bad("the environment variable it names is empty (to use no password, "
                  "set none of password, password_env, password_file)")
    return secret


def _password_from_file(section: str, origins: Mapping[str, str], path_text: str) -> str:
    def bad(why: str) -> ConfigError:
        return _error(section, "password_file", None, origins, why)

    path = Path(path_text).expanduser()
    try:
        with open(path, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            if not stat.S_ISREG(mode):
                raise bad("the path it names is not a regular file")
            data = f.read(MAX_PASSWORD_FILE_BYTES + 1)
    except OSError as e:
        raise bad(f"cannot read the file it names: {e.strerror or type(e).__name__}") from None
    if len(data) > MAX_PASSWORD_FILE_BYTES:
        raise bad(f"the file it names is larger than {MAX_PASSWORD_FILE_BYTES} bytes: not a password file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise bad("the file it names is not UTF-8 text") from None
    if text.endswith("\n"):  # one trailing newline (LF or CRLF), as editors and echo leave it
        text = text[:-2] if text.endswith("\r\n") else text[:-1]
    if not text:
        raise bad("the file it names is empty (to use no password, set none of password, "
                  "password_env, password_file)")
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning(
            "%s: the file is readable by %s (mode %04o): chmod 600 it, owned by the user "
            "the applier runs as", _label(section, "password_file", None, origins),
            "group and others" if mode & stat.S_IRGRP and mode & stat.S_IROTH
            else "its group" if mode & stat.S_IRGRP else "others",
            stat.S_IMODE(mode),
        )
    return text


def _normalize_tls(values: dict[str, Any]) -> None:
    """``ssl_mode`` in lower case (``REQUIRED`` as the MySQL client writes it), ``~`` in
    the TLS file paths expanded (the drivers do not)."""
    if isinstance(values.get("ssl_mode"), str):
        values["ssl_mode"] = values["ssl_mode"].strip().lower()
    for key in SSL_FILE_KEYS:
        if isinstance(values.get(key), str) and values[key].startswith("~"):
            values[key] = str(Path(values[key]).expanduser())


def _validate_tls(section: str, obj: ServerConfig, origins: Mapping[str, str]) -> None:
    """The TLS keys of a server section: a known mode, files that exist, are readable and
    hold what they should (PEM), a client certificate with its matching key, and a CA
    for the modes that verify the server's certificate."""
    def bad(key: str, why: str) -> ConfigError:
        return _error(section, key, getattr(obj, key), origins, why)

    if obj.ssl_mode not in SSL_MODES:
        raise bad("ssl_mode", f"must be one of {', '.join(SSL_MODES)} (as the MySQL client's --ssl-mode)")
    if obj.ssl_cert and not obj.ssl_key:
        raise bad("ssl_key", "is empty but ssl_cert is set: a client certificate needs its private key")
    if obj.ssl_key and not obj.ssl_cert:
        raise bad("ssl_cert", "is empty but ssl_key is set: a private key needs its client certificate")
    if obj.ssl_mode in ("verify_ca", "verify_identity") and not obj.ssl_ca:
        raise bad("ssl_ca", f"is empty but ssl_mode = {obj.ssl_mode!r} verifies the server's "
                  "certificate: set it to the CA certificate (PEM) that signed it")
    if obj.ssl_ca and obj.ssl_mode in ("preferred", "required"):
        raise bad("ssl_ca", f"is only used to verify the server's certificate, which ssl_mode = "
                  f"{obj.ssl_mode!r} does not do: set ssl_mode = \"verify_identity\" (or "
                  "\"verify_ca\": the CA only, not the host name), or remove ssl_ca")
    texts = {}
    for key in SSL_FILE_KEYS:
        path = getattr(obj, key)
        if not path:
            continue
        try:
            with open(path, "rb") as f:
                if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                    raise bad(key, "is not a regular file")
                texts[key] = f.read(1 << 20)
        except OSError as e:
            raise bad(key, f"cannot read the file: {e.strerror or type(e).__name__}") from None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if "ssl_ca" in texts:
        if b"-----BEGIN CERTIFICATE-----" not in texts["ssl_ca"]:
            raise bad("ssl_ca", "holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
        try:
            ctx.load_verify_locations(cafile=obj.ssl_ca)
        except (ssl.SSLError, OSError) as e:
            raise bad("ssl_ca", f"is not a usable CA certificate ({_tls_reason(e)})") from None
    if "ssl_cert" in texts:
        if b"-----BEGIN CERTIFICATE-----" not in texts["ssl_cert"]:
            raise bad("ssl_cert", "holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
        if b"PRIVATE KEY-----" not in texts["ssl_key"]:
            raise bad("ssl_key", "holds no PEM private key (-----BEGIN ... PRIVATE KEY-----)")
        if b"ENCRYPTED" in texts["ssl_key"]:
            raise bad("ssl_key", "is encrypted: the applier cannot ask for its passphrase; "
                      "store the key unencrypted, readable only by the applier's user")
        try:
            ctx.load_cert_chain(obj.ssl_cert, obj.ssl_key, password=lambda: b"")
        except (ssl.SSLError, OSError) as e:
            raise bad("ssl_key", f"cannot be used with ssl_cert ({_tls_reason(e)}): the key "
                      "must be the unencrypted private key of that certificate") from None


def _tls_reason(e: Exception) -> str:
    return getattr(e, "reason", None) or getattr(e, "strerror", None) or type(e).__name__


def _validate(section: str, obj: Any, origins: Mapping[str, str]) -> None:
    def bad(key: str, why: str) -> ConfigError:
        return _error(section, key, getattr(obj, key), origins, why)

    def at_least(key: str, low: float) -> None:
        if getattr(obj, key) < low:
            raise bad(key, f"must be at least {_num(low)}")

    def between(key: str, low: float, high: float) -> None:
        if not low <= getattr(obj, key) <= high:
            raise bad(key, f"must be between {_num(low)} and {_num(high)}")

    if isinstance(obj, ServerConfig):
        if not obj.socket and not obj.host.strip():
            raise bad("host", "must not be empty (or set socket)")
        if obj.host != obj.host.strip():
            raise bad("host", "must not start or end with spaces")
        if not 0 < obj.port < 65536:
            raise bad("port", "must be between 1 and 65535")
        if not obj.user:
            raise bad("user", "must not be empty: the account to log in as")
        at_least("reconnect_attempts", 0)
        if obj.reconnect_attempts > MAX_RECONNECT_ATTEMPTS:
            raise bad("reconnect_attempts", f"must be at most {MAX_RECONNECT_ATTEMPTS} (each "
                      "waits up to 30 s; beyond that let the service manager restart the applier)")
        at_least("reconnect_backoff_seconds", 0)
        _validate_tls(section, obj, origins)
    if isinstance(obj, SourceConfig):
        if obj.flavor not in ("auto", "mariadb", "mysql"):
            raise bad("flavor", "must be auto, mariadb or mysql")
        if obj.mode not in SOURCE_MODES:
            raise bad("mode", f"must be one of {', '.join(SOURCE_MODES)}")
        if obj.relay_log_purge_bytes < 1 << 20:
            raise bad("relay_log_purge_bytes", "must be at least 1048576 (1 MiB)")
        if not 0 < obj.server_id < 2**32:
            raise bad("server_id", "must be a positive 32-bit integer, unique among replicas")
        if "/" in obj.start_file or obj.start_file != obj.start_file.strip():
            raise bad("start_file", "must be a binlog file name as SHOW BINARY LOGS lists it "
                      "(no directory, no surrounding spaces)")
        if obj.start_pos < 4:
            raise bad("start_pos", "binlog positions start at 4")
        if obj.start_pos > MAX_BINLOG_POS:
            raise bad("start_pos", f"must be at most {MAX_BINLOG_POS} (a 32-bit binlog position)")
        if obj.start_pos != 4 and not obj.start_file:
            raise bad("start_pos", "start_file is empty: a position needs its binlog file")
        if obj.start_file and obj.start_gtid.strip():
            raise bad("start_gtid", f"start_file = {obj.start_file!r} is set too: start from "
                      "a file position or from a GTID position, not both")
        if not MIN_HEARTBEAT_SECONDS <= obj.heartbeat_seconds <= MAX_HEARTBEAT_SECONDS:
            raise bad("heartbeat_seconds", f"must be between {_num(MIN_HEARTBEAT_SECONDS)} and "
                      f"{_num(MAX_HEARTBEAT_SECONDS)} (a silent source is only noticed by it)")
    if isinstance(obj, TargetConfig):
        schema = obj.checkpoint_schema
        if not _IDENTIFIER.fullmatch(schema) or len(schema) > MAX_NAME:
            raise bad("checkpoint_schema", "must be a plain identifier: ASCII letters, digits "
                      f"and _, starting with a letter or _, at most {MAX_NAME} characters")
        if schema.lower() in SYSTEM_SCHEMAS:
            raise bad("checkpoint_schema", "is a system schema: name a schema of its own")
    if isinstance(obj, ApplyConfig):
        if obj.policy not in POLICIES:
            raise bad("policy", f"must be one of {', '.join(POLICIES)}")
        for key in ("workers", "queue_size", "batch_txns", "big_txn_rows"):
            at_least(key, 1)
        if obj.workers > MAX_WORKERS:
            raise bad("workers", f"must be at most {MAX_WORKERS}")
        if obj.queue_size > MAX_QUEUE_SIZE:
            raise bad("queue_size", f"must be at most {MAX_QUEUE_SIZE} (messages of up to 16 "
                      "transactions per worker; more only costs memory)")
        if obj.batch_txns > MAX_BATCH_TXNS:
            raise bad("batch_txns", f"must be at most {MAX_BATCH_TXNS} (one target transaction "
                      "that large holds its locks and undo too long)")
        between("retries", 0, MAX_RETRIES)
        at_least("retry_backoff_seconds", 0)
        if obj.retries and obj.retry_backoff_seconds * 2.0 ** (obj.retries - 1) > MAX_RETRY_WAIT_SECONDS:
            raise bad("retries", f"with retry_backoff_seconds = {obj.retry_backoff_seconds:g} the "
                      f"last retry would wait {obj.retry_backoff_seconds * 2.0 ** (obj.retries - 1):.3g} s "
                      f"(the wait doubles per retry); at most {MAX_RETRY_WAIT_SECONDS:g} s: "
                      "lower retries or retry_backoff_seconds")
        for key in ("databases", "ignore_databases"):
            for name in getattr(obj, key):
                if not name.strip() or name != name.strip() or len(name) > MAX_NAME:
                    raise bad(key, f"{name!r} is not a database name (not empty, no surrounding "
                              f"spaces, at most {MAX_NAME} characters)")
        both = sorted(set(obj.databases) & set(obj.ignore_databases))
        if both:
            raise bad("databases", f"{', '.join(map(repr, both))} also in ignore_databases: a database "
                      "is either replicated or ignored")
        _validate_filters(obj, bad)
    if isinstance(obj, MetricsConfig) and obj.listen:
        host, sep, port = obj.listen.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise bad("listen", 'must be "host:port", e.g. "127.0.0.1:9104" (or "" for no metrics)')


def _validate_filters(obj: ApplyConfig, bad: Any) -> None:
    """``do_tables``, ``ignore_tables`` and ``rewrite_databases`` (their syntax lives with
    the rules, in pipeline/filters.py)."""
    from .pipeline.filters import parse_rewrite, parse_table_pattern

    rewrites: dict[str, str] = {}
    for entry in obj.rewrite_databases:
        try:
            src, dst = parse_rewrite(entry)
        except ValueError as e:
            raise bad("rewrite_databases", f"{entry!r} {e}") from None
        if src in rewrites:
            raise bad("rewrite_databases", f"rewrites {src!r} twice (into {rewrites[src]!r} and {dst!r})")
        rewrites[src] = dst
    for src, dst in rewrites.items():
        if src in obj.ignore_databases and src not in rewrites.values():
            raise bad("rewrite_databases", f"rewrites {src!r}, which ignore_databases lists: filters see "
                      f"the rewritten name {dst!r}, so that entry would not leave {src!r} out")
        if dst in obj.ignore_databases:
            raise bad("rewrite_databases", f"rewrites {src!r} into {dst!r}, which ignore_databases lists: "
                      "filters see the rewritten name, so nothing of it would be applied")
        if obj.databases and dst not in obj.databases:
            raise bad("rewrite_databases", f"rewrites {src!r} into {dst!r}, which databases does not list: "
                      f"filters see the rewritten name, so nothing of {src!r} would be applied (list {dst!r})")
    patterns: dict[str, dict[str, Any]] = {}
    for key in ("do_tables", "ignore_tables"):
        for entry in getattr(obj, key):
            try:
                pattern = parse_table_pattern(entry)
            except ValueError as e:
                raise bad(key, f"{entry!r} {e}") from None
            db = pattern.db_literal
            if db is not None and db in rewrites and db not in rewrites.values():
                raise bad(key, f"{entry!r} names database {db!r}, which rewrite_databases renames to "
                          f"{rewrites[db]!r}: table rules see the rewritten name")
            if key == "do_tables" and db is not None and (
                    db in obj.ignore_databases or (obj.databases and db not in obj.databases)):
                raise bad(key, f"{entry!r} names database {db!r}, which "
                          f"{'ignore_databases lists' if db in obj.ignore_databases else 'databases does not list'}"
                          ": database rules come first, so it would never match")
            patterns.setdefault(key, {})[entry] = pattern
    both = sorted(set(patterns.get("do_tables", ())) & set(patterns.get("ignore_tables", ())))
    if both:
        raise bad("ignore_tables", f"{', '.join(map(repr, both))} also in do_tables: a table is either "
                  "replicated or ignored")


def _validate_config(cfg: Config) -> None:
    """Checks across sections."""
    schema = cfg.target.checkpoint_schema
    if schema in cfg.apply.databases:
        raise ConfigError(
            f"[apply] databases = {list(cfg.apply.databases)!r}: lists {schema!r}, the "
            "[target] checkpoint_schema, which is never replicated: rename one of them"
        )
    for entry in cfg.apply.rewrite_databases:
        if schema in (part.strip() for part in entry.split("->")):
            raise _error("apply", "rewrite_databases", cfg.apply.rewrite_databases, {},
                         f"{entry!r} names {schema!r}, the [target] checkpoint_schema, which is never "
                         "replicated: rename one of them")


# ---- the environment ---------------------------------------------------------------------------


def environment_overrides(environ: Mapping[str, str]) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, str]]]:
    """``APPLIER_<SECTION>_<KEY>`` variables as ``({section: {key: value}}, {section: {key:
    variable}})``, each value read with its key's type (what does not parse stays text, so
    that the key's check names it). A variable that names no key is a ``ConfigError``."""
    values: dict[str, dict[str, Any]] = {}
    origins: dict[str, dict[str, str]] = {}
    for var in sorted(environ):
        if not var.startswith(ENV_PREFIX) or var in ENV_NOT_OVERRIDES:
            continue
        section, _, key = var[len(ENV_PREFIX):].lower().partition("_")
        cls = _SECTIONS.get(section)
        if cls is None:
            raise ConfigError(
                f"environment variable {var}: no config section {section!r}; an override is "
                f"APPLIER_<SECTION>_<KEY> with SECTION one of {', '.join(s.upper() for s in _SECTIONS)}"
            )
        known = {f.name: f for f in fields(cls)}
        if key not in known:
            raise ConfigError(
                f"environment variable {var}: no key {key!r} in [{section}]; known keys: "
                f"{', '.join(sorted(known))}"
            )
        f = known[key]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        values.setdefault(section, {})[key] = _from_text(environ[var], default)
        origins.setdefault(section, {})[key] = var
    return values, origins


def _from_text(text: str, default: Any) -> Any:
    """An environment variable's text as a value of the type of ``default``."""
    word = text.strip()
    if isinstance(default, bool):
        lowered = word.lower()
        return True if lowered in _TRUE else False if lowered in _FALSE else text
    if isinstance(default, int):
        try:
            return int(word)
        except ValueError:
            return text
    if isinstance(default, float):
        try:
            return float(word)
        except ValueError:
            return text
    if isinstance(default, tuple):
        return [v.strip() for v in text.split(",") if v.strip()]
    return text


def _merge(data: dict[str, Any], overrides: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``data`` with the sections' keys replaced by ``overrides`` (the three password keys
    are one setting: an override of any of them drops the others)."""
    merged = dict(data)
    for section, values in overrides.items():
        base = merged.get(section, {})
        if not isinstance(base, dict):
            raise ConfigError(f"[{section}] must be a table")
        merged[section] = _layer(base, values)
    return merged


def _layer(lower: dict[str, Any], higher: dict[str, Any]) -> dict[str, Any]:
    """One section's keys of a higher layer over a lower one. Two settings span several
    keys, and a higher layer's choice replaces the lower one's whole: the password (any of
    ``PASSWORD_KEYS``) and the start position (``start_file`` or ``start_gtid``: the
    lower layer's ``start_file``/``start_pos``/``start_gtid`` go; ``start_pos`` alone
    only moves the position within the lower layer's ``start_file``)."""
    drop: set[str] = set()
    if any(k in PASSWORD_KEYS for k in higher):
        drop.update(PASSWORD_KEYS)
    if "start_file" in higher or "start_gtid" in higher:
        drop.update(START_KEYS)
    return {**{k: v for k, v in lower.items() if k not in drop}, **higher}


# ---- entry points ------------------------------------------------------------------------------

_SECTIONS = {"source": SourceConfig, "target": TargetConfig, "apply": ApplyConfig,
             "metrics": MetricsConfig}


def from_dict(data: dict[str, Any], environ: Mapping[str, str] | None = None,
              origins: Mapping[str, Mapping[str, str]] | None = None) -> Config:
    """A checked ``Config`` from parsed TOML. ``environ`` (default ``os.environ``) is where
    ``password_env`` names are looked up; it applies no ``APPLIER_*`` overrides (``load``
    does). ``origins``: {section: {key: what set it}}, for messages."""
    environ = os.environ if environ is None else environ
    origins = origins or {}
    for key in data:
        if key not in _SECTIONS:
            raise ConfigError(f"unknown config section [{key}]; known: {', '.join(_SECTIONS)}")
    built = {}
    for name, cls in _SECTIONS.items():
        section = data.get(name, {})
        if not isinstance(section, dict):
            raise ConfigError(f"[{name}] must be a table")
        built[name] = _build(cls, section, name, origins.get(name, {}), environ)
    cfg = Config(**built)
    _validate_config(cfg)
    return cfg


def load(path: str | Path | None, environ: Mapping[str, str] | None = None) -> Config:
    """Read a TOML file (``None``: no file, the defaults) and apply the ``APPLIER_*``
    overrides of ``environ`` (default ``os.environ``) over it."""
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {p} not found") from None
        except UnicodeDecodeError:
            raise ConfigError(f"config file {p} is not UTF-8 text") from None
        except OSError as e:
            raise ConfigError(f"config file {p} cannot be read: {e.strerror or type(e).__name__}") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {p} is not valid TOML: {e}") from None
    overrides, origins = environment_overrides(environ)
    return from_dict(_merge(data, overrides), environ, origins)

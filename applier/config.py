"""TOML config -> frozen dataclasses. Only this module and ``cli`` know TOML or click.

Every key has a documented default (see ``examples/applier.toml``); unknown keys and
bad values raise ``ConfigError`` naming the key.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError

POLICIES = ("writeset", "table", "database", "serial")
DEFAULT_IGNORED_DATABASES = ("mysql", "information_schema", "performance_schema", "sys")


@dataclass(frozen=True)
class ServerConfig:
    """How to reach one server. The password never appears in repr or logs."""

    host: str = "127.0.0.1"
    port: int = 3306
    user: str = "root"
    password: str = field(default="", repr=False)
    socket: str = ""

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


@dataclass(frozen=True)
class TargetConfig(ServerConfig):
    """The server we apply to."""

    port: int = 3307
    checkpoint_schema: str = "mts_applier"
    reconnect_attempts: int = 10  # after a lost target connection: reconnect, resume from the checkpoint
    reconnect_backoff_seconds: float = 0.5


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


@dataclass(frozen=True)
class Config:
    source: SourceConfig = field(default_factory=SourceConfig)
    target: TargetConfig = field(default_factory=TargetConfig)
    apply: ApplyConfig = field(default_factory=ApplyConfig)

    def with_overrides(self, section: str, **values: Any) -> Config:
        """A copy with some keys of one section replaced (used by CLI flags)."""
        values = {k: v for k, v in values.items() if v is not None}
        if not values:
            return self
        current = getattr(self, section)
        return replace(self, **{section: _build(type(current), {**_asdict(current), **values}, section)})


def _asdict(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def _build(cls: type, data: dict[str, Any], section: str) -> Any:
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
        values[key] = _coerce(section, key, value, default)
    obj = cls(**values)
    _validate(section, obj)
    return obj


def _coerce(section: str, key: str, value: Any, default: Any) -> Any:
    where = f"[{section}] {key}"
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        return float(value)
    if isinstance(default, tuple):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where} must be a list of names, got {value!r}")
        return tuple(value)
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be a string, got {value!r}")
    return value


def _validate(section: str, obj: Any) -> None:
    def bad(key: str, why: str) -> ConfigError:
        return ConfigError(f"[{section}] {key} = {getattr(obj, key)!r}: {why}")

    if isinstance(obj, ServerConfig) and not 0 < obj.port < 65536:
        raise bad("port", "must be between 1 and 65535")
    if isinstance(obj, SourceConfig):
        if obj.flavor not in ("auto", "mariadb", "mysql"):
            raise bad("flavor", "must be auto, mariadb or mysql")
        if not 0 < obj.server_id < 2**32:
            raise bad("server_id", "must be a positive 32-bit integer, unique among replicas")
        if obj.start_pos < 4:
            raise bad("start_pos", "binlog positions start at 4")
    if isinstance(obj, ApplyConfig):
        if obj.policy not in POLICIES:
            raise bad("policy", f"must be one of {', '.join(POLICIES)}")
        for key in ("workers", "queue_size", "batch_txns", "big_txn_rows"):
            if getattr(obj, key) < 1:
                raise bad(key, "must be at least 1")
        if obj.workers > 256:
            raise bad("workers", "must be at most 256")
        if obj.retries < 0:
            raise bad("retries", "must be 0 or more")


_SECTIONS = {"source": SourceConfig, "target": TargetConfig, "apply": ApplyConfig}


def from_dict(data: dict[str, Any]) -> Config:
    for key in data:
        if key not in _SECTIONS:
            raise ConfigError(f"unknown config section [{key}]; known: {', '.join(_SECTIONS)}")
    built = {}
    for name, cls in _SECTIONS.items():
        section = data.get(name, {})
        if not isinstance(section, dict):
            raise ConfigError(f"[{name}] must be a table")
        built[name] = _build(cls, section, name)
    return Config(**built)


def load(path: str | Path | None) -> Config:
    """Read a TOML file; ``None`` gives the defaults."""
    if path is None:
        return Config()
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {p} not found") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {p} is not valid TOML: {e}") from None
    return from_dict(data)

"""TOML config: defaults, overrides, errors naming the key at fault, passwords from the
environment or a file, ``APPLIER_*`` environment overrides and their precedence. No server."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from applier import config
from applier.errors import ConfigError
from applier.harness.configfile import config_toml, render_toml

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "applier.toml"
SECRET = "s3cret-Pw-9xQ"  # must never appear in an error or a log line


def load_env(data: dict, environ: dict[str, str]) -> config.Config:
    """``load`` of a file holding ``data`` under ``environ``, without a file on disk."""
    overrides, origins = config.environment_overrides(environ)
    return config.from_dict(config._merge(data, overrides), environ, origins)


def error_of(data: dict, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as e:
        load_env(data, environ or {})
    message = str(e.value)
    assert "\n" not in message, "a config error is one line"
    assert SECRET not in message, "a password was echoed"
    return message


def test_example_file_loads_with_documented_defaults():
    assert config.load(EXAMPLE, environ={}) == config.Config()


def test_example_file_lists_every_key():
    import tomllib

    data = tomllib.loads(EXAMPLE.read_text())
    for name, cls in config._SECTIONS.items():
        assert set(data[name]) == {f.name for f in config.dataclasses.fields(cls)}, name


# ---- one error line naming the key ---------------------------------------------------------------

BAD = [
    # (section, key, value, fragments of the message)
    ("apply", "workers", "x", ("[apply] workers = 'x'", "must be an integer")),
    ("apply", "workers", True, ("[apply] workers", "integer")),
    ("apply", "workers", 0, ("[apply] workers = 0", "at least 1")),
    ("apply", "workers", -3, ("[apply] workers = -3", "at least 1")),
    ("apply", "workers", 257, ("[apply] workers = 257", "at most 256")),
    ("apply", "policy", "nope", ("[apply] policy = 'nope'", "writeset")),
    ("apply", "queue_size", 0, ("[apply] queue_size = 0", "at least 1")),
    ("apply", "queue_size", 10_001, ("[apply] queue_size = 10001", "at most 10000")),
    ("apply", "batch_txns", 0, ("[apply] batch_txns = 0", "at least 1")),
    ("apply", "batch_txns", 100_001, ("[apply] batch_txns = 100001", "at most 100000")),
    ("apply", "big_txn_rows", 0, ("[apply] big_txn_rows = 0", "at least 1")),
    ("apply", "retries", -1, ("[apply] retries = -1", "between 0 and 1000")),
    ("apply", "retries", 1001, ("[apply] retries = 1001", "between 0 and 1000")),
    ("apply", "retries", 40, ("[apply] retries = 40", "retry_backoff_seconds", "3600")),
    ("apply", "retry_backoff_seconds", -1, ("[apply] retry_backoff_seconds = -1", "at least 0")),
    ("apply", "retry_backoff_seconds", float("nan"), ("[apply] retry_backoff_seconds", "finite")),
    ("apply", "retry_backoff_seconds", float("inf"), ("[apply] retry_backoff_seconds", "finite")),
    ("apply", "retry_backoff_seconds", "0.1", ("[apply] retry_backoff_seconds", "a number")),
    ("apply", "databases", 5, ("[apply] databases = 5", "list")),
    ("apply", "databases", ["a", ""], ("[apply] databases", "''", "not a database name")),
    ("apply", "databases", [" a"], ("[apply] databases", "not a database name")),
    ("apply", "databases", ["x" * 65], ("[apply] databases", "64")),
    ("apply", "databases", ["shop", "mysql"], ("[apply] databases", "'mysql'", "ignore_databases")),
    ("apply", "ignore_databases", ["a\x00b"], ("[apply] ignore_databases", "NUL")),
    ("apply", "stop_at_end", 1, ("[apply] stop_at_end = 1", "true or false")),
    ("apply", "native_scan", "yes", ("[apply] native_scan = 'yes'", "true or false")),
    ("source", "port", 0, ("[source] port = 0", "65535")),
    ("source", "port", 70000, ("[source] port = 70000", "65535")),
    ("target", "port", -1, ("[target] port = -1", "65535")),
    ("source", "host", "", ("[source] host = ''", "socket")),
    ("target", "host", " db1", ("[target] host", "spaces")),
    ("source", "user", "", ("[source] user = ''", "must not be empty")),
    ("target", "user", "", ("[target] user = ''", "must not be empty")),
    ("source", "server_id", 0, ("[source] server_id = 0", "positive 32-bit")),
    ("source", "server_id", 2**32, ("[source] server_id", "positive 32-bit")),
    ("source", "flavor", "oracle", ("[source] flavor = 'oracle'", "mariadb")),
    ("source", "start_pos", 3, ("[source] start_pos = 3", "start at 4")),
    ("source", "start_pos", 2**32, ("[source] start_pos", "32-bit")),
    ("source", "start_file", "/var/lib/mysql/bin.000001", ("[source] start_file", "no directory")),
    ("source", "heartbeat_seconds", 0, ("[source] heartbeat_seconds = 0", "between 0.001")),
    ("source", "heartbeat_seconds", -5, ("[source] heartbeat_seconds = -5", "between 0.001")),
    ("source", "heartbeat_seconds", 5_000_000, ("[source] heartbeat_seconds", "4294967")),
    ("source", "reconnect_attempts", -5, ("[source] reconnect_attempts = -5", "at least 0")),
    ("source", "reconnect_attempts", 1001, ("[source] reconnect_attempts = 1001", "at most 1000")),
    ("source", "reconnect_backoff_seconds", -0.5, ("[source] reconnect_backoff_seconds = -0.5", "at least 0")),
    ("target", "reconnect_attempts", -1, ("[target] reconnect_attempts = -1", "at least 0")),
    ("target", "reconnect_attempts", 1001, ("[target] reconnect_attempts = 1001", "at most 1000")),
    ("target", "reconnect_attempts", 2.5, ("[target] reconnect_attempts = 2.5", "integer")),
    ("target", "reconnect_backoff_seconds", -1, ("[target] reconnect_backoff_seconds = -1", "at least 0")),
    ("target", "reconnect_backoff_seconds", float("inf"), ("[target] reconnect_backoff_seconds", "finite")),
    ("target", "checkpoint_schema", "", ("[target] checkpoint_schema = ''", "plain identifier")),
    ("target", "checkpoint_schema", "my-ckpt", ("[target] checkpoint_schema = 'my-ckpt'", "plain identifier")),
    ("target", "checkpoint_schema", "a`b", ("[target] checkpoint_schema", "plain identifier")),
    ("target", "checkpoint_schema", "1ckpt", ("[target] checkpoint_schema", "starting with a letter")),
    ("target", "checkpoint_schema", "c" * 65, ("[target] checkpoint_schema", "64 characters")),
    ("target", "checkpoint_schema", "mysql", ("[target] checkpoint_schema = 'mysql'", "system schema")),
    ("target", "checkpoint_schema", "Sys", ("[target] checkpoint_schema = 'Sys'", "system schema")),
    ("target", "socket", 5, ("[target] socket = 5", "a string")),
]


@pytest.mark.parametrize("section, key, value, fragments", BAD,
                         ids=[f"{s}.{k}={v!r}"[:60] for s, k, v, _ in BAD])
def test_bad_value_is_one_line_naming_the_key(section, key, value, fragments):
    message = error_of({section: {key: value}})
    for fragment in fragments:
        assert fragment in message, message


@pytest.mark.parametrize(
    "data, fragments",
    [
        ({"apply": {"wokers": 4}}, ("unknown config key [apply] 'wokers'", "workers")),
        ({"nosection": {}}, ("unknown config section [nosection]",)),
        ({"apply": 3}, ("[apply] must be a table",)),
        ({"source": {"start_pos": 120}}, ("[source] start_pos = 120", "start_file is empty")),
        ({"source": {"start_file": "bin.000002", "start_gtid": "0-1-5"}},
         ("[source] start_gtid = '0-1-5'", "start_file = 'bin.000002'", "not both")),
        ({"target": {"checkpoint_schema": "ckpt"}, "apply": {"databases": ["shop", "ckpt"]}},
         ("[apply] databases", "'ckpt'", "checkpoint_schema")),
        ({"apply": {"retries": 30, "retry_backoff_seconds": 0.001}}, ("[apply] retries = 30", "3600")),
    ],
)
def test_bad_combination_is_one_line_naming_the_keys(data, fragments):
    message = error_of(data)
    for fragment in fragments:
        assert fragment in message, message


@pytest.mark.parametrize(
    "data",
    [
        {"source": {"start_file": "bin.000002", "start_pos": 120}},
        {"source": {"start_gtid": "0-1-5"}},
        {"source": {"socket": "/run/mysqld/mysqld.sock", "host": ""}},
        {"source": {"reconnect_attempts": 0, "reconnect_backoff_seconds": 0}},
        {"source": {"heartbeat_seconds": 0.001}},
        {"target": {"checkpoint_schema": "_Ckpt_1"}},
        {"target": {"checkpoint_schema": "c" * 64}},
        {"apply": {"retries": 0, "retry_backoff_seconds": 0}},
        {"apply": {"retries": 1000, "retry_backoff_seconds": 0}},
        {"apply": {"retries": 17, "retry_backoff_seconds": 0.05}},  # last wait 3277 s
        {"apply": {"workers": 256, "queue_size": 10_000, "batch_txns": 100_000}},
        {"apply": {"databases": ["mysql"], "ignore_databases": []}},
    ],
)
def test_edge_values_are_accepted(data):
    load_env(data, {})


def test_password_not_in_repr():
    cfg = config.from_dict({"source": {"password": SECRET}})
    assert SECRET not in repr(cfg)
    assert cfg.source.password == SECRET


@pytest.mark.parametrize("value", [12345, 1.5, True, [SECRET], {"a": SECRET}, SECRET + "\x00"])
@pytest.mark.parametrize("section", ["source", "target"])
def test_bad_password_is_never_echoed(section, value):
    message = error_of({section: {"password": value}})
    assert message.startswith(f"[{section}] password: "), message
    assert "12345" not in message and "1.5" not in message and "True" not in message
    assert "=" not in message.split(":")[0]


def test_secret_keys_are_never_echoed_whatever_the_key():
    assert config.is_secret("password") and config.is_secret("password_file")
    message = error_of({"target": {"password_env": 42}})
    assert message == "[target] password_env: must be a string"


def test_overrides_replace_only_given_keys():
    cfg = config.Config().with_overrides("apply", workers=8, policy=None)
    assert cfg.apply.workers == 8 and cfg.apply.policy == "writeset"


def test_overrides_are_checked():
    with pytest.raises(ConfigError, match=r"\[apply\] workers = 0: must be at least 1"):
        config.Config().with_overrides("apply", workers=0)
    cfg = config.from_dict({"target": {"checkpoint_schema": "ckpt"}})
    with pytest.raises(ConfigError, match="checkpoint_schema"):
        cfg.with_overrides("apply", databases=("ckpt",))
    with pytest.raises(ConfigError, match=r"\[source\] start_gtid"):
        config.Config().with_overrides("source", start_file="bin.000001", start_gtid="0-1-1")


# ---- passwords from the environment or a file -------------------------------------------------


@pytest.mark.parametrize("section", ["source", "target"])
def test_password_env(section):
    cfg = load_env({section: {"password_env": "MY_DB_PW"}}, {"MY_DB_PW": SECRET})
    server = getattr(cfg, section)
    assert server.password == SECRET
    assert (server.password_env, server.password_file) == ("", "")  # resolved
    assert SECRET not in repr(cfg)


def test_password_env_missing_or_empty_or_not_a_name():
    message = error_of({"source": {"password_env": "MY_DB_PW"}}, {})
    assert message == "[source] password_env: the environment variable it names is not set"
    message = error_of({"target": {"password_env": "MY_DB_PW"}}, {"MY_DB_PW": ""})
    assert message.startswith("[target] password_env: the environment variable it names is empty")
    # a password pasted where a variable name belongs is not echoed either
    message = error_of({"source": {"password_env": SECRET}}, {})
    assert message.startswith("[source] password_env: must be the name of an environment variable")


@pytest.mark.parametrize(
    "content, password",
    [(SECRET, SECRET), (SECRET + "\n", SECRET), (SECRET + "\r\n", SECRET),
     (SECRET + "\n\n", SECRET + "\n"), (" " + SECRET + " \n", " " + SECRET + " "),
     ("pä$$wörd\n", "pä$$wörd")],
    ids=["plain", "newline", "crlf", "two-newlines", "spaces-kept", "utf8"],
)
def test_password_file_strips_one_trailing_newline(tmp_path, content, password):
    path = tmp_path / "pw"
    path.write_bytes(content.encode())
    path.chmod(0o600)
    cfg = load_env({"target": {"password_file": str(path)}}, {})
    assert cfg.target.password == password
    assert cfg.target.password_file == ""


def test_password_file_errors_name_the_key_not_the_path_or_password(tmp_path):
    assert error_of({"source": {"password_file": str(tmp_path / "missing")}}).startswith(
        "[source] password_file: cannot read the file it names: No such file or directory")
    assert error_of({"source": {"password_file": str(tmp_path)}}).startswith(
        "[source] password_file: ")
    empty = tmp_path / "empty"
    empty.write_text("\n")
    assert "is empty" in error_of({"target": {"password_file": str(empty)}})
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe" + SECRET.encode())
    assert "not UTF-8" in error_of({"target": {"password_file": str(binary)}})
    huge = tmp_path / "huge"
    huge.write_bytes(b"x" * (config.MAX_PASSWORD_FILE_BYTES + 1))
    assert "larger than" in error_of({"target": {"password_file": str(huge)}})
    for message in (error_of({"source": {"password_file": str(tmp_path / "missing")}}),):
        assert str(tmp_path) not in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_password_file_unreadable(tmp_path):  # pragma: no cover - not as root
    path = tmp_path / "pw"
    path.write_text(SECRET)
    path.chmod(0)
    assert "Permission denied" in error_of({"source": {"password_file": str(path)}})


@pytest.mark.parametrize("mode, warned", [(0o600, False), (0o400, False), (0o640, True), (0o604, True)])
def test_password_file_readable_by_others_warns(tmp_path, caplog, mode, warned):
    path = tmp_path / "pw"
    path.write_text(SECRET + "\n")
    path.chmod(mode)
    with caplog.at_level(logging.WARNING, logger="applier.config"):
        cfg = load_env({"source": {"password_file": str(path)}}, {})
    assert cfg.source.password == SECRET  # used either way
    warnings = [r.getMessage() for r in caplog.records]
    assert bool(warnings) == warned, warnings
    for message in warnings:
        assert "[source] password_file" in message and "chmod 600" in message
        assert SECRET not in message and str(path) not in message


@pytest.mark.parametrize(
    "keys",
    [("password", "password_env"), ("password", "password_file"), ("password_env", "password_file"),
     ("password", "password_env", "password_file")],
)
def test_only_one_password_source(keys):
    section = {k: SECRET if k == "password" else "X" for k in keys}
    message = error_of({"source": section}, {"X": SECRET})
    assert message.startswith("[source] ") and "set only one of password, password_env, password_file" in message


def test_an_empty_password_key_does_not_count():
    # examples/applier.toml lists password = "" (the default): adding password_env is fine
    cfg = load_env({"source": {"password": "", "password_env": "X", "password_file": ""}}, {"X": SECRET})
    assert cfg.source.password == SECRET


def test_resolved_config_round_trips_through_toml(tmp_path):
    path = tmp_path / "pw"
    path.write_text(SECRET)
    path.chmod(0o600)
    cfg = load_env({"source": {"password_file": str(path)}, "target": {"password_env": "X"}}, {"X": "t-pw"})
    import tomllib

    assert config.from_dict(tomllib.loads(config_toml(cfg)), {}) == cfg


def test_with_overrides_of_a_password_key_replaces_the_others():
    cfg = config.from_dict({"source": {"password": "old"}}, {})
    cfg = cfg.with_overrides("source", password="new")
    assert cfg.source.password == "new"


# ---- APPLIER_<SECTION>_<KEY> -----------------------------------------------------------------


def test_environment_overrides_every_type():
    cfg = load_env({}, {
        "APPLIER_APPLY_WORKERS": "8",
        "APPLIER_APPLY_RETRY_BACKOFF_SECONDS": "0.25",
        "APPLIER_APPLY_STOP_AT_END": "true",
        "APPLIER_APPLY_NATIVE_SCAN": "0",
        "APPLIER_APPLY_PRESERVE_COMMIT_ORDER": "1",
        "APPLIER_APPLY_DATABASES": "shop, crm,,",
        "APPLIER_APPLY_IGNORE_DATABASES": "",
        "APPLIER_SOURCE_HOST": "db1.example",
        "APPLIER_SOURCE_HEARTBEAT_SECONDS": "2",
        "APPLIER_TARGET_CHECKPOINT_SCHEMA": "ckpt_env",
        "APPLIER_TARGET_PASSWORD": SECRET,
        "PATH": "/usr/bin",  # not ours: ignored
        "APPLIER_NO_NATIVE": "1",  # a build switch, not an override
    })
    assert cfg.apply.workers == 8 and cfg.apply.retry_backoff_seconds == 0.25
    assert cfg.apply.stop_at_end is True and cfg.apply.native_scan is False
    assert cfg.apply.preserve_commit_order is True
    assert cfg.apply.databases == ("shop", "crm") and cfg.apply.ignore_databases == ()
    assert cfg.source.host == "db1.example" and cfg.source.heartbeat_seconds == 2.0
    assert cfg.target.checkpoint_schema == "ckpt_env" and cfg.target.password == SECRET


@pytest.mark.parametrize("word, value", [("true", True), ("TRUE", True), ("1", True), (" false ", False),
                                         ("0", False), ("False", False)])
def test_environment_booleans(word, value):
    assert load_env({}, {"APPLIER_APPLY_STOP_AT_END": word}).apply.stop_at_end is value


@pytest.mark.parametrize(
    "var, text, fragments",
    [
        ("APPLIER_APPLY_WORKERS", "eight", ("[apply] workers = 'eight' (from APPLIER_APPLY_WORKERS)", "integer")),
        ("APPLIER_APPLY_WORKERS", "0", ("[apply] workers = 0 (from APPLIER_APPLY_WORKERS)", "at least 1")),
        ("APPLIER_APPLY_WORKERS", "4.0", ("(from APPLIER_APPLY_WORKERS)", "integer")),
        ("APPLIER_APPLY_STOP_AT_END", "yes", ("[apply] stop_at_end = 'yes' (from APPLIER_APPLY_STOP_AT_END)",
                                              "true or false")),
        ("APPLIER_SOURCE_HEARTBEAT_SECONDS", "nan", ("(from APPLIER_SOURCE_HEARTBEAT_SECONDS)", "finite")),
        ("APPLIER_SOURCE_PORT", "", ("[source] port = '' (from APPLIER_SOURCE_PORT)", "integer")),
        ("APPLIER_APPLY_WOKERS", "4", ("environment variable APPLIER_APPLY_WOKERS", "no key 'wokers'", "workers")),
        ("APPLIER_REPLICA_HOST", "x", ("environment variable APPLIER_REPLICA_HOST", "SOURCE, TARGET, APPLY")),
        ("APPLIER_SOURCE", "x", ("environment variable APPLIER_SOURCE", "no key ''")),
        ("APPLIER_SOURCE_PASSWROD", SECRET, ("environment variable APPLIER_SOURCE_PASSWROD", "no key")),
        ("APPLIER_TARGET_PASSWORD_ENV", "NOPE", ("[target] password_env (from APPLIER_TARGET_PASSWORD_ENV)",
                                                 "not set")),
    ],
)
def test_environment_errors_name_the_variable(var, text, fragments):
    message = error_of({}, {var: text})
    for fragment in fragments:
        assert fragment in message, message


def test_precedence_flags_over_environment_over_file_over_defaults(tmp_path):
    path = tmp_path / "applier.toml"
    path.write_text(render_toml({"apply": {"workers": 2, "batch_txns": 50, "queue_size": 8}}))
    cfg = config.load(path, environ={"APPLIER_APPLY_WORKERS": "6", "APPLIER_APPLY_BATCH_TXNS": "70"})
    assert cfg.apply.retries == 10  # default
    assert cfg.apply.queue_size == 8  # file
    assert cfg.apply.batch_txns == 70  # environment over file
    assert cfg.apply.workers == 6
    cfg = cfg.with_overrides("apply", workers=3)  # command-line flag over environment
    assert (cfg.apply.workers, cfg.apply.batch_txns) == (3, 70)


def test_load_without_a_file_applies_the_environment():
    assert config.load(None, environ={"APPLIER_APPLY_WORKERS": "5"}).apply.workers == 5
    assert config.load(None, environ={}) == config.Config()


def test_environment_password_replaces_the_files_password_source(tmp_path):
    missing = tmp_path / "missing"  # would be an error if it were still read
    data = {"source": {"password_file": str(missing)}, "target": {"password": "file-pw"}}
    cfg = load_env(data, {"APPLIER_SOURCE_PASSWORD": SECRET, "APPLIER_TARGET_PASSWORD_ENV": "T_PW",
                          "T_PW": "env-pw"})
    assert cfg.source.password == SECRET and cfg.target.password == "env-pw"
    # two of them in the environment is as wrong as two in the file
    message = error_of({}, {"APPLIER_SOURCE_PASSWORD": SECRET, "APPLIER_SOURCE_PASSWORD_ENV": "X", "X": "y"})
    assert "set only one of" in message


def test_load_reads_os_environ_by_default(tmp_path, monkeypatch):
    monkeypatch.setenv("APPLIER_APPLY_WORKERS", "7")
    assert config.load(None).apply.workers == 7
    monkeypatch.setenv("APPLIER_APPLY_WORKRS", "7")
    with pytest.raises(ConfigError, match="APPLIER_APPLY_WORKRS"):
        config.load(None)


def test_load_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        config.load(tmp_path / "nope.toml", environ={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[apply\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.load(bad, environ={})
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"[source]\npassword = \"\xff" + SECRET.encode() + b"\"\n")
    with pytest.raises(ConfigError) as e:
        config.load(binary, environ={})
    assert "not UTF-8" in str(e.value) and SECRET not in str(e.value)


def test_a_start_position_replaces_the_lower_layers_start_position(tmp_path):
    path = tmp_path / "applier.toml"
    path.write_text(render_toml({"source": {"start_file": "bin.000003", "start_pos": 1200}}))
    cfg = config.load(path, environ={})
    # --start-gtid: the file's file:pos go
    by_gtid = cfg.with_overrides("source", start_file=None, start_pos=None, start_gtid="0-1-42")
    assert (by_gtid.source.start_file, by_gtid.source.start_pos, by_gtid.source.start_gtid) == ("", 4, "0-1-42")
    # --start-file alone: position 4 of that file, not the other file's position
    by_file = cfg.with_overrides("source", start_file="bin.000007")
    assert (by_file.source.start_file, by_file.source.start_pos) == ("bin.000007", 4)
    # --start-pos alone: within the file's start_file
    assert cfg.with_overrides("source", start_pos=800).source.start_file == "bin.000003"
    # the environment over the file, the same way
    env = config.load(path, environ={"APPLIER_SOURCE_START_GTID": "0-1-9"})
    assert (env.source.start_file, env.source.start_gtid) == ("", "0-1-9")
    both = {"APPLIER_SOURCE_START_GTID": "0-1-9", "APPLIER_SOURCE_START_FILE": "bin.000001"}
    with pytest.raises(ConfigError, match="not both"):
        config.load(path, environ=both)

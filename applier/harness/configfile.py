"""Config files written by the harness (bench, demo, tests): TOML text from values."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path

from ..config import Config


def _toml(value) -> str:
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


def render_toml(sections: dict[str, dict]) -> str:
    """A config file's text from {section: {key: value}}."""
    lines = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {_toml(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def config_toml(cfg: Config) -> str:
    """The text of a config file that loads as ``cfg``."""
    return render_toml({f.name: dataclasses.asdict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)})


def private_file(text: str, path: Path | None = None, *, prefix: str = "mts-", suffix: str = "",
                 directory: Path | None = None) -> Path:
    """``text`` in a file only its owner reads (0600 from its creation: it holds
    passwords, which must not go on a command line where `ps` shows them); ``path``
    None: a new temporary file (in ``directory``)."""
    if path is None:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=directory)
        path = Path(name)
    else:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def sysbench_options(server, db: str) -> str:
    """sysbench's --config-file text for ``server`` (a sandbox server) and database ``db``."""
    return (f"db-driver=mysql\nmysql-host=127.0.0.1\nmysql-port={server.port}\n"
            f"mysql-user={server.user}\nmysql-password={server.password}\nmysql-db={db}\n")

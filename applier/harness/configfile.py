"""Config files written by the harness (bench, demo, tests): TOML text from values."""

from __future__ import annotations

import dataclasses
import json

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

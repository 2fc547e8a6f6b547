"""TOML config: defaults, overrides, and errors naming the key at fault."""

from __future__ import annotations

import pytest

from applier import config
from applier.errors import ConfigError


def test_example_file_loads_with_documented_defaults(tmp_path):
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "examples" / "applier.toml"
    cfg = config.load(example)
    assert cfg == config.Config()


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"apply": {"wokers": 4}}, "unknown config key [apply] 'wokers'"),
        ({"apply": {"workers": "x"}}, "[apply] workers must be an integer"),
        ({"apply": {"policy": "nope"}}, "[apply] policy"),
        ({"apply": {"workers": 0}}, "[apply] workers"),
        ({"source": {"port": 70000}}, "[source] port"),
        ({"nosection": {}}, "unknown config section [nosection]"),
    ],
)
def test_bad_config_names_the_key(data, fragment):
    with pytest.raises(ConfigError) as e:
        config.from_dict(data)
    assert fragment in str(e.value)


def test_password_not_in_repr():
    cfg = config.from_dict({"source": {"password": "s3cret-pw"}})
    assert "s3cret-pw" not in repr(cfg)


def test_overrides_replace_only_given_keys():
    cfg = config.Config().with_overrides("apply", workers=8, policy=None)
    assert cfg.apply.workers == 8 and cfg.apply.policy == "writeset"

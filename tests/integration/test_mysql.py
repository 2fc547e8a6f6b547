"""MySQL 8.4 as a source, through docker compose. Skips cleanly when no Docker engine
answers (this project's CI machines have only the docker client)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.mysql.yml"


def _engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.skipif(not _engine_answers(), reason="no Docker engine answers: MySQL 8.4 source unavailable")
def test_mysql_source_gtid_position():  # pragma: no cover - needs a Docker engine
    from applier import config
    from applier.pipeline.preflight import check_source, inspect_source

    subprocess.run(["docker", "compose", "-f", str(COMPOSE), "up", "-d", "--wait"], check=True, timeout=300)
    try:
        src = config.SourceConfig(host="127.0.0.1", port=33084, user="root", password="mts")
        facts = inspect_source(src)
        assert facts.flavor == "mysql"
        check_source(facts, start_file=None)
    finally:
        subprocess.run(["docker", "compose", "-f", str(COMPOSE), "down", "-v"], timeout=300)

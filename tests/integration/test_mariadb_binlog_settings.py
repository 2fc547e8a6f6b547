"""MariaDB binlog settings the preflight judges: log_bin_compress=ON is refused before
anything is applied (one line naming the setting); encrypt_binlog=ON is fine over the
dump connection (the server sends the events decrypted, after a START_ENCRYPTION event
at the top of each file), on a server of its own with the file_key_management plugin."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from applier.errors import SourceError
from applier.harness import sandbox
from applier.harness.localserver import free_port
from applier.harness.mariadb import LocalMariadb
from applier.pipeline.preflight import check_source, inspect_source
from tests.support import assert_same, make_config, run_applier

pytestmark = pytest.mark.integration

_PLUGIN = Path("/usr/lib/mysql/plugin/file_key_management.so")


def test_log_bin_compress_is_refused_at_preflight(source, target, dbname):
    before = source.query("SELECT @@GLOBAL.log_bin_compress")[0][0]
    source.execute("SET GLOBAL log_bin_compress = ON")
    try:
        facts = inspect_source(make_config(source, target, dbname).source)
        with pytest.raises(SourceError) as info:
            check_source(facts, start_file=None)
        assert "log_bin_compress=ON" in str(info.value) and "SET GLOBAL log_bin_compress=OFF" in str(info.value)
        with pytest.raises(SourceError, match="log_bin_compress"):
            run_applier(make_config(source, target, dbname))
    finally:
        source.execute("SET GLOBAL log_bin_compress = %s", (before,))


@pytest.fixture
def encrypted_pair(tmp_path, target):
    if not _PLUGIN.is_file():
        pytest.skip(f"{_PLUGIN} is not installed")
    keys = tmp_path / "keys.txt"
    keys.write_text(f"1;{secrets.token_hex(32)}\n")
    opts = sandbox.source_options("mariadb")
    opts.update({"plugin-load-add": "file_key_management", "file-key-management-filename": str(keys),
                 "encrypt-binlog": "ON"})
    server = LocalMariadb("encrypted", tmp_path / "source", free_port(), 1, True, opts)
    server.start()
    try:
        yield server, target
    finally:
        server.stop()


def test_encrypted_binlog_applies_over_the_dump_connection(encrypted_pair, dbname):
    source, target = encrypted_pair
    facts = inspect_source(make_config(source, target, dbname).source)
    assert facts.encryption
    check_source(facts, start_file=None)
    start = (source.query("SHOW BINARY LOGS")[0][0], 4)  # from the top: START_ENCRYPTION first
    source.execute(f"CREATE DATABASE {dbname}")
    source.execute(f"CREATE TABLE {dbname}.t (id INT PRIMARY KEY, v VARCHAR(20))")
    source.execute(f"INSERT INTO {dbname}.t VALUES (1, 'secret'), (2, 'also secret')")
    source.execute(f"UPDATE {dbname}.t SET v = 'changed' WHERE id = 2")
    with open(source.datadir / start[0], "rb") as f:
        assert b"also secret" not in f.read()  # the file on disk is encrypted
    run_applier(make_config(source, target, dbname, start=start))
    assert_same(source, target, dbname)

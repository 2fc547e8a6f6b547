"""Shared fixtures: one throwaway MariaDB source and target per test session, and a
MySQL 9.7 source and target (``mysql_source``/``mysql_target``) for tests that ask.

Why session scope: installing and starting ``mariadbd`` costs about a second each
(``mysqld`` in its chroot: ~6 s); tests isolate themselves by database name
(``dbname``) instead of by server. A test that stops or kills a server must use its own
``LocalMariadb``/``LocalMysql``, never these. MySQL servers start only when a test
requests them.

Without MariaDB binaries (or the MySQL chroot, for MySQL tests) integration tests are
skipped locally, but fail under CI (``CI`` set): a CI run that silently skips every
real test would look green and prove nothing.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from applier.errors import ApplierError
from applier.harness import sandbox
from tests.appliers import Applier

_HERE = Path(__file__).parent
# Tests that run several workers mean them to run concurrently: every worker is fed from
# the start ([apply] adapt_workers would begin with one and widen only where that is
# faster). Applier subprocesses read it too. Tests of the adaptive width ask for it.
os.environ.setdefault("APPLIER_APPLY_ADAPT_WORKERS", "false")
# Directories whose tests need real servers; they get the ``integration`` marker.
_SERVER_DIRS = (_HERE / "integration", _HERE / "scenarios", _HERE / "faults")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if any(item.path.is_relative_to(d) for d in _SERVER_DIRS):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def mariadb_available() -> tuple[Path, Path]:
    """``(mariadbd, mariadb-install-db)``, or skip (locally) / fail (under CI)."""
    try:
        return sandbox.find_mariadb_binaries()
    except ApplierError as e:
        if _in_ci():
            pytest.fail(f"{e} (CI is set, so integration tests may not be skipped)")
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def mysql_available() -> Path:
    """The MySQL 9.7 chroot, or skip (locally) / fail (under CI)."""
    try:
        return sandbox.find_mysql()
    except ApplierError as e:
        if _in_ci():
            pytest.fail(f"{e} (CI is set, so MySQL tests may not be skipped)")
        pytest.skip(str(e))


@pytest.fixture(autouse=True)
def _needs_mariadb(request: pytest.FixtureRequest) -> None:
    """Integration tests that build their own servers skip/fail like the shared ones."""
    if request.node.get_closest_marker("integration") is not None:
        request.getfixturevalue("mariadb_available")


@pytest.fixture(scope="session")
def sandbox_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("servers")


@pytest.fixture(scope="session")
def mariadb_source(
    mariadb_available: tuple[Path, Path], sandbox_dir: Path
) -> Iterator[sandbox.LocalMariadb]:
    """A started source: server_id 1, ROW binlog with full images and metadata, GTIDs."""
    server = sandbox.make_source(sandbox_dir / "source")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mariadb_target(
    mariadb_available: tuple[Path, Path], sandbox_dir: Path
) -> Iterator[sandbox.LocalMariadb]:
    """A started target: server_id 2, no binlog."""
    server = sandbox.make_target(sandbox_dir / "target")
    server.start()
    yield server
    server.stop()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``pytest.mark.flavors("mariadb", "mysql")`` on a test (or a module's
    ``pytestmark``) runs it once per flavor: ``source``/``target`` are then that flavor's
    session servers (MariaDB -> MariaDB, MySQL -> MySQL)."""
    marker = metafunc.definition.get_closest_marker("flavors")
    if marker is not None and "flavor" in metafunc.fixturenames:
        metafunc.parametrize("flavor", marker.args, indirect=True)


@pytest.fixture
def flavor(request: pytest.FixtureRequest) -> str:
    """The servers' flavor for this test: ``mariadb`` unless the test is marked
    ``flavors(...)`` (see ``pytest_generate_tests``)."""
    return str(getattr(request, "param", "mariadb"))


@pytest.fixture
def source(request: pytest.FixtureRequest, flavor: str) -> sandbox.LocalMariadb:
    """The session source of this test's flavor (see ``mariadb_source``/``mysql_source``)."""
    return request.getfixturevalue(f"{flavor}_source")


@pytest.fixture
def target(request: pytest.FixtureRequest, flavor: str) -> sandbox.LocalMariadb:
    """The session target of this test's flavor (see ``mariadb_target``/``mysql_target``)."""
    return request.getfixturevalue(f"{flavor}_target")


@pytest.fixture
def dbname() -> str:
    """A database name unique to this test (``t_<12 hex>``); the test creates it."""
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def mysql_sandbox_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mysql-servers")


@pytest.fixture(scope="session")
def mysql_source(mysql_available: Path, mysql_sandbox_dir: Path) -> Iterator[sandbox.LocalMysql]:
    """A started MySQL 9.7 source: server_id 1, ROW binlog, full images and metadata,
    gtid_mode ON."""
    server = sandbox.make_source(mysql_sandbox_dir / "source", flavor="mysql")
    assert isinstance(server, sandbox.LocalMysql)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mysql_target(mysql_available: Path, mysql_sandbox_dir: Path) -> Iterator[sandbox.LocalMysql]:
    """A started MySQL 9.7 target: server_id 2, no binlog."""
    server = sandbox.make_target(mysql_sandbox_dir / "target", flavor="mysql")
    assert isinstance(server, sandbox.LocalMysql)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def spawn(tmp_path):
    """Start applier subprocesses; whatever is still running at the end is killed."""
    started: list[Applier] = []

    def start(config: Path, *args: str, verbose: bool = False) -> Applier:
        app = Applier(config, *args, log_dir=tmp_path, name=f"run{len(started) + 1}", verbose=verbose)
        started.append(app)
        return app

    yield start
    for app in started:
        app.kill_all()

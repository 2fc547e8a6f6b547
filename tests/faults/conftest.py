"""Fixtures of the fault suite: servers of its own (for tests that kill, restart or
reconfigure a server globally; never the session ``source``/``target``) and fault
proxies. Every server and proxy started here is stopped in a ``finally``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from applier.harness import sandbox
from tests.faults.proxy import FaultProxy


@pytest.fixture(scope="module")
def own_target(mariadb_available, tmp_path_factory) -> Iterator[sandbox.LocalMariadb]:
    """A target for this module alone (tests kill and restart it); started."""
    server = sandbox.make_target(tmp_path_factory.mktemp("own-target"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def running_target(own_target) -> sandbox.LocalMariadb:
    """``own_target``, started again if an earlier test left it down."""
    own_target.start()
    return own_target


@pytest.fixture(scope="module")
def own_pair(mariadb_available, tmp_path_factory):
    """A source and a target for this module alone (global settings change on them)."""
    source, target = sandbox.start_pair(tmp_path_factory.mktemp("own-pair"))
    try:
        yield source, target
    finally:
        target.stop()
        source.stop()


@pytest.fixture
def proxies() -> Iterator:
    """``make(server) -> FaultProxy`` in front of ``server``; all closed at the end."""
    made: list[FaultProxy] = []

    def make(server, seed: int | None = None) -> FaultProxy:
        proxy = FaultProxy("127.0.0.1", server.port, seed=seed)
        made.append(proxy)
        return proxy

    try:
        yield make
    finally:
        for proxy in made:
            proxy.close()

"""Fixtures of the routing tests: one fault-injecting upstream per module, and gateways that
live for a module (starting a gateway takes seconds; each test uses its own destination names,
so counts and scripts do not mix)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.conftest import GatewayProcess, launch
from tests.support.faulty_upstream import FaultyUpstream


@pytest.fixture(scope="module")
def faulty() -> Iterator[FaultyUpstream]:
    server = FaultyUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def module_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., GatewayProcess]]:
    started: list[GatewayProcess] = []

    def start(config: str, workers: int = 1) -> GatewayProcess:
        gateway = launch(tmp_path_factory.mktemp("gateway"), config, workers)
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        gateway.stop()

"""The fixtures most API-family tests share: the three emulated upstreams (OpenAI with the
Responses API, Anthropic, Google) and a gateway serving `api_config` over them. A module with
its own upstreams or config defines its own `upstreams` / `gateway`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import GatewayProcess
from tests.providers.anthropic_upstream import AnthropicUpstream
from tests.providers.gemini_upstream import GoogleUpstream
from tests.support.api_gateway import api_config, running_gateway, started
from tests.support.responses_upstream import ResponsesUpstream


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[Any, ...]]:
    yield from started(ResponsesUpstream(), AnthropicUpstream(), GoogleUpstream())


@pytest.fixture(scope="module")
def gateway(upstreams: tuple[Any, ...], tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    yield from running_gateway(tmp_path_factory.mktemp("apis"), api_config(*upstreams))

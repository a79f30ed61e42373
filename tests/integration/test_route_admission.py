"""What a route or an alias may not bypass: a FALLBACK route checks each destination's own limit
and budget as it comes to it (a refused destination is skipped, as one answering 429 would be),
and a key's allowlist is checked against the endpoint an alias reaches, not the name asked."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.conftest import launch

ADMIN = "admin-secret-for-route-admission-0123"
CHAT = {"messages": [{"role": "user", "content": "hi"}]}


def mock(name: str, extra: str = "") -> str:
    return f"""
  - name: {name}
    endpoint_type: llm/v1/chat
    model:
      provider: mock
      name: mock-chat
      config: {{output_tokens: 3}}
      pricing: {{input_per_million: 1000000, output_per_million: 0}}
{extra}"""


def call(url: str, model: str, key: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(
        f"{url}/v1/chat/completions", json={**CHAT, "model": model}, headers=headers, timeout=10
    )


def test_a_limited_destination_is_skipped_not_bypassed(tmp_path):
    config = (
        "endpoints:"
        + mock("primary", "    limit: {calls: 1, renewal_period: minute}\n")
        + mock("backup")
        + """
routes:
  - name: chat
    task_type: llm/v1/chat
    routing_strategy: FALLBACK
    destinations: [{name: primary}, {name: backup}]
"""
    )
    gateway = launch(tmp_path, config)
    try:
        first, second = call(gateway.url, "chat"), call(gateway.url, "chat")
        assert first.status_code == 200 and first.headers["x-gateway-destination"] == "primary"
        # the primary's own limit (1 call a minute) holds through the route: the backup answers
        assert second.status_code == 200 and second.headers["x-gateway-destination"] == "backup"
        # and called by name, the primary is still limited
        assert call(gateway.url, "primary").status_code == 429
    finally:
        gateway.stop()


def test_every_destination_refused_answers_the_refusal(tmp_path):
    config = (
        "endpoints:"
        + mock("only", "    limit: {calls: 1, renewal_period: minute}\n")
        + """
routes:
  - name: chat
    task_type: llm/v1/chat
    routing_strategy: FALLBACK
    destinations: [{name: only}]
"""
    )
    gateway = launch(tmp_path, config)
    try:
        assert call(gateway.url, "chat").status_code == 200
        refused = call(gateway.url, "chat")
        assert refused.status_code == 429
        assert "Rate limit exceeded" in refused.json()["error"]["message"]
    finally:
        gateway.stop()


def test_a_spent_destination_budget_sends_the_route_to_the_next(tmp_path):
    config = (
        "endpoints:"
        + mock("primary", "    budget: {usd: 0.5, period: day}\n")
        + mock("backup")
        + """
routes:
  - name: chat
    task_type: llm/v1/chat
    routing_strategy: FALLBACK
    destinations: [{name: primary}, {name: backup}]
"""
    )
    gateway = launch(tmp_path, config)
    try:
        first = call(gateway.url, "chat")
        assert first.status_code == 200 and first.headers["x-gateway-destination"] == "primary"
        # the first call cost $1 per prompt token: the primary's $0.50 budget is spent
        deadline = time.monotonic() + 5
        while call(gateway.url, "primary").status_code != 429:
            assert time.monotonic() < deadline, "the primary's spend was never settled"
            time.sleep(0.05)
        second = call(gateway.url, "chat")
        assert second.status_code == 200 and second.headers["x-gateway-destination"] == "backup"
    finally:
        gateway.stop()


@pytest.fixture(scope="module")
def aliased(tmp_path_factory):
    directory = tmp_path_factory.mktemp("aliases")
    config = (
        "endpoints:"
        + mock("haiku")
        + mock("opus", '    aliases: ["claude-*"]\n')
        + f"database_url: sqlite:///{directory}/keys.db\nauth:\n  admin_key: {ADMIN}\n  require_keys: true\n"
    )
    gateway = launch(directory, config)
    yield gateway
    gateway.stop()


def key_for(url: str, endpoints: list[str]) -> str:
    response = httpx.post(
        f"{url}/admin/v1/keys",
        json={"name": "agent", "endpoints": endpoints},
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


def test_an_alias_pattern_in_an_allowlist_does_not_open_another_endpoint(aliased):
    # `claude-haiku-x` matches the key's pattern, but the alias reaches `opus`
    key = key_for(aliased.url, ["claude-haiku*", "haiku"])
    refused = call(aliased.url, "claude-haiku-x", key)
    assert refused.status_code == 403
    assert call(aliased.url, "haiku", key).status_code == 200


def test_an_alias_of_an_allowed_endpoint_is_allowed(aliased):
    key = key_for(aliased.url, ["opus"])
    answered = call(aliased.url, "claude-sonnet-4-5", key)
    assert answered.status_code == 200, answered.text
    assert call(aliased.url, "haiku", key).status_code == 403

"""Consumer keys as Claude Code and the anthropic SDK present them (`x-api-key` from
ANTHROPIC_API_KEY, `Authorization: Bearer` from ANTHROPIC_AUTH_TOKEN) on /v1/messages, with
keys required: the key admits the caller, never reaches the provider, and refusals are
Anthropic-shaped errors the SDK raises as its own classes."""

from __future__ import annotations

import anthropic
import httpx
import pytest

from tests.conftest import launch
from tests.support.anthropic_upstream import MessagesUpstream

ADMIN = "admin-secret-for-anthropic-tests-0123"
PROVIDER_KEY = "sk-ant-provider-secret-for-keys-test"
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def upstream():
    server = MessagesUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory):
    directory = tmp_path_factory.mktemp("anthropic-keys")
    config = f"""
endpoints:
  - name: claude
    endpoint_type: llm/v1/chat
    aliases: ["claude-sonnet-*"]
    model:
      provider: anthropic
      name: claude-text
      config:
        anthropic_api_key: {PROVIDER_KEY}
        anthropic_api_base: {upstream.base}
database_url: sqlite:///{directory}/keys.db
auth:
  admin_key: {ADMIN}
  require_keys: true
"""
    process = launch(directory, config)
    yield process
    process.stop()


def create_key(gateway, **fields) -> str:
    response = httpx.post(
        f"{gateway.url}/admin/v1/keys",
        json={"name": "claude-code", **fields},
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


@pytest.mark.parametrize("presented_as", ["api_key", "auth_token"])
def test_a_gateway_key_admits_and_stays_at_the_gateway(gateway, upstream, presented_as):
    key = create_key(gateway)
    client = anthropic.Anthropic(base_url=gateway.url, max_retries=0, **{presented_as: key})
    answer = client.messages.create(model="claude-sonnet-4-5", max_tokens=8, messages=HI)
    assert answer.content[0].text
    sent = upstream.last().headers
    assert sent["x-api-key"] == PROVIDER_KEY
    assert key not in str(sent)


def test_no_key_is_an_authentication_error(gateway):
    client = anthropic.Anthropic(base_url=gateway.url, api_key="not-a-gateway-key", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as caught:
        client.messages.create(model="claude", max_tokens=8, messages=HI)
    assert caught.value.body["error"]["type"] == "authentication_error"


def test_a_key_outside_its_allowlist_is_a_permission_error(gateway):
    key = create_key(gateway, endpoints=["gpt-*"])
    client = anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0)
    with pytest.raises(anthropic.PermissionDeniedError) as caught:
        client.messages.create(model="claude", max_tokens=8, messages=HI)
    assert caught.value.body["error"]["type"] == "permission_error"

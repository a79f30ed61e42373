"""OpenAI provider in Azure modes: deployment URL, api-version, auth header, no model in body."""

from __future__ import annotations

import httpx
import pytest

CHAT = {"messages": [{"role": "user", "content": "hi"}]}


def azure_endpoint(name: str, api_type: str, base: str) -> str:
    return f"""
  - name: {name}
    endpoint_type: llm/v1/chat
    model:
      provider: azure
      name: gpt-4o
      config:
        openai_api_type: {api_type}
        openai_api_key: azure-secret
        openai_api_base: {base}
        openai_deployment_name: my-deployment
        openai_api_version: "2024-06-01"
"""


@pytest.fixture
def gateway(start_gateway, upstream):
    base = f"http://127.0.0.1:{upstream.port}"
    return start_gateway(
        "endpoints:" + azure_endpoint("az", "azure", base) + azure_endpoint("aad", "azuread", base)
    )


def test_azure_api_key_mode(gateway, upstream):
    reply = httpx.post(f"{gateway.url}/endpoints/az/invocations", json=CHAT).json()
    assert reply["provider"] == "azure"
    sent = upstream.last()
    assert sent.path == "/openai/deployments/my-deployment/chat/completions"
    assert sent.query == "api-version=2024-06-01"
    assert sent.headers["api-key"] == "azure-secret"
    assert "Authorization" not in sent.headers
    assert "model" not in sent.body


def test_azuread_bearer_mode_and_stream(gateway, upstream):
    with httpx.stream(
        "POST", f"{gateway.url}/endpoints/aad/invocations", json={**CHAT, "stream": True}
    ) as response:
        body = response.read().decode()
    assert body.endswith("data: [DONE]\n\n")
    sent = upstream.last()
    assert sent.headers["Authorization"] == "Bearer azure-secret"
    assert sent.body["stream_options"] == {"include_usage": True}

"""MLflow's own deployments client against the gateway."""

from __future__ import annotations

import pytest
from mlflow.deployments import get_deploy_client

from tests.integration.configs import openai_config


@pytest.fixture
def client(start_gateway, upstream):
    limit = "    limit:\n      calls: 100\n      renewal_period: minute\n"
    gateway = start_gateway(openai_config(upstream.base, chat_extra=limit))
    return get_deploy_client(gateway.url)


def test_list_endpoints(client):
    endpoints = client.list_endpoints()
    assert [e.name for e in endpoints] == ["chat", "completions", "embeddings"]
    chat = endpoints[0]
    assert chat.endpoint_type == "llm/v1/chat"
    assert chat.model.provider == "openai"
    assert chat.model.name == "gpt-4o-mini"
    assert chat.limit.calls == 100
    assert chat.endpoint_url.endswith("/gateway/chat/invocations")


def test_get_endpoint(client):
    endpoint = client.get_endpoint("embeddings")
    assert endpoint.endpoint_type == "llm/v1/embeddings"
    assert endpoint.limit is None


def test_predict_chat(client):
    reply = client.predict(endpoint="chat", inputs={"messages": [{"role": "user", "content": "hi"}]})
    assert reply["choices"][0]["message"]["content"] == "Hello from the mock upstream!"
    assert reply["provider"] == "openai"
    assert reply["object"] == "chat.completion"


def test_predict_completions_and_embeddings(client):
    reply = client.predict(endpoint="completions", inputs={"prompt": "hi", "max_tokens": 5})
    assert reply["choices"][0]["text"] == "Hello from the mock upstream!"
    reply = client.predict(endpoint="embeddings", inputs={"input": ["x"]})
    assert reply["data"][0]["embedding"] == [0.5, -0.25, 0.0]

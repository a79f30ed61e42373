"""The `openai` SDK pointed at the gateway, OpenAI upstream behind it."""

from __future__ import annotations

import openai
import pytest

from tests.integration.configs import openai_config, openai_endpoint


@pytest.fixture
def gateway(start_gateway, upstream):
    extra = openai_endpoint("chat-401", "chat", "err-401", upstream.base)
    return start_gateway(openai_config(upstream.base, extra))


@pytest.fixture
def client(gateway):
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="client-key", max_retries=0)


def test_chat(client, upstream):
    reply = client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hi"}], temperature=0.5
    )
    assert reply.choices[0].message.content == "Hello from the mock upstream!"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.total_tokens == 11
    assert reply.model == "gpt-4o-mini-2024"
    sent = upstream.last()
    assert sent.path == "/v1/chat/completions"
    assert sent.body["model"] == "gpt-4o-mini"  # the endpoint's model, not the endpoint name
    assert sent.body["temperature"] == 0.5
    assert sent.headers["Authorization"] == "Bearer sk-test-secret-key"


def test_streaming_chat(client):
    stream = client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from the mock upstream!"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 11
    assert any(c.choices and c.choices[0].finish_reason == "stop" for c in chunks)


def test_completions(client, upstream):
    reply = client.completions.create(model="completions", prompt="Say hello")
    assert reply.choices[0].text == "Hello from the mock upstream!"
    assert reply.usage.total_tokens == 9
    assert upstream.last().body["prompt"] == "Say hello"


def test_streaming_completions(client):
    # MLflow crashes on this one (spec §7.1): the real OpenAI stream carries `text`, not deltas
    chunks = list(client.completions.create(model="completions", prompt="Say hello", stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "Hello from the mock upstream!"


def test_embeddings_float_and_base64(client, upstream):
    # the SDK asks for base64 by default and decodes it
    reply = client.embeddings.create(model="embeddings", input=["a", "b"])
    assert [d.embedding for d in reply.data] == [[0.5, -0.25, 0.0], [0.5, -0.25, 1.0]]
    assert upstream.last().body["encoding_format"] == "base64"
    reply = client.embeddings.create(model="embeddings", input="a", encoding_format="float")
    assert reply.data[0].embedding == [0.5, -0.25, 0.0]
    assert reply.usage.prompt_tokens == 4


def test_models_list(client):
    ids = {m.id for m in client.models.list()}
    assert ids == {"chat", "completions", "embeddings", "chat-401"}


def test_unknown_model_is_404_naming_it(client):
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    assert "nope" in str(info.value)


def test_wrong_endpoint_type_is_400(client):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="embeddings", messages=[{"role": "user", "content": "hi"}])
    assert "Endpoint 'embeddings' is not a chat endpoint." in str(info.value)


def test_upstream_error_keeps_status_and_message_without_the_key(client):
    with pytest.raises(openai.AuthenticationError) as info:
        client.chat.completions.create(model="chat-401", messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 401
    assert "Incorrect API key provided" in info.value.message
    assert "sk-test-secret-key" not in str(info.value.body)


def test_upstream_error_before_stream_is_a_real_status(client):
    with pytest.raises(openai.AuthenticationError):
        list(
            client.chat.completions.create(
                model="chat-401", messages=[{"role": "user", "content": "x"}], stream=True
            )
        )

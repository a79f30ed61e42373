"""The Mistral provider against an emulated api.mistral.ai: the exact upstream request and the
client-visible answer for chat, completions (through the chat API), embeddings, streams and each
error class (spec §7.11)."""

from __future__ import annotations

import json

import openai
import pytest

from tests.conftest import free_port, launch
from tests.providers.mistral_upstream import MistralUpstream
from tests.support.client import invoke, upstream_detail

KEY = "mistral-test-secret"
CHAT = {"messages": [{"role": "user", "content": "hi", "name": "ada"}]}


def endpoint(name: str, model: str, base: str, kind: str = "chat") -> str:
    return f"""
  - name: {name}
    endpoint_type: llm/v1/{kind}
    model:
      provider: mistral
      name: {model}
      config:
        mistral_api_key: {KEY}
        mistral_api_base: {base}
"""


@pytest.fixture(scope="module")
def upstream():
    server = MistralUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory):
    base = upstream.base
    endpoints = [
        endpoint("chat", "mistral-small-latest", base),
        endpoint("thinking", "magistral-thinking", base),
        endpoint("completions", "mistral-small-latest", base, "completions"),
        endpoint("embeddings", "mistral-embed", base, "embeddings"),
        endpoint("err-401", "err-401", base),
        endpoint("err-429", "err-429", base),
        endpoint("err-503-text", "err-503-text", base),
        endpoint("malformed", "malformed", base),
        endpoint("slow", "slow-3000", base),
        endpoint("stream-error", "stream-error", base),
        endpoint("refused", "mistral-small-latest", f"http://127.0.0.1:{free_port()}/v1"),
    ]
    env = {"MLFLOW_GATEWAY_ROUTE_TIMEOUT_SECONDS": "1"}
    process = launch(tmp_path_factory.mktemp("mistral"), "endpoints:" + "".join(endpoints), env=env)
    yield process
    process.stop()


def stream_events(http, name, body):
    with http.stream("POST", f"/endpoints/{name}/invocations", json={**body, "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = response.read().decode()
    events = [event for event in raw.split("\n\n") if event]
    return [json.loads(e[len("data: ") :]) if e != "data: [DONE]" else "[DONE]" for e in events]


def test_chat_request_and_response(http, upstream):
    response = invoke(http, "chat", {**CHAT, "temperature": 0.8, "safe_prompt": True})
    assert response.status_code == 200
    sent = upstream.last()
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["Authorization"] == f"Bearer {KEY}"
    # the configured model first, then the payload as sent: extras and `name` kept, no scaling
    assert sent.body == {"model": "mistral-small-latest", **CHAT, "temperature": 0.8, "safe_prompt": True}
    assert response.json() == {
        "id": "cmpl-e5cc70bb28c444948073e77776eb30ef",
        "object": "chat.completion",
        "created": 1702256327,
        "model": "mistral-small-2503",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Bonjour from Mistral ✓",
                    "tool_calls": None,
                    "refusal": None,
                },
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11},
        "provider": "mistral",
    }


def test_thinking_chunks_are_dropped_from_content(http):
    response = invoke(http, "thinking", CHAT)
    assert response.json()["choices"][0]["message"]["content"] == "Bonjour from Mistral ✓"


def test_chat_stream_split_awkwardly(http, upstream):
    events = stream_events(http, "chat", CHAT)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert upstream.last().body == {"model": "mistral-small-latest", **CHAT, "stream": True}
    assert "stream_options" not in upstream.last().body  # Mistral refuses unknown fields
    assert "".join(c["choices"][0]["delta"]["content"] or "" for c in chunks) == "Bonjour from Mistral ✓"
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(c["object"] == "chat.completion.chunk" and c["provider"] == "mistral" for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"] == {"prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11}


def test_thinking_stream_keeps_only_text(http):
    chunks = stream_events(http, "thinking", CHAT)[:-1]
    assert "".join(c["choices"][0]["delta"]["content"] or "" for c in chunks) == "Bonjour from Mistral ✓"


def test_completions_go_through_the_chat_api(http, upstream):
    body = {"prompt": "Say hi", "temperature": 0.8, "stop": ["\n"], "n": 1, "max_tokens": 20}
    response = invoke(http, "completions", body)
    assert response.status_code == 200
    sent = upstream.last()
    assert sent.path == "/v1/chat/completions"
    # temperature halved, stop and n removed (MLflow's mapping)
    assert sent.body == {
        "model": "mistral-small-latest",
        "messages": [{"role": "user", "content": "Say hi"}],
        "temperature": 0.4,
        "max_tokens": 20,
    }
    reply = response.json()
    assert reply["id"] is None and reply["object"] == "text_completion"
    assert reply["model"] == "mistral-small-latest" and isinstance(reply["created"], int)
    assert reply["choices"] == [{"index": 0, "text": "Bonjour from Mistral ✓", "finish_reason": "stop"}]
    assert reply["usage"] == {"prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11}
    assert "provider" not in reply


def test_completions_stream(http, upstream):
    events = stream_events(http, "completions", {"prompt": "Say hi"})
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert upstream.last().body["messages"] == [{"role": "user", "content": "Say hi"}]
    assert all(c["object"] == "text_completion_chunk" for c in chunks)
    assert "".join(c["choices"][0]["text"] or "" for c in chunks) == "Bonjour from Mistral ✓"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_embeddings_keep_the_upstream_index(http, upstream):
    response = invoke(http, "embeddings", {"input": ["a", "b"]})
    assert response.status_code == 200
    sent = upstream.last()
    assert sent.path == "/v1/embeddings" and sent.headers["Authorization"] == f"Bearer {KEY}"
    assert sent.body == {"model": "mistral-embed", "input": ["a", "b"]}
    assert response.json() == {
        "object": "list",
        "data": [
            {"object": "embedding", "embedding": [0.25, -0.5, 1.0], "index": 1},
            {"object": "embedding", "embedding": [0.25, -0.5, 0.0], "index": 0},
        ],
        "model": "mistral-embed",
        "usage": {"prompt_tokens": 6, "total_tokens": 6},
    }


def test_client_model_is_refused(http):
    response = invoke(http, "chat", {**CHAT, "model": "mistral-large-latest"})
    assert response.status_code == 422
    assert "not permitted" in response.json()["detail"]


def test_upstream_401_passes_through(http):
    response = invoke(http, "err-401", CHAT)
    assert response.status_code == 401
    # a JSON error without an "error" key is passed whole (spec §5.1)
    assert response.json() == {"detail": {"message": "Unauthorized", "request_id": "8e3f2a1b9c7d4e5f"}}


def test_upstream_429_reaches_the_openai_sdk(gateway):
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(model="err-429", messages=CHAT["messages"])
    assert raised.value.status_code == 429
    assert "Mistral says 429" in str(raised.value)


def test_upstream_error_before_a_stream_is_a_status(http):
    response = invoke(http, "err-429", {**CHAT, "stream": True})
    assert response.status_code == 429
    assert response.json()["detail"]["message"] == "Mistral says 429"


def test_upstream_5xx_text(http):
    response = invoke(http, "err-503-text", CHAT)
    assert response.status_code == 503
    message = upstream_detail("err-503-text", "mistral", 503, "upstream overloaded")
    assert response.json() == {"detail": {"message": message}}


def test_malformed_body_is_502(http):
    response = invoke(http, "malformed", CHAT)
    assert response.status_code == 502
    assert "endpoint 'malformed'" in response.json()["detail"]


def test_timeout_is_504_naming_endpoint_and_provider(http):
    response = invoke(http, "slow", CHAT)
    assert response.status_code == 504
    detail = response.json()["detail"]
    assert "endpoint 'slow'" in detail and "mistral" in detail


def test_refused_connection_is_502(http):
    response = invoke(http, "refused", CHAT)
    assert response.status_code == 502 and KEY not in response.text


def test_error_mid_stream_becomes_an_error_event(http):
    events = stream_events(http, "stream-error", CHAT)
    assert events[-1] != "[DONE]"
    assert events[-1]["error"]["message"] == "Service unavailable, please retry"
    assert events[-1]["error"]["code"] == 502


def test_key_never_logged(gateway, http):
    invoke(http, "err-401", CHAT)
    assert KEY not in gateway.log()

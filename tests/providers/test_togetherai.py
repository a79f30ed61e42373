"""The TogetherAI provider against an emulated api.together.xyz: exact upstream requests and
client-visible answers for chat, completions, embeddings, streams and each error class
(spec §7.12), with the §12.14 fixes: no client model override, finish_reason passed through."""

from __future__ import annotations

import openai
import pytest

from tests.conftest import launch
from tests.providers.togetherai_upstream import SERVED_MODEL, TogetherUpstream
from tests.support.client import invoke, stream_events

KEY = "together-test-secret"
MODEL = "meta-llama/Llama-3.3-70B-Instruct-Turbo"
CHAT = {"messages": [{"role": "user", "content": "hi"}]}
USAGE = {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}


def endpoint(name: str, model: str, base: str, kind: str = "chat") -> str:
    return f"""
  - name: {name}
    endpoint_type: llm/v1/{kind}
    model:
      provider: togetherai
      name: {model}
      config:
        togetherai_api_key: {KEY}
        togetherai_api_base: {base}
"""


@pytest.fixture(scope="module")
def upstream():
    server = TogetherUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory):
    base = upstream.base
    endpoints = [
        endpoint("chat", MODEL, base),
        endpoint("legacy-chunks", "legacy-text-chunks", base),
        endpoint("completions", MODEL, base, "completions"),
        endpoint("embeddings", "togethercomputer/m2-bert-80M-8k-retrieval", base, "embeddings"),
        endpoint("err-401", "err-401", base),
        endpoint("err-500", "err-500", base),
        endpoint("malformed", "malformed", base),
        endpoint("slow", "slow-3000", base),
        endpoint("stream-error", "stream-error", base),
    ]
    env = {"MLFLOW_GATEWAY_ROUTE_TIMEOUT_SECONDS": "1"}
    process = launch(tmp_path_factory.mktemp("together"), "endpoints:" + "".join(endpoints), env=env)
    yield process
    process.stop()


def test_chat_request_and_response(http, upstream):
    response = invoke(http, "chat", {**CHAT, "top_logprobs": 2, "repetition_penalty": 1.1})
    assert response.status_code == 200
    sent = upstream.last()
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["Authorization"] == f"Bearer {KEY}"
    # top_logprobs becomes Together's integer logprobs; extras pass through
    assert sent.body == {"model": MODEL, **CHAT, "repetition_penalty": 1.1, "logprobs": 2}
    assert response.json() == {
        "id": "8448080b880415ea-SJC",
        "object": "chat.completion",
        "created": 1715000000,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Hello from Together ✓",
                    "tool_calls": None,
                    "refusal": None,
                },
                "finish_reason": "eos",  # MLflow always returned null
            }
        ],
        "usage": USAGE,
        "provider": "togetherai",
    }


def test_client_cannot_override_the_model(http, upstream):
    before = len(upstream.requests)
    response = invoke(http, "chat", {**CHAT, "model": "some/other-model"})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("The parameter 'model' is not permitted")
    assert len(upstream.requests) == before  # nothing reached Together


def test_logprobs_type_checks(http):
    response = invoke(http, "chat", {**CHAT, "top_logprobs": "two"})
    assert response.status_code == 422
    assert response.json() == {"detail": "Wrong type for top_logprobs. It should a 32bit integer."}
    response = invoke(http, "chat", {**CHAT, "logprobs": 0.5})
    assert response.status_code == 422
    assert response.json() == {"detail": "Wrong type for logprobs. It should be an 32bit integer."}


def test_completions_request_and_response(http, upstream):
    response = invoke(http, "completions", {"prompt": "Once", "max_tokens": 16, "temperature": 0.7})
    assert response.status_code == 200
    sent = upstream.last()
    assert sent.path == "/v1/completions"
    assert sent.body == {"model": MODEL, "prompt": "Once", "max_tokens": 16, "temperature": 0.7}
    assert response.json() == {
        "id": "8448080b880415ea-SJC",
        "object": "text_completion",
        "created": 1715000000,
        "model": MODEL,
        "choices": [{"index": 0, "text": "Hello from Together ✓", "finish_reason": "length"}],
        "usage": USAGE,
    }


def test_completions_require_max_tokens(http):
    expected = {
        "detail": "max_tokens is not present in payload.It is a required parameter for TogetherAI completions."
    }
    response = invoke(http, "completions", {"prompt": "Once"})
    assert response.status_code == 422 and response.json() == expected
    response = invoke(http, "completions", {"prompt": "Once", "stream": True})
    assert response.status_code == 422 and response.json() == expected


def test_chat_stream(http, upstream):
    events = stream_events(http, "chat", CHAT)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert upstream.last().body == {"model": MODEL, **CHAT, "stream": True}
    assert "".join(c["choices"][0]["delta"]["content"] or "" for c in chunks) == "Hello from Together ✓"
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] == "eos"
    assert chunks[-1]["usage"] == USAGE
    assert all(c["provider"] == "togetherai" and c["model"] == SERVED_MODEL for c in chunks)


def test_chat_stream_with_text_only_chunks(http):
    chunks = stream_events(http, "legacy-chunks", CHAT)[:-1]
    assert "".join(c["choices"][0]["delta"]["content"] or "" for c in chunks) == "Hello from Together ✓"


def test_completions_stream(http, upstream):
    events = stream_events(http, "completions", {"prompt": "Once", "max_tokens": 8})
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert upstream.last().body["stream"] is True and upstream.last().path == "/v1/completions"
    assert all(c["object"] == "text_completion_chunk" for c in chunks)
    assert "".join(c["choices"][0]["text"] for c in chunks) == "Hello from Together ✓"
    assert chunks[-1]["choices"][0]["finish_reason"] == "eos"
    assert chunks[-1]["usage"] == USAGE


def test_embeddings_send_the_configured_model(http, upstream):
    response = invoke(http, "embeddings", {"input": ["a", "b"]})
    assert response.status_code == 200
    sent = upstream.last()
    assert sent.path == "/v1/embeddings" and sent.headers["Authorization"] == f"Bearer {KEY}"
    assert sent.body == {"model": "togethercomputer/m2-bert-80M-8k-retrieval", "input": ["a", "b"]}
    assert response.json() == {
        "object": "list",
        "data": [
            {"object": "embedding", "embedding": [0.5, 1.0], "index": 1},
            {"object": "embedding", "embedding": [0.5, 0.0], "index": 0},
        ],
        "model": "togethercomputer/m2-bert-80M-8k-retrieval",
        "usage": {"prompt_tokens": None, "total_tokens": None},
    }


def test_upstream_401_carries_togethers_message(http):
    response = invoke(http, "err-401", CHAT)
    assert response.status_code == 401 and response.json() == {"detail": "Together says 401"}


def test_upstream_5xx_through_the_openai_sdk(gateway):
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.InternalServerError) as raised:
        client.chat.completions.create(model="err-500", messages=CHAT["messages"])
    assert raised.value.status_code == 500 and "Together says 500" in str(raised.value)


def test_malformed_body_is_502(http):
    response = invoke(http, "malformed", CHAT)
    assert response.status_code == 502 and "endpoint 'malformed'" in response.json()["detail"]


def test_timeout_is_504_naming_endpoint_and_provider(http):
    response = invoke(http, "slow", CHAT)
    assert response.status_code == 504
    assert "endpoint 'slow'" in response.json()["detail"] and "togetherai" in response.json()["detail"]


def test_error_mid_stream_becomes_an_error_event(http):
    events = stream_events(http, "stream-error", CHAT)
    assert events[-1] != "[DONE]"
    assert events[-1]["error"]["message"] == "The model is overloaded"

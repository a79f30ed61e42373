"""LiteLLM (spec §7.16) through the real `litellm` package against the emulated OpenAI upstream
(tests/support/openai_upstream.py): LiteLLM's `openai` provider with `api_key` and `api_base`
from `litellm_auth_config`. The exact upstream requests (path, bearer key, body with the model),
the client-visible answers on `/endpoints/{name}/invocations` and through the openai SDK on
`/v1`, the refused destination keys, error statuses, timeouts, masked keys, and a gateway
without the `litellm` extra (every call a 501 naming it)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
from types import SimpleNamespace

import httpx
import openai
import pytest

from gateway.config import parse_config
from gateway.errors import ConfigError, NotImplementedByProvider
from gateway.providers import provider_class
from gateway.providers.litellm import NOT_INSTALLED
from gateway.types import CHAT as CHAT_TYPE
from tests.conftest import launch
from tests.support.client import invoke, stream_events

# (not importorskip: importing litellm here without LITELLM_LOCAL_MODEL_COST_MAP would go online)
pytestmark = pytest.mark.skipif(importlib.util.find_spec("litellm") is None, reason="needs gateway[litellm]")

CHAT = {"messages": [{"role": "user", "content": "hi"}]}
REPLY = "Hello from the mock upstream!"
KEY = "sk-litellm-test-secret"
USAGE = {
    "prompt_tokens": 5,
    "completion_tokens": 6,
    "total_tokens": 11,
    "prompt_tokens_details": {"cached_tokens": 0},
}
REFUSED = "the upstream destination is fixed by the endpoint configuration."


def endpoint(name: str, kind: str, model: str, auth: str, provider: str | None = "openai") -> str:
    provider_line = f"\n        litellm_provider: {provider}" if provider else ""
    return f"""
  - name: {name}
    endpoint_type: llm/v1/{kind}
    model:
      provider: litellm
      name: {model}
      config:{provider_line}
        litellm_auth_config: {auth}
"""


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory):
    auth = f"{{api_key: $LITELLM_TEST_KEY, api_base: '{upstream.base}', auth_mode: api_key}}"
    # no client retries for the error cases, so each reaches the upstream once
    no_retries = f"{{api_key: {KEY}, api_base: '{upstream.base}', max_retries: 0}}"
    endpoints = [
        endpoint("chat", "chat", "gpt-4o-mini", auth),
        endpoint("embeddings", "embeddings", "text-embedding-3-small", auth),
        endpoint("completions", "completions", "gpt-4o-mini", auth),
        endpoint("prefixed", "chat", "openai/gpt-4o", auth, provider=None),
        endpoint("err-401", "chat", "err-401", no_retries),
        endpoint("err-429", "chat", "err-429", no_retries),
        endpoint("slow", "chat", "slow-5000", no_retries),
        endpoint("stream-error", "chat", "stream-error-event", no_retries),
    ]
    # LiteLLM's first call in a process loads more of it: leave it time on a busy machine
    env = {"LITELLM_TEST_KEY": KEY, "MLFLOW_GATEWAY_ROUTE_TIMEOUT_SECONDS": "3"}
    process = launch(tmp_path_factory.mktemp("litellm"), "endpoints:" + "".join(endpoints), env=env)
    yield process
    process.stop()


def test_chat(http, upstream):
    response = invoke(http, "chat", {**CHAT, "temperature": 0.3, "max_tokens": 20})
    assert response.status_code == 200
    sent = upstream.last()
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["Authorization"] == f"Bearer {KEY}"
    assert sent.body == {"model": "gpt-4o-mini", **CHAT, "temperature": 0.3, "max_tokens": 20}
    assert response.json() == {
        "id": "chatcmpl-123",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-mini-2024",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": REPLY, "tool_calls": None, "refusal": None},
                "finish_reason": "stop",
            }
        ],
        "usage": USAGE,
        "provider": "litellm",
    }


def test_model_string_without_litellm_provider(http, upstream):
    assert invoke(http, "prefixed", CHAT).status_code == 200
    # "openai/gpt-4o" is LiteLLM's model string as written: provider openai, model gpt-4o
    assert upstream.last().body == {"model": "gpt-4o", **CHAT}


def test_chat_stream(http, upstream):
    events = stream_events(http, "chat", CHAT)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    sent = upstream.last()
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["Authorization"] == f"Bearer {KEY}"
    assert sent.body == {
        "model": "gpt-4o-mini",
        **CHAT,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert "".join(c["choices"][0]["delta"]["content"] or "" for c in chunks) == REPLY
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(c["provider"] == "litellm" and c["object"] == "chat.completion.chunk" for c in chunks)
    # the client did not ask for a usage chunk: the usage rides on the finish_reason chunk
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"] == {"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11}


def test_chat_stream_with_usage_chunk(http, upstream):
    events = stream_events(http, "chat", {**CHAT, "stream_options": {"include_usage": True}})
    assert events[-1] == "[DONE]"
    assert events[-2]["choices"] == []
    assert events[-2]["usage"]["total_tokens"] == 11


def test_embeddings(http, upstream):
    response = invoke(http, "embeddings", {"input": ["a", "b"]})
    assert response.status_code == 200
    sent = upstream.last()
    assert sent.path == "/v1/embeddings"
    assert sent.headers["Authorization"] == f"Bearer {KEY}"
    assert sent.body == {"model": "text-embedding-3-small", "input": ["a", "b"]}
    assert response.json() == {
        "object": "list",
        "data": [
            {"object": "embedding", "embedding": [0.5, -0.25, 0.0], "index": 0},
            {"object": "embedding", "embedding": [0.5, -0.25, 1.0], "index": 1},
        ],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 4, "total_tokens": 4},
    }


def test_openai_sdk_through_v1(gateway, upstream):
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)
    reply = client.chat.completions.create(model="chat", messages=CHAT["messages"])
    assert reply.choices[0].message.content == REPLY and reply.usage.total_tokens == 11
    stream = client.chat.completions.create(model="chat", messages=CHAT["messages"], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == REPLY
    vectors = client.embeddings.create(model="embeddings", input="a")
    assert vectors.data[0].embedding == [0.5, -0.25, 0.0]
    # the SDK asks for base64 vectors: LiteLLM passes that on, and the SDK decodes the answer
    assert upstream.last().body == {
        "model": "text-embedding-3-small",
        "input": "a",
        "encoding_format": "base64",
    }


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"api_base": "http://attacker.invalid/v1"}, "'api_base'"),
        ({"base_url": "http://x", "fallbacks": ["gpt-4o"]}, "'base_url', 'fallbacks'"),
        ({"model_list": [], "custom_llm_provider": "azure"}, "'custom_llm_provider', 'model_list'"),
    ],
)
def test_destination_keys_are_refused(http, upstream, extra, named):
    before = len(upstream.requests)
    response = invoke(http, "chat", {**CHAT, **extra})
    assert response.status_code == 400
    assert response.json() == {"detail": f"The request must not set {named}: {REFUSED}"}
    with http.stream(
        "POST", "/endpoints/chat/invocations", json={**CHAT, **extra, "stream": True}
    ) as streamed:
        assert streamed.status_code == 400
    assert len(upstream.requests) == before


def test_completions_answer_mlflows_501(http):
    response = invoke(http, "completions", {"prompt": "Once"})
    assert response.status_code == 501
    assert response.json() == {"detail": "The completions route is not implemented for LiteLLM models."}


def test_client_model_is_refused(http):
    response = invoke(http, "chat", {**CHAT, "model": "gpt-4o"})
    assert response.status_code == 422 and "not permitted" in response.json()["detail"]


def test_upstream_status_passes_through(http, upstream):
    before = len(upstream.requests)
    response = invoke(http, "err-401", CHAT)
    assert response.status_code == 401
    assert "Incorrect API key provided: sk-***" in response.json()["detail"]
    assert len(upstream.requests) == before + 1


def test_rate_limit_reaches_the_openai_sdk(gateway):
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(model="err-429", messages=CHAT["messages"])
    assert "Rate limit reached for requests" in str(raised.value)


def test_stream_error_before_the_first_chunk_is_a_real_status(http):
    with http.stream("POST", "/endpoints/err-401/invocations", json={**CHAT, "stream": True}) as response:
        assert response.status_code == 401
        assert "Incorrect API key provided" in json.loads(response.read())["detail"]


def test_error_mid_stream_becomes_an_error_event(http):
    events = stream_events(http, "stream-error", CHAT)
    assert events[-1] != "[DONE]"
    assert events[0]["choices"][0]["delta"]["content"] == "Hello"
    assert "The server had an error" in events[-1]["error"]["message"]


def test_timeout_is_504_naming_endpoint_and_provider(http):
    response = invoke(http, "slow", CHAT)
    assert response.status_code == 504
    assert response.json() == {"detail": "endpoint 'slow' (provider litellm) did not answer within 3s."}


def test_key_never_logged_or_answered(gateway, http):
    assert KEY not in invoke(http, "err-401", CHAT).text
    assert KEY not in gateway.log()


# -- config --------------------------------------------------------------------------------
def config_for(kind: str, config: str) -> str:
    return f"""
endpoints:
  - name: e
    endpoint_type: llm/v1/{kind}
    model:
      provider: litellm
      name: m
      config: {config}
"""


def test_auth_config_is_resolved_as_mlflow_does(monkeypatch):
    monkeypatch.setenv("LT_KEY", "from-env")
    config = "{litellm_provider: databricks, litellm_auth_config: {api_key: $LT_KEY, auth_mode: pat, api_base: 'https://w.net/'}, other: 1}"
    loaded = parse_config(config_for("chat", config))
    endpoint_config = loaded.endpoints[0]
    assert endpoint_config.unavailable is None and loaded.warnings == ()
    assert endpoint_config.provider_config.litellm_auth_config == {
        "api_key": "from-env",
        "api_base": "https://w.net/serving-endpoints",
    }
    config = (
        "{litellm_provider: databricks, litellm_auth_config: {api_base: 'https://w.net/serving-endpoints'}}"
    )
    loaded = parse_config(config_for("chat", config))
    assert loaded.endpoints[0].provider_config.litellm_auth_config == {
        "api_base": "https://w.net/serving-endpoints"
    }


def test_unset_key_variable_is_a_config_error(monkeypatch):
    monkeypatch.delenv("LT_MISSING", raising=False)
    with pytest.raises(
        ConfigError,
        match=r"model\.config\.litellm_auth_config\.api_key: Environment variable 'LT_MISSING' is not set",
    ):
        parse_config(config_for("chat", "{litellm_auth_config: {api_key: $LT_MISSING}}"))


def test_config_may_be_empty():
    endpoint_config = parse_config(config_for("embeddings", "{}")).endpoints[0]
    assert endpoint_config.provider_config.litellm_provider is None
    assert endpoint_config.unavailable is None


def test_completions_load_with_mlflows_501():
    loaded = parse_config(config_for("completions", "{}"))
    assert loaded.endpoints[0].unavailable == "The completions route is not implemented for LiteLLM models."
    assert len(loaded.warnings) == 1


# -- without the extra ---------------------------------------------------------------------
HIDE_LITELLM = """
import sys

# `import litellm` fails and importlib.util.find_spec("litellm") is None, as without the extra
sys.modules["litellm"] = None
"""


def test_without_the_extra_every_call_answers_501(tmp_path, upstream):
    hide = tmp_path / "hide-litellm"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(HIDE_LITELLM)
    pythonpath = os.pathsep.join(p for p in (str(hide), os.environ.get("PYTHONPATH")) if p)
    config = "endpoints:" + endpoint(
        "chat", "chat", "gpt-4o-mini", f"{{api_key: {KEY}, api_base: '{upstream.base}'}}"
    )
    process = launch(tmp_path, config, env={"PYTHONPATH": pythonpath})
    try:
        client = openai.OpenAI(base_url=f"{process.url}/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.APIStatusError) as raised:
            client.chat.completions.create(model="chat", messages=CHAT["messages"])
        assert raised.value.status_code == 501
        with httpx.Client(base_url=process.url, timeout=20) as http:
            response = invoke(http, "chat", CHAT)
            assert response.status_code == 501
            assert response.json() == {"detail": NOT_INSTALLED}
            assert "pip install 'gateway[litellm]'" in response.json()["detail"]
            streamed = http.post("/endpoints/chat/invocations", json={**CHAT, "stream": True})
            assert streamed.status_code == 501 and streamed.json() == {"detail": NOT_INSTALLED}
        assert NOT_INSTALLED in process.log()
    finally:
        process.stop()


# -- translation, with a stand-in for the litellm module ------------------------------------
class FakeTimeout(Exception):
    status_code = 408


class FakeConnectionError(Exception):
    status_code = 500


class FakeStatusError(Exception):
    def __init__(self, message, status_code):
        super().__init__(message)
        self.status_code = status_code


def ns(**fields):
    return SimpleNamespace(**fields)


CALL = ns(id="call_1", type="function", function=ns(name="get_weather", arguments='{"city": "Oslo"}'))


class FakeLiteLLM(SimpleNamespace):
    def __init__(self):
        super().__init__(Timeout=FakeTimeout, APIConnectionError=FakeConnectionError, calls=[])

    async def acompletion(self, **kwargs):
        self.calls.append(kwargs)
        if kwargs.get("stream"):
            return self.chunks()
        message = ns(role="assistant", content=None, tool_calls=[CALL])
        usage = ns(
            prompt_tokens=9, completion_tokens=3, total_tokens=12, prompt_tokens_details=ns(cached_tokens=4)
        )
        choice = ns(index=0, message=message, finish_reason="tool_calls")
        return ns(id="r1", created=1700000001, model="claude-x", choices=[choice], usage=usage)

    async def chunks(self):
        delta = ns(role="assistant", content=None, tool_calls=[ns(index=None, **vars(CALL))])
        yield ns(id="s1", created=1, model="claude-x", choices=[ns(index=0, delta=delta, finish_reason=None)])
        usage = ns(prompt_tokens=9, completion_tokens=3, total_tokens=12, prompt_tokens_details=None)
        done = ns(index=0, delta=ns(role=None, content=None, tool_calls=None), finish_reason="tool_calls")
        yield ns(id="s1", created=1, model="claude-x", choices=[done], usage=usage)


@pytest.fixture
def fake(monkeypatch):
    from gateway.providers import litellm as module

    stand_in = FakeLiteLLM()
    monkeypatch.setattr(module, "_LITELLM", stand_in)
    config = "{litellm_provider: anthropic, litellm_auth_config: {api_key: sk-ant-very-secret, api_base: 'http://h'}}"
    endpoint_config = parse_config(config_for("chat", config)).endpoints[0]
    return provider_class(endpoint_config.provider)(endpoint_config, None), stand_in


def test_tool_calls_and_cached_tokens(fake):
    provider, stand_in = fake
    reply = asyncio.run(provider.invoke(CHAT_TYPE, {**CHAT, "tools": [], "stream": False, "top_p": None}))
    assert stand_in.calls[-1] == {
        "model": "anthropic/m",
        **CHAT,
        "tools": [],
        "stream": False,
        "api_key": "sk-ant-very-secret",
        "api_base": "http://h",
    }
    assert reply.choices[0].message.tool_calls == [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
        }
    ]
    assert reply.choices[0].finish_reason == "tool_calls"
    assert reply.usage == {
        "prompt_tokens": 9,
        "completion_tokens": 3,
        "total_tokens": 12,
        "prompt_tokens_details": {"cached_tokens": 4},
    }


def test_stream_tool_call_deltas_and_usage(fake):
    provider, stand_in = fake

    async def collect():
        stream = await provider.open_stream(CHAT_TYPE, {**CHAT, "stream": True})
        return [chunk async for batch in stream for chunk in batch]

    chunks = asyncio.run(collect())
    assert stand_in.calls[-1]["stream"] is True
    assert stand_in.calls[-1]["stream_options"] == {"include_usage": True}
    assert chunks[0].choices[0].delta.tool_calls == [
        {
            "index": 0,
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
        }
    ]
    assert chunks[0].usage is None
    assert chunks[1].usage == {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}


@pytest.mark.parametrize(
    ("error", "status", "detail"),
    [
        (
            FakeStatusError("AuthenticationError: bad key sk-ant-very-secret", 401),
            401,
            "AuthenticationError: bad key ***",
        ),
        (FakeStatusError("RateLimitError: slow down", 429), 429, "RateLimitError: slow down"),
        (
            FakeTimeout("Request timed out"),
            504,
            "endpoint 'e' (provider litellm) timed out: Request timed out",
        ),
        (
            FakeConnectionError("connection refused"),
            502,
            "endpoint 'e' (provider litellm) failed: connection refused",
        ),
        (RuntimeError("something odd"), 502, "endpoint 'e' (provider litellm) failed: something odd"),
    ],
)
def test_litellm_errors(fake, error, status, detail):
    provider, _ = fake
    mapped = provider._error(error)
    assert (mapped.status, mapped.detail) == (status, detail)


def test_a_broken_install_fails_only_its_endpoint(monkeypatch):
    from gateway.providers import litellm as module

    def broken():
        raise ImportError("cannot import name 'x' from 'tokenizers'")

    monkeypatch.setattr(module, "load_litellm", broken)
    endpoint_config = parse_config(config_for("chat", "{}")).endpoints[0]
    provider = provider_class(endpoint_config.provider)(endpoint_config, None)
    with pytest.raises(NotImplementedByProvider) as raised:
        asyncio.run(provider.invoke(CHAT_TYPE, CHAT))
    assert raised.value.message == (
        "The `litellm` package could not be imported: ImportError: cannot import name 'x' from 'tokenizers'"
    )

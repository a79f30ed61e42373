"""Portkey (spec §7.13) against an emulated OpenAI-format upstream at Portkey's `/v1` layout:
the exact upstream requests (URL, the `x-portkey-*` headers, the upstream key as bearer only when
configured, body with the configured model), responses, streams, embeddings, errors, and the
completions endpoint that loads but answers MLflow's 501."""

from __future__ import annotations

import openai
import pytest

from gateway.config import parse_config
from gateway.errors import ConfigError
from gateway.providers import provider_class
from gateway.types import CHAT as CHAT_TYPE
from gateway.types import EMBEDDINGS
from tests.conftest import launch
from tests.providers.openai_compatible_upstream import CompatibleUpstream
from tests.support.client import invoke, stream_events, upstream_detail

CHAT = {"messages": [{"role": "user", "content": "hi"}]}
REPLY = "Hello from the mock upstream!"
PORTKEY_KEY = "pk-portkey-secret"
UPSTREAM_KEY = "sk-upstream-secret"
FULL = {
    "x-portkey-api-key": PORTKEY_KEY,
    "x-portkey-provider": "openai",
    "x-portkey-config": "pc-routing-1",
    "Authorization": f"Bearer {UPSTREAM_KEY}",
}


def endpoint(name: str, kind: str, model: str, config: str) -> str:
    return f"""
  - name: {name}
    endpoint_type: llm/v1/{kind}
    model:
      provider: portkey
      name: "{model}"
      config: {config}
"""


@pytest.fixture(scope="module")
def upstream():
    server = CompatibleUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory):
    base = f"{upstream.url}/v1"
    full = (
        f"{{api_key: $PORTKEY_TEST_KEY, api_base: '{base}', portkey_provider: openai, "
        "portkey_config: pc-routing-1, provider_api_key: $PORTKEY_UPSTREAM_KEY}"
    )
    minimal = f"{{api_key: {PORTKEY_KEY}, api_base: '{base}'}}"
    endpoints = [
        endpoint("chat", "chat", "gpt-4o-mini", full),
        endpoint("catalog-chat", "chat", "@openai-prod/gpt-4o-mini", minimal),
        endpoint("embeddings", "embeddings", "text-embedding-3-small", full),
        endpoint("completions", "completions", "gpt-4o-mini", full),
        endpoint("err-401", "chat", "err-401", minimal),
        endpoint("err-503", "chat", "err-503-text", minimal),
        endpoint("stream-error", "chat", "stream-error-event", minimal),
    ]
    env = {"PORTKEY_TEST_KEY": PORTKEY_KEY, "PORTKEY_UPSTREAM_KEY": UPSTREAM_KEY}
    process = launch(tmp_path_factory.mktemp("portkey"), "endpoints:" + "".join(endpoints), env=env)
    yield process
    process.stop()


def assert_headers(sent, expected):
    portkey = {k: v for k, v in sent.headers.items() if k.lower().startswith("x-portkey-")}
    assert portkey == {k: v for k, v in expected.items() if k.startswith("x-portkey-")}
    if "Authorization" in expected:
        assert sent.headers["Authorization"] == expected["Authorization"]
    else:
        assert "Authorization" not in sent.headers


def test_chat_sends_every_portkey_header(http, upstream):
    response = invoke(http, "chat", {**CHAT, "temperature": 0.3, "max_tokens": 20})
    assert response.status_code == 200
    sent = upstream.last()
    assert sent.path == "/v1/chat/completions" and sent.query == ""
    assert_headers(sent, FULL)
    assert sent.body == {"model": "gpt-4o-mini", **CHAT, "temperature": 0.3, "max_tokens": 20}
    reply = response.json()
    assert reply["provider"] == "portkey" and reply["model"] == "gpt-4o-mini-2024"
    assert reply["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": REPLY, "tool_calls": None, "refusal": None},
            "finish_reason": "stop",
        }
    ]
    assert reply["usage"]["total_tokens"] == 11


def test_model_catalog_name_needs_only_the_portkey_key(http, upstream):
    assert invoke(http, "catalog-chat", CHAT).status_code == 200
    sent = upstream.last()
    # no upstream key configured: no Authorization header, no routing headers
    assert_headers(sent, {"x-portkey-api-key": PORTKEY_KEY})
    assert sent.body == {"model": "@openai-prod/gpt-4o-mini", **CHAT}


def test_chat_stream(http, upstream):
    events = stream_events(http, "chat", CHAT)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    sent = upstream.last()
    assert sent.path == "/v1/chat/completions"
    assert_headers(sent, FULL)
    assert sent.body == {
        "model": "gpt-4o-mini",
        **CHAT,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert "".join(c["choices"][0]["delta"]["content"] or "" for c in chunks if c["choices"]) == REPLY
    assert all(c["provider"] == "portkey" for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_embeddings(http, upstream):
    response = invoke(http, "embeddings", {"input": ["a", "b"]})
    assert response.status_code == 200
    sent = upstream.last()
    assert sent.path == "/v1/embeddings"
    assert_headers(sent, FULL)
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


def test_openai_sdk_through_v1(gateway):
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)
    stream = client.chat.completions.create(model="chat", messages=CHAT["messages"], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == REPLY
    vectors = client.embeddings.create(model="embeddings", input="a")
    assert vectors.data[0].embedding == [0.5, -0.25, 0.0]


def test_completions_answer_mlflows_501(http, upstream):
    before = len(upstream.requests)
    response = invoke(http, "completions", {"prompt": "Once"})
    assert response.status_code == 501
    assert response.json() == {"detail": "The completions route is not implemented for Portkey models."}
    assert len(upstream.requests) == before


def test_client_model_is_refused(http):
    response = invoke(http, "chat", {**CHAT, "model": "gpt-4o"})
    assert response.status_code == 422 and "not permitted" in response.json()["detail"]


def test_upstream_errors(http):
    response = invoke(http, "err-401", CHAT)
    assert response.status_code == 401
    assert response.json() == {"detail": "Incorrect API key provided: sk-***"}
    response = invoke(http, "err-503", CHAT)
    message = upstream_detail("err-503", "portkey", 503, "upstream overloaded")
    assert response.status_code == 503 and response.json() == {"detail": {"message": message}}


def test_error_mid_stream_becomes_an_error_event(http):
    events = stream_events(http, "stream-error", CHAT)
    assert events[-1] != "[DONE]"
    assert events[-1]["error"]["message"] == "The server had an error"


def test_keys_never_logged(gateway, http):
    invoke(http, "err-401", CHAT)
    log = gateway.log()
    assert PORTKEY_KEY not in log and UPSTREAM_KEY not in log


def config_for(kind: str, config: str) -> str:
    return f"""
endpoints:
  - name: e
    endpoint_type: llm/v1/{kind}
    model:
      provider: portkey
      name: m
      config: {config}
"""


def built(kind: str, config: str):
    endpoint_config = parse_config(config_for(kind, config)).endpoints[0]
    return provider_class(endpoint_config.provider)(endpoint_config, None)


def test_default_base_and_headers():
    provider = built("chat", "{api_key: k}")
    assert provider.urls[CHAT_TYPE] == "https://api.portkey.ai/v1/chat/completions"
    assert provider.urls[EMBEDDINGS] == "https://api.portkey.ai/v1/embeddings"
    assert provider.headers == {"Content-Type": "application/json", "x-portkey-api-key": "k"}


def test_secrets_are_resolved(monkeypatch, tmp_path):
    monkeypatch.setenv("PK_KEY", "from-env")
    key_file = tmp_path / "upstream.key"
    key_file.write_text("from-file\n")
    provider = built("chat", f"{{api_key: $PK_KEY, provider_api_key: '{key_file}', unknown: 1}}")
    assert provider.headers["x-portkey-api-key"] == "from-env"
    assert provider.headers["Authorization"] == "Bearer from-file"


def test_api_key_is_required():
    with pytest.raises(ConfigError, match=r"model\.config\.api_key: Field required"):
        parse_config(config_for("chat", "{portkey_provider: openai}"))


def test_completions_load_with_a_warning():
    loaded = parse_config(config_for("completions", "{api_key: k}"))
    assert loaded.endpoints[0].unavailable == "The completions route is not implemented for Portkey models."
    assert len(loaded.warnings) == 1
    assert parse_config(config_for("embeddings", "{api_key: k}")).endpoints[0].unavailable is None

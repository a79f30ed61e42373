"""Groq, DeepSeek, xAI, Ollama and OpenRouter (spec §7.13) against one emulated OpenAI-format
upstream at each provider's path layout: exact upstream requests (URL, auth, body with the
configured model), responses, awkwardly split streams, error classes, and the endpoint types each
provider really serves (the rest refused at load)."""

from __future__ import annotations

import openai
import pytest

from gateway.config import parse_config
from gateway.errors import ConfigError
from gateway.providers import provider_class
from gateway.types import CHAT as CHAT_TYPE
from gateway.types import COMPLETIONS, EMBEDDINGS
from tests.conftest import launch
from tests.providers.openai_compatible_upstream import CompatibleUpstream
from tests.support.client import invoke, stream_events, upstream_detail
from tests.support.contract import check_stream_contract

CHAT = {"messages": [{"role": "user", "content": "hi"}]}
REPLY = "Hello from the mock upstream!"
# provider -> (path prefix at the upstream, key, model)
PROVIDERS = {
    "groq": ("/openai/v1", "gsk-test-secret", "llama-3.3-70b-versatile"),
    "deepseek": ("", "sk-deepseek-secret", "deepseek-chat"),
    "xai": ("/v1", "xai-test-secret", "grok-3"),
    "ollama": ("/v1", "ollama", "llama3.2"),
    "openrouter": ("/api/v1", "sk-or-test-secret", "openai/gpt-4o-mini"),
}
SERVES_ALL = ("xai", "ollama", "openrouter")


def endpoint(name: str, provider: str, kind: str, model: str, base: str, key: str | None) -> str:
    key_line = f"\n        api_key: {key}" if key is not None else ""
    return f"""
  - name: {name}
    endpoint_type: llm/v1/{kind}
    model:
      provider: {provider}
      name: {model}
      config:
        api_base: {base}{key_line}
"""


@pytest.fixture(scope="module")
def upstream():
    server = CompatibleUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory):
    endpoints = []
    for provider, (prefix, key, model) in PROVIDERS.items():
        base = upstream.url + prefix
        # Ollama's default key means "no auth": leave it out of the config
        config_key = None if provider == "ollama" else key
        kinds = ("chat", "completions", "embeddings") if provider in SERVES_ALL else ("chat",)
        endpoints += [
            endpoint(f"{provider}-{kind}", provider, kind, model, base, config_key) for kind in kinds
        ]
    url = upstream.url
    endpoints += [
        endpoint("ollama-keyed", "ollama", "chat", "llama3.2", f"{url}/v1", "ollama-cloud-secret"),
        endpoint("groq-401", "Groq", "chat", "err-401", f"{url}/openai/v1", "gsk-test-secret"),
        endpoint("deepseek-429", "deepseek", "chat", "err-429", url, "sk-deepseek-secret"),
        endpoint("xai-503", "XAI", "chat", "err-503-text", f"{url}/v1", "xai-test-secret"),
        endpoint("openrouter-malformed", "openrouter", "chat", "malformed", f"{url}/api/v1", "sk-or"),
        endpoint("ollama-slow", "ollama", "chat", "slow-3000", f"{url}/v1", None),
        endpoint("openrouter-stream-error", "openrouter", "chat", "stream-error-event", f"{url}/api/v1", "k"),
    ]
    env = {"MLFLOW_GATEWAY_ROUTE_TIMEOUT_SECONDS": "1"}
    process = launch(tmp_path_factory.mktemp("compatible"), "endpoints:" + "".join(endpoints), env=env)
    yield process
    process.stop()


def assert_auth(sent, provider):
    key = PROVIDERS[provider][1]
    if provider == "ollama":
        assert "Authorization" not in sent.headers
    else:
        assert sent.headers["Authorization"] == f"Bearer {key}"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_chat(http, upstream, provider):
    prefix, _, model = PROVIDERS[provider]
    response = invoke(http, f"{provider}-chat", {**CHAT, "temperature": 0.3, "seed": 7})
    assert response.status_code == 200
    sent = upstream.last()
    assert sent.path == f"{prefix}/chat/completions" and sent.query == ""
    assert_auth(sent, provider)
    assert sent.body == {"model": model, **CHAT, "temperature": 0.3, "seed": 7}
    reply = response.json()
    assert reply["provider"] == provider and reply["model"] == f"{model}-2024"
    assert reply["choices"][0]["message"] == {
        "role": "assistant",
        "content": REPLY,
        "tool_calls": None,
        "refusal": None,
    }
    assert reply["choices"][0]["finish_reason"] == "stop"
    assert reply["usage"]["total_tokens"] == 11


@pytest.mark.parametrize("provider", PROVIDERS)
def test_chat_stream(http, upstream, provider):
    prefix, _, model = PROVIDERS[provider]
    events = stream_events(http, f"{provider}-chat", CHAT)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    sent = upstream.last()
    assert sent.path == f"{prefix}/chat/completions"
    assert sent.body == {"model": model, **CHAT, "stream": True, "stream_options": {"include_usage": True}}
    assert "".join(c["choices"][0]["delta"]["content"] or "" for c in chunks if c["choices"]) == REPLY
    assert all(c["provider"] == provider for c in chunks)
    # the gateway asked the upstream for usage; the client, which did not, gets it on the finish chunk
    assert check_stream_contract(chunks)["total_tokens"] == 11
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize("provider", SERVES_ALL)
def test_completions_and_stream(http, upstream, provider):
    prefix, _, model = PROVIDERS[provider]
    response = invoke(http, f"{provider}-completions", {"prompt": "Once", "max_tokens": 5})
    assert response.status_code == 200
    sent = upstream.last()
    assert sent.path == f"{prefix}/completions"
    assert_auth(sent, provider)
    assert sent.body == {"model": model, "prompt": "Once", "max_tokens": 5}
    assert response.json()["choices"] == [{"index": 0, "text": REPLY, "finish_reason": "length"}]
    events = stream_events(http, f"{provider}-completions", {"prompt": "Once"})
    assert events[-1] == "[DONE]"
    assert "".join(c["choices"][0]["text"] for c in events[:-1] if c["choices"]) == REPLY


@pytest.mark.parametrize("provider", SERVES_ALL)
def test_embeddings(http, upstream, provider):
    prefix, _, model = PROVIDERS[provider]
    response = invoke(http, f"{provider}-embeddings", {"input": ["a", "b"]})
    assert response.status_code == 200
    sent = upstream.last()
    assert sent.path == f"{prefix}/embeddings"
    assert_auth(sent, provider)
    assert sent.body == {"model": model, "input": ["a", "b"]}
    assert response.json() == {
        "object": "list",
        "data": [
            {"object": "embedding", "embedding": [0.5, -0.25, 0.0], "index": 0},
            {"object": "embedding", "embedding": [0.5, -0.25, 1.0], "index": 1},
        ],
        "model": model,
        "usage": {"prompt_tokens": 4, "total_tokens": 4},
    }


def test_ollama_with_a_real_key_sends_it(http, upstream):
    assert invoke(http, "ollama-keyed", CHAT).status_code == 200
    assert upstream.last().headers["Authorization"] == "Bearer ollama-cloud-secret"


def test_openai_sdk_stream_through_v1(gateway):
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)
    stream = client.chat.completions.create(model="openrouter-chat", messages=CHAT["messages"], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == REPLY


def test_client_model_is_refused(http):
    response = invoke(http, "groq-chat", {**CHAT, "model": "llama-3.1-8b-instant"})
    assert response.status_code == 422 and "not permitted" in response.json()["detail"]


def test_upstream_401_carries_the_message(http):
    response = invoke(http, "groq-401", CHAT)
    assert response.status_code == 401
    assert response.json() == {"detail": "Incorrect API key provided: sk-***"}


def test_upstream_429_reaches_the_openai_sdk(gateway):
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(model="deepseek-429", messages=CHAT["messages"])
    assert "Rate limit reached for requests" in str(raised.value)


def test_upstream_5xx_text(http):
    response = invoke(http, "xai-503", CHAT)
    message = upstream_detail("xai-503", "xai", 503, "upstream overloaded")
    assert response.status_code == 503 and response.json() == {"detail": {"message": message}}


def test_malformed_body_is_502(http):
    response = invoke(http, "openrouter-malformed", CHAT)
    assert response.status_code == 502
    assert "endpoint 'openrouter-malformed'" in response.json()["detail"]


def test_timeout_is_504_naming_endpoint_and_provider(http):
    response = invoke(http, "ollama-slow", CHAT)
    assert response.status_code == 504
    detail = response.json()["detail"]
    assert "endpoint 'ollama-slow'" in detail and "ollama" in detail


def test_error_mid_stream_becomes_an_error_event(http):
    events = stream_events(http, "openrouter-stream-error", CHAT)
    assert events[-1] != "[DONE]"
    assert events[-1]["error"]["message"] == "The server had an error"


def test_keys_never_logged(gateway, http):
    invoke(http, "groq-401", CHAT)
    log = gateway.log()
    assert all(key not in log for _, key, _ in PROVIDERS.values() if key != "ollama")


def config_for(provider: str, kind: str, config: str) -> str:
    return f"""
endpoints:
  - name: e
    endpoint_type: llm/v1/{kind}
    model:
      provider: {provider}
      name: m
      config: {config}
"""


@pytest.mark.parametrize(("provider", "display"), [("groq", "Groq"), ("deepseek", "DeepSeek")])
def test_completions_load_but_answer_mlflows_501(provider, display):
    loaded = parse_config(config_for(provider, "completions", "{api_key: k}"))
    assert (
        loaded.endpoints[0].unavailable == f"The completions route is not implemented for {display} models."
    )
    assert loaded.warnings == (
        f"endpoint 'e' ({provider}, llm/v1/completions) cannot be served and answers 501: "
        f"The completions route is not implemented for {display} models.",
    )


@pytest.mark.parametrize("provider", ["groq", "deepseek"])
def test_embeddings_are_forwarded_as_mlflow_forwards_them(provider):
    loaded = parse_config(config_for(provider, "embeddings", "{api_key: k}"))
    assert loaded.endpoints[0].unavailable is None and loaded.warnings == ()


@pytest.mark.parametrize(
    ("provider", "base"),
    [
        ("groq", "https://api.groq.com/openai/v1"),
        ("deepseek", "https://api.deepseek.com"),
        ("xai", "https://api.x.ai/v1"),
        ("ollama", "http://localhost:11434/v1"),
        ("openrouter", "https://openrouter.ai/api/v1"),
    ],
)
def test_default_bases(provider, base):
    endpoint_config = parse_config(config_for(provider, "chat", "{api_key: k}")).endpoints[0]
    built = provider_class(endpoint_config.provider)(endpoint_config, None)
    assert built.urls[CHAT_TYPE] == f"{base}/chat/completions"
    if provider in SERVES_ALL:
        assert built.urls[COMPLETIONS] == f"{base}/completions"
        assert built.urls[EMBEDDINGS] == f"{base}/embeddings"


def test_api_key_is_required_except_for_ollama():
    with pytest.raises(ConfigError, match=r"model\.config\.api_key: Field required"):
        parse_config(config_for("groq", "chat", "{}"))
    parse_config(config_for("ollama", "chat", "{}"))


def test_api_key_from_the_environment(monkeypatch):
    monkeypatch.setenv("XAI_TEST_KEY", "from-env")
    endpoint_config = parse_config(config_for("xai", "chat", "{api_key: $XAI_TEST_KEY}")).endpoints[0]
    assert (
        provider_class(endpoint_config.provider)(endpoint_config, None).headers["Authorization"]
        == "Bearer from-env"
    )

"""The Databricks provider (spec §7.14) against an emulated workspace: MLflow's upstream paths
(`/serving-endpoints/chat/completions` and `/embeddings` with the model in the body, the AI
Gateway for Unity Catalog names), PAT and OAuth M2M auth (token fetched once and reused until near expiry), config and
environment fallbacks, list content, streams and error classes."""

from __future__ import annotations

import base64

import pytest

from gateway.config import parse_config
from gateway.errors import ConfigError
from gateway.providers import provider_class
from tests.conftest import launch
from tests.providers.databricks_upstream import SERVED_MODEL, DatabricksUpstream
from tests.support.client import invoke, stream_events, upstream_detail

PAT = "dapi-config-secret"
ENV_PAT = "dapi-env-secret"
CHAT = {"messages": [{"role": "user", "content": "hi"}]}
USAGE = {"prompt_tokens": 8, "completion_tokens": 4, "total_tokens": 12}


def endpoint(name: str, model: str, config: str, kind: str = "chat", provider: str = "databricks") -> str:
    return f"""
  - name: {name}
    endpoint_type: llm/v1/{kind}
    model:
      provider: {provider}
      name: {model}
      config: {config}
"""


@pytest.fixture(scope="module")
def upstream():
    server = DatabricksUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory):
    pat = f"{{host: '{upstream.url}', token: {PAT}}}"
    oauth = "{client_id: gw-client, client_secret: s3cret}"
    endpoints = [
        endpoint("chat", "databricks-llama", pat, provider="databricks-model-serving"),
        endpoint("env-chat", "databricks-llama", "{}"),
        endpoint("oauth-chat", "databricks-llama", oauth),
        endpoint("oauth-short", "databricks-llama", "{client_id: short-lived, client_secret: s3cret}"),
        endpoint("oauth-bad", "databricks-llama", "{client_id: intruder, client_secret: guess}"),
        endpoint("embeddings", "databricks-bge-embed", pat, "embeddings"),
        endpoint("uc", "main.default.my_model", pat),
        endpoint("uc-embeddings", "system.ai.bge_large_en", pat, "embeddings"),
        endpoint("reasoning", "reasoning", pat),
        endpoint("multimodal", "multimodal", pat),
        endpoint("err-400", "err-400", pat),
        endpoint("err-503-text", "err-503-text", pat),
        endpoint("malformed", "malformed", pat),
        endpoint("slow", "slow-3000", pat),
        endpoint("stream-error", "stream-error", pat),
    ]
    env = {
        "MLFLOW_GATEWAY_ROUTE_TIMEOUT_SECONDS": "1",
        "DATABRICKS_HOST": upstream.url,
        "DATABRICKS_TOKEN": ENV_PAT,
    }
    process = launch(tmp_path_factory.mktemp("databricks"), "endpoints:" + "".join(endpoints), env=env)
    yield process
    process.stop()


def test_chat_with_a_personal_access_token(http, upstream):
    response = invoke(http, "chat", {**CHAT, "temperature": 0.5, "max_tokens": 30})
    assert response.status_code == 200
    sent = upstream.last()
    assert sent.path == "/serving-endpoints/chat/completions" and sent.query == ""
    assert sent.headers["Authorization"] == f"Bearer {PAT}"
    # the serving endpoint is named by the body's model, first, as MLflow sends it
    assert sent.body == {"model": "databricks-llama", **CHAT, "temperature": 0.5, "max_tokens": 30}
    assert next(iter(sent.body)) == "model"
    assert response.json() == {
        "id": "chatcmpl_5a1c0a6e-7d51-4c8e-b2b5-6c1d9b5a0d42",
        "object": "chat.completion",
        "created": 1730000000,
        "model": SERVED_MODEL,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Hello from Databricks ✓",
                    "tool_calls": None,
                    "refusal": None,
                },
                "finish_reason": "stop",
            }
        ],
        "usage": USAGE,
        "provider": "databricks-model-serving",
    }


def test_host_and_token_from_the_environment(http, upstream):
    assert invoke(http, "env-chat", CHAT).status_code == 200
    assert upstream.last().headers["Authorization"] == f"Bearer {ENV_PAT}"


def test_oauth_token_is_fetched_once_and_reused(http, upstream):
    before = len(upstream.token_requests())
    for _ in range(3):
        assert invoke(http, "oauth-chat", CHAT).status_code == 200
        # the config's client credentials win over DATABRICKS_TOKEN from the environment
        assert upstream.last().headers["Authorization"] == "Bearer gw-client-token-1"
    fetched = upstream.token_requests()[before:]
    assert len(fetched) == 1
    token_request = fetched[0]
    assert token_request.headers["Authorization"] == "Basic " + base64.b64encode(b"gw-client:s3cret").decode()
    assert token_request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert token_request.raw == b"grant_type=client_credentials&scope=all-apis"


def test_oauth_token_near_expiry_is_refreshed(http, upstream):
    before = len(upstream.token_requests())
    assert invoke(http, "oauth-short", CHAT).status_code == 200
    first = upstream.last().headers["Authorization"]
    assert invoke(http, "oauth-short", CHAT).status_code == 200
    second = upstream.last().headers["Authorization"]
    # a 30 s token is inside the refresh margin, so each call gets a fresh one
    assert len(upstream.token_requests()) == before + 2 and first != second


def test_oauth_failure_is_a_clear_502(gateway, http):
    response = invoke(http, "oauth-bad", CHAT)
    assert response.status_code == 502
    detail = response.json()["detail"]
    assert "endpoint 'oauth-bad'" in detail and "Client authentication failed" in detail
    assert "guess" not in response.text and "guess" not in gateway.log()


def test_chat_stream_with_oauth(http, upstream):
    events = stream_events(http, "oauth-chat", CHAT)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    sent = upstream.last()
    assert sent.path == "/serving-endpoints/chat/completions"
    assert sent.body == {
        "model": "databricks-llama",
        **CHAT,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert sent.headers["Authorization"].startswith("Bearer gw-client-token-")
    assert "".join(c["choices"][0]["delta"]["content"] or "" for c in chunks) == "Hello from Databricks ✓"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and chunks[-1]["usage"] == USAGE
    assert all(c["provider"] == "databricks" for c in chunks)


def test_stream_with_list_deltas_is_reduced_to_text(http):
    chunks = stream_events(http, "reasoning", CHAT)[:-1]
    assert "".join(c["choices"][0]["delta"]["content"] or "" for c in chunks) == "Hello from Databricks ✓"


def test_list_content_keeps_text_image_and_audio_parts(http):
    reply = invoke(http, "reasoning", CHAT).json()
    assert reply["choices"][0]["message"]["content"] == "Hello\nworld"
    reply = invoke(http, "multimodal", CHAT).json()
    assert reply["choices"][0]["message"]["content"] == [
        {"type": "text", "text": "Here is a dot"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]


def test_embeddings(http, upstream):
    response = invoke(http, "embeddings", {"input": ["a", "b"]})
    assert response.status_code == 200
    sent = upstream.last()
    assert sent.path == "/serving-endpoints/embeddings"
    assert sent.headers["Authorization"] == f"Bearer {PAT}"
    assert sent.body == {"model": "databricks-bge-embed", "input": ["a", "b"]}
    assert response.json() == {
        "object": "list",
        "data": [
            {"object": "embedding", "embedding": [0.1, 0.0], "index": 0},
            {"object": "embedding", "embedding": [0.1, 1.0], "index": 1},
        ],
        "model": "bge-large-en-v1.5",
        "usage": {"prompt_tokens": 4, "total_tokens": 4},
    }


def test_unity_catalog_name_goes_to_the_ai_gateway(http, upstream):
    assert invoke(http, "uc", CHAT).status_code == 200
    sent = upstream.last()
    assert sent.path == "/ai-gateway/mlflow/v1/chat/completions"
    assert sent.body == {"model": "main.default.my_model", **CHAT}
    events = stream_events(http, "uc", CHAT)
    assert events[-1] == "[DONE]"
    sent = upstream.last()
    assert sent.path == "/ai-gateway/mlflow/v1/chat/completions"
    assert sent.body == {
        "model": "main.default.my_model",
        **CHAT,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_unity_catalog_embeddings_go_to_the_ai_gateway(http, upstream):
    response = invoke(http, "uc-embeddings", {"input": "a"})
    assert response.status_code == 200
    sent = upstream.last()
    assert sent.path == "/ai-gateway/mlflow/v1/embeddings"
    assert sent.body == {"model": "system.ai.bge_large_en", "input": "a"}
    assert response.json()["data"] == [{"object": "embedding", "embedding": [0.1, 0.0], "index": 0}]


def test_client_stream_options_are_kept(http, upstream):
    body = {**CHAT, "stream_options": {"include_usage": False}}
    assert stream_events(http, "chat", body)[-1] == "[DONE]"
    assert upstream.last().body["stream_options"] == {"include_usage": False}


def test_client_model_is_refused(http):
    response = invoke(http, "chat", {**CHAT, "model": "other"})
    assert response.status_code == 422 and "not permitted" in response.json()["detail"]


def test_upstream_4xx_passes_through(http):
    response = invoke(http, "err-400", CHAT)
    assert response.status_code == 400
    assert response.json() == {"detail": {"error_code": "BAD_REQUEST", "message": "Databricks says 400"}}


def test_upstream_5xx_text(http):
    response = invoke(http, "err-503-text", CHAT)
    message = upstream_detail("err-503-text", "databricks", 503, "upstream overloaded")
    assert response.status_code == 503 and response.json() == {"detail": {"message": message}}


def test_malformed_body_is_502(http):
    response = invoke(http, "malformed", CHAT)
    assert response.status_code == 502 and "endpoint 'malformed'" in response.json()["detail"]


def test_timeout_is_504_naming_endpoint_and_provider(http):
    response = invoke(http, "slow", CHAT)
    assert response.status_code == 504
    assert "endpoint 'slow'" in response.json()["detail"] and "databricks" in response.json()["detail"]


def test_error_mid_stream_becomes_an_error_event(http):
    events = stream_events(http, "stream-error", CHAT)
    assert events[-1] != "[DONE]"
    assert events[-1]["error"]["message"] == "The model server crashed"


def test_tokens_never_logged(gateway, http):
    invoke(http, "err-400", CHAT)
    log = gateway.log()
    assert PAT not in log and ENV_PAT not in log and "s3cret" not in log


CONFIG = """
endpoints:
  - name: e
    endpoint_type: llm/v1/{kind}
    model:
      provider: databricks
      name: {model}
      config: {config}
"""


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_CLIENT_ID", "DATABRICKS_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_config_needs_a_host(clean_env):
    with pytest.raises(ConfigError, match="Databricks host is not set"):
        parse_config(CONFIG.format(kind="chat", model="m", config="{token: dapi-x}"))


def test_config_needs_credentials(clean_env):
    with pytest.raises(ConfigError, match="Databricks credentials are not set"):
        parse_config(CONFIG.format(kind="chat", model="m", config="{host: h.cloud.databricks.com}"))
    clean_env.setenv("DATABRICKS_CLIENT_ID", "id")
    clean_env.setenv("DATABRICKS_CLIENT_SECRET", "secret")
    loaded = parse_config(CONFIG.format(kind="chat", model="m", config="{host: h.cloud.databricks.com}"))
    built = provider_class(loaded.endpoints[0].provider)(loaded.endpoints[0], None)
    assert built.urls["llm/v1/chat"] == "https://h.cloud.databricks.com/serving-endpoints/chat/completions"
    assert built.urls["llm/v1/embeddings"] == "https://h.cloud.databricks.com/serving-endpoints/embeddings"
    assert built.oauth is not None and built.oauth.url == "https://h.cloud.databricks.com/oidc/v1/token"


def test_completions_load_but_answer_mlflows_501(clean_env):
    loaded = parse_config(CONFIG.format(kind="completions", model="m", config="{host: h, token: t}"))
    assert (
        loaded.endpoints[0].unavailable == "The completions route is not implemented for Databricks models."
    )
    assert len(loaded.warnings) == 1


def test_token_from_a_variable_reference(clean_env):
    clean_env.setenv("MY_DBX_TOKEN", "dapi-from-var")
    loaded = parse_config(CONFIG.format(kind="chat", model="m", config="{host: h, token: $MY_DBX_TOKEN}"))
    built = provider_class(loaded.endpoints[0].provider)(loaded.endpoints[0], None)
    assert built.headers["Authorization"] == "Bearer dapi-from-var"


@pytest.mark.parametrize(
    ("host", "model", "base"),
    [
        ("https://h.cloud.databricks.com/", "m", "https://h.cloud.databricks.com/serving-endpoints"),
        ("h.cloud.databricks.com/serving-endpoints", "m", "https://h.cloud.databricks.com/serving-endpoints"),
        ("https://h.cloud.databricks.com", "a.b", "https://h.cloud.databricks.com/serving-endpoints"),
        (
            "https://h.cloud.databricks.com",
            "cat.schema.m",
            "https://h.cloud.databricks.com/ai-gateway/mlflow/v1",
        ),
    ],
)
def test_upstream_bases(clean_env, host, model, base):
    loaded = parse_config(CONFIG.format(kind="chat", model=model, config=f"{{host: '{host}', token: t}}"))
    built = provider_class(loaded.endpoints[0].provider)(loaded.endpoints[0], None)
    assert built.urls == {
        "llm/v1/chat": f"{base}/chat/completions",
        "llm/v1/embeddings": f"{base}/embeddings",
    }

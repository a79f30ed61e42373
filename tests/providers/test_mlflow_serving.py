"""The MLflow Model Serving provider against an emulated `mlflow models serve`: MLflow's exact
`inputs`/`params` payloads, its `predictions` rules and every error class (spec §7.5)."""

from __future__ import annotations

import pytest

from tests.conftest import free_port, launch
from tests.providers.mlflow_serving_upstream import BAD_REQUEST, MlflowServingUpstream
from tests.support.client import invoke

CHAT = {"messages": [{"role": "user", "content": "hi"}]}


def endpoint(name: str, url: str, kind: str) -> str:
    return f"""
  - name: {name}
    endpoint_type: llm/v1/{kind}
    model:
      provider: mlflow-model-serving
      name: served-model
      config:
        model_server_url: {url}
"""


@pytest.fixture(scope="module")
def upstream():
    server = MlflowServingUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory):
    url = upstream.url
    endpoints = [
        endpoint("chat", f"{url}/echo", "chat"),
        endpoint("completions", f"{url}/echo/", "completions"),
        endpoint("choices", f"{url}/choices", "completions"),
        endpoint("single", f"{url}/single", "chat"),
        endpoint("embeddings", f"{url}/vectors", "embeddings"),
        endpoint("flat", f"{url}/flat", "embeddings"),
        endpoint("invalid", f"{url}/invalid", "completions"),
        endpoint("no-key", f"{url}/no-key", "completions"),
        endpoint("text-for-embeddings", f"{url}/echo", "embeddings"),
        endpoint("err-400", f"{url}/err-400", "completions"),
        endpoint("slow", f"{url}/slow-3000", "completions"),
        endpoint("refused", f"http://127.0.0.1:{free_port()}", "completions"),
    ]
    env = {"MLFLOW_GATEWAY_ROUTE_TIMEOUT_SECONDS": "1"}
    process = launch(tmp_path_factory.mktemp("mlflow-serving"), "endpoints:" + "".join(endpoints), env=env)
    yield process
    process.stop()


def test_completions_payload_and_response(http, upstream):
    body = {"prompt": "Say hello", "temperature": 0.3, "max_tokens": 9, "stop": ["."], "custom": {"k": 1}}
    answer = invoke(http, "completions", body).json()
    sent = upstream.last()
    assert sent.method == "POST" and sent.path == "/echo/invocations" and sent.query == ""
    assert sent.headers["Content-Type"] == "application/json" and "Authorization" not in sent.headers
    # params: every other field, MLflow's default n: 1 included, temperature unscaled
    assert sent.body == {
        "inputs": ["Say hello"],
        "params": {"temperature": 0.3, "max_tokens": 9, "stop": ["."], "custom": {"k": 1}, "n": 1},
    }
    assert (
        answer["id"] is None and answer["object"] == "text_completion" and answer["model"] == "served-model"
    )
    assert answer["choices"] == [{"index": 0, "text": "echo: Say hello", "finish_reason": None}]
    assert answer["usage"] == {"prompt_tokens": None, "completion_tokens": None, "total_tokens": None}


def test_client_model_goes_into_params(http, upstream):
    # MLflow has no model guard for this provider: the field is forwarded (spec §5.2)
    assert invoke(http, "completions", {"prompt": "p", "model": "v2", "n": 2}).status_code == 200
    assert upstream.last().body == {"inputs": ["p"], "params": {"model": "v2", "n": 2}}


def test_chat_takes_one_message(http, upstream):
    answer = invoke(http, "chat", {**CHAT, "temperature": 1}).json()
    assert upstream.last().body == {"inputs": ["hi"], "params": {"temperature": 1, "n": 1}}
    assert answer["provider"] == "mlflow-model-serving" and answer["object"] == "chat.completion"
    assert answer["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "echo: hi", "tool_calls": None, "refusal": None},
            "finish_reason": None,
        }
    ]
    before = len(upstream.requests)
    two = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]}
    response = invoke(http, "chat", two)
    assert response.status_code == 422
    assert response.json() == {
        "detail": "MLflow chat models are only capable of processing a single query at a time. "
        "The request submitted consists of 2 queries."
    }
    assert len(upstream.requests) == before


def test_dict_predictions(http):
    answer = invoke(http, "choices", {"prompt": "p"}).json()
    assert [c["text"] for c in answer["choices"]] == ["a", "b"]
    answer = invoke(http, "single", CHAT).json()
    assert [c["message"]["content"] for c in answer["choices"]] == ["only"]


def test_embeddings(http, upstream):
    answer = invoke(http, "embeddings", {"input": ["a", "b"]}).json()
    assert upstream.last().body == {"inputs": ["a", "b"]}
    assert answer == {
        "object": "list",
        "data": [
            {"object": "embedding", "embedding": [0.1, 0.2, 0.0], "index": 0},
            {"object": "embedding", "embedding": [0.1, 0.2, 1.0], "index": 1},
        ],
        "model": "served-model",
        "usage": {"prompt_tokens": None, "total_tokens": None},
    }
    answer = invoke(http, "flat", {"input": "one", "dimensions": 2}).json()
    assert upstream.last().body == {"inputs": ["one"], "params": {"dimensions": 2}}
    assert answer["data"] == [{"object": "embedding", "embedding": [0.5, 0.25], "index": 0}]


@pytest.mark.parametrize(
    ("name", "body", "reason"),
    [
        ("invalid", {"prompt": "p"}, "The dict format is invalid for this route type."),
        ("no-key", {"prompt": "p"}, "The response is missing the required key: predictions."),
        ("text-for-embeddings", {"input": "p"}, "every embedding must be a non-empty list of floats"),
    ],
)
def test_invalid_predictions_are_502(http, name, body, reason):
    response = invoke(http, name, body)
    assert response.status_code == 502 and reason in response.json()["detail"]


def test_streaming_is_a_501_before_the_stream(http, upstream):
    before = len(upstream.requests)
    response = invoke(http, "completions", {"prompt": "p", "stream": True})
    assert response.status_code == 501
    assert response.json() == {
        "detail": "Streaming is not supported for MLflow Model Serving completions endpoints."
    }
    assert len(upstream.requests) == before


def test_upstream_error_keeps_status_and_mlflow_body(http):
    # no `error` key: MLflow passes the whole object as the detail (spec §5.1)
    response = invoke(http, "err-400", {"prompt": "p"})
    assert response.status_code == 400 and response.json() == {"detail": BAD_REQUEST}
    openai_style = http.post("/v1/completions", json={"model": "err-400", "prompt": "p"})
    assert (
        openai_style.status_code == 400 and openai_style.json()["error"]["message"] == BAD_REQUEST["message"]
    )


def test_timeout_is_504_naming_endpoint_and_provider(http):
    response = invoke(http, "slow", {"prompt": "p"})
    assert response.status_code == 504
    assert (
        "endpoint 'slow'" in response.json()["detail"] and "mlflow-model-serving" in response.json()["detail"]
    )


def test_refused_connection_is_502(http):
    assert invoke(http, "refused", {"prompt": "p"}).status_code == 502

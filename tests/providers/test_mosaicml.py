"""The MosaicML provider against an emulated Databricks serving-endpoints API (the OpenAI-compatible
API that replaced MosaicML's hosted inference): the exact upstream request and the client-visible
answer for chat, completions, embeddings, streams and every error class (spec §7.6, issue 3)."""

from __future__ import annotations

import json

import openai
import pytest

from gateway.config import parse_config
from tests.conftest import free_port, launch
from tests.providers.mosaicml_upstream import ERRORS, KEY, USAGE, MosaicMLUpstream
from tests.support.client import invoke

CHAT = {"messages": [{"role": "user", "content": "hi"}]}
PROMPT = {"prompt": "Say hello"}


def endpoint(name: str, model: str, base: str | None, kind: str = "chat", key: str = KEY) -> str:
    base_line = f"\n        mosaicml_api_base: {base}" if base else ""
    return f"""
  - name: {name}
    endpoint_type: llm/v1/{kind}
    model:
      provider: mosaicml
      name: {model}
      config:
        mosaicml_api_key: {key}{base_line}
"""


@pytest.fixture(scope="module")
def upstream():
    server = MosaicMLUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory):
    base = upstream.base
    endpoints = [
        endpoint("chat", "databricks-meta-llama-3-3-70b-instruct", base),
        endpoint("completions", "mpt-7b-instruct", f"{base}/", "completions"),
        endpoint("embeddings", "databricks-gte-large-en", base, "embeddings"),
        *(endpoint(f"err-{status}", f"err-{status}", base) for status in ERRORS),
        endpoint("err-openai", "err-openai-404", base),
        endpoint("bearer-key", "m", base, key=f"'Bearer {KEY}'"),
        endpoint("bad-key", "m", base, key="wrong"),
        endpoint("malformed", "malformed", base),
        endpoint("slow", "slow-3000", base),
        endpoint("stream-error", "stream-error", base),
        endpoint("refused", "m", f"http://127.0.0.1:{free_port()}/serving-endpoints"),
    ]
    env = {"MLFLOW_GATEWAY_ROUTE_TIMEOUT_SECONDS": "1"}
    process = launch(tmp_path_factory.mktemp("mosaicml"), "endpoints:" + "".join(endpoints), env=env)
    yield process
    process.stop()


def stream(http, name, body):
    """The JSON events of a stream, and whether it ended with `data: [DONE]`."""
    with http.stream("POST", f"/endpoints/{name}/invocations", json={**body, "stream": True}) as response:
        assert response.status_code == 200
        raw = [event for event in response.read().decode().split("\n\n") if event]
    done = raw[-1] == "data: [DONE]"
    return [json.loads(event.removeprefix("data: ")) for event in raw if event != "data: [DONE]"], done


def test_config_without_base_or_llama2_name_still_loads():
    # the llama2 chat-name rule (spec §2.3) belonged to the retired prompt rendering
    config = parse_config("endpoints:" + endpoint("e", "mixtral-8x7b", None))
    assert config.endpoints[0].provider_config.mosaicml_api_base is None


def test_chat_request_and_response(http, upstream):
    body = {
        "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q", "name": "ana"}],
        "temperature": 0.2,
        "max_tokens": 10,
        "n": 1,
    }
    answer = invoke(http, "chat", body).json()
    sent = upstream.last()
    assert sent.method == "POST" and sent.path == "/serving-endpoints/chat/completions" and sent.query == ""
    assert sent.headers["Authorization"] == f"Bearer {KEY}"
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.body == {"model": "databricks-meta-llama-3-3-70b-instruct", **body}
    assert answer["id"] == "chatcmpl_5f6e" and answer["provider"] == "mosaicml"
    assert answer["choices"][0]["message"]["content"] == "Hello from Databricks!"
    assert answer["choices"][0]["finish_reason"] == "stop" and answer["usage"] == USAGE


def test_completions(http, upstream):
    answer = invoke(http, "completions", {**PROMPT, "temperature": 1.5, "stop": ["."]}).json()
    sent = upstream.last()
    assert sent.path == "/serving-endpoints/completions"
    assert sent.body == {"model": "mpt-7b-instruct", "prompt": "Say hello", "temperature": 1.5, "stop": ["."]}
    assert answer["choices"] == [{"index": 0, "text": "Hello from Databricks!", "finish_reason": "stop"}]
    assert answer["usage"] == USAGE


def test_embeddings(http, upstream):
    answer = invoke(http, "embeddings", {"input": ["a", "b"]}).json()
    assert upstream.last().path == "/serving-endpoints/embeddings"
    assert upstream.last().body == {"model": "databricks-gte-large-en", "input": ["a", "b"]}
    assert [d["embedding"] for d in answer["data"]] == [[0.5, 0.5, 0.0], [0.5, 0.5, 1.0]]
    assert answer["usage"] == {"prompt_tokens": 2, "total_tokens": 2}


@pytest.mark.parametrize(
    ("name", "body", "detail"),
    [
        ("chat", {**CHAT, "max_new_tokens": 5}, "Invalid parameter max_new_tokens. Use max_tokens instead."),
        ("embeddings", {"input": "a", "inputs": ["a"]}, "Invalid parameter inputs. Use input instead."),
    ],
)
def test_mlflow_request_checks(http, upstream, name, body, detail):
    before = len(upstream.requests)
    response = invoke(http, name, body)
    assert response.status_code == 422 and response.json() == {"detail": detail}
    assert len(upstream.requests) == before


def test_a_key_already_carrying_bearer_is_not_doubled(http, upstream):
    assert invoke(http, "bearer-key", CHAT).status_code == 200
    assert upstream.last().headers["Authorization"] == f"Bearer {KEY}"


def test_stream_chat_and_completions(http):
    events, done = stream(http, "chat", CHAT)
    assert (
        done
        and "".join(e["choices"][0]["delta"]["content"] or "" for e in events) == "Hello from Databricks!"
    )
    assert events[-1]["choices"][0]["finish_reason"] == "stop" and events[-1]["usage"] == USAGE
    events, done = stream(http, "completions", PROMPT)
    assert done and "".join(e["choices"][0]["text"] or "" for e in events) == "Hello from Databricks!"


def test_stream_error_event_mid_stream(http):
    events, done = stream(http, "stream-error", CHAT)
    assert not done
    assert "".join(e["choices"][0]["delta"]["content"] or "" for e in events[:-1]) == "Hello from"
    assert events[-1]["error"] == {
        "message": "MosaicML failed mid-stream: Model overloaded",
        "type": "upstream_error",
        "code": 502,
    }


@pytest.mark.parametrize("status", sorted(ERRORS))
def test_databricks_errors_keep_status_and_message(http, status):
    response = invoke(http, f"err-{status}", CHAT)
    assert response.status_code == status and response.json() == {"detail": ERRORS[status][1]}
    streamed = invoke(http, f"err-{status}", {**CHAT, "stream": True})
    assert streamed.status_code == status and streamed.json() == {"detail": ERRORS[status][1]}


def test_openai_style_error_and_bad_key(http):
    response = invoke(http, "err-openai", CHAT)
    assert response.status_code == 404 and response.json() == {"detail": "The model `x` does not exist"}
    response = invoke(http, "bad-key", CHAT)
    assert response.status_code == 401
    assert response.json() == {
        "detail": "Credential was not sent or was of an unsupported type for this API."
    }


def test_malformed_upstream_body_is_502(http):
    response = invoke(http, "malformed", CHAT)
    assert response.status_code == 502 and "endpoint 'malformed'" in response.json()["detail"]


def test_timeout_is_504_naming_endpoint_and_provider(http):
    response = invoke(http, "slow", CHAT)
    assert response.status_code == 504
    assert "endpoint 'slow'" in response.json()["detail"] and "mosaicml" in response.json()["detail"]


def test_refused_connection_is_502(http):
    response = invoke(http, "refused", CHAT)
    assert response.status_code == 502 and KEY not in response.text


def test_openai_sdk(gateway):
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="client-key", max_retries=0)
    reply = client.chat.completions.create(model="chat", messages=CHAT["messages"])
    assert reply.choices[0].message.content == "Hello from Databricks!"
    assert client.embeddings.create(model="embeddings", input="a").data[0].embedding == [0.5, 0.5, 0.0]

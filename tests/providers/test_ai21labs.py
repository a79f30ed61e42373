"""The AI21 Labs provider against an emulated Jamba API: J2 configs served by Jamba models,
the exact upstream request and the client-visible answer for completions, chat, streams and
every error class (spec §7.4; the retired J2 API replaced by Jamba, issue 3)."""

from __future__ import annotations

import json

import openai
import pytest

from gateway.config import parse_config
from gateway.errors import ConfigError
from tests.conftest import free_port, launch
from tests.providers.ai21_upstream import ERRORS, KEY, USAGE, AI21Upstream
from tests.support.client import invoke, upstream_detail

CHAT = {"messages": [{"role": "user", "content": "hi"}]}
PROMPT = {"prompt": "Say hello"}


def endpoint(name: str, model: str, base: str, kind: str = "completions", key: str = KEY) -> str:
    return f"""
  - name: {name}
    endpoint_type: llm/v1/{kind}
    model:
      provider: ai21labs
      name: {model}
      config:
        ai21labs_api_key: {key}
        ai21labs_api_base: {base}
"""


@pytest.fixture(scope="module")
def upstream():
    server = AI21Upstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory):
    base = upstream.base
    endpoints = [
        endpoint("completions", "j2-ultra", base),
        endpoint("mid", "j2-mid", base),
        endpoint("chat", "jamba-mini", base, "chat"),
        *(endpoint(f"err-{status}", f"err-{status}", base) for status in (422, 429, 500)),
        endpoint("bad-key", "jamba-mini", base, key="wrong"),
        endpoint("malformed", "malformed", base),
        endpoint("slow", "slow-3000", base),
        endpoint("stream-cut", "stream-cut", base, "chat"),
        endpoint("refused", "jamba-mini", f"http://127.0.0.1:{free_port()}/studio/v1"),
    ]
    env = {"MLFLOW_GATEWAY_ROUTE_TIMEOUT_SECONDS": "1"}
    process = launch(tmp_path_factory.mktemp("ai21"), "endpoints:" + "".join(endpoints), env=env)
    yield process
    process.stop()


def stream(http, name, body):
    """The JSON events of a stream, and whether it ended with `data: [DONE]`."""
    with http.stream("POST", f"/endpoints/{name}/invocations", json={**body, "stream": True}) as response:
        assert response.status_code == 200
        raw = [event for event in response.read().decode().split("\n\n") if event]
    done = raw[-1] == "data: [DONE]"
    return [json.loads(event.removeprefix("data: ")) for event in raw if event != "data: [DONE]"], done


# -- config ---------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["j2-grande", "J2-Jumbo-Instruct"])
def test_unknown_j2_models_are_refused_with_mlflows_message(model):
    with pytest.raises(ConfigError) as info:
        parse_config("endpoints:" + endpoint("e", model, "http://x"))
    assert str(info.value).endswith(
        f"An Unsupported AI21Labs model has been specified: '{model}'. "
        "Please see documentation for supported models."
    )


def test_current_model_names_and_chat_load():
    config = parse_config("endpoints:" + endpoint("e", "jamba-large-1.7", "http://x", "chat"))
    assert config.endpoints[0].model_name == "jamba-large-1.7"


# -- requests and answers -----------------------------------------------------------------------
def test_completions_map_j2_to_jamba(http, upstream):
    body = {**PROMPT, "temperature": 0.7, "max_tokens": 64, "stop": ["##"], "n": 2, "top_p": 0.5}
    answer = invoke(http, "completions", body).json()
    sent = upstream.last()
    assert sent.method == "POST" and sent.path == "/studio/v1/chat/completions" and sent.query == ""
    assert sent.headers["Authorization"] == f"Bearer {KEY}"
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.body == {
        "model": "jamba-large",
        "messages": [{"role": "user", "content": "Say hello"}],
        "temperature": 0.7,  # not scaled, as in MLflow
        "max_tokens": 64,
        "stop": ["##"],
        "n": 2,
        "top_p": 0.5,
    }
    assert answer["id"] == "chat-2d5a5a2f-8c1b-4a1e-9f6d-b1d3b3e3b0a1"
    assert answer["object"] == "text_completion" and answer["model"] == "jamba-large"
    assert isinstance(answer["created"], int)
    assert answer["choices"] == [{"index": 0, "text": "Hello from Jamba!", "finish_reason": "stop"}]
    assert answer["usage"] == USAGE
    invoke(http, "mid", {**PROMPT, "max_completion_tokens": 8})
    assert upstream.last().body == {
        "model": "jamba-mini",
        "messages": [{"role": "user", "content": "Say hello"}],
        "max_tokens": 8,
    }


@pytest.mark.parametrize(
    ("native", "ours"), [("stopSequences", "stop"), ("numResults", "n"), ("maxTokens", "max_tokens")]
)
def test_j2_parameter_names_are_refused(http, upstream, native, ours):
    before = len(upstream.requests)
    response = invoke(http, "completions", {**PROMPT, native: 1})
    assert response.status_code == 422
    assert response.json() == {"detail": f"Invalid parameter {native}. Use {ours} instead."}
    assert len(upstream.requests) == before


def test_chat(http, upstream):
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
    body = {
        "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}],
        "tools": [tool],
    }
    answer = invoke(http, "chat", body).json()
    assert upstream.last().body == {"model": "jamba-mini", **body}
    assert answer["provider"] == "ai21labs" and answer["model"] == "jamba-mini"
    assert answer["choices"] == [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hello from Jamba!",
                "tool_calls": None,
                "refusal": None,
            },
            "finish_reason": "stop",
        }
    ]
    assert answer["usage"] == USAGE


# -- streams ----------------------------------------------------------------------------------
def test_stream_chat(http, upstream):
    events, done = stream(http, "chat", CHAT)
    assert done and upstream.last().body["stream"] is True
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(e["choices"][0]["delta"]["content"] or "" for e in events) == "Hello from Jamba!"
    assert all(e["model"] == "jamba-mini" and isinstance(e["created"], int) for e in events)
    assert events[-1]["choices"][0]["finish_reason"] == "stop" and events[-1]["usage"] == USAGE


def test_stream_completions(http):
    events, done = stream(http, "completions", PROMPT)
    assert done and all(e["object"] == "text_completion_chunk" for e in events)
    assert "".join(e["choices"][0]["text"] or "" for e in events) == "Hello from Jamba!"
    assert events[-1]["choices"][0]["finish_reason"] == "stop"


def test_stream_cut_mid_stream_is_an_error_event(http):
    events, done = stream(http, "stream-cut", CHAT)
    assert not done
    error = events[-1]["error"]
    assert error["code"] == 502 and "endpoint 'stream-cut'" in error["message"]


def test_stream_refused_upstream_keeps_its_status(http):
    response = invoke(http, "err-429", {**PROMPT, "stream": True})
    assert response.status_code == 429 and response.json() == {"detail": "Too many requests"}


# -- errors -------------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [422, 429, 500])
def test_upstream_errors_keep_status_and_detail(http, status):
    response = invoke(http, f"err-{status}", PROMPT)
    detail = upstream_detail(f"err-{status}", "ai21labs", status, ERRORS[status])
    assert response.status_code == status and response.json() == {"detail": detail}


def test_bad_key_is_401_with_ai21s_message(http):
    response = invoke(http, "bad-key", PROMPT)
    assert response.status_code == 401 and response.json() == {"detail": ERRORS[401]}


def test_malformed_upstream_body_is_502(http):
    response = invoke(http, "malformed", PROMPT)
    assert response.status_code == 502 and "endpoint 'malformed'" in response.json()["detail"]


def test_timeout_is_504_naming_endpoint_and_provider(http):
    response = invoke(http, "slow", PROMPT)
    assert response.status_code == 504
    assert "endpoint 'slow'" in response.json()["detail"] and "ai21labs" in response.json()["detail"]


def test_refused_connection_is_502(http):
    response = invoke(http, "refused", PROMPT)
    assert response.status_code == 502 and KEY not in response.text


def test_openai_sdk(gateway):
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="client-key", max_retries=0)
    assert client.completions.create(model="completions", prompt="x").choices[0].text == "Hello from Jamba!"
    chunks = list(client.chat.completions.create(model="chat", messages=CHAT["messages"], stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Hello from Jamba!"
    with pytest.raises(openai.UnprocessableEntityError) as info:
        client.completions.create(model="err-422", prompt="x")
    assert "less than or equal to 2.0" in str(info.value)

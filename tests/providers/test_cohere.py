"""The Cohere provider against an emulated Cohere v2 API: the exact upstream request and the
client-visible answer for chat, completions, embeddings, streams and every error class
(spec §7.3; MLflow's retired v1 API replaced by v2, issue 3)."""

from __future__ import annotations

import json

import openai
import pytest

from tests.conftest import free_port, launch
from tests.providers.cohere_upstream import ERRORS, KEY, CohereUpstream
from tests.support.client import invoke, upstream_detail

CHAT = {"messages": [{"role": "user", "content": "hi"}]}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string", "format": "city"}}},
    },
}
USAGE = {"prompt_tokens": 71, "completion_tokens": 4, "total_tokens": 75}


def endpoint(name: str, model: str, base: str, kind: str = "chat", key: str = KEY) -> str:
    return f"""
  - name: {name}
    endpoint_type: llm/v1/{kind}
    model:
      provider: cohere
      name: {model}
      config:
        cohere_api_key: {key}
        cohere_api_base: {base}
"""


@pytest.fixture(scope="module")
def upstream():
    server = CohereUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory):
    base = upstream.base
    endpoints = [
        endpoint("chat", "command-a", base),
        endpoint("tools", "command-tools", base),
        endpoint("completions", "command-a", base, "completions"),
        endpoint("embeddings", "embed-v4.0", base, "embeddings"),
        *(endpoint(f"err-{status}", f"err-{status}", base) for status in ERRORS),
        endpoint("bad-key", "command-a", base, key="wrong"),
        endpoint("malformed", "malformed", base),
        endpoint("slow", "slow-3000", base),
        endpoint("stream-error", "stream-error", base),
        endpoint("refused", "command-a", f"http://127.0.0.1:{free_port()}/v2"),
    ]
    env = {"MLFLOW_GATEWAY_ROUTE_TIMEOUT_SECONDS": "1"}
    process = launch(tmp_path_factory.mktemp("cohere"), "endpoints:" + "".join(endpoints), env=env)
    yield process
    process.stop()


def stream(http, name, body):
    """The JSON events of a stream, and whether it ended with `data: [DONE]`."""
    with http.stream("POST", f"/endpoints/{name}/invocations", json={**body, "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = [event for event in response.read().decode().split("\n\n") if event]
    done = raw[-1] == "data: [DONE]"
    return [json.loads(event.removeprefix("data: ")) for event in raw if event != "data: [DONE]"], done


# -- requests -----------------------------------------------------------------------------
def test_chat_request_is_translated_to_v2(http, upstream):
    body = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris?", "name": "ana"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ],
        "tools": [WEATHER_TOOL],
        "tool_choice": "required",
        "temperature": 0.4,
        "top_p": 0.9,
        "top_k": 40,
        "stop": ["END"],
        "max_completion_tokens": 50,
        "n": 1,
        "seed": 7,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "w", "schema": {"type": "object"}},
        },
    }
    assert invoke(http, "chat", body).status_code == 200
    sent = upstream.last()
    assert sent.method == "POST" and sent.path == "/v2/chat" and sent.query == ""
    assert sent.headers["Authorization"] == f"Bearer {KEY}"
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.body == {
        "model": "command-a",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ],
        "tools": [WEATHER_TOOL],
        "tool_choice": "REQUIRED",
        "temperature": 1.0,  # 0.4 × 2.5, a float
        "p": 0.9,
        "k": 40,
        "stop_sequences": ["END"],
        "max_tokens": 50,
        "seed": 7,
        "response_format": {"type": "json_object", "json_schema": {"type": "object"}},
    }


def test_zero_temperature_is_not_scaled_and_named_tool_choice(http, upstream):
    other = {**WEATHER_TOOL, "function": {**WEATHER_TOOL["function"], "name": "other"}}
    choice = {"type": "function", "function": {"name": "get_weather"}}
    body = {**CHAT, "temperature": 0, "tools": [WEATHER_TOOL, other], "tool_choice": choice}
    assert invoke(http, "chat", body).status_code == 200
    sent = upstream.last().body
    assert sent["temperature"] == 0 and type(sent["temperature"]) is int  # left as sent, not 0.0
    assert sent["tools"] == [WEATHER_TOOL] and sent["tool_choice"] == "REQUIRED"
    invoke(http, "chat", {**CHAT, "temperature": 2, "tool_choice": "auto"})
    assert upstream.last().body["temperature"] == 5.0 and "tool_choice" not in upstream.last().body


@pytest.mark.parametrize(
    ("name", "body", "status", "detail"),
    [
        ("chat", {**CHAT, "n": 2}, 422, "Parameter n must be 1 for Cohere chat, got 2."),
        ("completions", {"prompt": "p", "n": 3}, 422, "Parameter n must be 1 for Cohere completions, got 3."),
        (
            "completions",
            {"prompt": "p", "stop_sequences": ["x"]},
            400,
            "Invalid parameter stop_sequences. Use stop instead.",
        ),
        (
            "completions",
            {"prompt": "p", "num_generations": 2},
            400,
            "Invalid parameter num_generations. Use n instead.",
        ),
        ("embeddings", {"input": "a", "texts": ["a"]}, 422, "Invalid parameter texts. Use input instead."),
        ("chat", {**CHAT, "model": "x"}, 422, None),
    ],
)
def test_mlflow_request_checks(http, upstream, name, body, status, detail):
    before = len(upstream.requests)
    response = invoke(http, name, body)
    assert response.status_code == status
    if detail is not None:
        assert response.json() == {"detail": detail}
    assert len(upstream.requests) == before  # refused before any upstream call


# -- answers ------------------------------------------------------------------------------
def test_chat_response(http):
    answer = invoke(http, "chat", CHAT).json()
    assert answer["id"] == "c14c80c3-18eb-4519-9460-6c92edd8cfb4"
    assert answer["object"] == "chat.completion" and answer["model"] == "command-a"
    assert answer["provider"] == "cohere" and isinstance(answer["created"], int)
    assert answer["choices"] == [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hello from Cohere!",
                "tool_calls": None,
                "refusal": None,
            },
            "finish_reason": "stop",
        }
    ]
    assert answer["usage"] == USAGE


def test_tool_call_response(http):
    choice = invoke(http, "tools", {**CHAT, "tools": [WEATHER_TOOL]}).json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == [
        {
            "id": "get_weather_1byjy32y4hvq",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        }
    ]


def test_completions_go_through_chat(http, upstream):
    answer = invoke(http, "completions", {"prompt": "Say hello", "temperature": 0.8, "stop": ["."]}).json()
    sent = upstream.last()
    assert sent.path == "/v2/chat"
    assert sent.body == {
        "model": "command-a",
        "messages": [{"role": "user", "content": "Say hello"}],
        "temperature": 2.0,
        "stop_sequences": ["."],
    }
    assert answer["object"] == "text_completion"
    assert answer["choices"] == [{"index": 0, "text": "Hello from Cohere!", "finish_reason": "stop"}]
    assert answer["usage"] == USAGE


def test_embeddings(http, upstream):
    answer = invoke(
        http, "embeddings", {"input": ["a", "b"], "dimensions": 256, "encoding_format": "float"}
    ).json()
    sent = upstream.last()
    assert sent.path == "/v2/embed"
    assert sent.body == {
        "model": "embed-v4.0",
        "texts": ["a", "b"],
        "input_type": "search_document",
        "embedding_types": ["float"],
        "output_dimension": 256,
    }
    assert answer == {
        "object": "list",
        "data": [
            {"object": "embedding", "embedding": [0.25, -0.5, 0.0], "index": 0},
            {"object": "embedding", "embedding": [0.25, -0.5, 1.0], "index": 1},
        ],
        "model": "embed-v4.0",
        "usage": {"prompt_tokens": 3, "total_tokens": 3},
    }
    invoke(http, "embeddings", {"input": "one", "input_type": "search_query"})
    assert upstream.last().body["texts"] == ["one"] and upstream.last().body["input_type"] == "search_query"


# -- streams ------------------------------------------------------------------------------
def test_stream_chat(http, upstream):
    events, done = stream(http, "chat", CHAT)
    assert done and upstream.last().body["stream"] is True
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(e["choices"][0]["delta"]["content"] or "" for e in events) == "Hello from Cohere!"
    assert {e["id"] for e in events} == {"29f14a5a-11de-4cae-9800-25e4747408ea"}
    assert all(e["object"] == "chat.completion.chunk" and e["provider"] == "cohere" for e in events)
    last = events[-1]
    assert last["choices"][0]["finish_reason"] == "stop"  # MLflow leaks the raw COMPLETE
    assert last["usage"] == USAGE
    assert [e["choices"][0]["finish_reason"] for e in events[:-1]] == [None] * (len(events) - 1)


def test_stream_tool_calls(http):
    events, done = stream(http, "tools", {**CHAT, "tools": [WEATHER_TOOL]})
    assert done
    calls = [call for e in events for call in e["choices"][0]["delta"]["tool_calls"] or ()]
    starts = [call for call in calls if "id" in call]
    assert [(c["index"], c["id"], c["function"]["name"]) for c in starts] == [
        (0, "get_weather_a", "get_weather"),
        (1, "get_weather_b", "get_weather"),
    ]
    arguments = {0: "", 1: ""}
    for call in calls:
        arguments[call["index"]] += call["function"]["arguments"]
    assert arguments == {0: '{"city":"Paris"}', 1: '{"city":"London"}'}
    assert events[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_stream_completions(http):
    events, done = stream(http, "completions", {"prompt": "Say hello"})
    assert done
    assert all(e["object"] == "text_completion_chunk" for e in events)
    assert "".join(e["choices"][0]["text"] or "" for e in events) == "Hello from Cohere!"
    assert events[-1]["choices"][0]["finish_reason"] == "stop" and events[-1]["usage"] == USAGE


def test_stream_error_mid_stream_is_an_error_event(http):
    events, done = stream(http, "stream-error", CHAT)
    assert not done
    assert events[-1] == {
        "error": {
            "message": "Cohere stopped the stream: internal server error",
            "type": "upstream_error",
            "code": 502,
        }
    }
    assert "".join(e["choices"][0]["delta"]["content"] or "" for e in events[:-1]) == "Hello from"


def test_stream_refused_upstream_keeps_its_status(http):
    response = invoke(http, "err-429", {**CHAT, "stream": True})
    assert response.status_code == 429 and response.json() == {"detail": ERRORS[429]}


# -- errors -------------------------------------------------------------------------------
@pytest.mark.parametrize("status", sorted(ERRORS))
def test_upstream_errors_keep_status_and_message(http, status):
    response = invoke(http, f"err-{status}", CHAT)
    detail = upstream_detail(f"err-{status}", "cohere", status, ERRORS[status])
    assert response.status_code == status and response.json() == {"detail": detail}


def test_bad_key_is_401_with_cohere_message(http, upstream):
    response = invoke(http, "bad-key", CHAT)
    assert response.status_code == 401 and response.json() == {"detail": "invalid api token"}
    assert upstream.last().headers["Authorization"] == "Bearer wrong"


def test_malformed_upstream_body_is_502(http):
    response = invoke(http, "malformed", CHAT)
    assert response.status_code == 502 and "endpoint 'malformed'" in response.json()["detail"]


def test_timeout_is_504_naming_endpoint_and_provider(http):
    response = invoke(http, "slow", CHAT)
    assert response.status_code == 504
    assert "endpoint 'slow'" in response.json()["detail"] and "cohere" in response.json()["detail"]


def test_refused_connection_is_502(http):
    response = invoke(http, "refused", CHAT)
    assert response.status_code == 502 and KEY not in response.text


# -- the openai SDK -------------------------------------------------------------------------
def test_openai_sdk(gateway):
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="client-key", max_retries=0)
    reply = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "Hello from Cohere!" and reply.usage.total_tokens == 75
    chunks = list(client.chat.completions.create(model="chat", messages=CHAT["messages"], stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Hello from Cohere!"
    # the SDK asks for base64 by default; floats come back and it reads them as they are
    assert client.embeddings.create(model="embeddings", input="a").data[0].embedding == [0.25, -0.5, 0.0]
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="err-429", messages=CHAT["messages"])
    assert ERRORS[429] in str(info.value)

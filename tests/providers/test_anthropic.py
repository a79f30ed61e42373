"""The Anthropic provider against an emulated api.anthropic.com: the exact upstream request and
the client-visible answer, for chat, completions, streams and every error class (spec §7.2)."""

from __future__ import annotations

import json
import subprocess
import sys

import openai
import pytest

from tests.conftest import free_port, launch
from tests.providers.anthropic_upstream import AnthropicUpstream
from tests.support.client import invoke, upstream_detail
from tests.support.contract import check_stream_contract

KEY = "sk-ant-test-secret"
HELLO = "Hello from Claude — ünïcødé ✓"
CHAT = {"messages": [{"role": "user", "content": "hi"}]}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
# prompt = input + cache read + cache creation (spec §7.2)
EXPECTED_USAGE = {
    "prompt_tokens": 38,
    "completion_tokens": 12,
    "total_tokens": 50,
    "cache_creation_input_tokens": 3,
    "service_tier": "standard",
    "prompt_tokens_details": {"cached_tokens": 10},
}


def endpoint(name: str, model: str, base: str, kind: str = "chat", extra: str = "") -> str:
    return f"""
  - name: {name}
    endpoint_type: llm/v1/{kind}
    model:
      provider: anthropic
      name: {model}
      config:
        anthropic_api_key: {KEY}
        anthropic_api_base: {base}
{extra}"""


@pytest.fixture(scope="module")
def upstream():
    server = AnthropicUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory):
    base = upstream.base
    endpoints = [
        endpoint("chat", "claude-text", base),
        endpoint("chat-sliced", "claude-text-sliced", base),
        endpoint("tools", "claude-tools", base),
        endpoint("thinking", "claude-thinking", base),
        endpoint("completions", "claude-text", base, "completions"),
        endpoint("completions-sliced", "claude-text-sliced", base, "completions"),
        *(endpoint(f"err-{status}", f"err-{status}", base) for status in (401, 429, 500, 529)),
        endpoint("malformed", "malformed", base),
        endpoint("bad-json", "bad-json", base),
        endpoint("slow", "slow-3000", base),
        endpoint("stream-error", "stream-error", base),
        endpoint("stream-cut", "stream-cut", base),
        endpoint("refused", "claude-text", f"http://127.0.0.1:{free_port()}/v1"),
        f"""
  - name: env-key
    endpoint_type: llm/v1/chat
    model:
      provider: Anthropic
      name: claude-text
      config:
        anthropic_api_key: $ANTHROPIC_TEST_KEY
        anthropic_version: "2024-01-01"
        anthropic_api_base: {base}/
""",
    ]
    env = {"MLFLOW_GATEWAY_ROUTE_TIMEOUT_SECONDS": "1", "ANTHROPIC_TEST_KEY": "sk-ant-from-env"}
    process = launch(tmp_path_factory.mktemp("anthropic"), "endpoints:" + "".join(endpoints), env=env)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def sdk(gateway):
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="client-key", max_retries=0)


# -- requests -----------------------------------------------------------------------------
def test_wire_example_exact_upstream_body(http, upstream):
    """Spec §11: system×2 + a tool round trip + max_completion_tokens, temperature, tool_choice
    and parallel_tool_calls, translated exactly."""
    body = {
        "messages": [
            {"role": "system", "content": "sys1"},
            {"role": "system", "content": "sys2"},
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": "Let me check.",
                "tool_calls": [
                    {
                        "id": "toolu_01A",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_01A", "content": "sunny, 21C"},
        ],
        "tools": [WEATHER_TOOL],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "max_completion_tokens": 50,
        "temperature": 1.0,
        "stop": ["END"],
    }
    response = invoke(http, "chat", body)
    assert response.status_code == 200, response.text
    sent = upstream.last()
    assert sent.method == "POST" and sent.path == "/v1/messages" and sent.query == ""
    assert sent.headers["x-api-key"] == KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["Content-Type"] == "application/json"
    assert "Authorization" not in sent.headers
    assert sent.body == {
        "model": "claude-text",
        "max_tokens": 50,
        "temperature": 0.5,
        "stop_sequences": ["END"],
        "system": "sys1\nsys2",
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Let me check."},
                    {
                        "type": "tool_use",
                        "id": "toolu_01A",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_01A", "content": "sunny, 21C"}],
            },
        ],
        "tools": [
            {
                "name": "get_weather",
                "description": "Weather for a city",
                "input_schema": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            }
        ],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
    }


def test_defaults_scaling_and_extras(http, upstream):
    response = invoke(http, "chat", {**CHAT, "temperature": 2, "top_k": 5, "metadata": {"user_id": "u1"}})
    assert response.status_code == 200
    assert upstream.last().body == {
        "model": "claude-text",
        "max_tokens": 8192,
        "temperature": 1.0,
        "top_k": 5,
        "metadata": {"user_id": "u1"},
        "messages": [{"role": "user", "content": "hi"}],
    }
    invoke(http, "chat", {**CHAT, "max_tokens": 7, "max_completion_tokens": 99, "n": 1, "top_p": 0.3})
    sent = upstream.last().body
    assert sent["max_tokens"] == 7 and sent["top_p"] == 0.3
    assert "n" not in sent and "max_completion_tokens" not in sent and "temperature" not in sent


def test_env_key_version_and_base_with_trailing_slash(http, upstream):
    assert invoke(http, "env-key", CHAT).status_code == 200
    sent = upstream.last()
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == "sk-ant-from-env"
    assert sent.headers["anthropic-version"] == "2024-01-01"


def test_list_system_content_images_and_parallel_tool_results(http, upstream):
    png = "iVBORw0KGgo="
    body = {
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "developer", "content": "c"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                    {"id": "t2", "type": "function", "function": {"name": "f", "arguments": ""}},
                ],
            },
            {"role": "tool", "tool_call_id": "t1", "content": "one"},
            {
                "role": "tool",
                "tool_call_id": "t2",
                "content": [
                    {"type": "text", "text": "two"},
                    {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{png}"}},
                ],
            },
        ]
    }
    assert invoke(http, "chat", body).status_code == 200
    sent = upstream.last().body
    assert sent["system"] == "a\nb\nc"
    assert sent["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
                {"type": "text", "text": "[unsupported image reference: https://example.com/cat.png]"},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "t1", "name": "f", "input": {}},
                {"type": "tool_use", "id": "t2", "name": "f", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "one"},
                {
                    "type": "tool_result",
                    "tool_use_id": "t2",
                    "content": [
                        {"type": "text", "text": "two"},
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/jpeg", "data": png},
                        },
                    ],
                },
            ],
        },
    ]


def test_tools_keep_every_schema_keyword_and_description_is_optional(http, upstream):
    parameters = {
        "type": "object",
        "properties": {
            "when": {"type": "string", "format": "date-time", "default": "now"},
            "count": {"type": "integer", "minimum": 1},
            "place": {"anyOf": [{"$ref": "#/$defs/city"}, {"type": "null"}]},
        },
        "$defs": {"city": {"type": "string", "enum": ["Paris", "London"]}},
        "additionalProperties": False,
    }
    tools = [
        {"type": "function", "function": {"name": "plan", "parameters": parameters}},
        {"type": "function", "function": {"name": "ping"}},
    ]
    choices = {
        "none": {"type": "none"},
        "auto": {"type": "auto"},
        "required": {"type": "any"},
    }
    for choice, expected in choices.items():
        assert invoke(http, "chat", {**CHAT, "tools": tools, "tool_choice": choice}).status_code == 200
        assert upstream.last().body["tool_choice"] == expected
    named = {"type": "function", "function": {"name": "plan"}}
    body = {**CHAT, "tools": tools, "tool_choice": named, "parallel_tool_calls": False}
    assert invoke(http, "chat", body).status_code == 200
    sent = upstream.last().body
    assert sent["tool_choice"] == {"type": "tool", "name": "plan", "disable_parallel_tool_use": True}
    assert sent["tools"] == [
        {"name": "plan", "input_schema": parameters},
        {"name": "ping", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert "parallel_tool_calls" not in sent
    # parallel_tool_calls: false alone still reaches Anthropic, as tool_choice auto
    assert invoke(http, "chat", {**CHAT, "tools": tools, "parallel_tool_calls": False}).status_code == 200
    assert upstream.last().body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}


def test_response_format(http, upstream):
    system = {"role": "system", "content": "Be brief."}
    body = {"messages": [system, *CHAT["messages"]], "response_format": {"type": "json_object"}}
    assert invoke(http, "chat", body).status_code == 200
    assert upstream.last().body["system"] == (
        "Be brief.\nRespond with only a single valid JSON object. Do not include any explanatory text, "
        "markdown, or code fences before or after the JSON object."
    )
    schema = {
        "type": "object",
        "properties": {"items": {"type": "array", "items": {"type": "object", "properties": {"n": {}}}}},
    }
    json_schema = {"type": "json_schema", "json_schema": {"name": "out", "schema": schema}}
    assert invoke(http, "chat", {**CHAT, "response_format": json_schema}).status_code == 200
    sent = upstream.last().body
    assert "response_format" not in sent and "system" not in sent
    assert sent["output_config"] == {
        "format": {
            "type": "json_schema",
            "schema": {
                "type": "object",
                "properties": {
                    "items": {
                        "type": "array",
                        "items": {"type": "object", "properties": {"n": {}}, "additionalProperties": False},
                    }
                },
                "additionalProperties": False,
            },
        }
    }
    open_map = {"type": "json_schema", "json_schema": {"name": "m", "schema": {"type": "object"}}}
    assert invoke(http, "chat", {**CHAT, "response_format": open_map}).status_code == 200
    assert "output_config" not in upstream.last().body
    assert invoke(http, "chat", {**CHAT, "response_format": {"type": "text"}}).status_code == 200
    assert "response_format" not in upstream.last().body


@pytest.mark.parametrize(
    ("name", "body", "detail"),
    [
        (
            "chat",
            {**CHAT, "temperature": 0.5, "top_p": 0.5},
            "Cannot set both 'temperature' and 'top_p' parameters.",
        ),
        ("chat", {**CHAT, "n": 2}, "'n' must be '1' for the Anthropic provider. Received value: '2'."),
        ("chat", {**CHAT, "max_tokens": 1_000_001}, "Invalid value for max_tokens: cannot exceed 1000000."),
        (
            "chat",
            {**CHAT, "max_completion_tokens": 2_000_000},
            "Invalid value for max_tokens: cannot exceed 1000000.",
        ),
        (
            "chat",
            {**CHAT, "tools": [{"type": "uc_function", "uc_function": {"name": "cat.schema.fn"}}]},
            "Only function calling tool is supported, but received tool type uc_function",
        ),
        (
            "completions",
            {"prompt": "hi", "top_p": 0.5},
            "Cannot set both 'temperature' and 'top_p' parameters. Please use only the temperature "
            "parameter for your query.",
        ),
        (
            "completions",
            {"prompt": "hi", "n": 3},
            "'n' must be '1' for the Anthropic provider. Received value: '3'.",
        ),
        ("chat", {**CHAT, "model": "claude-x"}, "The parameter 'model' is not permitted to be passed."),
    ],
)
def test_validation_422_with_exact_message(http, upstream, name, body, detail):
    before = len(upstream.requests)
    response = invoke(http, name, body)
    assert response.status_code == 422
    assert response.json()["detail"].startswith(detail)
    assert len(upstream.requests) == before  # refused before any upstream call


@pytest.mark.parametrize("spec", [{}, {"json_schema": None}])
def test_json_schema_format_without_its_schema_is_a_422(http, spec):
    response = invoke(http, "chat", {**CHAT, "response_format": {"type": "json_schema", **spec}})
    assert response.status_code == 422
    (problem,) = response.json()["detail"]
    assert problem["loc"] == ["body", "response_format", "json_schema"] and problem["type"] == "missing"


@pytest.mark.parametrize("name", ["chat", "completions"])
def test_neutral_openai_defaults_are_dropped_not_refused(http, upstream, name):
    # what LangChain's OpenAI clients send by default: nothing asked, so nothing to refuse
    neutral = {"top_p": 1, "frequency_penalty": 0, "presence_penalty": 0, "logit_bias": {}}
    body = {**(CHAT if name == "chat" else {"prompt": "hi"}), "temperature": 0.7, **neutral}
    assert invoke(http, name, body).status_code == 200
    assert not set(neutral) & set(upstream.last().body)


def test_bad_tool_arguments_are_a_422_list(http, upstream):
    call = {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{not json"}}
    body = {"messages": [*CHAT["messages"], {"role": "assistant", "content": None, "tool_calls": [call]}]}
    response = invoke(http, "chat", body)
    assert response.status_code == 422
    (problem,) = response.json()["detail"]
    assert problem["loc"] == ["body", "messages", 1, "tool_calls", 0, "function", "arguments"]


# -- responses ----------------------------------------------------------------------------
def test_chat_response(http):
    response = invoke(http, "chat", CHAT)
    data = response.json()
    assert isinstance(data.pop("created"), int)
    assert data == {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "object": "chat.completion",
        "model": "claude-text-20250514",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": HELLO, "tool_calls": None, "refusal": None},
                "finish_reason": "stop",
            }
        ],
        "usage": EXPECTED_USAGE,
        "provider": "anthropic",
    }


def test_tool_call_response_keeps_text(http):
    message = invoke(http, "tools", {**CHAT, "tools": [WEATHER_TOOL]}).json()["choices"][0]
    assert message["finish_reason"] == "tool_calls"
    assert message["message"]["content"] == "Let me check."
    (call,) = message["message"]["tool_calls"]
    assert call["id"] == "toolu_01A" and call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}


def test_thinking_is_not_merged_into_content(http):
    data = invoke(http, "thinking", CHAT).json()
    assert data["choices"][0]["message"]["content"] == "The answer is 42."


def test_completions_through_messages(http, upstream):
    response = invoke(http, "completions", {"prompt": "Say hello", "stop": ["\n"], "temperature": 0.4})
    data = response.json()
    assert isinstance(data.pop("created"), int)
    assert data == {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "object": "text_completion",
        "model": "claude-text-20250514",
        "choices": [{"index": 0, "text": HELLO, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 38, "completion_tokens": 12, "total_tokens": 50},
    }
    sent = upstream.last()
    assert sent.path == "/v1/messages"
    assert sent.body == {
        "model": "claude-text",
        "max_tokens": 8192,
        "temperature": 0.2,
        "stop_sequences": ["\n"],
        "messages": [{"role": "user", "content": "Say hello"}],
    }


# -- streams ------------------------------------------------------------------------------
def stream_events(http, name, body, include_usage=None):
    if include_usage is not None:
        body = {**body, "stream_options": {"include_usage": include_usage}}
    with http.stream("POST", f"/endpoints/{name}/invocations", json={**body, "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = response.read().decode()
    events = [event for event in raw.split("\n\n") if event]
    assert all(event.startswith("data: ") for event in events)
    return [event[len("data: ") :] for event in events]


@pytest.mark.parametrize("name", ["chat", "chat-sliced"])
def test_stream_chat_text(http, upstream, name):
    events = stream_events(http, name, CHAT)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert upstream.last().body["stream"] is True
    assert all(c["id"] == "msg_stream" and c["provider"] == "anthropic" for c in chunks)
    assert all(c["object"] == "chat.completion.chunk" and isinstance(c["created"], int) for c in chunks)
    first = chunks[0]["choices"][0]
    assert first["delta"] == {"role": "assistant", "content": "", "tool_calls": None}
    assert "".join(c["choices"][0]["delta"]["content"] or "" for c in chunks if c["choices"]) == HELLO
    choices = [c["choices"][0] for c in chunks if c["choices"]]
    assert [choice["finish_reason"] for choice in choices] == [None] * (len(choices) - 1) + ["stop"]
    # no usage-only chunk unless asked for: the usage rides on the finish chunk
    assert check_stream_contract(chunks) == EXPECTED_USAGE
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize("name", ["chat", "chat-sliced"])
def test_stream_chat_usage_chunk_when_asked(http, name):
    events = stream_events(http, name, CHAT, include_usage=True)
    chunks = [json.loads(event) for event in events[:-1]]
    assert check_stream_contract(chunks, include_usage=True) == EXPECTED_USAGE
    assert chunks[-1]["choices"] == [] and chunks[-2]["choices"][0]["finish_reason"] == "stop"


def test_stream_chat_tool_calls(http):
    events = stream_events(http, "tools", {**CHAT, "tools": [WEATHER_TOOL]})
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert "".join(d["content"] or "" for d in deltas) == "Checking both cities."
    calls = [call for d in deltas for call in d["tool_calls"] or ()]
    check_stream_contract(chunks)
    heads = [call for call in calls if "id" in call]
    assert heads == [
        {
            "index": 0,
            "id": "toolu_01A",
            "type": "function",
            "function": {"name": "get_weather", "arguments": ""},
        },
        {
            "index": 1,
            "id": "toolu_01B",
            "type": "function",
            "function": {"name": "get_weather", "arguments": ""},
        },
    ]
    for index, city in ((0, "Paris"), (1, "London")):
        arguments = "".join(c["function"]["arguments"] for c in calls if c["index"] == index)
        assert json.loads(arguments) == {"city": city}
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "tool_calls"
    assert chunks[-1]["usage"]["total_tokens"] == 50


def test_stream_thinking_is_not_merged(http):
    events = stream_events(http, "thinking", CHAT)
    chunks = [json.loads(event) for event in events[:-1]]
    text = "".join(c["choices"][0]["delta"]["content"] or "" for c in chunks if c["choices"])
    assert text == "The answer is 42."


@pytest.mark.parametrize("name", ["completions", "completions-sliced"])
def test_stream_completions(http, upstream, name):
    events = stream_events(http, name, {"prompt": "Say hello"})
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert all(c["object"] == "text_completion_chunk" and "provider" not in c for c in chunks)
    assert "".join(c["choices"][0]["text"] or "" for c in chunks if c["choices"]) == HELLO
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    assert check_stream_contract(chunks) == {"prompt_tokens": 38, "completion_tokens": 12, "total_tokens": 50}
    assert upstream.last().body["messages"] == [{"role": "user", "content": "Say hello"}]


def test_stream_error_event_mid_stream(http):
    events = stream_events(http, "stream-error", CHAT)
    assert events[-1] != "[DONE]"
    assert json.loads(events[-2])["choices"][0]["delta"]["content"] == "Hello"
    error = json.loads(events[-1])["error"]
    assert error == {
        "message": "Anthropic returned overloaded_error while streaming: Overloaded",
        "type": "upstream_error",
        "code": 502,
    }


def test_stream_cut_before_message_stop_is_an_error_event(http):
    events = stream_events(http, "stream-cut", CHAT)
    error = json.loads(events[-1])["error"]
    assert error["code"] == 502 and "endpoint 'stream-cut'" in error["message"]
    assert "message_stop" in error["message"]


def test_stream_refused_upstream_keeps_its_status(http):
    response = invoke(http, "err-401", {**CHAT, "stream": True})
    assert response.status_code == 401 and response.json() == {"detail": "invalid x-api-key"}


# -- errors -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "message"),
    [
        (401, "invalid x-api-key"),
        (429, "Number of request tokens has exceeded your per-minute rate limit"),
        (500, "Internal server error"),
        (529, "Overloaded"),
    ],
)
def test_upstream_errors_keep_status_and_message(http, status, message):
    response = invoke(http, f"err-{status}", CHAT)
    assert response.status_code == status
    assert response.json() == {"detail": upstream_detail(f"err-{status}", "anthropic", status, message)}


@pytest.mark.parametrize("name", ["malformed", "bad-json"])
def test_malformed_upstream_body_is_502(http, name):
    response = invoke(http, name, CHAT)
    assert response.status_code == 502
    assert "endpoint" in response.json()["detail"] and KEY not in response.text


def test_timeout_is_504_naming_endpoint_and_provider(http):
    response = invoke(http, "slow", CHAT)
    assert response.status_code == 504
    detail = response.json()["detail"]
    assert "endpoint 'slow'" in detail and "anthropic" in detail


def test_refused_connection_is_502(http):
    response = invoke(http, "refused", CHAT)
    assert response.status_code == 502
    assert "endpoint 'refused'" in response.json()["detail"] and KEY not in response.text


# -- the openai SDK -------------------------------------------------------------------------
def test_openai_sdk_chat(sdk, upstream):
    reply = sdk.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hi"}], temperature=0.8, max_tokens=64
    )
    assert reply.choices[0].message.content == HELLO
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.prompt_tokens == 38 and reply.usage.total_tokens == 50
    assert reply.usage.prompt_tokens_details.cached_tokens == 10
    sent = upstream.last().body
    assert sent["model"] == "claude-text" and sent["temperature"] == 0.4 and sent["max_tokens"] == 64


def test_openai_sdk_stream_with_tools(sdk):
    stream = sdk.chat.completions.create(
        model="tools", messages=[{"role": "user", "content": "hi"}], tools=[WEATHER_TOOL], stream=True
    )
    chunks = list(stream)
    arguments: dict[int, str] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or ():
                arguments[call.index] = arguments.get(call.index, "") + (call.function.arguments or "")
    assert {i: json.loads(a) for i, a in arguments.items()} == {0: {"city": "Paris"}, 1: {"city": "London"}}
    assert chunks[-1].usage.completion_tokens == 12


def test_openai_sdk_stream_text_and_completions(sdk):
    chunks = list(
        sdk.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}], stream=True)
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == HELLO
    completions = list(sdk.completions.create(model="completions", prompt="hi", stream=True))
    assert "".join(c.choices[0].text for c in completions if c.choices) == HELLO


def test_openai_sdk_upstream_error(sdk):
    with pytest.raises(openai.AuthenticationError) as info:
        sdk.chat.completions.create(model="err-401", messages=[{"role": "user", "content": "hi"}])
    assert "invalid x-api-key" in str(info.value)
    with pytest.raises(openai.UnprocessableEntityError) as refused:
        sdk.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}], n=2)
    assert "'n' must be '1'" in str(refused.value)


# -- configuration --------------------------------------------------------------------------
def validate(tmp_path, kind, *flags):
    path = tmp_path / f"{kind}.yaml"
    path.write_text("endpoints:" + endpoint("e", "claude-text", "https://api.anthropic.com/v1", kind))
    return subprocess.run(
        [sys.executable, "-m", "gateway", "validate", *flags, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_embeddings_load_with_a_warning_as_in_mlflow(tmp_path):
    result = validate(tmp_path, "embeddings")
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "Warning: endpoint 'e' (anthropic, llm/v1/embeddings) cannot be served and answers 501: "
        "The embeddings route is not implemented for Anthropic models."
    ]
    assert "OK" in result.stdout
    strict = validate(tmp_path, "embeddings", "--strict")
    assert strict.returncode == 1
    assert "cannot be served (--strict)" in strict.stderr


@pytest.mark.parametrize("kind", ["chat", "completions"])
def test_config_accepts_chat_and_completions(tmp_path, kind):
    result = validate(tmp_path, kind)
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout

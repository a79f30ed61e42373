"""The `gemini` provider against a Gemini API emulation: exact upstream requests, the answers
clients see, streams cut at awkward byte boundaries, tools, multimodal parts and every error
class."""

from __future__ import annotations

import hashlib

import openai
import orjson
import pytest

from gateway.config import parse_config
from gateway.errors import ConfigError
from tests.conftest import free_port, launch
from tests.providers.gemini_upstream import GoogleUpstream
from tests.support.client import invoke, upstream_detail
from tests.support.contract import check_stream_contract

KEY = "gm-test-secret-key-123"
MODEL = "gemini-2.0-flash"
HI = {"messages": [{"role": "user", "content": "hi"}]}


def endpoint(name: str, kind: str, model: str, base: str, key: str = KEY) -> str:
    return f"""
  - name: {name}
    endpoint_type: llm/v1/{kind}
    model:
      provider: gemini
      name: {model}
      config:
        gemini_api_key: {key}
        gemini_api_base: {base}
"""


@pytest.fixture(scope="module")
def upstream():
    server = GoogleUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory):
    base = f"{upstream.url}/v1beta/models"
    chats = ["gemini-tools", "gemini-multi", "gemini-blocked", "err-400", "err-429", "err-500", "err-503"]
    chats += ["err-list-400", "malformed", "wrong-shape", "slow-3000", "stream-error"]
    endpoints = [
        endpoint("chat", "chat", MODEL, base, key="$GEMINI_TEST_KEY"),
        endpoint("completions", "completions", MODEL, base),
        endpoint("embeddings", "embeddings", "text-embedding-004", base),
        endpoint("root-base", "chat", MODEL, upstream.url),
        endpoint("v1-base", "chat", MODEL, f"{upstream.url}/v1/"),
        endpoint("refused", "chat", MODEL, f"http://127.0.0.1:{free_port()}"),
        *(endpoint(name, "chat", name, base) for name in chats),
    ]
    env = {"GEMINI_TEST_KEY": KEY, "MLFLOW_GATEWAY_ROUTE_TIMEOUT_SECONDS": "1"}
    process = launch(tmp_path_factory.mktemp("gemini"), "endpoints:" + "".join(endpoints), env=env)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def sdk(gateway):
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)


def stream_events(http, name, body, include_usage=None):
    """Every SSE data payload of a streamed invocation, `[DONE]` included, plus the status."""
    if include_usage is not None:
        body = {**body, "stream_options": {"include_usage": include_usage}}
    with http.stream("POST", f"/endpoints/{name}/invocations", json={**body, "stream": True}) as response:
        raw = b"".join(response.iter_bytes())
    events = [block.removeprefix(b"data: ") for block in raw.split(b"\n\n") if block]
    assert all(block.startswith(b"data: ") for block in raw.split(b"\n\n") if block)
    return response.status_code, events


# -- chat -------------------------------------------------------------------------------------
def test_chat_request_and_response(http, upstream):
    body = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "Bonjour"},
            {"role": "user", "content": "again", "name": "ann"},
        ],
        "temperature": 0.5,
        "max_tokens": 50,
        "stop": ["\n"],
        "top_p": 0.9,
        "top_k": 40,
        "presence_penalty": 0.1,
        "frequency_penalty": 0.2,
        "seed": 7,
        "user": "u-1",
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
    }
    response = invoke(http, "chat", body)
    assert response.status_code == 200, response.text
    sent = upstream.last()
    assert sent.path == f"/v1beta/models/{MODEL}:generateContent"
    assert sent.query == ""  # the key is never in the URL
    assert sent.headers["x-goog-api-key"] == KEY
    assert "Authorization" not in sent.headers
    assert sent.body == {
        "contents": [
            {"role": "user", "parts": [{"text": "hi"}]},
            {"role": "model", "parts": [{"text": "Bonjour"}]},
            {"role": "user", "parts": [{"text": "again"}]},
        ],
        "systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "Use French."}]},
        "generationConfig": {
            "temperature": 0.5,  # unscaled
            "seed": 7,
            "maxOutputTokens": 50,
            "stopSequences": ["\n"],
            "candidateCount": 1,
            "topK": 40,
            "topP": 0.9,
            "frequencyPenalty": 0.2,
            "presencePenalty": 0.1,
        },
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
    }
    data = response.json()
    assert data["id"].startswith("gemini-chat-") and data["object"] == "chat.completion"
    assert data["model"] == MODEL and data["provider"] == "gemini" and isinstance(data["created"], int)
    assert data["choices"] == [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hello from Gemini!",
                "tool_calls": None,
                "refusal": None,
            },
            "finish_reason": "stop",
        }
    ]
    assert data["usage"] == {
        "prompt_tokens": 5,
        "completion_tokens": 7,  # candidates + thoughts
        "total_tokens": 12,
        "thoughtsTokenCount": 3,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 5}],
        "prompt_tokens_details": {"cached_tokens": 2},
    }
    assert list(data["usage"])[:3] == ["prompt_tokens", "completion_tokens", "total_tokens"]


def test_chat_through_the_openai_sdk(sdk, upstream):
    reply = sdk.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hi"}], max_completion_tokens=20
    )
    assert reply.choices[0].message.content == "Hello from Gemini!"
    assert reply.usage.total_tokens == 12
    assert upstream.last().body["generationConfig"] == {"maxOutputTokens": 20, "candidateCount": 1}


def test_response_format(http, upstream):
    schema = {"type": "object", "properties": {"a": {"type": "integer", "minimum": 1}}, "required": ["a"]}
    json_schema = {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}
    assert invoke(http, "chat", {**HI, "response_format": json_schema}).status_code == 200
    config = upstream.last().body["generationConfig"]
    assert config == {
        "candidateCount": 1,
        "responseMimeType": "application/json",
        "responseJsonSchema": schema,
    }
    assert invoke(http, "chat", {**HI, "response_format": {"type": "json_object"}}).status_code == 200
    assert upstream.last().body["generationConfig"] == {
        "candidateCount": 1,
        "responseMimeType": "application/json",
    }


def test_gemini_spelling_of_a_parameter_is_refused(http):
    response = invoke(http, "chat", {**HI, "topK": 3})
    assert response.status_code == 422
    assert response.json() == {"detail": "Invalid parameter topK. Use top_k instead."}


def test_unknown_role_is_refused(http):
    response = invoke(http, "chat", {"messages": [{"role": "critic", "content": "x"}]})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "messages", 0, "role"]


def test_every_candidate_is_kept_and_finish_reasons_are_mapped(http):
    data = invoke(http, "gemini-multi", HI).json()
    got = [(c["index"], c["message"]["content"], c["finish_reason"]) for c in data["choices"]]
    # MLflow drops the empty candidate and so renumbers the rest
    assert got == [
        (0, "first", "stop"),
        (1, "", "stop"),
        (2, "cut sh", "length"),
        (3, None, "content_filter"),
    ]


def test_blocked_prompt(http):
    data = invoke(http, "gemini-blocked", HI).json()
    assert data["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": None, "tool_calls": None, "refusal": None},
            "finish_reason": "content_filter",
        }
    ]
    assert data["usage"]["prompt_tokens"] == 5 and data["usage"]["completion_tokens"] is None


def test_multimodal_parts(http, upstream):
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
    ]
    assert invoke(http, "chat", {"messages": [{"role": "user", "content": content}]}).status_code == 200
    assert upstream.last().body["contents"] == [
        {
            "role": "user",
            "parts": [
                {"text": "What is this?"},
                {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
                {"text": "[unsupported image reference: https://example.com/cat.png]"},
                {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
            ],
        }
    ]


# -- tools ------------------------------------------------------------------------------------
WEATHER_PARAMETERS = {
    "type": "object",
    "properties": {
        "city": {"anyOf": [{"type": "string", "format": "city"}, {"$ref": "#/$defs/Place"}]},
        "days": {"type": "integer", "minimum": 1, "default": 3},
    },
    "required": ["city"],
    "$defs": {"Place": {"type": "object", "properties": {"lat": {"type": "number"}}}},
}
TOOLS = [
    {
        "type": "function",
        "function": {"name": "get_weather", "parameters": WEATHER_PARAMETERS},
    },  # no description
    {"type": "function", "function": {"name": "get_time", "description": "Local time"}},
]


def test_tools_and_tool_turns_reach_gemini(http, upstream):
    messages = [
        {"role": "user", "content": "Weather and time in Paris?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "call-1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    "thought_signature": "c2ln",
                },
                {"id": "call-2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "call-1", "content": '{"temp": 21}'},
        {"role": "tool", "tool_call_id": "call-2", "content": "14:00"},
    ]
    body = {
        "messages": messages,
        "tools": TOOLS,
        "tool_choice": {"type": "function", "function": {"name": "get_time"}},
    }
    response = invoke(http, "chat", body)
    assert response.status_code == 200, response.text
    sent = upstream.last().body
    assert sent["tools"] == [
        {
            "functionDeclarations": [
                {"name": "get_weather", "parametersJsonSchema": WEATHER_PARAMETERS},  # every keyword kept
                {"name": "get_time", "description": "Local time"},
            ]
        }
    ]
    assert sent["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_time"]}
    }
    assert sent["contents"][1:] == [
        {
            "role": "model",
            "parts": [
                {"text": "Checking."},
                {
                    "functionCall": {"id": "call-1", "name": "get_weather", "args": {"city": "Paris"}},
                    "thoughtSignature": "c2ln",
                },
                {"functionCall": {"id": "call-2", "name": "get_time", "args": {}}},
            ],
        },
        {
            "role": "user",  # both results in one turn
            "parts": [
                {"functionResponse": {"id": "call-1", "name": "get_weather", "response": {"temp": 21}}},
                {"functionResponse": {"id": "call-2", "name": "get_time", "response": {"result": "14:00"}}},
            ],
        },
    ]


@pytest.mark.parametrize(("choice", "expected"), [("none", "NONE"), ("required", "ANY"), ("auto", None)])
def test_tool_choice_modes(http, upstream, choice, expected):
    assert invoke(http, "chat", {**HI, "tools": TOOLS, "tool_choice": choice}).status_code == 200
    config = upstream.last().body.get("toolConfig")
    assert config == ({"functionCallingConfig": {"mode": expected}} if expected else None)


def test_tool_result_without_a_matching_call_is_refused(http):
    messages = [{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "nope", "content": "1"}]
    response = invoke(http, "chat", {"messages": messages})
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "Invalid tool message: tool_call_id=nope does not match any tool call in a preceding assistant message."
    )


def test_non_function_tool_is_refused(http):
    response = invoke(http, "chat", {**HI, "tools": [{"type": "uc_function", "uc_function": {"name": "f"}}]})
    assert response.status_code == 422
    assert (
        response.json()["detail"]
        == "Only function calling tool is supported, but received tool type uc_function"
    )


def md5_call_id(name: str, arguments: str) -> str:
    return "call_" + hashlib.md5(f"{name}/{arguments}".encode()).hexdigest()


def test_tool_calls_in_the_answer(http):
    message = invoke(http, "gemini-tools", HI).json()["choices"][0]
    assert message["finish_reason"] == "tool_calls"
    assert message["message"]["content"] == "Let me check."
    assert message["message"]["tool_calls"] == [
        {
            "id": "call-weather-1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            "thought_signature": "c2lnbmF0dXJl",
        },
        {
            "id": md5_call_id("get_time", '{"zone": "CET"}'),
            "type": "function",
            "function": {"name": "get_time", "arguments": '{"zone": "CET"}'},
        },
    ]


def test_streamed_tool_calls(http):
    status, events = stream_events(http, "gemini-tools", HI, include_usage=True)
    assert status == 200 and events[-1] == b"[DONE]"
    check_stream_contract([orjson.loads(event) for event in events[:-1]], include_usage=True)
    *chunks, usage = [orjson.loads(event) for event in events[:-1]]
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] == 12
    calls = [call for chunk in chunks for call in chunk["choices"][0]["delta"]["tool_calls"] or ()]
    assert [(call["index"], call["id"], call["function"]["name"]) for call in calls] == [
        (0, "call-weather-1", "get_weather"),
        (1, md5_call_id("get_time", '{"zone": "CET"}'), "get_time"),
    ]
    assert chunks[0]["choices"][0]["delta"]["content"] == "Let me check."
    assert [chunk["choices"][0]["finish_reason"] for chunk in chunks] == [None, None, "tool_calls"]


# -- completions ------------------------------------------------------------------------------
def test_completions(http, upstream):
    body = {"prompt": "Say hello", "system_prompt": "You are terse.", "max_tokens": 10, "temperature": 0}
    response = invoke(http, "completions", body)
    assert response.status_code == 200, response.text
    sent = upstream.last()
    assert sent.path == f"/v1beta/models/{MODEL}:generateContent"
    assert sent.body == {
        "contents": [{"role": "user", "parts": [{"text": "Say hello"}]}],
        "systemInstruction": {"parts": [{"text": "You are terse."}]},
        "generationConfig": {"temperature": 0, "maxOutputTokens": 10, "candidateCount": 1},
    }
    data = response.json()
    assert data["id"] is None and data["object"] == "text_completion" and data["model"] == MODEL
    assert data["choices"] == [{"index": 0, "text": "Hello from Gemini!", "finish_reason": "stop"}]
    assert data["usage"] == {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}


def test_streamed_completions(http, upstream):
    status, events = stream_events(http, "completions", {"prompt": "Say hello"}, include_usage=True)
    assert status == 200 and events[-1] == b"[DONE]"
    *chunks, usage = [orjson.loads(event) for event in events[:-1]]
    assert {chunk["object"] for chunk in [*chunks, usage]} == {"text_completion.chunk"}  # MLflow's spelling
    assert {chunk["id"] for chunk in [*chunks, usage]} == {chunks[0]["id"]}
    assert chunks[0]["id"].startswith("gemini-completions-stream-")
    assert "".join(chunk["choices"][0]["text"] for chunk in chunks) == "Hello from Gemini!"
    assert [chunk["choices"][0]["finish_reason"] for chunk in chunks] == [None, None, None, "stop"]
    assert all(chunk["usage"] is None for chunk in chunks)
    # the usage once, at the end, as OpenAI sends it
    assert usage["choices"] == []
    assert usage["usage"] == {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
    assert upstream.last().path.endswith(":streamGenerateContent") and upstream.last().query == "alt=sse"


# -- streaming chat ---------------------------------------------------------------------------
def test_streamed_chat_split_at_awkward_boundaries(http, upstream):
    status, events = stream_events(http, "chat", HI, include_usage=True)
    assert status == 200
    assert events[-1] == b"[DONE]"
    sent = upstream.last()
    assert sent.path == f"/v1beta/models/{MODEL}:streamGenerateContent" and sent.query == "alt=sse"
    assert sent.headers["x-goog-api-key"] == KEY
    *chunks, usage = [orjson.loads(event) for event in events[:-1]]
    assert len(chunks) == 4
    assert {chunk["id"] for chunk in [*chunks, usage]} == {chunks[0]["id"]}
    assert chunks[0]["id"].startswith("gemini-chat-stream-")
    assert all(
        chunk["object"] == "chat.completion.chunk" and chunk["provider"] == "gemini" for chunk in chunks
    )
    assert all(chunk["model"] == MODEL for chunk in chunks)
    assert "".join(chunk["choices"][0]["delta"]["content"] for chunk in chunks) == "Hello from Gemini!"
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert [chunk["choices"][0]["finish_reason"] for chunk in chunks] == [None, None, None, "stop"]
    assert all(chunk["usage"] is None for chunk in chunks)
    assert usage["choices"] == [] and usage["provider"] == "gemini"
    assert usage["usage"] == {
        "prompt_tokens": 5,
        "completion_tokens": 7,
        "total_tokens": 12,
        "thoughtsTokenCount": 3,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 5}],
        "prompt_tokens_details": {"cached_tokens": 2},
    }


def test_streamed_usage_rides_on_the_finish_chunk_unless_asked(http):
    status, events = stream_events(http, "chat", HI)
    chunks = [orjson.loads(event) for event in events[:-1]]
    assert check_stream_contract(chunks)["total_tokens"] == 12
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    status, events = stream_events(http, "completions", {"prompt": "Say hello"})
    chunks = [orjson.loads(event) for event in events[:-1]]
    assert "".join(chunk["choices"][0]["text"] for chunk in chunks) == "Hello from Gemini!"
    assert chunks[-1]["usage"] == {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}


def test_streamed_chat_through_the_openai_sdk(sdk):
    stream = sdk.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    chunks = list(stream)
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices) == (
        "Hello from Gemini!"
    )
    assert chunks[-1].usage.total_tokens == 12


# -- embeddings -------------------------------------------------------------------------------
def test_one_embedding(http, upstream):
    response = invoke(http, "embeddings", {"input": "hello", "dimensions": 3})
    assert response.status_code == 200, response.text
    sent = upstream.last()
    assert sent.path == "/v1beta/models/text-embedding-004:embedContent"
    assert sent.body == {"content": {"parts": [{"text": "hello"}]}, "outputDimensionality": 3}
    assert sent.headers["x-goog-api-key"] == KEY
    assert response.json() == {
        "object": "list",
        "data": [{"object": "embedding", "embedding": [5.0, 0.5, -0.25], "index": 0}],
        "model": "text-embedding-004",
        "usage": {"prompt_tokens": None, "total_tokens": None},
    }


def test_several_embeddings(http, upstream):
    response = invoke(http, "embeddings", {"input": ["a", "bcd"]})
    sent = upstream.last()
    assert sent.path == "/v1beta/models/text-embedding-004:batchEmbedContents"
    assert sent.body == {
        "requests": [
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "a"}]}},
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "bcd"}]}},
        ]
    }
    assert [item["embedding"] for item in response.json()["data"]] == [[1.0, 0.5, -0.25], [3.0, 0.5, -0.25]]
    assert [item["index"] for item in response.json()["data"]] == [0, 1]


def test_embeddings_through_the_openai_sdk_base64(sdk):
    reply = sdk.embeddings.create(model="embeddings", input=["ab", "c"])  # the SDK asks for base64
    assert [item.embedding for item in reply.data] == [[2.0, 0.5, -0.25], [1.0, 0.5, -0.25]]


def test_token_ids_cannot_be_embedded(http):
    response = invoke(http, "embeddings", {"input": [1, 2, 3]})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "input"]


# -- configuration ----------------------------------------------------------------------------
def test_api_base_normalisation(http, upstream):
    assert invoke(http, "root-base", HI).status_code == 200
    assert upstream.last().path == f"/v1beta/models/{MODEL}:generateContent"
    assert invoke(http, "v1-base", HI).status_code == 200
    assert upstream.last().path == f"/v1/models/{MODEL}:generateContent"


def test_api_base_ending_in_models_needs_a_version():
    with pytest.raises(ConfigError) as info:
        parse_config("endpoints:" + endpoint("bad", "chat", MODEL, "https://proxy.example.com/api/models"))
    assert str(info.value) == (
        "endpoint 'bad': model.config: gemini_api_base ending in /models must include a supported API version "
        "(/v1, /v1beta, or /v1alpha) immediately before /models."
    )
    parse_config("endpoints:" + endpoint("ok", "chat", MODEL, "https://proxy.example.com/api/v1alpha/models"))


def test_key_is_required():
    text = "endpoints:" + endpoint("k", "chat", MODEL, "https://x").replace(f"gemini_api_key: {KEY}", "")
    with pytest.raises(ConfigError, match=r"model.config.gemini_api_key: Field required"):
        parse_config(text)


# -- errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "status", "message"),
    [
        ("err-400", 400, "API key not valid. Please pass a valid API key."),
        ("err-list-400", 400, "API key not valid. Please pass a valid API key."),
        ("err-429", 429, "Resource has been exhausted (e.g. check quota)."),
        ("err-500", 500, "An internal error has occurred."),
        ("err-503", 503, "The model is overloaded. Please try again later."),
    ],
)
def test_google_errors_keep_status_and_message(http, name, status, message):
    response = invoke(http, name, HI)
    assert response.status_code == status
    assert response.json() == {"detail": upstream_detail(name, "gemini", status, message)}


def test_google_errors_through_the_openai_sdk(sdk):
    with pytest.raises(openai.RateLimitError) as info:
        sdk.chat.completions.create(model="err-429", messages=[{"role": "user", "content": "hi"}])
    assert "Resource has been exhausted" in str(info.value)
    with pytest.raises(openai.BadRequestError, match="API key not valid"):
        sdk.chat.completions.create(model="err-400", messages=[{"role": "user", "content": "hi"}])


@pytest.mark.parametrize("name", ["malformed", "wrong-shape"])
def test_malformed_answers_are_502(http, name):
    response = invoke(http, name, HI)
    assert response.status_code == 502
    assert "(provider gemini)" in response.json()["detail"]


def test_timeout_is_504_naming_endpoint_and_provider(http):
    response = invoke(http, "slow-3000", HI)
    assert response.status_code == 504
    assert "endpoint 'slow-3000' (provider gemini)" in response.json()["detail"]


def test_unreachable_upstream_is_502(http):
    response = invoke(http, "refused", HI)
    assert response.status_code == 502
    assert "endpoint 'refused' (provider gemini) could not be reached" in response.json()["detail"]


def test_stream_refused_upstream_gets_a_real_status(http):
    with http.stream("POST", "/endpoints/err-429/invocations", json={**HI, "stream": True}) as response:
        response.read()
    assert response.status_code == 429
    assert response.json() == {"detail": "Resource has been exhausted (e.g. check quota)."}


def test_error_in_the_middle_of_a_stream_becomes_an_error_event(http):
    status, events = stream_events(http, "stream-error", HI)
    assert status == 200
    assert orjson.loads(events[0])["choices"][0]["delta"]["content"] == "Hello"
    assert orjson.loads(events[-1]) == {
        "error": {
            "message": "Gemini returned INTERNAL while streaming: Internal error encountered.",
            "type": "upstream_error",
            "code": 500,
        }
    }
    assert b"[DONE]" not in events


def test_the_key_never_reaches_logs_or_urls(http, gateway, upstream):
    invoke(http, "err-400", HI)
    invoke(http, "refused", HI)
    assert KEY not in gateway.log()
    assert all(KEY not in request.query and KEY not in request.path for request in upstream.requests)

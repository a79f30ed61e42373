"""The Messages API passed through to Claude upstreams (the `anthropic` provider, Claude on
Vertex AI), driven by the real anthropic SDK against a real gateway: the body, beta headers and
every SSE byte go through as sent, the gateway's provider key replaces the client's, provider
errors keep Anthropic's shape, and the usage record gets the cache read/write tokens."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import anthropic
import httpx
import orjson
import pytest

from tests.conftest import launch
from tests.providers.anthropic_upstream import TEXT, stream_events
from tests.providers.gemini_upstream import GoogleUpstream
from tests.providers.test_vertex_ai import PROJECT, service_account
from tests.support.anthropic_upstream import AFTER_TOOL, COUNTED_TOKENS, MessagesUpstream

GOLDEN = Path(__file__).parent / "golden"
PROVIDER_KEY = "sk-ant-provider-secret-0123456789"
CLIENT_KEY = "sk-ant-client-own-key-9876543210"
HI = [{"role": "user", "content": "hi"}]
# what the SDK's messages.stream() takes as arguments; the rest of a body goes as extra_body
SDK_ARGUMENTS = {"model", "max_tokens", "messages", "system", "tools", "tool_choice", "metadata", "thinking"}
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def golden(name: str) -> dict[str, Any]:
    return json.loads((GOLDEN / name).read_text())


def anthropic_endpoint(name: str, model: str, base: str, extra: str = "") -> str:
    return f"""
  - name: {name}
    endpoint_type: llm/v1/chat
{extra}    model:
      provider: anthropic
      name: {model}
      config:
        anthropic_api_key: {PROVIDER_KEY}
        anthropic_api_base: {base}
"""


@pytest.fixture(scope="module")
def upstream():
    server = MessagesUpstream().start()
    server.replays["claude-sonnet-4-5-20250929"] = golden("claude_code_turn.json")["events"]
    yield server
    server.stop()


@pytest.fixture(scope="module")
def google():
    server = GoogleUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(upstream, google, tmp_path_factory):
    directory = tmp_path_factory.mktemp("anthropic-passthrough")
    base = upstream.base
    credentials = service_account(google, "messages")
    config = "endpoints:" + "".join(
        [
            anthropic_endpoint("claude", "claude-text", base),
            anthropic_endpoint("claude-tools", "claude-tools", base),
            anthropic_endpoint("claude-thinking", "claude-thinking", base),
            anthropic_endpoint(
                "claude-code",
                "claude-sonnet-4-5-20250929",
                base,
                "    aliases: [claude-sonnet-4-5-20250929]\n",
            ),
            anthropic_endpoint("rate-limited", "err-429", base),
            anthropic_endpoint("overloaded", "err-529", base),
            anthropic_endpoint("stream-error", "stream-error", base),
            anthropic_endpoint("cut", "claude-cut-midway", base),
            anthropic_endpoint("retried", "claude-flaky", base, "    retries: {attempts: 2}\n"),
            f"""
  - name: vertex-claude
    endpoint_type: llm/v1/chat
    model:
      provider: vertex_ai
      name: claude-sonnet-4@20250514
      config:
        vertex_project: {PROJECT}
        vertex_api_base: {google.url}
        vertex_credentials: '{credentials}'
        vertex_anthropic_betas: context-1m-2025-08-07
""",
        ]
    )
    config += (
        "routes:\n  - name: claude-fallback\n    task_type: llm/v1/chat\n    routing_strategy: FALLBACK\n"
        "    destinations:\n      - name: overloaded\n      - name: claude\n"
    )
    log = directory / "access.jsonl"
    process = launch(directory, config, extra_args=["--access-log", str(log)])
    process.access_log = log  # type: ignore[attr-defined]
    yield process
    process.stop()


@pytest.fixture
def client(gateway):
    return anthropic.Anthropic(base_url=gateway.url, api_key=CLIENT_KEY, max_retries=0)


def access_records(gateway: Any, request_id: str) -> list[dict[str, Any]]:
    """The access log's lines for one request (written within ~50 ms of its end)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = gateway.access_log.read_text().splitlines() if gateway.access_log.exists() else []
        found = [record for record in map(json.loads, lines) if record.get("request_id") == request_id]
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"no access-log line for {request_id}")


# -- whole answers ----------------------------------------------------------------------------
def test_create_passes_the_body_through_with_the_gateways_key(client, upstream):
    answer = client.messages.create(
        model="claude", max_tokens=64, messages=HI, metadata={"user_id": "user-1"}, extra_body={"top_k": 5}
    )
    assert answer.content[0].text == "".join(TEXT)
    assert answer.usage.cache_read_input_tokens == 10 and answer.usage.cache_creation_input_tokens == 3
    sent = upstream.last()
    assert sent.path == "/v1/messages"
    # the endpoint's model replaces the name asked for; everything else as the client sent it
    assert sent.body == {
        "max_tokens": 64,
        "messages": HI,
        "model": "claude-text",
        "metadata": {"user_id": "user-1"},
        "top_k": 5,
    }
    assert sent.headers["x-api-key"] == PROVIDER_KEY
    assert sent.headers["anthropic-version"] == client.default_headers["anthropic-version"]
    assert CLIENT_KEY not in json.dumps(sent.headers)


def test_a_body_naming_the_endpoints_model_goes_through_byte_for_byte(gateway, upstream):
    raw = b'{"model":"claude-sonnet-4-5-20250929","max_tokens":5,  "messages":[{"role":"user","content":"hi"}],"stream":false}'
    response = httpx.post(
        f"{gateway.url}/v1/messages",
        content=raw,
        headers={
            "content-type": "application/json",
            "x-api-key": CLIENT_KEY,
            "anthropic-version": "2023-06-01",
        },
    )
    assert response.status_code == 200
    assert upstream.last().raw == raw


def test_usage_record_has_the_cache_read_and_write_tokens(gateway, client):
    answer = client.messages.with_raw_response.create(model="claude", max_tokens=8, messages=HI)
    assert answer.parse().id == "msg_01XFDUDYJgAACzvnptvVoYEL"
    record = access_records(gateway, answer.headers["x-request-id"])[0]
    # Anthropic's input 25 + cache read 10 + cache write 3, in OpenAI's shape
    assert {key: record[key] for key in ("prompt_tokens", "cached_tokens", "cache_write_tokens")} == {
        "prompt_tokens": 38,
        "cached_tokens": 10,
        "cache_write_tokens": 3,
    }
    assert record["completion_tokens"] == 12 and record["status"] == 200 and not record["estimated"]


def test_thinking_blocks_and_their_signatures_reach_the_client(client):
    answer = client.messages.create(
        model="claude-thinking",
        max_tokens=2048,
        messages=HI,
        thinking={"type": "enabled", "budget_tokens": 1024},
    )
    assert [block.type for block in answer.content] == ["thinking", "text"]
    assert answer.content[0].signature == "EqQBCgIYAhIM"


# -- streams ----------------------------------------------------------------------------------
def test_stream_relays_every_event_byte_for_byte(gateway, upstream):
    body = {"model": "claude-tools", "max_tokens": 64, "messages": HI, "stream": True}
    headers = {"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01"}
    with httpx.stream("POST", f"{gateway.url}/v1/messages", json=body, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        received = response.read()
    expected = b"".join(
        b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"
        for event in stream_events("claude-tools")
    )
    assert received == expected


def test_sdk_stream_accumulates_the_final_message(client):
    with client.messages.stream(model="claude-tools", max_tokens=64, messages=HI, tools=[WEATHER]) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(texts) == "Checking both cities."
    assert [block.type for block in final.content] == ["text", "tool_use", "tool_use"]
    assert [block.input for block in final.content[1:]] == [{"city": "Paris"}, {"city": "London"}]
    assert final.stop_reason == "tool_use"
    assert final.usage.output_tokens == 12


def test_tool_use_round_trip(client, upstream):
    first = client.messages.create(model="claude-tools", max_tokens=64, messages=HI, tools=[WEATHER])
    call = next(block for block in first.content if block.type == "tool_use")
    assert call.input == {"city": "Paris"}
    turn = [
        *HI,
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}]},
    ]
    with client.messages.stream(
        model="claude-tools", max_tokens=64, messages=turn, tools=[WEATHER]
    ) as stream:
        final = stream.get_final_message()
    assert final.content[0].text == AFTER_TOOL
    assert upstream.last().body["messages"][2]["content"][0] == {
        "type": "tool_result",
        "tool_use_id": "toolu_01A",
        "content": "sunny",
    }


# -- golden: Claude Code's own requests ------------------------------------------------------
def test_claude_code_turn_replayed(gateway, upstream):
    case = golden("claude_code_turn.json")
    headers = {**case["request"]["headers"], "authorization": f"Bearer {CLIENT_KEY}"}
    raw = orjson.dumps(case["request"]["body"])
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/messages",
        content=raw,
        headers={**headers, "content-type": "application/json"},
    ) as response:
        assert response.status_code == 200
        received = response.read()
        request_id = response.headers["x-request-id"]
    sent = upstream.last()
    # the body exactly as Claude Code sent it (its model is this endpoint's alias and model)
    assert sent.raw == raw
    assert sent.body["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert sent.body["thinking"] == {"type": "enabled", "budget_tokens": 31999}
    assert sent.body["metadata"]["user_id"].startswith("user_")
    assert sent.headers["anthropic-beta"] == case["request"]["headers"]["anthropic-beta"]
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["x-api-key"] == PROVIDER_KEY
    assert "authorization" not in {name.lower() for name in sent.headers}
    assert received == upstream.wire("claude-sonnet-4-5-20250929")
    # the usage record: prompt = input + cache read + cache write (OpenAI's shape)
    record = access_records(gateway, request_id)[0]
    expected = case["recorded_usage"]
    assert {key: record[key] for key in expected} == expected
    assert record["endpoint"] == "claude-code" and record["asked"] == "claude-sonnet-4-5-20250929"


def test_claude_code_turn_through_the_sdk_accumulator(gateway):
    case = golden("claude_code_turn.json")
    body = {key: value for key, value in case["request"]["body"].items() if key in SDK_ARGUMENTS}
    body["extra_body"] = {
        key: value for key, value in case["request"]["body"].items() if key not in SDK_ARGUMENTS | {"stream"}
    }
    client = anthropic.Anthropic(
        base_url=gateway.url, api_key=CLIENT_KEY, max_retries=0, default_headers=case["request"]["headers"]
    )
    with client.messages.stream(**body) as stream:
        final = stream.get_final_message()
    expected = case["final_message"]
    assert [block.type for block in final.content] == expected["content_types"]
    assert final.content[2].input == expected["tool_input"]
    assert final.stop_reason == expected["stop_reason"]
    usage = final.usage
    assert {key: getattr(usage, key) for key in expected["usage"]} == expected["usage"]


def test_claude_code_count_tokens_replayed(gateway, upstream):
    case = golden("claude_code_count_tokens.json")
    client = anthropic.Anthropic(
        base_url=gateway.url, api_key=CLIENT_KEY, max_retries=0, default_headers=case["request"]["headers"]
    )
    counted = client.messages.with_raw_response.count_tokens(**{**case["request"]["body"], "model": "claude"})
    assert counted.parse().input_tokens == COUNTED_TOKENS
    assert counted.headers["x-gateway-token-count"] == "provider"
    sent = upstream.last()
    assert sent.path == "/v1/messages/count_tokens"
    assert sent.body == {**case["request"]["body"], "model": "claude-text"}
    assert sent.headers["anthropic-beta"] == case["request"]["headers"]["anthropic-beta"]
    assert sent.headers["x-api-key"] == PROVIDER_KEY


# -- errors -------------------------------------------------------------------------------------
def test_provider_errors_pass_through_in_anthropics_shape(gateway, client):
    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.create(model="rate-limited", max_tokens=8, messages=HI)
    assert caught.value.body == {
        "type": "error",
        "error": {
            "type": "rate_limit_error",
            "message": "Number of request tokens has exceeded your per-minute rate limit",
        },
        "request_id": "req_011CTest",
    }
    with pytest.raises(anthropic.APIStatusError) as overloaded:
        client.messages.create(model="overloaded", max_tokens=8, messages=HI)
    assert overloaded.value.status_code == 529
    assert overloaded.value.body["error"]["type"] == "overloaded_error"


def test_provider_error_event_mid_stream_is_relayed_and_raised(client):
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        client.messages.stream(model="stream-error", max_tokens=8, messages=HI) as stream,
    ):
        stream.get_final_message()
    assert caught.value.body["error"] == {"type": "overloaded_error", "message": "Overloaded"}


def test_a_stream_cut_mid_event_ends_with_an_anthropic_error_event(gateway, client):
    body = {"model": "cut", "max_tokens": 8, "messages": HI, "stream": True}
    with httpx.stream(
        "POST", f"{gateway.url}/v1/messages", json=body, headers={"x-api-key": CLIENT_KEY}
    ) as response:
        received = response.read()
    events = [event for event in received.split(b"\n\n") if event]
    # the half event never reaches the client: every event is whole, the last one the error
    assert all(event.startswith(b"event: ") for event in events)
    name, data = events[-1].split(b"\n", 1)
    assert name == b"event: error"
    error = json.loads(data.removeprefix(b"data: "))
    assert error["type"] == "error" and error["error"]["type"] == "api_error"
    assert "endpoint 'cut' (provider anthropic)" in error["error"]["message"]
    with (
        pytest.raises(anthropic.APIStatusError),
        client.messages.stream(model="cut", max_tokens=8, messages=HI) as stream,
    ):
        stream.get_final_message()


def test_unknown_model_is_an_anthropic_not_found(client):
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.messages.create(model="claude-nonexistent", max_tokens=8, messages=HI)
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["type"] == "not_found_error"


def test_a_body_without_model_is_an_anthropic_bad_request(gateway):
    response = httpx.post(f"{gateway.url}/v1/messages", json={"max_tokens": 5, "messages": HI})
    assert response.status_code == 400
    assert response.json() == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "model: Field required"},
    }


# -- Claude on Vertex AI ----------------------------------------------------------------------
def test_vertex_claude_passthrough(client, google):
    answer = client.messages.create(
        model="vertex-claude",
        max_tokens=16,
        messages=HI,
        extra_headers={"anthropic-beta": "interleaved-thinking-2025-05-14"},
    )
    assert answer.content[0].text == "Hello from Claude!"
    sent = google.last()
    assert (
        sent.path
        == f"/v1/projects/{PROJECT}/locations/global/publishers/anthropic/models/claude-sonnet-4@20250514:rawPredict"
    )
    # Vertex's form: no model in the body, its anthropic_version in it
    assert sent.body == {"max_tokens": 16, "messages": HI, "anthropic_version": "vertex-2023-10-16"}
    assert sent.headers["Authorization"].startswith("Bearer ya29.test-token-")
    assert sent.headers["anthropic-beta"] == "context-1m-2025-08-07,interleaved-thinking-2025-05-14"
    with client.messages.stream(model="vertex-claude", max_tokens=16, messages=HI) as stream:
        final = stream.get_final_message()
    assert final.content[0].text == "Hello from Claude!"
    assert google.last().path.endswith(":streamRawPredict")


# -- retries and fallbacks (routing/) apply to passthrough too -------------------------------
@pytest.mark.parametrize("stream", [False, True])
def test_an_overloaded_answer_is_retried(client, upstream, stream):
    before = upstream.flaky_calls
    if stream:
        with client.messages.stream(model="retried", max_tokens=8, messages=HI) as events:
            text = events.get_final_message().content[0].text
    else:
        text = client.messages.create(model="retried", max_tokens=8, messages=HI).content[0].text
    assert text == "".join(TEXT)
    assert upstream.flaky_calls - before == 2


@pytest.mark.parametrize("stream", [False, True])
def test_a_fallback_route_of_claude_endpoints_passes_through(client, upstream, stream):
    body = {
        "model": "claude-fallback",
        "max_tokens": 8,
        "messages": HI,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
    }
    if stream:
        with client.messages.stream(**body) as events:
            answer = events.get_final_message()
    else:
        answer = client.messages.create(**body)
    assert answer.content[0].text == "".join(TEXT)
    models = [request.body["model"] for request in upstream.requests[-2:]]
    assert models == ["err-529", "claude-text"]
    assert upstream.last().body["thinking"] == body["thinking"]  # passed through, not translated

"""The Messages API translated for chat endpoints of other providers (OpenAI, Gemini), driven by
the real anthropic SDK against a real gateway: answers, streams the SDK's accumulator builds,
tool use both ways, count_tokens estimates, and errors (a gateway limit, a stream failing
mid-way) in Anthropic's shapes."""

from __future__ import annotations

import json
from pathlib import Path

import anthropic
import httpx
import pytest

from tests.conftest import launch
from tests.providers.gemini_upstream import GoogleUpstream
from tests.support.openai_upstream import WORDS, OpenAIUpstream

GOLDEN = Path(__file__).parent / "golden"
HI = [{"role": "user", "content": "hi"}]
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
OPENAI_TEXT = "".join(WORDS)
GEMINI_TEXT = "Hello from Gemini!"


@pytest.fixture(scope="module")
def openai_upstream():
    server = OpenAIUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def google():
    server = GoogleUpstream().start()
    yield server
    server.stop()


def openai_endpoint(name: str, model: str, base: str, extra: str = "") -> str:
    return f"""
  - name: {name}
    endpoint_type: llm/v1/chat
    model:
      provider: openai
      name: {model}
      config:
        openai_api_key: sk-openai-secret-000111222
        openai_api_base: {base}
{extra}"""


def gemini_endpoint(name: str, model: str, base: str) -> str:
    return f"""
  - name: {name}
    endpoint_type: llm/v1/chat
    model:
      provider: gemini
      name: {model}
      config:
        gemini_api_key: gm-secret-333444555
        gemini_api_base: {base}
"""


@pytest.fixture(scope="module")
def gateway(openai_upstream, google, tmp_path_factory):
    base = openai_upstream.base
    gemini_base = f"{google.url}/v1beta/models"
    limit = "    limit:\n      calls: 1\n      renewal_period: minute\n"
    config = "endpoints:" + "".join(
        [
            openai_endpoint("gpt", "gpt-4o-mini", base),
            openai_endpoint("gpt-limited", "gpt-4o-mini", base, limit),
            openai_endpoint("gpt-stream-error", "stream-error-event", base),
            openai_endpoint("gpt-stream-break", "stream-break", base),
            openai_endpoint("gpt-401", "err-401", base),
            gemini_endpoint("gemini", "gemini-2.0-flash", gemini_base),
            gemini_endpoint("gemini-tools", "gemini-tools", gemini_base),
            """
  - name: embeddings
    endpoint_type: llm/v1/embeddings
    model:
      provider: mock
      config: {}
""",
        ]
    )
    process = launch(tmp_path_factory.mktemp("anthropic-translation"), config)
    yield process
    process.stop()


@pytest.fixture
def client(gateway):
    return anthropic.Anthropic(base_url=gateway.url, api_key="client-key", max_retries=0)


@pytest.mark.parametrize(("model", "text"), [("gpt", OPENAI_TEXT), ("gemini", GEMINI_TEXT)])
def test_create(client, model, text):
    answer = client.messages.create(model=model, max_tokens=64, messages=HI, system="Be brief.")
    assert answer.type == "message" and answer.role == "assistant"
    assert answer.content[0].type == "text" and answer.content[0].text == text
    assert answer.stop_reason == "end_turn"
    assert answer.usage.input_tokens > 0 and answer.usage.output_tokens > 0
    assert answer.id.startswith("msg_")


@pytest.mark.parametrize(("model", "text"), [("gpt", OPENAI_TEXT), ("gemini", GEMINI_TEXT)])
def test_stream_builds_the_final_message(client, model, text):
    with client.messages.stream(model=model, max_tokens=64, messages=HI) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(pieces) == text
    assert final.content[0].text == text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0 and final.usage.input_tokens > 0


def test_stream_event_grammar(gateway):
    body = {"model": "gpt", "max_tokens": 64, "messages": HI, "stream": True}
    with httpx.stream("POST", f"{gateway.url}/v1/messages", json=body) as response:
        raw = response.read().decode()
    names = [event.split("\n")[0].removeprefix("event: ") for event in raw.split("\n\n") if event]
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names[-4:] == ["content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    assert set(names[3:-3]) == {"content_block_delta"}


def test_openai_request_is_translated(client, openai_upstream):
    client.messages.create(
        model="gpt",
        max_tokens=64,
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}],
            }
        ],
        stop_sequences=["END"],
        metadata={"user_id": "user-7"},
    )
    sent = openai_upstream.last().body
    assert sent["model"] == "gpt-4o-mini"
    assert sent["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    assert sent["max_tokens"] == 64 and sent["stop"] == ["END"]
    assert "metadata" not in sent and "cache_control" not in json.dumps(sent)


def test_openai_tool_use_round_trip(client, openai_upstream):
    first = client.messages.create(
        model="gpt", max_tokens=64, messages=HI, tools=[WEATHER], tool_choice={"type": "any"}
    )
    assert first.stop_reason == "tool_use"
    call = first.content[-1]
    assert call.type == "tool_use" and call.name == "get_weather" and call.input == {"city": "Paris"}
    sent = openai_upstream.last().body
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": WEATHER["input_schema"],
                "description": "Weather for a city",
            },
        }
    ]
    assert sent["tool_choice"] == "required"
    turn = [
        *HI,
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": call.id, "content": "sunny"},
                {"type": "text", "text": "and so?"},
            ],
        },
    ]
    client.messages.create(model="gpt", max_tokens=64, messages=turn, tools=[WEATHER])
    sent = openai_upstream.last().body
    assert sent["messages"][1:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        {"role": "user", "content": "and so?"},
    ]


def test_openai_streamed_tool_use(client):
    with client.messages.stream(model="gpt", max_tokens=64, messages=HI, tools=[WEATHER]) as stream:
        final = stream.get_final_message()
    assert [block.type for block in final.content] == ["tool_use"]
    assert final.content[0].input == {"city": "Paris"} and final.content[0].id == "call_1"
    assert final.stop_reason == "tool_use"


def test_gemini_tool_use(client, google):
    answer = client.messages.create(model="gemini-tools", max_tokens=64, messages=HI, tools=[WEATHER])
    assert [block.type for block in answer.content] == ["text", "tool_use", "tool_use"]
    assert answer.content[1].input == {"city": "Paris"} and answer.content[2].name == "get_time"
    assert answer.stop_reason == "tool_use"
    with client.messages.stream(model="gemini-tools", max_tokens=64, messages=HI, tools=[WEATHER]) as stream:
        final = stream.get_final_message()
    assert [block.input for block in final.content if block.type == "tool_use"] == [
        {"city": "Paris"},
        {"zone": "CET"},
    ]
    declared = google.last().body["tools"][0]["functionDeclarations"][0]
    assert declared["name"] == "get_weather"


def test_claude_code_turn_to_an_openai_endpoint(gateway, openai_upstream):
    """Claude Code's own request (beta headers, thinking, cache_control, metadata.user_id),
    pointed at an OpenAI endpoint by its model name: what OpenAI can take is translated, the rest
    dropped, and the answer is a stream the SDK's accumulator builds."""
    case = json.loads((GOLDEN / "claude_code_turn.json").read_text())
    body = {**case["request"]["body"], "model": "gpt"}
    client = anthropic.Anthropic(
        base_url=gateway.url, api_key="client-key", max_retries=0, default_headers=case["request"]["headers"]
    )
    arguments = {"model", "max_tokens", "messages", "system", "tools", "tool_choice", "metadata", "thinking"}
    extra = {key: value for key, value in body.items() if key not in arguments | {"stream"}}
    with client.messages.stream(
        **{k: v for k, v in body.items() if k in arguments}, extra_body=extra
    ) as stream:
        final = stream.get_final_message()
    assert final.content[0].type == "tool_use" and final.content[0].name == "Bash"
    sent = openai_upstream.last().body
    assert sent["messages"][0] == {
        "role": "system",
        "content": "\n".join(block["text"] for block in case["request"]["body"]["system"]),
    }
    assert sent["messages"][1]["role"] == "user" and sent["messages"][1]["content"].endswith("directory.")
    assert [tool["function"]["name"] for tool in sent["tools"]] == ["Bash", "Glob"]
    assert sent["tool_choice"] == "auto" and sent["max_tokens"] == 32000 and sent["temperature"] == 1
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    for dropped in ("thinking", "metadata", "cache_control", "anthropic"):
        assert dropped not in json.dumps(sent)


def test_count_tokens_is_an_estimate_and_says_so(client):
    counted = client.messages.with_raw_response.count_tokens(
        model="gpt", messages=[{"role": "user", "content": "x" * 400}]
    )
    assert counted.headers["x-gateway-token-count"] == "estimated"
    assert counted.parse().input_tokens == 100 + 3  # 4 characters a token, 3 for the message


# -- errors -------------------------------------------------------------------------------------
def test_a_gateway_limit_is_a_rate_limit_error(client):
    client.messages.create(model="gpt-limited", max_tokens=8, messages=HI)
    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.create(model="gpt-limited", max_tokens=8, messages=HI)
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["type"] == "rate_limit_error"
    assert int(caught.value.response.headers["retry-after"]) >= 1


def test_an_upstream_error_keeps_its_status(client):
    with pytest.raises(anthropic.AuthenticationError) as caught:
        client.messages.create(model="gpt-401", max_tokens=8, messages=HI)
    assert caught.value.body["error"]["type"] == "authentication_error"


@pytest.mark.parametrize("model", ["gpt-stream-error", "gpt-stream-break"])
def test_a_stream_failing_midway_ends_with_an_error_event(gateway, client, model):
    body = {"model": model, "max_tokens": 8, "messages": HI, "stream": True}
    with httpx.stream("POST", f"{gateway.url}/v1/messages", json=body) as response:
        assert response.status_code == 200
        events = [event for event in response.read().decode().split("\n\n") if event]
    assert events[0].startswith("event: message_start")
    name, data = events[-1].split("\n", 1)
    assert name == "event: error"
    assert json.loads(data.removeprefix("data: "))["type"] == "error"
    with (
        pytest.raises(anthropic.APIStatusError),
        client.messages.stream(model=model, max_tokens=8, messages=HI) as stream,
    ):
        stream.get_final_message()


def test_a_server_tool_is_refused_by_name(client):
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(
            model="gpt",
            max_tokens=8,
            messages=HI,
            tools=[{"type": "web_search_20250305", "name": "web_search"}],
        )
    assert "web_search_20250305" in caught.value.body["error"]["message"]


def test_a_non_chat_endpoint_is_refused(client):
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model="embeddings", max_tokens=8, messages=HI)
    assert "not a chat endpoint" in caught.value.body["error"]["message"]


def test_mlflows_anthropic_route_family(gateway):
    client = anthropic.Anthropic(base_url=f"{gateway.url}/gateway/anthropic", api_key="k", max_retries=0)
    assert client.messages.create(model="gpt", max_tokens=8, messages=HI).content[0].text == OPENAI_TEXT
    assert client.messages.count_tokens(model="gpt", messages=HI).input_tokens > 0

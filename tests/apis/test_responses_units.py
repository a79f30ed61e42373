"""The Responses and Gemini translations in process: request shapes the integration tests do not
reach (developer messages, images, calls joined into one assistant turn, tool choices, JSON
formats), and answers cut at their token limit."""

from __future__ import annotations

import orjson
import pytest

from gateway.apis.gemini.answers import GeminiStreamWriter, usage_metadata
from gateway.apis.gemini.requests import call_id
from gateway.apis.gemini.requests import chat_payload as gemini_chat_payload
from gateway.apis.responses.answers import EventWriter, ResponseShell, chat_usage, responses_usage
from gateway.apis.responses.requests import chat_payload
from gateway.errors import BadRequest
from gateway.schemas.responses import ChatChunk, ChatChunkChoice, ChatDelta


def chunk(content: str | None = None, finish: str | None = None, usage: dict | None = None) -> ChatChunk:
    choice = ChatChunkChoice(index=0, finish_reason=finish, delta=ChatDelta(content=content))
    return ChatChunk(id="c", created=1, model="m", choices=[choice], usage=usage, provider="p")


def events(raw: bytes) -> list[dict]:
    return [orjson.loads(line[6:]) for line in raw.split(b"\n") if line.startswith(b"data: ")]


def test_responses_input_as_chat_messages():
    payload = chat_payload(
        {
            "instructions": "Be brief.",
            "input": [
                {"role": "developer", "content": "Use metric units."},
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "What is this?"},
                        {"type": "input_image", "image_url": "https://x/cat.png", "detail": "low"},
                    ],
                },
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "Checking."}],
                },
                {"type": "function_call", "call_id": "c1", "name": "a", "arguments": "{}"},
                {"type": "function_call", "call_id": "c2", "name": "b", "arguments": '{"x":1}'},
                {"type": "function_call_output", "call_id": "c1", "output": "A"},
                {
                    "type": "function_call_output",
                    "call_id": "c2",
                    "output": [{"type": "input_text", "text": "B"}],
                },
            ],
            "tools": [
                {"type": "function", "name": "a", "parameters": {"type": "object"}},
                {"type": "web_search"},
            ],
            "tool_choice": {"type": "function", "name": "a"},
            "text": {
                "format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": True}
            },
            "max_output_tokens": 10,
        }
    )
    assert payload["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "system", "content": "Use metric units."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "https://x/cat.png", "detail": "low"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "a", "arguments": "{}"}},
                {"id": "c2", "type": "function", "function": {"name": "b", "arguments": '{"x":1}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "A"},
        {"role": "tool", "tool_call_id": "c2", "content": "B"},
    ]
    assert payload["tools"] == [
        {"type": "function", "function": {"name": "a", "parameters": {"type": "object"}}}
    ]
    assert payload["tool_choice"] == {"type": "function", "function": {"name": "a"}}
    assert payload["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": True},
    }
    assert payload["max_tokens"] == 10


def test_responses_without_input_is_a_400():
    with pytest.raises(BadRequest):
        chat_payload({"model": "m"})


def test_answer_cut_at_its_limit_is_incomplete():
    writer = EventWriter(ResponseShell({"model": "m"}, "m"))
    raw = writer.start() + writer.chunks([chunk("Hel"), chunk("lo", finish="length")])
    raw += writer.finish_events()
    stream = events(raw)
    assert stream[-1]["type"] == "response.incomplete"
    assert stream[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert stream[-1]["response"]["output"][0]["content"][0]["text"] == "Hello"
    assert [event["sequence_number"] for event in stream] == list(range(len(stream)))


def test_usage_conversions_round_trip():
    chat = {
        "prompt_tokens": 30,
        "completion_tokens": 12,
        "total_tokens": 42,
        "prompt_tokens_details": {"cached_tokens": 10},
        "completion_tokens_details": {"reasoning_tokens": 4},
        "cache_creation_input_tokens": 3,
    }
    responses = responses_usage(chat)
    assert responses == {
        "input_tokens": 30,
        "input_tokens_details": {"cached_tokens": 10, "cache_write_tokens": 3},
        "output_tokens": 12,
        "output_tokens_details": {"reasoning_tokens": 4},
        "total_tokens": 42,
    }
    assert chat_usage(responses) == chat
    assert usage_metadata(chat) == {
        "promptTokenCount": 30,
        "candidatesTokenCount": 8,
        "totalTokenCount": 42,
        "cachedContentTokenCount": 10,
        "thoughtsTokenCount": 4,
    }


def test_gemini_calls_without_ids_are_paired_by_name():
    payload = gemini_chat_payload(
        {
            "contents": [
                {"role": "user", "parts": [{"text": "Weather?"}]},
                {
                    "role": "model",
                    "parts": [
                        {"text": "thinking", "thought": True},
                        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                    ],
                },
                {
                    "role": "user",
                    "parts": [{"functionResponse": {"name": "get_weather", "response": {"t": 21}}}],
                },
            ],
            "tools": [
                {
                    "functionDeclarations": [
                        {
                            "name": "get_weather",
                            "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}},
                        }
                    ]
                }
            ],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY"}},
            "generationConfig": {"responseMimeType": "application/json", "stopSequences": ["END"]},
        }
    )
    identifier = call_id("get_weather", {"city": "Paris"})
    assert payload["messages"][1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": identifier,
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            }
        ],
    }
    assert payload["messages"][2] == {"role": "tool", "tool_call_id": identifier, "content": '{"t":21}'}
    parameters = payload["tools"][0]["function"]["parameters"]
    assert parameters == {"type": "object", "properties": {"city": {"type": "string"}}}
    assert payload["tool_choice"] == "required"
    assert payload["response_format"] == {"type": "json_object"}
    assert payload["stop"] == ["END"]


def test_gemini_json_array_stream_is_one_array():
    writer = GeminiStreamWriter("m", sse=False)
    raw = writer.chunks([chunk("Hi"), chunk(" there", finish="length")]) + writer.finish_bytes()
    items = orjson.loads(raw)
    assert [item["candidates"][0].get("finishReason") for item in items] == [None, None, "MAX_TOKENS"]

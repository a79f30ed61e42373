"""The Messages API translation and passthrough pieces in process: request translation rules,
the stream event grammar for interleaved text and tool calls, usage mapping, event boundaries,
the count_tokens estimate."""

from __future__ import annotations

import orjson

from gateway.apis.anthropic.count_tokens import estimate
from gateway.apis.anthropic.passthrough import event_boundary
from gateway.apis.anthropic.translate_request import chat_payload
from gateway.apis.anthropic.translate_stream import MessagesEvents, anthropic_usage
from gateway.schemas.responses import ChatChunk, ChatChunkChoice, ChatDelta


def test_request_translation():
    body = {
        "model": "m",
        "max_tokens": 100,
        "system": [
            {"type": "text", "text": "A"},
            {"type": "text", "text": "B", "cache_control": {"type": "ephemeral"}},
        ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"},
                    },
                    {"type": "text", "text": "what?"},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                    {"type": "text", "text": "Looking."},
                    {"type": "tool_use", "id": "t1", "name": "look", "input": {"q": 1}},
                    {"type": "tool_use", "id": "t2", "name": "look", "input": {"q": 2}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": [{"type": "text", "text": "one"}],
                    },
                    {"type": "tool_result", "tool_use_id": "t2", "content": "boom", "is_error": True},
                ],
            },
        ],
        "tools": [
            {"name": "look", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}}
        ],
        "tool_choice": {"type": "tool", "name": "look", "disable_parallel_tool_use": True},
        "thinking": {"type": "enabled", "budget_tokens": 50},
        "top_k": 3,
        "stop_sequences": ["X"],
        "temperature": 0.2,
    }
    assert chat_payload(body) == {
        "messages": [
            {"role": "system", "content": "A\nB"},
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                    {"type": "text", "text": "what?"},
                ],
            },
            {
                "role": "assistant",
                "content": "Looking.",
                "tool_calls": [
                    {"id": "t1", "type": "function", "function": {"name": "look", "arguments": '{"q":1}'}},
                    {"id": "t2", "type": "function", "function": {"name": "look", "arguments": '{"q":2}'}},
                ],
            },
            {"role": "tool", "tool_call_id": "t1", "content": "one"},
            {"role": "tool", "tool_call_id": "t2", "content": "Error: boom"},
        ],
        "max_tokens": 100,
        "temperature": 0.2,
        "stop": ["X"],
        "tools": [{"type": "function", "function": {"name": "look", "parameters": {"type": "object"}}}],
        "tool_choice": {"type": "function", "function": {"name": "look"}},
        "parallel_tool_calls": False,
    }


def chunk(delta: ChatDelta, finish: str | None = None, usage: dict | None = None) -> ChatChunk:
    choices = [ChatChunkChoice(index=0, finish_reason=finish, delta=delta)] if usage is None else []
    return ChatChunk(id="c", created=1, model="gpt", choices=choices, usage=usage, provider="openai")


def parse(wire: bytes) -> list[dict]:
    events = []
    for raw in wire.split(b"\n\n"):
        if raw:
            name, data = raw.split(b"\n", 1)
            event = orjson.loads(data.removeprefix(b"data: "))
            assert name == b"event: " + event["type"].encode()
            events.append(event)
    return events


def test_stream_grammar_with_text_and_two_tool_calls():
    writer = MessagesEvents("asked")
    call = {"index": 0, "id": "call_a", "type": "function", "function": {"name": "f", "arguments": ""}}
    wire = (
        writer.start(None)
        + writer.batch(
            [
                chunk(ChatDelta(role="assistant", content="Hi")),
                chunk(ChatDelta(tool_calls=[call])),
                chunk(ChatDelta(tool_calls=[{"index": 0, "function": {"arguments": '{"a":'}}])),
                chunk(
                    ChatDelta(
                        tool_calls=[
                            {"index": 1, "id": "call_b", "function": {"name": "g", "arguments": "{}"}}
                        ]
                    )
                ),
                chunk(ChatDelta(tool_calls=[{"index": 0, "function": {"arguments": "1}"}}])),
                chunk(ChatDelta(), "tool_calls"),
                chunk(
                    ChatDelta(),
                    usage={
                        "prompt_tokens": 100,
                        "completion_tokens": 7,
                        "prompt_tokens_details": {"cached_tokens": 60},
                        "cache_creation_input_tokens": 10,
                    },
                ),
            ]
        )
        + writer.end()
    )
    events = parse(wire)
    kinds = [(e["type"], e.get("index")) for e in events]
    assert kinds == [
        ("message_start", None),
        ("ping", None),
        ("content_block_start", 0),
        ("content_block_delta", 0),
        ("content_block_stop", 0),
        ("content_block_start", 1),
        ("content_block_delta", 1),
        ("content_block_stop", 1),
        ("content_block_start", 2),
        ("content_block_delta", 2),
        ("content_block_delta", 1),  # a late piece of the first call still lands in its block
        ("content_block_stop", 2),
        ("message_delta", None),
        ("message_stop", None),
    ]
    assert events[5]["content_block"] == {"type": "tool_use", "id": "call_a", "name": "f", "input": {}}
    assert events[-2]["delta"]["stop_reason"] == "tool_use"
    assert events[-2]["usage"] == {
        "input_tokens": 30,
        "cache_creation_input_tokens": 10,
        "cache_read_input_tokens": 60,
        "output_tokens": 7,
    }


def test_usage_mapping_without_details():
    assert anthropic_usage({"prompt_tokens": 5, "completion_tokens": 6}) == {
        "input_tokens": 5,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 6,
    }
    assert anthropic_usage(None) == {"input_tokens": 0, "output_tokens": 0}


def test_event_boundaries():
    assert event_boundary(bytearray(b"event: a\ndata: {}\n\nevent: b\nda")) == len(b"event: a\ndata: {}\n\n")
    assert event_boundary(bytearray(b"data: {}\r\n\r\n")) == 12
    assert event_boundary(bytearray(b"event: a\ndata: {")) == 0


def test_count_tokens_estimate_counts_every_kind_of_text():
    payload = {
        "system": "x" * 40,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "y" * 40}]},
            {"role": "assistant", "content": [{"type": "tool_use", "name": "f", "input": {"k": "v"}}]},
            {"role": "user", "content": [{"type": "tool_result", "content": "z" * 40}]},
        ],
    }
    # 120 characters of text + '{"k":"v"}' (9) + 'f' (1) = 130 -> 33 tokens, + 3 per message
    assert estimate(payload) == 33 + 9

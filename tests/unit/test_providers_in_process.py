"""Providers checked in process through the transport seam: the exact upstream request, the
parsed answer, and streams split at every awkward boundary, with no server anywhere."""

from __future__ import annotations

import asyncio

import pytest

from gateway.config import parse_config
from gateway.errors import UpstreamError
from gateway.providers import provider_class
from tests.support.transport import RecordedTransport, split_every, sse

CHAT = {"messages": [{"role": "user", "content": "hi"}]}
JSON = {"content-type": "application/json"}
EVENTS = {"content-type": "text/event-stream"}


def provider(config_text: str, transport: RecordedTransport):
    endpoint = parse_config("endpoints:" + config_text).endpoints[0]
    return provider_class(endpoint.provider)(endpoint, transport)


def openai_endpoint(kind: str = "chat") -> str:
    return f"""
  - name: e
    endpoint_type: llm/v1/{kind}
    model: {{provider: openai, name: gpt-4o-mini, config: {{openai_api_key: sk-in-process-key}}}}
"""


def anthropic_endpoint() -> str:
    return """
  - name: e
    endpoint_type: llm/v1/chat
    model: {provider: anthropic, name: claude-x, config: {anthropic_api_key: sk-ant-in-process}}
"""


def collect(stream) -> list:
    async def run():
        return [chunk async for batch in stream for chunk in batch]

    return asyncio.run(run())


def test_openai_chat_request_and_answer():
    answer = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini-2024",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "yo"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
    transport = RecordedTransport((200, JSON, answer))
    chat = provider(openai_endpoint(), transport)
    response = asyncio.run(chat.invoke("llm/v1/chat", {**CHAT, "temperature": 0.5, "n": 1}))
    (sent,) = transport.sent
    assert sent.url == "https://api.openai.com/v1/chat/completions"
    assert sent.headers["Authorization"] == "Bearer sk-in-process-key"
    assert sent.body == {"model": "gpt-4o-mini", **CHAT, "temperature": 0.5, "n": 1}
    assert response.choices[0].message.content == "yo" and response.provider == "openai"


def test_openai_error_keeps_status_message_and_back_off_headers():
    error = {"error": {"message": "Rate limit reached", "type": "requests"}}
    transport = RecordedTransport((429, {**JSON, "Retry-After": "3", "X-Request-Id": "r"}, error))
    with pytest.raises(UpstreamError) as raised:
        asyncio.run(provider(openai_endpoint(), transport).invoke("llm/v1/chat", CHAT))
    assert raised.value.status == 429 and raised.value.message == "Rate limit reached"
    assert dict(raised.value.headers()) == {b"retry-after": b"3"}


@pytest.mark.parametrize("size", [1, 7, 64, 4096])
def test_openai_stream_split_anywhere(size):
    events = [
        {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
         "choices": [{"index": 0, "delta": {"role": "assistant", "content": word}, "finish_reason": None}]}
        for word in ("Hel", "lo")
    ]  # fmt: skip
    transport = RecordedTransport((200, EVENTS, split_every(sse(*events), size)))
    stream = asyncio.run(provider(openai_endpoint(), transport).open_stream("llm/v1/chat", CHAT))
    chunks = collect(stream)
    assert "".join(c.choices[0].delta.content for c in chunks) == "Hello"
    assert transport.sent[0].body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("size", [1, 13, 4096])
def test_anthropic_stream_translation_split_anywhere(size):
    events = [
        {
            "type": "message_start",
            "message": {"id": "msg_1", "model": "claude-x", "usage": {"input_tokens": 3}},
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi there"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}},
        {"type": "message_stop"},
    ]
    raw = b"".join(b"event: " + e["type"].encode() + b"\n" + sse(e, done=False) for e in events)
    transport = RecordedTransport((200, EVENTS, split_every(raw, size)))
    stream = asyncio.run(provider(anthropic_endpoint(), transport).open_stream("llm/v1/chat", CHAT))
    chunks = collect(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hi there"
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["stop"]
    sent = transport.sent[0]
    assert (
        sent.url == "https://api.anthropic.com/v1/messages"
        and sent.headers["x-api-key"] == "sk-ant-in-process"
    )
    assert sent.body["max_tokens"] == 8192 and sent.body["stream"] is True

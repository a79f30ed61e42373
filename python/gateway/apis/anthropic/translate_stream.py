"""The gateway's chat answers (any provider) -> Messages API answers, whole and streamed.

A stream follows Anthropic's event grammar, which the anthropic SDK's accumulator relies on:
`message_start` (usage known so far: none, providers report it at the end), `ping`, then for
each content block `content_block_start`, its deltas (`text_delta`, or `input_json_delta` for a
tool call's arguments as they arrive), `content_block_stop`; then `message_delta` with the stop
reason and the whole usage (input, cache read, cache write, output), and `message_stop`.

Usage goes from OpenAI's shape (prompt includes cached tokens) to Anthropic's (input_tokens
excludes cache reads and writes, reported apart).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import orjson

from gateway.apis.anthropic.events import event
from gateway.pipeline.context import RequestContext
from gateway.schemas.responses import ChatChunk, ChatResponse, Chunk, Response
from gateway.types import Payload

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def new_id(prefix: str) -> str:
    return f"{prefix}_{os.urandom(12).hex()}"


def anthropic_usage(reported: Any) -> Payload:
    if not isinstance(reported, dict):
        return {"input_tokens": 0, "output_tokens": 0}
    details = reported.get("prompt_tokens_details")
    cached = (details.get("cached_tokens") if isinstance(details, dict) else None) or 0
    written = reported.get("cache_creation_input_tokens") or 0
    prompt = reported.get("prompt_tokens") or 0
    return {
        "input_tokens": max(0, prompt - cached - written),
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": cached,
        "output_tokens": reported.get("completion_tokens") or 0,
    }


def stop_reason(finish: Any, has_tools: bool) -> str:
    reason = STOP_REASONS.get(finish, "end_turn")
    return "tool_use" if has_tools and reason == "end_turn" else reason


def tool_input(arguments: Any) -> Any:
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    try:
        return orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {"arguments": arguments}  # what the model wrote, kept rather than lost


def message(response: Response, model: str) -> Payload:
    """A whole chat answer as a Messages API message."""
    assert isinstance(response, ChatResponse)
    choice = response.choices[0]
    content: list[Payload] = []
    text = choice.message.content
    if isinstance(text, list):
        text = "".join(part.get("text", "") for part in text if isinstance(part, dict))
    if text:
        content.append({"type": "text", "text": text})
    calls = choice.message.tool_calls or []
    for call in calls:
        function = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id") or new_id("toolu"),
                "name": function.get("name") or "",
                "input": tool_input(function.get("arguments")),
            }
        )
    return {
        "id": message_id(response.id),
        "type": "message",
        "role": "assistant",
        "model": response.model or model,
        "content": content,
        "stop_reason": stop_reason(choice.finish_reason, bool(calls)),
        "stop_sequence": None,
        "usage": anthropic_usage(response.usage),
    }


def message_id(upstream_id: Any) -> str:
    return upstream_id if isinstance(upstream_id, str) and upstream_id.startswith("msg_") else new_id("msg")


class MessagesEvents:
    """Chat chunks in, Messages API events out (bytes), one stream's state."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.index = -1  # the open content block, -1: none
        self.open_kind: str | None = None
        self.tools: dict[int, int] = {}  # the chunk's tool-call index -> content block index
        self.blocks = 0
        self.finish: Any = None
        self.usage: Payload | None = None
        self.chars = 0

    def start(self, first: Chunk | None) -> bytes:
        upstream_id = first.id if first is not None else None
        model = (first.model if first is not None else None) or self.model
        start: Payload = {
            "id": message_id(upstream_id),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return event("message_start", {"type": "message_start", "message": start}) + event(
            "ping", {"type": "ping"}
        )

    def batch(self, chunks: list[Chunk]) -> bytes:
        out: list[bytes] = []
        for chunk in chunks:
            assert isinstance(chunk, ChatChunk)
            if chunk.usage is not None:
                self.usage = chunk.usage
            for choice in chunk.choices[:1]:
                delta = choice.delta
                if delta.content:
                    self.chars += len(delta.content)
                    out.extend(self.text(delta.content))
                for call in delta.tool_calls or ():
                    out.extend(self.tool_call(call))
                if choice.finish_reason is not None:
                    self.finish = choice.finish_reason
        return b"".join(out)

    def text(self, text: str) -> list[bytes]:
        out = [] if self.open_kind == "text" else self.open({"type": "text", "text": ""})
        out.append(self.delta({"type": "text_delta", "text": text}))
        return out

    def tool_call(self, call: dict[str, Any]) -> list[bytes]:
        position = call.get("index", 0)
        function = call.get("function") or {}
        out: list[bytes] = []
        block = self.tools.get(position)
        if block is None:
            out = self.open(
                {
                    "type": "tool_use",
                    "id": call.get("id") or new_id("toolu"),
                    "name": function.get("name") or "",
                    "input": {},
                }
            )
            block = self.tools[position] = self.index
        arguments = function.get("arguments")
        if arguments:
            self.chars += len(arguments)
            out.append(self.delta({"type": "input_json_delta", "partial_json": arguments}, block))
        return out

    def open(self, block: Payload) -> list[bytes]:
        out = self.close()
        self.index, self.open_kind = self.blocks, block["type"]
        self.blocks += 1
        out.append(
            event(
                "content_block_start",
                {"type": "content_block_start", "index": self.index, "content_block": block},
            )
        )
        return out

    def close(self) -> list[bytes]:
        if self.open_kind is None:
            return []
        self.open_kind = None
        return [event("content_block_stop", {"type": "content_block_stop", "index": self.index})]

    def delta(self, delta: Payload, index: int | None = None) -> bytes:
        at = self.index if index is None else index
        return event("content_block_delta", {"type": "content_block_delta", "index": at, "delta": delta})

    def end(self) -> bytes:
        out = self.close()
        delta = {"stop_reason": stop_reason(self.finish, bool(self.tools)), "stop_sequence": None}
        out.append(
            event(
                "message_delta",
                {"type": "message_delta", "delta": delta, "usage": anthropic_usage(self.usage)},
            )
        )
        out.append(event("message_stop", {"type": "message_stop"}))
        return b"".join(out)


async def translated_events(ctx: RequestContext, model: str) -> AsyncIterator[bytes]:
    """The opened chat stream (`ctx.stream`) as Messages API events; the usage and text length
    noted in `ctx.tally` as they pass, for the usage record."""
    assert ctx.stream is not None and ctx.tally is not None
    tally = ctx.tally
    writer = MessagesEvents(model)
    started = False
    try:
        async for batch in ctx.stream:
            head = b"" if started else writer.start(batch[0] if batch else None)
            started = True
            body = writer.batch(batch)
            tally.usage, tally.chars = writer.usage, writer.chars
            if head or body:
                yield head + body
        yield (b"" if started else writer.start(None)) + writer.end()
    finally:
        aclose = getattr(ctx.stream, "aclose", None)
        if aclose is not None:
            await aclose()

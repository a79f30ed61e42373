"""`POST /v1/messages/count_tokens`: the provider's own count where it has one (the `anthropic`
provider: passthrough, like messages), else an estimate, and said to be one: the answer carries
`x-gateway-token-count: estimated`, and the estimate is the request's text (system, messages,
tool definitions) at 4 characters a token, the rule the gateway's limits use."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.apis.anthropic.passthrough import ClaudeUpstream, passed_headers, post
from gateway.pipeline.context import RequestContext
from gateway.server.http import JSON, send_bytes
from gateway.types import Payload
from gateway.usage.tokens import CHARS_PER_TOKEN

ESTIMATED = (b"x-gateway-token-count", b"estimated")
COUNTED = (b"x-gateway-token-count", b"provider")
TOKENS_PER_MESSAGE = 3  # role and framing


async def count_tokens(ctx: RequestContext, upstream: ClaudeUpstream | None, raw: bytes) -> None:
    url = upstream.count_url() if upstream is not None else None
    if upstream is not None and url is not None:
        response = await post(ctx, upstream, url, upstream.body(ctx, raw))
        ctx.status = 200
        extra = [*passed_headers(response.headers), COUNTED, *ctx.answer_headers()]
        await send_bytes(ctx.send, 200, response.body, JSON, extra)
        return
    body = orjson.dumps({"input_tokens": estimate(ctx.payload)})
    ctx.status = 200
    await send_bytes(ctx.send, 200, body, JSON, [ESTIMATED, *ctx.answer_headers()])


def estimate(payload: Payload) -> int:
    chars = text_chars(payload.get("system"))
    messages = payload.get("messages") or []
    for message in messages:
        if isinstance(message, dict):
            chars += text_chars(message.get("content"))
    tools = payload.get("tools")
    if tools:
        chars += len(orjson.dumps(tools))
    return -(-chars // CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE * len(messages)


def text_chars(content: Any) -> int:
    """The text in a string or a list of content blocks (tool inputs and results included;
    an image or document block counts as its JSON, a rough stand-in)."""
    if isinstance(content, str):
        return len(content)
    if not isinstance(content, list):
        return 0
    total = 0
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            total += len(block.get("text") or "")
        elif kind == "thinking":
            total += len(block.get("thinking") or "")
        elif kind == "tool_use":
            total += len(orjson.dumps(block.get("input") or {})) + len(block.get("name") or "")
        elif kind == "tool_result":
            total += text_chars(block.get("content"))
        else:
            total += min(len(orjson.dumps(block)), 4 * 1600)  # an image is ~1,600 tokens at most
    return total

"""The emulated api.anthropic.com of the provider tests (tests/providers/anthropic_upstream.py),
with what the Messages API routes need on top:

* `POST /v1/messages/count_tokens` answers `{"input_tokens": 42}` (refusing, like Anthropic, a
  request without `x-api-key` or `anthropic-version`);
* a request whose last user turn carries a `tool_result` is answered with text (streamed or
  not), so a tool-use round trip ends as a real one does;
* model `claude-cut-midway` streams a few events and then drops the connection mid-event;
* a model in `replays` streams exactly those events (recorded shapes, e.g. Claude Code's);
* model `claude-flaky` answers every other call 529 (overloaded), the others as `claude-text`.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
from aiohttp import web

from tests.providers.anthropic_upstream import AnthropicUpstream, error_body, message, stream_events
from tests.providers.bedrock_upstream import BedrockUpstream, encode_message
from tests.providers.bedrock_upstream import exception as bedrock_exception
from tests.support.recording import write_awkwardly

COUNTED_TOKENS = 42
AFTER_TOOL = "It is sunny in Paris."


class MessagesUpstream(AnthropicUpstream):
    def __init__(self) -> None:
        super().__init__()
        self.replays: dict[str, list[dict[str, Any]]] = {}  # model -> the events to stream back
        self.flaky_calls = 0

    def wire(self, model: str) -> bytes:
        """The exact bytes a replayed stream sends."""
        return b"".join(wire(event) for event in self.replays[model])

    def setup(self, app: web.Application) -> None:
        super().setup(app)
        app.router.add_post("/v1/messages/count_tokens", self.count_tokens)

    async def count_tokens(self, request: web.Request) -> web.Response:
        await self.record(request)
        if not request.headers.get("x-api-key"):
            return error_body(401, "authentication_error", "x-api-key header is required")
        if not request.headers.get("anthropic-version"):
            return error_body(400, "invalid_request_error", "anthropic-version: header is required")
        return web.json_response({"input_tokens": COUNTED_TOKENS})

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        model = str(body.get("model"))
        if model == "claude-cut-midway" and body.get("stream"):
            await self.record(request)
            return await self.cut(request)
        if model == "claude-flaky":
            self.flaky_calls += 1
            if self.flaky_calls % 2 == 1:  # every other call is overloaded
                await self.record(request)
                return error_body(529, "overloaded_error", "Overloaded")
        if model in self.replays and body.get("stream"):
            await self.record(request)
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
            await response.prepare(request)
            await write_awkwardly(response, self.wire(model))
            await response.write_eof()
            return response
        if not answers_tool(body):
            return await super().handle(request)
        await self.record(request)
        if not body.get("stream"):
            answer = message("claude-text")
            answer["content"] = [{"type": "text", "text": AFTER_TOOL}]
            return web.json_response(answer)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
        await response.prepare(request)
        sent_text = False
        for event in stream_events("claude-text"):
            if event.get("type") == "content_block_delta":
                if sent_text:
                    continue  # one delta carries the whole text
                event, sent_text = {**event, "delta": {"type": "text_delta", "text": AFTER_TOOL}}, True
            await response.write(wire(event))
        await response.write_eof()
        return response

    async def cut(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
        await response.prepare(request)
        events = stream_events("claude-text")
        for event in events[:4]:
            await response.write(wire(event))
        await response.write(wire(events[4])[:20])  # half an event, then the connection drops
        assert request.transport is not None
        request.transport.close()
        return response


def wire(event: dict[str, Any]) -> bytes:
    return b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def answers_tool(body: dict[str, Any]) -> bool:
    messages = body.get("messages") or []
    last = messages[-1] if messages else {}
    content = last.get("content") if isinstance(last, dict) else None
    return isinstance(content, list) and any(
        isinstance(block, dict) and block.get("type") == "tool_result" for block in content
    )


class BedrockClaudeUpstream(BedrockUpstream):
    """The Bedrock emulation of the provider tests (SigV4 checked on every request), with
    InvokeModel and InvokeModelWithResponseStream for Claude models: Anthropic's message, and
    its events as `chunk` frames of base64 JSON, as Bedrock sends them. Model `claude-stream-
    throttled` streams a few events, then a throttlingException frame."""

    def setup(self, app: web.Application) -> None:
        super().setup(app)
        app.router.add_post("/model/{model}/invoke-with-response-stream", self.claude_stream)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["operation"] != "invoke" or "claude" not in request.match_info["model"]:
            return await super().handle(request)
        recorded = await self.record(request)
        denied = self.check_auth(request, recorded.raw, "bedrock")
        if denied is not None:
            return denied
        return web.json_response(message("claude-text"))

    async def claude_stream(self, request: web.Request) -> web.StreamResponse:
        recorded = await self.record(request)
        denied = self.check_auth(request, recorded.raw, "bedrock")
        if denied is not None:
            return denied
        response = web.StreamResponse(headers={"Content-Type": "application/vnd.amazon.eventstream"})
        await response.prepare(request)
        model = request.match_info["model"]
        events = stream_events("claude-tools")
        for index, event in enumerate(events):
            if "throttled" in model and index == 4:
                await response.write(bedrock_exception("throttlingException", "Too many requests"))
                break
            frame = bedrock_event("chunk", {"bytes": base64.b64encode(orjson.dumps(event)).decode()})
            await write_awkwardly(response, frame)
        await response.write_eof()
        return response


def bedrock_event(kind: str, data: dict[str, Any]) -> bytes:
    headers = {":event-type": kind, ":content-type": "application/json", ":message-type": "event"}
    return encode_message(headers, orjson.dumps(data))

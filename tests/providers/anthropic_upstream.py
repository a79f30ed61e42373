"""An Anthropic Messages API upstream on 127.0.0.1 (POST /v1/messages), in the real wire format.

Like api.anthropic.com it refuses a request without `x-api-key` or `anthropic-version` (401 /
400) or without `max_tokens` (400), and streams `event: <type>` + `data: <json>` SSE events.
The behaviour is picked by the `model` the gateway sends:

  claude-text          "Hello from Claude — ünïcødé ✓" (the default)
  claude-text-sliced   the same; a stream is written in 3-byte slices across event boundaries
  claude-tools         text, then tool_use blocks (one non-streaming, two streaming)
  claude-thinking      a thinking block, then the answer
  err-<status>         Anthropic's error JSON with that status (401, 429, 500, 529)
  malformed            200 JSON without `content`
  bad-json             200 application/json that is not JSON
  slow-<ms>            waits before answering
  stream-error         streams a little, then an `event: error` (overloaded_error)
  stream-cut           streams a little, then ends without message_stop
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from tests.support.recording import RecordingUpstream, write_awkwardly

TEXT = ["Hello", " from", " Claude", " — ünïcødé ✓"]
USAGE = {
    "input_tokens": 25,
    "cache_creation_input_tokens": 3,
    "cache_read_input_tokens": 10,
    "output_tokens": 12,
    "service_tier": "standard",
}
ERRORS = {
    401: ("authentication_error", "invalid x-api-key"),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}


def error_body(status: int, kind: str, message: str) -> web.Response:
    body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_011CTest"}
    return web.json_response(body, status=status, dumps=_dumps)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


class AnthropicUpstream(RecordingUpstream):
    @property
    def base(self) -> str:
        return f"{self.url}/v1"

    def setup(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = (await self.record(request)).body
        if not request.headers.get("x-api-key"):
            return error_body(401, "authentication_error", "x-api-key header is required")
        if not request.headers.get("anthropic-version"):
            return error_body(400, "invalid_request_error", "anthropic-version: header is required")
        if not isinstance(body, dict) or "max_tokens" not in body:
            return error_body(400, "invalid_request_error", "max_tokens: Field required")
        model = str(body.get("model"))
        if model.startswith("err-"):
            status = int(model[4:])
            return error_body(status, *ERRORS[status])
        if model.startswith("slow-"):
            await asyncio.sleep(int(model[5:]) / 1000)
        if model == "malformed":
            return web.json_response({"id": "msg_bad", "type": "message", "role": "assistant"})
        if model == "bad-json":
            return web.Response(body=b'{"id": "msg_bad", "content": [', content_type="application/json")
        if body.get("stream"):
            return await self.stream(request, model)
        return web.json_response(message(model), dumps=_dumps)

    async def stream(self, request: web.Request, model: str) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
        await response.prepare(request)
        wire = b"".join(
            b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"
            for event in stream_events(model)
        )
        if model.endswith("-sliced"):
            for start in range(0, len(wire), 3):
                await response.write(wire[start : start + 3])
        else:
            for event in wire.split(b"\n\n")[:-1]:
                await write_awkwardly(response, event + b"\n\n")
        await response.write_eof()
        return response


def message(model: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": "".join(TEXT)}]
    stop_reason = "end_turn"
    if model == "claude-tools":
        content = [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris"}},
        ]
        stop_reason = "tool_use"
    elif model == "claude-thinking":
        content = [
            {"type": "thinking", "thinking": "The user wants the answer.", "signature": "EqQBCgIYAhIM"},
            {"type": "text", "text": "The answer is 42."},
        ]
    return {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": f"{model}-20250514",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": USAGE,
    }


def stream_events(model: str) -> list[dict[str, Any]]:
    start_usage = {**USAGE, "output_tokens": 1}
    events: list[dict[str, Any]] = [
        {
            "type": "message_start",
            "message": {
                "id": "msg_stream",
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": f"{model}-20250514",
                "stop_reason": None,
                "stop_sequence": None,
                "usage": start_usage,
            },
        },
        {"type": "ping"},
    ]
    stop_reason = "end_turn"
    if model == "claude-tools":
        events += text_block(0, ["Checking ", "both cities."])
        events += tool_block(1, "toolu_01A", ["", '{"city": ', '"Paris"}'])
        events += tool_block(2, "toolu_01B", ['{"city": "Lon', 'don"}'])
        stop_reason = "tool_use"
    elif model == "claude-thinking":
        events += [
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "thinking", "thinking": ""},
            },
            delta(0, {"type": "thinking_delta", "thinking": "Let me reason"}),
            delta(0, {"type": "signature_delta", "signature": "EqQBCgIYAhIM"}),
            {"type": "content_block_stop", "index": 0},
        ]
        events += text_block(1, ["The answer", " is 42."])
    else:
        events += text_block(0, TEXT)
    if model == "stream-error":
        return [
            *events[:4],
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        ]
    if model == "stream-cut":
        return events[:4]
    events += [
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": 12},
        },
        {"type": "message_stop"},
    ]
    return events


def delta(index: int, value: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": value}


def text_block(index: int, parts: list[str]) -> list[dict[str, Any]]:
    return [
        {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}},
        *(delta(index, {"type": "text_delta", "text": part}) for part in parts),
        {"type": "content_block_stop", "index": index},
    ]


def tool_block(index: int, call_id: str, parts: list[str]) -> list[dict[str, Any]]:
    block = {"type": "tool_use", "id": call_id, "name": "get_weather", "input": {}}
    return [
        {"type": "content_block_start", "index": index, "content_block": block},
        *(delta(index, {"type": "input_json_delta", "partial_json": part}) for part in parts),
        {"type": "content_block_stop", "index": index},
    ]

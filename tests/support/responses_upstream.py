"""An OpenAI upstream that also serves the Responses API (POST /v1/responses, GET and DELETE
/v1/responses/{id}; Azure's /openai/responses), in the public wire format: a `response` object,
or with `stream: true` the event sequence OpenAI streams (`event:` lines, `sequence_number` from
0, `response.completed` with usage). Every request is recorded; answered responses are kept so
GET/DELETE find them. Everything else is tests.support.openai_upstream's.

A request with `tools` is answered with a call of the first tool; `model: err-<status>` answers
OpenAI's error object with that status; `model: stream-error` streams a little, then an `error`
event.
"""

from __future__ import annotations

import itertools
from typing import Any

import orjson
from aiohttp import web

from tests.support.openai_upstream import OpenAIUpstream
from tests.support.recording import write_awkwardly

TEXT = ["Hello", " from", " Responses", "!"]
USAGE = {
    "input_tokens": 21,
    "input_tokens_details": {"cached_tokens": 4},
    "output_tokens": 9,
    "output_tokens_details": {"reasoning_tokens": 2},
    "total_tokens": 30,
}


class ResponsesUpstream(OpenAIUpstream):
    def __init__(self) -> None:
        super().__init__()
        self.kept: dict[str, dict[str, Any]] = {}
        self.ids = itertools.count(1)

    def setup(self, app: web.Application) -> None:
        super().setup(app)
        app.router.add_post("/v1/responses", self.create)
        app.router.add_post("/openai/responses", self.create)
        app.router.add_get("/v1/responses/{id}", self.retrieve)
        app.router.add_delete("/v1/responses/{id}", self.delete)

    async def create(self, request: web.Request) -> web.StreamResponse:
        body = (await self.record(request)).body
        model = str(body.get("model"))
        if model.startswith("err-"):
            status = int(model[4:])
            error = {
                "message": f"Upstream says {status}",
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
            return web.json_response({"error": error}, status=status)
        response_id = f"resp_up{next(self.ids)}"
        output = self.output(body, response_id)
        final = response_object(response_id, body, "completed", output, USAGE)
        self.kept[response_id] = final
        if not body.get("stream"):
            return web.json_response(final, dumps=lambda value: orjson.dumps(value).decode())
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
        await response.prepare(request)
        for event in stream_events(response_id, body, output, final, model == "stream-error"):
            wire = b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"
            await write_awkwardly(response, wire)
        await response.write_eof()
        return response

    def output(self, body: dict[str, Any], response_id: str) -> list[dict[str, Any]]:
        tools = body.get("tools") or []
        if tools and tools[0].get("type") == "function":
            call = {
                "id": f"fc_{response_id}",
                "type": "function_call",
                "status": "completed",
                "call_id": f"call_{response_id}",
                "name": tools[0]["name"],
                "arguments": '{"city": "Paris"}',
            }
            return [call]
        message = {
            "id": f"msg_{response_id}",
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "".join(TEXT), "annotations": [], "logprobs": []}],
        }
        return [message]

    async def retrieve(self, request: web.Request) -> web.Response:
        await self.record(request)
        kept = self.kept.get(request.match_info["id"])
        if kept is None:
            error = {
                "message": "No response found.",
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
            return web.json_response({"error": error}, status=404)
        return web.json_response(kept)

    async def delete(self, request: web.Request) -> web.Response:
        await self.record(request)
        response_id = request.match_info["id"]
        self.kept.pop(response_id, None)
        return web.json_response({"id": response_id, "object": "response", "deleted": True})


def response_object(
    response_id: str,
    body: dict[str, Any],
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "id": response_id,
        "object": "response",
        "created_at": 1764600000,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": str(body.get("model")) + "-2025-08-07",
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "store": body.get("store", True),
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "user": None,
        "metadata": {},
    }


def stream_events(
    response_id: str, body: dict[str, Any], output: list[dict[str, Any]], final: dict[str, Any], fail: bool
) -> list[dict[str, Any]]:
    start = response_object(response_id, body, "in_progress", [], None)
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": start},
        {"type": "response.in_progress", "response": start},
    ]
    item = output[0]
    if item["type"] == "message":
        empty = {**item, "status": "in_progress", "content": []}
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        where = {"item_id": item["id"], "output_index": 0, "content_index": 0}
        events.append({"type": "response.output_item.added", "output_index": 0, "item": empty})
        events.append({"type": "response.content_part.added", **where, "part": part})
        events += [
            {"type": "response.output_text.delta", **where, "delta": word, "logprobs": []} for word in TEXT
        ]
        if fail:
            events.append(
                {"type": "error", "code": "server_error", "message": "The server had an error", "param": None}
            )
            return _numbered(events)
        text = "".join(TEXT)
        events.append({"type": "response.output_text.done", **where, "text": text, "logprobs": []})
        events.append({"type": "response.content_part.done", **where, "part": {**part, "text": text}})
    else:
        events.append(
            {"type": "response.output_item.added", "output_index": 0, "item": {**item, "arguments": ""}}
        )
        for piece in ('{"city": ', '"Paris"}'):
            events.append(
                {
                    "type": "response.function_call_arguments.delta",
                    "item_id": item["id"],
                    "output_index": 0,
                    "delta": piece,
                }
            )
        events.append(
            {
                "type": "response.function_call_arguments.done",
                "item_id": item["id"],
                "output_index": 0,
                "arguments": item["arguments"],
            }
        )
    events.append({"type": "response.output_item.done", "output_index": 0, "item": item})
    events.append({"type": "response.completed", "response": final})
    return _numbered(events)


def _numbered(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**event, "sequence_number": number} for number, event in enumerate(events)]

"""A Cohere v2 API upstream on 127.0.0.1 (POST /v2/chat, POST /v2/embed), in the real wire format.

Like api.cohere.com it answers `{"message": ...}` errors, refuses a request without the bearer
key (401 "invalid api token"), and streams chat as SSE `event: <type>` + `data: <json>` events
(message-start, content-start, content-delta..., content-end, tool-plan-delta, tool-call-start,
tool-call-delta, tool-call-end, message-end). The behaviour is picked by the `model` sent:

  command-a        "Hello from Cohere!" (the default), finish COMPLETE
  command-tools    a tool plan and one get_weather call (two streamed), finish TOOL_CALL
  err-<status>     {"message": ...} with that status (400, 429, 500)
  malformed        200 JSON without `message`
  slow-<ms>        waits before answering
  stream-error     streams a little, then message-end with finish ERROR and an `error`
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from tests.support.recording import RecordingUpstream, write_awkwardly

KEY = "co-test-secret"
TEXT = ["Hello", " from", " Cohere", "!"]
USAGE = {
    "billed_units": {"input_tokens": 5, "output_tokens": 4},
    "tokens": {"input_tokens": 71, "output_tokens": 4},
}
ERRORS = {
    400: "invalid request: message must be at least 1 token long or tool results must be specified.",
    429: "You are using a Trial key, which is limited to 20 API calls / minute.",
    500: "internal server error, this has been reported to our developers",
}
CALL = {"id": "get_weather_1byjy32y4hvq", "type": "function", "function": {"name": "get_weather"}}


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


class CohereUpstream(RecordingUpstream):
    @property
    def base(self) -> str:
        return f"{self.url}/v2"

    def setup(self, app: web.Application) -> None:
        app.router.add_post("/v2/chat", self.chat)
        app.router.add_post("/v2/embed", self.embed)

    async def check(self, request: web.Request) -> tuple[dict[str, Any], web.Response | None]:
        body = (await self.record(request)).body
        if request.headers.get("Authorization") != f"Bearer {KEY}":
            return body, web.json_response({"id": "e1", "message": "invalid api token"}, status=401)
        model = str(body.get("model"))
        if model.startswith("err-"):
            status = int(model[4:])
            return body, web.json_response({"id": "e2", "message": ERRORS[status]}, status=status)
        if model.startswith("slow-"):
            await asyncio.sleep(int(model[5:]) / 1000)
        if model == "malformed":
            return body, web.json_response({"id": "c1", "finish_reason": "COMPLETE"})
        return body, None

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body, error = await self.check(request)
        if error is not None:
            return error
        model = str(body["model"])
        if body.get("stream"):
            return await self.stream(request, model)
        message: dict[str, Any] = {"role": "assistant", "content": [{"type": "text", "text": "".join(TEXT)}]}
        finish = "COMPLETE"
        if model == "command-tools":
            message = {
                "role": "assistant",
                "tool_plan": "I will look up the weather in Paris.",
                "tool_calls": [
                    {**CALL, "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
                ],
            }
            finish = "TOOL_CALL"
        answer = {"id": "c14c80c3-18eb-4519-9460-6c92edd8cfb4", "finish_reason": finish, "message": message}
        return web.json_response({**answer, "usage": USAGE}, dumps=_dumps)

    async def stream(self, request: web.Request, model: str) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for event in stream_events(model):
            wire = b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"
            await write_awkwardly(response, wire)
        await response.write_eof()
        return response

    async def embed(self, request: web.Request) -> web.Response:
        body, error = await self.check(request)
        if error is not None:
            return error
        vectors = [[0.25, -0.5, float(index)] for index, _ in enumerate(body["texts"])]
        return web.json_response(
            {
                "id": "da6e531f-54c6-4a73-bf92-f60566d8d753",
                "embeddings": {"float": vectors},
                "texts": body["texts"],
                "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": 3}},
                "response_type": "embeddings_by_type",
            },
            dumps=_dumps,
        )


def stream_events(model: str) -> list[dict[str, Any]]:
    start = {
        "id": "29f14a5a-11de-4cae-9800-25e4747408ea",
        "type": "message-start",
        "delta": {
            "message": {
                "role": "assistant",
                "content": [],
                "tool_plan": "",
                "tool_calls": [],
                "citations": [],
            }
        },
    }
    events: list[dict[str, Any]] = [start]
    finish = "COMPLETE"
    if model == "command-tools":
        events += [
            {"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "I will check both."}}},
            *tool_call(0, "get_weather_a", ['{"city":', '"Paris"}']),
            *tool_call(1, "get_weather_b", ['{"city":"London"}']),
        ]
        finish = "TOOL_CALL"
    else:
        events += [
            {
                "type": "content-start",
                "index": 0,
                "delta": {"message": {"content": {"type": "text", "text": ""}}},
            },
            *(
                {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": piece}}}}
                for piece in TEXT
            ),
            {"type": "content-end", "index": 0},
        ]
    end: dict[str, Any] = {"type": "message-end", "delta": {"finish_reason": finish, "usage": USAGE}}
    if model == "stream-error":
        events = events[:4]
        end = {"type": "message-end", "delta": {"error": "internal server error", "finish_reason": "ERROR"}}
    return [*events, end]


def tool_call(index: int, call_id: str, arguments: list[str]) -> list[dict[str, Any]]:
    start = {**CALL, "id": call_id, "function": {"name": "get_weather", "arguments": ""}}
    return [
        {"type": "tool-call-start", "index": index, "delta": {"message": {"tool_calls": start}}},
        *(
            {
                "type": "tool-call-delta",
                "index": index,
                "delta": {"message": {"tool_calls": {"function": {"arguments": piece}}}},
            }
            for piece in arguments
        ),
        {"type": "tool-call-end", "index": index},
    ]

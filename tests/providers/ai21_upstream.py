"""An AI21 Studio Jamba API upstream on 127.0.0.1 (POST /studio/v1/chat/completions), in the real
wire format: OpenAI-like answers without `created`, SSE chunks (the first with the role, the last
with finish_reason and usage) ending in `data: [DONE]`, and FastAPI-style `{"detail": ...}`
errors. A request without the bearer key gets 401. The behaviour is picked by the `model` sent:

  jamba-large / jamba-mini   "Hello from Jamba!" (the default)
  err-<status>               {"detail": ...} with that status (401 as a string, 422 as a list, 429, 500)
  malformed                  200 JSON without `choices`
  slow-<ms>                  waits before answering
  stream-cut                 streams two chunks, then drops the connection
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from tests.support.recording import RecordingUpstream, write_awkwardly

KEY = "ai21-test-secret"
TEXT = ["Hello", " from", " Jamba", "!"]
USAGE = {"prompt_tokens": 17, "completion_tokens": 5, "total_tokens": 22}
ERRORS: dict[int, Any] = {
    401: "Forbidden: Bad or missing API token.",
    422: [
        {
            "loc": ["body", "temperature"],
            "msg": "ensure this value is less than or equal to 2.0",
            "type": "value_error",
        }
    ],
    429: "Too many requests",
    500: "Internal Server Error",
}


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


class AI21Upstream(RecordingUpstream):
    @property
    def base(self) -> str:
        return f"{self.url}/studio/v1"

    def setup(self, app: web.Application) -> None:
        app.router.add_post("/studio/v1/chat/completions", self.chat)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = (await self.record(request)).body
        if request.headers.get("Authorization") != f"Bearer {KEY}":
            return web.json_response({"detail": ERRORS[401]}, status=401)
        model = str(body.get("model"))
        if model.startswith("err-"):
            status = int(model[4:])
            return web.json_response({"detail": ERRORS[status]}, status=status, dumps=_dumps)
        if model.startswith("slow-"):
            await asyncio.sleep(int(model[5:]) / 1000)
        if model == "malformed":
            return web.json_response({"id": "chat-bad", "usage": USAGE})
        if body.get("stream"):
            return await self.stream(request, model)
        message = {"role": "assistant", "content": "".join(TEXT), "tool_calls": None}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
        answer = {"id": "chat-2d5a5a2f-8c1b-4a1e-9f6d-b1d3b3e3b0a1", "choices": [choice], "usage": USAGE}
        return web.json_response({**answer, "model": model}, dumps=_dumps)

    async def stream(self, request: web.Request, model: str) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
        await response.prepare(request)
        chunks = [chunk({"role": "assistant"})]
        chunks += [chunk({"content": piece}) for piece in TEXT]
        chunks.append(chunk({}, "stop", USAGE))
        for index, event in enumerate(chunks):
            if model == "stream-cut" and index == 3:
                assert request.transport is not None
                request.transport.close()
                return response
            await write_awkwardly(response, b"data: " + orjson.dumps(event) + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def chunk(delta: dict[str, Any], finish: str | None = None, usage: Any = None) -> dict[str, Any]:
    return {
        "id": "chat-stream-1",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        "usage": usage,
    }

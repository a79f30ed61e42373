"""A Databricks serving-endpoints upstream on 127.0.0.1: the OpenAI-compatible API that replaced
MosaicML's hosted inference (POST /serving-endpoints/chat/completions, /completions,
/embeddings), in its real wire format: OpenAI bodies and SSE chunks ending in `data: [DONE]`,
Databricks' `{"error_code", "message"}` errors, 401 without the bearer token. The behaviour
is picked by the `model` sent:

  <any other name>   "Hello from Databricks!" (chat, completions) or 3-float vectors
  err-<status>       {"error_code", "message"} with that status (400, 429)
  err-openai-404     OpenAI's {"error": {...}} shape, 404
  malformed          200 JSON without `choices`
  slow-<ms>          waits before answering
  stream-error       streams two chunks, then an {"error": ...} event
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from tests.support.recording import RecordingUpstream, write_awkwardly

KEY = "dapi-test-secret"
TEXT = ["Hello", " from", " Databricks", "!"]
USAGE = {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}
ERRORS = {
    400: ("BAD_REQUEST", 'Bad request: json: unknown field "inputs"'),
    429: ("REQUEST_LIMIT_EXCEEDED", "Exceeded workspace rate limit for Foundation Model APIs."),
}


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


class MosaicMLUpstream(RecordingUpstream):
    @property
    def base(self) -> str:
        return f"{self.url}/serving-endpoints"

    def setup(self, app: web.Application) -> None:
        app.router.add_post("/serving-endpoints/{kind:chat/completions|completions|embeddings}", self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = (await self.record(request)).body
        if request.headers.get("Authorization") != f"Bearer {KEY}":
            return web.json_response(
                {
                    "error_code": "401",
                    "message": "Credential was not sent or was of an unsupported type for this API.",
                },
                status=401,
            )
        kind = request.match_info["kind"]
        model = str(body.get("model"))
        if model == "err-openai-404":
            error = {
                "message": "The model `x` does not exist",
                "type": "invalid_request_error",
                "code": "model_not_found",
            }
            return web.json_response({"error": error}, status=404)
        if model.startswith("err-"):
            status = int(model[4:])
            code, message = ERRORS[status]
            return web.json_response({"error_code": code, "message": message}, status=status)
        if model.startswith("slow-"):
            await asyncio.sleep(int(model[5:]) / 1000)
        if model == "malformed":
            return web.json_response({"id": "x", "object": "chat.completion"})
        if kind == "embeddings":
            vectors = [[0.5, 0.5, float(i)] for i, _ in enumerate(body["input"])]
            data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
            return web.json_response(
                {
                    "object": "list",
                    "data": data,
                    "model": model,
                    "usage": {"prompt_tokens": 2, "total_tokens": 2},
                },
                dumps=_dumps,
            )
        if body.get("stream"):
            return await self.stream(request, kind, model)
        if kind == "completions":
            choice: dict[str, Any] = {
                "index": 0,
                "text": "".join(TEXT),
                "logprobs": None,
                "finish_reason": "stop",
            }
            obj = "text_completion"
        else:
            message = {"role": "assistant", "content": "".join(TEXT)}
            choice = {"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}
            obj = "chat.completion"
        answer = {
            "id": "chatcmpl_5f6e",
            "object": obj,
            "created": 1730000000,
            "model": model,
            "choices": [choice],
        }
        return web.json_response({**answer, "usage": USAGE}, dumps=_dumps)

    async def stream(self, request: web.Request, kind: str, model: str) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        pieces: list[Any] = [*TEXT, None]
        for index, piece in enumerate(pieces):
            if model == "stream-error" and index == 2:
                await response.write(
                    b'data: {"error": {"message": "Model overloaded", "type": "server_error"}}\n\n'
                )
                return response
            finish = "stop" if piece is None else None
            if kind == "completions":
                choice: dict[str, Any] = {"index": 0, "text": piece or "", "finish_reason": finish}
            else:
                choice = {
                    "index": 0,
                    "delta": {"role": "assistant", "content": piece or ""},
                    "finish_reason": finish,
                }
            chunk = {
                "id": "chatcmpl_s",
                "object": "chat.completion.chunk",
                "created": 1730000000,
                "model": model,
            }
            chunk |= {"choices": [choice], "usage": USAGE if piece is None else None}
            await write_awkwardly(response, b"data: " + orjson.dumps(chunk) + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

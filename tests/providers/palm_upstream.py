"""A Gemini API upstream on 127.0.0.1 (what replaced PaLM): POST
/v1beta/models/{model}:generateContent, :streamGenerateContent?alt=sse, :embedContent and
:batchEmbedContents, in the real wire format: `{"error": {"code", "message", "status"}}` errors,
SSE events separated by CRLF pairs, 400 without the `x-goog-api-key`. By model:

  gemini-2.5-flash       "Hello from Gemini!" (the default)
  gemini-embedding-001   3-float vectors
  err-<status>           Google's error JSON with that status (400, 429, 500)
  malformed              200 JSON that is a list
  slow-<ms>              waits before answering
  stream-error           streams two events, then an {"error": ...} event (503 UNAVAILABLE)
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from tests.support.recording import RecordingUpstream, write_awkwardly

KEY = "AIza-palm-test-secret"
TEXT = ["Hello", " from", " Gemini", "!"]
USAGE = {"promptTokenCount": 4, "candidatesTokenCount": 5, "totalTokenCount": 9}
ERRORS = {
    400: ("INVALID_ARGUMENT", 'Invalid JSON payload received. Unknown name "foo": Cannot find field.'),
    429: ("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    500: (
        "INTERNAL",
        "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
    ),
}


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def google_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": status, "message": message, "status": code}}, status=status)


def answer(text: str | None, finish: str | None, usage: dict[str, Any] | None) -> dict[str, Any]:
    candidate: dict[str, Any] = {
        "content": {"parts": [{"text": text}] if text else [], "role": "model"},
        "index": 0,
    }
    if finish:
        candidate["finishReason"] = finish
    out: dict[str, Any] = {"candidates": [candidate], "modelVersion": "gemini-2.5-flash", "responseId": "r-1"}
    if usage:
        out["usageMetadata"] = usage
    return out


class PaLMUpstream(RecordingUpstream):
    @property
    def base(self) -> str:
        return f"{self.url}/v1beta"

    def setup(self, app: web.Application) -> None:
        app.router.add_post("/v1beta/models/{target}", self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = (await self.record(request)).body
        model, _, method = request.match_info["target"].partition(":")
        if request.headers.get("x-goog-api-key") != KEY:
            return google_error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.")
        if model.startswith("err-"):
            status = int(model[4:])
            return google_error(status, *ERRORS[status])
        if model.startswith("slow-"):
            await asyncio.sleep(int(model[5:]) / 1000)
        if model == "malformed":
            return web.json_response([{"candidates": []}])
        if method == "embedContent":
            return web.json_response({"embedding": {"values": [0.5, -0.5, 0.0]}})
        if method == "batchEmbedContents":
            vectors = [{"values": [0.5, -0.5, float(i)]} for i, _ in enumerate(body["requests"])]
            return web.json_response({"embeddings": vectors}, dumps=_dumps)
        if method == "streamGenerateContent":
            return await self.stream(request, model)
        return web.json_response(answer("".join(TEXT), "STOP", USAGE), dumps=_dumps)

    async def stream(self, request: web.Request, model: str) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        events = [answer(piece, None, None) for piece in TEXT[:-1]]
        events.append(answer(TEXT[-1], "STOP", USAGE))
        if model == "stream-error":
            error = {
                "error": {
                    "code": 503,
                    "message": "The model is overloaded. Please try again later.",
                    "status": "UNAVAILABLE",
                }
            }
            events = [*events[:2], error]
        for event in events:
            await write_awkwardly(response, b"data: " + orjson.dumps(event) + b"\r\n\r\n")
        await response.write_eof()
        return response

"""Shared machinery of the upstream emulations whose wire format is OpenAI-like (Mistral,
TogetherAI, Databricks): JSON answers, `data: <json>` SSE streams ending in `data: [DONE]`.

A subclass adds its routes and its provider's shapes (`response`, `events`, `error_body`,
`stream_error`). The behaviour is picked by the model the gateway sends (`model_of`):

  err-<status>        the provider's JSON error body with that status
  err-<status>-text   that status with a text/plain body
  malformed           200 JSON in the wrong shape
  slow-<ms>           waits before answering
  stream-error        streams one chunk, then the provider's mid-stream error event
  anything else       a normal answer; streams are written in awkward byte slices
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from tests.support.recording import RecordingUpstream, write_awkwardly


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


class OpenAILikeUpstream(RecordingUpstream):
    def model_of(self, request: web.Request, body: dict[str, Any]) -> str:
        return str(body.get("model"))

    def response(self, kind: str, body: dict[str, Any], model: str) -> dict[str, Any]:
        raise NotImplementedError

    def events(self, kind: str, body: dict[str, Any], model: str) -> list[dict[str, Any]]:
        raise NotImplementedError

    def error_body(self, status: int) -> dict[str, Any]:
        raise NotImplementedError

    def stream_error(self) -> dict[str, Any]:
        raise NotImplementedError

    async def answer(self, request: web.Request, kind: str) -> web.StreamResponse:
        body = (await self.record(request)).body or {}
        model = self.model_of(request, body)
        if model.startswith("err-"):
            status = int(model.split("-")[1])
            if model.endswith("-text"):
                return web.Response(text="upstream overloaded", status=status, content_type="text/plain")
            return web.json_response(self.error_body(status), status=status, dumps=dumps)
        if model == "malformed":
            return web.json_response({"object": "unexpected", "choices": "none", "data": 7}, dumps=dumps)
        if model.startswith("slow-"):
            await asyncio.sleep(int(model.split("-")[1]) / 1000)
        if body.get("stream"):
            return await self.stream(request, kind, body, model)
        return web.json_response(self.response(kind, body, model), dumps=dumps)

    async def stream(
        self, request: web.Request, kind: str, body: dict[str, Any], model: str
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
        await response.prepare(request)
        for index, event in enumerate(self.events(kind, body, model)):
            if model == "stream-error" and index == 1:
                await response.write(b"data: " + orjson.dumps(self.stream_error()) + b"\n\n")
                return response
            await write_awkwardly(response, b"data: " + orjson.dumps(event) + b"\n\n")
        await write_awkwardly(response, b"data: [DONE]\n\n")
        await response.write_eof()
        return response

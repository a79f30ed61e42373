"""An OpenAI wire-format upstream on 127.0.0.1 for the integration tests.

It records every request (path, query, headers, body) and answers like api.openai.com. The
behaviour is picked by the `model` in the request body (the gateway sets it from the endpoint's
config), so one server covers success, error classes and awkward streams:

  err-401 / err-429       JSON {"error": {...}} with that status
  err-400-plain-json      400 with a JSON body that has no "error" key
  err-503-text            503 text/plain
  err-502-html            502 text/html
  slow-<ms>               waits before answering
  stream-gap-<ms>         stream chunks that many ms apart
  stream-break            stream two chunks, then drop the connection
  stream-error-event      stream one chunk, then an {"error": ...} event
  stream-wrong-shape      valid JSON that is not an event object (`data: 12345`) between chunks
  stream-empty            200 with nothing but `data: [DONE]`
  err-401-echo            401 whose message quotes the bearer key it was sent

A chat request with `tools` is answered with a call of the first tool (streamed as OpenAI streams
tool calls: id, type and name in the first delta only); a completions `prompt` list gets one
choice per prompt.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import struct
import time
from typing import Any

import orjson
from aiohttp import web

from tests.support.recording import RecordingUpstream, write_awkwardly

WORDS = ["Hello", " from", " the", " mock", " upstream", "!"]


class OpenAIUpstream(RecordingUpstream):
    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__(ssl_context)
        self.abandoned_streams = 0  # streams whose reader (the gateway) hung up early
        self.abandoned_requests = 0  # slow answers whose asker (the gateway) hung up first

    @property
    def base(self) -> str:
        return f"{self.url}/v1"

    def setup(self, app: web.Application) -> None:
        app.router.add_post("/v1/{kind:chat/completions|completions|embeddings}", self.handle)
        app.router.add_post(
            "/openai/deployments/{dep}/{kind:chat/completions|completions|embeddings}", self.handle
        )

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = (await self.record(request)).body
        kind = request.match_info["kind"]
        model = str(body.get("model") or request.match_info.get("dep", ""))
        error = _error_response(model)
        if error is not None:
            return error
        if model == "err-401-echo":
            key = request.headers.get("Authorization", "").removeprefix("Bearer ")
            message = f"Incorrect API key provided: {key}. You can find your API key at https://platform."
            return web.json_response(
                {"error": {"message": message, "type": "invalid_request_error"}}, status=401
            )
        if model.startswith("slow-"):
            await asyncio.sleep(int(model.split("-")[1]) / 1000)
            if request.transport is None or request.transport.is_closing():
                self.abandoned_requests += 1  # the gateway hung up while the answer was pending
        if kind == "chat/completions" and body.get("tools"):
            return await self.tool_call(request, body)
        if body.get("stream"):
            return await self.stream(request, kind, body, model)
        if kind == "embeddings":
            return web.json_response(_embeddings(body), dumps=_dumps)
        if kind == "completions":
            return web.json_response(_completion(body), dumps=_dumps)
        return web.json_response(_chat(body), dumps=_dumps)

    async def stream(
        self, request: web.Request, kind: str, body: dict[str, Any], model: str
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        gap = int(model.split("-")[2]) / 1000 if model.startswith("stream-gap-") else 0.0
        events = [_chunk(kind, i, word) for i, word in enumerate(WORDS)]
        events.append(_chunk(kind, len(WORDS), None, finish="stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append(_usage_chunk(kind))
        for index, event in enumerate(events):
            if model == "stream-break" and index == 2:
                assert request.transport is not None
                request.transport.close()
                return response
            if model == "stream-empty":
                break
            if model == "stream-wrong-shape" and index == 1:
                await response.write(b'data: 12345\n\ndata: [1, 2]\n\ndata: "text"\n\n')
            if model == "stream-error-event" and index == 1:
                await response.write(
                    b'data: {"error": {"message": "The server had an error", "type": "server_error"}}\n\n'
                )
                return response
            wire = b"data: " + orjson.dumps(event) + b"\n\n"
            try:
                await write_awkwardly(response, wire)
            except ConnectionError:
                self.abandoned_streams += 1
                return response
            if gap:
                await asyncio.sleep(gap)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def tool_call(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        name = body["tools"][0]["function"]["name"]
        fragments = ['{"ci', 'ty": "Pa', 'ris"}']
        if not body.get("stream"):
            call = {
                "id": "call_1",
                "type": "function",
                "function": {"name": name, "arguments": "".join(fragments)},
            }
            answer = _chat(body)
            answer["choices"][0]["message"].update(content=None, tool_calls=[call])
            answer["choices"][0]["finish_reason"] = "tool_calls"
            return web.json_response(answer, dumps=_dumps)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        head = {"index": 0, "id": "call_1", "type": "function", "function": {"name": name, "arguments": ""}}
        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": None, "tool_calls": [head]}]
        deltas += [{"tool_calls": [{"index": 0, "function": {"arguments": part}}]} for part in fragments]
        events = [_chat_chunk(delta, None) for delta in deltas] + [_chat_chunk({}, "tool_calls")]
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append(_usage_chunk("chat"))
        for event in events:
            await write_awkwardly(response, b"data: " + orjson.dumps(event) + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def _chat_chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return {
        "id": "chatcmpl-t",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "m",
        "choices": [choice],
    }


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _error_response(model: str) -> web.Response | None:
    if model in ("err-401", "err-429"):
        status = int(model[4:])
        message = "Incorrect API key provided: sk-***" if status == 401 else "Rate limit reached for requests"
        # OpenAI's back-off headers on a 429 (and a header the gateway must not pass on)
        headers = {"x-request-id": "req_upstream"}
        if status == 429:
            headers |= {
                "retry-after": "7",
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": "7s",
            }
        return web.json_response(
            {"error": {"message": message, "type": "invalid_request_error", "code": None}},
            status=status,
            headers=headers,
        )
    if model == "err-400-plain-json":
        return web.json_response({"foo": "bar"}, status=400)
    if model == "err-503-text":
        return web.Response(text="upstream overloaded", status=503, content_type="text/plain")
    if model == "err-502-html":
        return web.Response(text="<html>bad gateway</html>", status=502, content_type="text/html")
    return None


def _usage() -> dict[str, Any]:
    return {
        "prompt_tokens": 5,
        "completion_tokens": 6,
        "total_tokens": 11,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def _chat(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-123",
        "object": "chat.completion",
        "created": 1700000000,
        "model": f"{body.get('model')}-2024",
        "system_fingerprint": "fp_1",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "".join(WORDS),
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": _usage(),
    }


def _completion(body: dict[str, Any]) -> dict[str, Any]:
    prompts = body.get("prompt") if isinstance(body.get("prompt"), list) else [body.get("prompt")]
    return {
        "id": "cmpl-123",
        "object": "text_completion",
        "created": 1700000000,
        "model": str(body.get("model")),
        "choices": [
            {"index": index, "text": "".join(WORDS), "logprobs": None, "finish_reason": "length"}
            for index in range(len(prompts))
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 6, "total_tokens": 9},
    }


def _embeddings(body: dict[str, Any]) -> dict[str, Any]:
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    data = []
    for index, _ in enumerate(inputs):
        vector = [0.5, -0.25, float(index)]
        embedding: Any = vector
        if body.get("encoding_format") == "base64":
            embedding = base64.b64encode(struct.pack("<3f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    return {
        "object": "list",
        "data": data,
        "model": str(body.get("model")),
        "usage": {"prompt_tokens": 4, "total_tokens": 4},
    }


def _chunk(kind: str, index: int, word: str | None, finish: str | None = None) -> dict[str, Any]:
    if kind == "completions":
        choice: dict[str, Any] = {"index": 0, "text": word or "", "logprobs": None, "finish_reason": finish}
        return {
            "id": "cmpl-s",
            "object": "text_completion",
            "created": int(time.time()),
            "model": "m",
            "choices": [choice],
        }
    delta: dict[str, Any] = {"content": word} if word is not None else {}
    if index == 0:
        delta["role"] = "assistant"
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return {
        "id": "chatcmpl-s",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "m",
        "choices": [choice],
    }


def _usage_chunk(kind: str) -> dict[str, Any]:
    obj = "text_completion" if kind == "completions" else "chat.completion.chunk"
    return {
        "id": "s",
        "object": obj,
        "created": 1700000000,
        "model": "m",
        "choices": [],
        "usage": {"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11},
    }

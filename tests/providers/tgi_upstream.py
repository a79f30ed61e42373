"""A Hugging Face Text Generation Inference server on 127.0.0.1, in TGI's real wire format.

Routes, under a scenario prefix (the endpoint's `hf_server_url` is `{url}/{scenario}`):
POST /generate, /generate_stream (SSE `data:{token, generated_text, details}` events, no
`[DONE]`) and /v1/chat/completions (OpenAI format, SSE ending in `data: [DONE]`). Like TGI,
`/generate_stream` refuses `decoder_input_details` and errors are `{"error", "error_type"}`.

  ok            "Hello from TGI!" (prefill of 3 tokens, 4 generated, finish eos_token)
  err-422       a validation error (TGI's 422)
  err-429       "Model is overloaded"
  malformed     200 JSON without `details`
  slow-<ms>     waits before answering
  stream-error  streams two tokens, then an error event
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from tests.support.recording import RecordingUpstream, write_awkwardly

TOKENS = ["Hello", " from", " TGI", "!"]
PREFILL = [{"id": 1, "text": "<s>", "logprob": None}, {"id": 22557, "text": "Say", "logprob": -9.1}]
PREFILL += [{"id": 6312, "text": " hello", "logprob": -4.3}]
ERRORS = {
    422: ("validation", "Input validation error: `inputs` must have less than 4096 tokens. Given: 5000"),
    429: ("overloaded", "Model is overloaded"),
}


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def token(index: int, text: str, special: bool = False) -> dict[str, Any]:
    return {"id": 100 + index, "text": text, "logprob": -0.5, "special": special}


class TGIUpstream(RecordingUpstream):
    def setup(self, app: web.Application) -> None:
        app.router.add_post("/{scenario}/generate", self.generate)
        app.router.add_post("/{scenario}/generate_stream", self.generate_stream)
        app.router.add_post("/{scenario}/v1/chat/completions", self.chat)

    async def check(self, request: web.Request) -> tuple[Any, str, web.Response | None]:
        body = (await self.record(request)).body
        scenario = request.match_info["scenario"]
        if scenario.startswith("err-"):
            status = int(scenario[4:])
            kind, message = ERRORS[status]
            return body, scenario, web.json_response({"error": message, "error_type": kind}, status=status)
        if scenario.startswith("slow-"):
            await asyncio.sleep(int(scenario[5:]) / 1000)
        return body, scenario, None

    async def generate(self, request: web.Request) -> web.Response:
        body, scenario, error = await self.check(request)
        if error is not None:
            return error
        if scenario == "malformed":
            return web.json_response({"generated_text": "x"})
        details = {
            "finish_reason": "eos_token",
            "generated_tokens": len(TOKENS),
            "seed": None,
            "prefill": PREFILL,
            "tokens": [token(i, text) for i, text in enumerate(TOKENS)],
        }
        return web.json_response({"generated_text": "".join(TOKENS), "details": details}, dumps=_dumps)

    async def generate_stream(self, request: web.Request) -> web.StreamResponse:
        body, scenario, error = await self.check(request)
        if error is not None:
            return error
        if body["parameters"].get("decoder_input_details"):
            return web.json_response(
                {
                    "error": "`decoder_input_details` == true is not supported when streaming tokens",
                    "error_type": "validation",
                },
                status=422,
            )
        events: list[dict[str, Any]] = [
            {"index": i + 1, "token": token(i, text), "generated_text": None, "details": None}
            for i, text in enumerate(TOKENS)
        ]
        details = {"finish_reason": "eos_token", "generated_tokens": len(TOKENS) + 1, "seed": None}
        events.append(
            {
                "index": len(TOKENS) + 1,
                "token": token(9, "</s>", special=True),
                "generated_text": "".join(TOKENS),
                "details": details,
            }
        )
        if scenario == "stream-error":
            events = [
                *events[:2],
                {
                    "error": "Request failed during generation: Server error: CUDA out of memory",
                    "error_type": "generation",
                },
            ]
        return await self.sse(request, [b"data:" + orjson.dumps(event) + b"\n\n" for event in events])

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body, scenario, error = await self.check(request)
        if error is not None:
            return error
        if body.get("stream"):
            chunks = [
                chat_chunk({"role": "assistant", "content": text} if i == 0 else {"content": text})
                for i, text in enumerate(TOKENS)
            ]
            chunks.append(chat_chunk({}, "stop"))
            wire = [b"data: " + orjson.dumps(chunk) + b"\n\n" for chunk in chunks]
            if scenario == "stream-error":
                wire = [
                    *wire[:2],
                    b'data: {"error":"Request failed during generation: Server error: CUDA out of memory","error_type":"generation"}\n\n',
                ]
            else:
                wire.append(b"data: [DONE]\n\n")
            return await self.sse(request, wire)
        return web.json_response(
            {
                "object": "chat.completion",
                "id": "",
                "created": 1732000000,
                "model": "meta-llama/Llama-3.1-8B-Instruct",
                "system_fingerprint": "3.0.1-sha-bb9095a",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "".join(TOKENS)},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16},
            },
            dumps=_dumps,
        )

    async def sse(self, request: web.Request, wire: list[bytes]) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for event in wire:
            await write_awkwardly(response, event)
        await response.write_eof()
        return response


def chat_chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "object": "chat.completion.chunk",
        "id": "",
        "created": 1732000000,
        "model": "meta-llama/Llama-3.1-8B-Instruct",
        "system_fingerprint": "3.0.1-sha-bb9095a",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        "usage": None,
    }

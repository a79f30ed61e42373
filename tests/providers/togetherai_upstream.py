"""A TogetherAI upstream on 127.0.0.1 (POST /v1/chat/completions, /v1/completions,
/v1/embeddings) in Together's wire format (docs.together.ai API reference): chat chunks carry
the token both in `delta.content` and in `text`, finish reasons such as `eos`, usage in the last
chunk, and `{"id", "error": {"message", "type", "param", "code"}}` errors.

Beyond the shared behaviours of OpenAILikeUpstream, the model picks:

  legacy-text-chunks   stream chunks with the token only in `text` (no `delta`)
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tests.providers.openai_like_upstream import OpenAILikeUpstream

WORDS = ["Hello", " from", " Together", " ✓"]
USAGE = {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}
SERVED_MODEL = "meta-llama/Llama-3.3-70B-Instruct-Turbo"


class TogetherUpstream(OpenAILikeUpstream):
    @property
    def base(self) -> str:
        return f"{self.url}/v1"

    def setup(self, app: web.Application) -> None:
        for kind in ("chat/completions", "completions", "embeddings"):
            app.router.add_post(f"/v1/{kind}", self.handler(kind))

    def handler(self, kind: str) -> Any:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self.answer(request, kind)

        return handle

    def response(self, kind: str, body: dict[str, Any], model: str) -> dict[str, Any]:
        if kind == "embeddings":
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            return {
                "object": "list",
                "data": [
                    {"object": "embedding", "embedding": [0.5, float(index)], "index": index}
                    for index in range(len(inputs))
                ][::-1],
                "model": "togethercomputer/m2-bert-80M-8k-retrieval",
                "request_id": "8f5a1e2c3b4d",
            }
        common = {
            "id": "8448080b880415ea-SJC",
            "created": 1715000000,
            "model": SERVED_MODEL,
            "prompt": [],
            "usage": USAGE,
        }
        if kind == "completions":
            choice = {
                "text": "".join(WORDS),
                "finish_reason": "length",
                "seed": 7,
                "logprobs": None,
                "index": 0,
            }
            return {**common, "object": "text.completion", "choices": [choice]}
        message = {"role": "assistant", "content": "".join(WORDS), "tool_calls": []}
        choice = {"finish_reason": "eos", "seed": 7, "logprobs": None, "index": 0, "message": message}
        return {**common, "object": "chat.completion", "choices": [choice]}

    def events(self, kind: str, body: dict[str, Any], model: str) -> list[dict[str, Any]]:
        obj = "completion.chunk" if kind == "completions" else "chat.completion.chunk"
        events = []
        for index, word in enumerate(WORDS):
            choice: dict[str, Any] = {"index": 0, "text": word, "logprobs": None, "finish_reason": None}
            if model != "legacy-text-chunks":
                delta: dict[str, Any] = {"token_id": 22557 + index, "content": word, "tool_calls": None}
                if index == 0 and kind != "completions":
                    delta["role"] = "assistant"
                choice["delta"] = delta
            events.append(_chunk(obj, choice, None))
        last = {"index": 0, "text": "", "logprobs": None, "finish_reason": "eos", "delta": {"content": ""}}
        events.append(_chunk(obj, last, USAGE))
        return events

    def error_body(self, status: int) -> dict[str, Any]:
        kind = "invalid_request_error" if status < 500 else "server_error"
        return {
            "id": "8448080b-err",
            "error": {"message": f"Together says {status}", "type": kind, "param": None, "code": None},
        }

    def stream_error(self) -> dict[str, Any]:
        return {"error": {"message": "The model is overloaded", "type": "server_error", "param": None}}


def _chunk(obj: str, choice: dict[str, Any], usage: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "id": "8448080b-s",
        "object": obj,
        "created": 1715000000,
        "model": SERVED_MODEL,
        "choices": [choice],
        "usage": usage,
    }

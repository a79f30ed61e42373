"""A Mistral AI upstream on 127.0.0.1 (POST /v1/chat/completions, /v1/embeddings) in Mistral's
wire format (docs.mistral.ai API reference and error glossary).

Beyond the shared behaviours of OpenAILikeUpstream, the model picks:

  magistral-thinking   the answer's `content` is a list: a `thinking` chunk, then `text` chunks
  anything else        plain string content
Embeddings come back out of order, each with its own `index`, as Mistral may send them.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tests.providers.openai_like_upstream import OpenAILikeUpstream

WORDS = ["Bonjour", " from", " Mistral", " ✓"]
USAGE = {"prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11}


class MistralUpstream(OpenAILikeUpstream):
    @property
    def base(self) -> str:
        return f"{self.url}/v1"

    def setup(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/embeddings", self.embeddings)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await self.answer(request, "chat")

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        return await self.answer(request, "embeddings")

    def response(self, kind: str, body: dict[str, Any], model: str) -> dict[str, Any]:
        if kind == "embeddings":
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            data = [
                {"object": "embedding", "embedding": [0.25, -0.5, float(index)], "index": index}
                for index in range(len(inputs))
            ]
            return {
                "id": "embd-aad6fc62b17349b192ef09225058bc45",
                "object": "list",
                "data": data[::-1],
                "model": "mistral-embed",
                "usage": {"prompt_tokens": 6, "total_tokens": 6, "completion_tokens": 0},
            }
        content: Any = "".join(WORDS)
        if model == "magistral-thinking":
            content = [
                {"type": "thinking", "thinking": [{"type": "text", "text": "The user greets me."}]},
                {"type": "text", "text": "Bonjour"},
                {"type": "text", "text": " from Mistral ✓"},
            ]
        return {
            "id": "cmpl-e5cc70bb28c444948073e77776eb30ef",
            "object": "chat.completion",
            "model": "mistral-small-2503",
            "usage": USAGE,
            "created": 1702256327,
            "choices": [
                {
                    "index": 0,
                    "message": {"content": content, "tool_calls": None, "prefix": False, "role": "assistant"},
                    "finish_reason": "stop",
                }
            ],
        }

    def events(self, kind: str, body: dict[str, Any], model: str) -> list[dict[str, Any]]:
        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
        if model == "magistral-thinking":
            deltas.append({"content": [{"type": "thinking", "thinking": [{"type": "text", "text": "Hm."}]}]})
            deltas += [{"content": [{"type": "text", "text": word}]} for word in WORDS]
        else:
            deltas += [{"content": word} for word in WORDS]
        events = [self._chunk(delta, None) for delta in deltas]
        events.append({**self._chunk({"content": ""}, "stop"), "usage": USAGE})
        return events

    def _chunk(self, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        return {
            "id": "b3a3c5e1f2e44c6d9a6f0f5c2d1e7a90",
            "object": "chat.completion.chunk",
            "created": 1702256327,
            "model": "mistral-small-2503",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    def error_body(self, status: int) -> dict[str, Any]:
        if status == 401:
            return {"message": "Unauthorized", "request_id": "8e3f2a1b9c7d4e5f"}
        kind = {429: "rate_limit_error", 400: "invalid_request_error"}.get(status, "server_error")
        return {
            "object": "error",
            "message": f"Mistral says {status}",
            "type": kind,
            "param": None,
            "code": str(status),
        }

    def stream_error(self) -> dict[str, Any]:
        return {
            "object": "error",
            "message": "Service unavailable, please retry",
            "type": "server_error",
            "param": None,
            "code": "1000",
        }

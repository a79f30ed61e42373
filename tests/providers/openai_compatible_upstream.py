"""One OpenAI wire-format upstream serving each OpenAI-compatible provider's path layout:

  /openai/v1/...   Groq (https://api.groq.com/openai/v1)
  /...             DeepSeek (https://api.deepseek.com)
  /v1/...          xAI and Ollama (https://api.x.ai/v1, http://localhost:11434/v1)
  /api/v1/...      OpenRouter (https://openrouter.ai/api/v1)

Behaviour by model is tests/support/openai_upstream.py's (err-401, err-429, err-503-text,
slow-<ms>, stream-error-event, ...), plus `malformed`: a 200 JSON answer without `choices`.
"""

from __future__ import annotations

import orjson
from aiohttp import web

from tests.support.openai_upstream import OpenAIUpstream

KINDS = "{kind:chat/completions|completions|embeddings}"


class CompatibleUpstream(OpenAIUpstream):
    def setup(self, app: web.Application) -> None:
        super().setup(app)  # /v1/...
        for prefix in ("/openai/v1", "/api/v1", ""):
            app.router.add_post(f"{prefix}/{KINDS}", self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()  # aiohttp keeps the body, so the base handler reads it again
        body = orjson.loads(raw) if raw else {}
        if body.get("model") == "malformed":
            await self.record(request)
            return web.json_response({"id": "x", "object": "chat.completion", "created": 1700000000})
        return await super().handle(request)

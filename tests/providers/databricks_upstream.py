"""A Databricks workspace on 127.0.0.1, in Databricks' wire format (Model Serving REST API and
OAuth machine-to-machine docs):

  POST /oidc/v1/token                           client-credentials grant with HTTP Basic auth;
                                                issues `<client_id>-token-<n>` (client
                                                `short-lived` gets 30 s tokens, any client but
                                                gw-client / short-lived gets 401 invalid_client)
  POST /serving-endpoints/chat/completions      OpenAI-format chat; the serving endpoint is the
  POST /serving-endpoints/embeddings            body's `model`, which picks the behaviour
  POST /ai-gateway/mlflow/v1/chat/completions   the same two, for Unity Catalog names
  POST /ai-gateway/mlflow/v1/embeddings

Every serving call must carry a bearer token the workspace knows: a PAT starting with `dapi-`
or a token it issued (401 `{"error_code", "message"}` otherwise). Behaviours beyond
OpenAILikeUpstream's: `reasoning` answers with a list content (a reasoning part, then two text
parts), `multimodal` with text and image parts. A body without `model` gets a 400, so a
request that lost the serving endpoint's name fails loudly.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import parse_qs

import orjson
from aiohttp import web

from tests.providers.openai_like_upstream import OpenAILikeUpstream, dumps

WORDS = ["Hello", " from", " Databricks", " ✓"]
USAGE = {"prompt_tokens": 8, "completion_tokens": 4, "total_tokens": 12}
SERVED_MODEL = "databricks-meta-llama-3-3-70b-instruct"
REASONING = {"type": "reasoning", "summary": [{"type": "summary_text", "text": "Greet back."}]}
CLIENTS = {"gw-client": ("s3cret", 3600), "short-lived": ("s3cret", 30)}


class DatabricksUpstream(OpenAILikeUpstream):
    def __init__(self) -> None:
        super().__init__()
        self.issued: dict[str, int] = {}
        self.valid_tokens: set[str] = set()

    def setup(self, app: web.Application) -> None:
        app.router.add_post("/oidc/v1/token", self.token)
        for base in ("/serving-endpoints", "/ai-gateway/mlflow/v1"):
            app.router.add_post(base + "/{kind:chat/completions|embeddings}", self.invocations)

    def token_requests(self) -> list[Any]:
        return [r for r in self.requests if r.path == "/oidc/v1/token"]

    async def token(self, request: web.Request) -> web.Response:
        recorded = await self.record(request)
        form = parse_qs(recorded.raw.decode())
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        client_id, _, secret = (
            base64.b64decode(encoded).decode().partition(":") if scheme == "Basic" else ("", "", "")
        )
        if client_id not in CLIENTS or CLIENTS[client_id][0] != secret:
            body = {"error": "invalid_client", "error_description": "Client authentication failed"}
            return web.json_response(body, status=401, dumps=dumps)
        if form != {"grant_type": ["client_credentials"], "scope": ["all-apis"]}:
            return web.json_response({"error": "invalid_request"}, status=400, dumps=dumps)
        self.issued[client_id] = self.issued.get(client_id, 0) + 1
        token = f"{client_id}-token-{self.issued[client_id]}"
        self.valid_tokens.add(token)
        lifetime = CLIENTS[client_id][1]
        return web.json_response(
            {"access_token": token, "token_type": "Bearer", "expires_in": lifetime, "scope": "all-apis"},
            dumps=dumps,
        )

    async def invocations(self, request: web.Request) -> web.StreamResponse:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if not (token.startswith("dapi-") or token in self.valid_tokens):
            await self.record(request)
            body = {"error_code": "401", "message": "Credential was not sent or was of an unsupported type."}
            return web.json_response(body, status=401, dumps=dumps)
        raw = await request.read()  # aiohttp keeps the body, so `answer` reads it again
        if not isinstance(orjson.loads(raw or b"{}").get("model"), str):
            await self.record(request)
            body = {"error_code": "BAD_REQUEST", "message": "Missing required field: model"}
            return web.json_response(body, status=400, dumps=dumps)
        kind = request.match_info["kind"]
        return await self.answer(request, "embeddings" if kind == "embeddings" else "chat")

    def response(self, kind: str, body: dict[str, Any], model: str) -> dict[str, Any]:
        if kind == "embeddings":
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            return {
                "object": "list",
                "data": [
                    {"object": "embedding", "index": i, "embedding": [0.1, float(i)]}
                    for i in range(len(inputs))
                ],
                "model": "bge-large-en-v1.5",
                "usage": {"prompt_tokens": 4, "total_tokens": 4},
            }
        content: Any = "".join(WORDS)
        if model == "reasoning":
            content = [REASONING, {"type": "text", "text": "Hello"}, {"type": "text", "text": "world"}]
        elif model == "multimodal":
            image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
            content = [REASONING, {"type": "text", "text": "Here is a dot"}, image]
        message = {"role": "assistant", "content": content}
        return {
            "id": "chatcmpl_5a1c0a6e-7d51-4c8e-b2b5-6c1d9b5a0d42",
            "object": "chat.completion",
            "created": 1730000000,
            "model": SERVED_MODEL,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": USAGE,
        }

    def events(self, kind: str, body: dict[str, Any], model: str) -> list[dict[str, Any]]:
        deltas: list[dict[str, Any]] = []
        if model == "reasoning":
            deltas.append({"role": "assistant", "content": [REASONING]})
            deltas += [{"content": [{"type": "text", "text": word}]} for word in WORDS]
        else:
            deltas += [{"role": "assistant", "content": WORDS[0]}, *({"content": w} for w in WORDS[1:])]
        events = [_chunk(delta, None) for delta in deltas]
        events.append({**_chunk({}, "stop"), "usage": USAGE})
        return events

    def error_body(self, status: int) -> dict[str, Any]:
        return {"error_code": "BAD_REQUEST", "message": f"Databricks says {status}"}

    def stream_error(self) -> dict[str, Any]:
        return {"error_code": "INTERNAL_ERROR", "message": "The model server crashed"}


def _chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    return {
        "id": "chatcmpl_stream",
        "object": "chat.completion.chunk",
        "created": 1730000000,
        "model": SERVED_MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }

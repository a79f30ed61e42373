"""Google upstreams on 127.0.0.1: the Gemini API, Vertex AI and Google's OAuth2 token endpoint.

Wire formats follow Google's public API reference (generateContent, streamGenerateContent with
`alt=sse`, embedContent / batchEmbedContents, Vertex `:predict`, `:rawPredict` for Claude, the
OpenAI-compatible `endpoints/openapi` and the JWT-bearer token grant). Every request is
recorded. The behaviour is picked by the model name in the path:

  gemini-tools          function calls (one with an id and a thought signature, one without)
  gemini-multi          four candidates: text, empty, MAX_TOKENS and SAFETY-filtered
  gemini-blocked        a blocked prompt: promptFeedback and no candidates
  err-<status>          Google's {"error": {"code", "message", "status"}} with that status
  err-list-400          the same error inside a JSON array (the non-SSE stream form)
  malformed             200 with a truncated JSON body
  wrong-shape           200 with `candidates` that is not a list
  slow-<ms>             waits before answering
  stream-error          streams one event, then an {"error": ...} event
  gemini-embedding-*    Vertex `:predict` refuses more than one instance, as Google does
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any
from urllib.parse import parse_qs

import orjson
from aiohttp import web
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.support.recording import RecordingUpstream, write_awkwardly

WORDS = ["Hello", " from", " Gemini", "!"]
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
MESSAGES = {
    400: "API key not valid. Please pass a valid API key.",
    403: "Permission denied on resource project demo.",
    404: "models/nope is not found for API version v1beta.",
    429: "Resource has been exhausted (e.g. check quota).",
    500: "An internal error has occurred.",
    503: "The model is overloaded. Please try again later.",
}


def google_error(status: int, message: str | None = None) -> dict[str, Any]:
    return {
        "error": {
            "code": status,
            "message": message or MESSAGES.get(status, "error"),
            "status": STATUS_NAMES.get(status, "UNKNOWN"),
        }
    }


def usage(candidates: int = 4) -> dict[str, Any]:
    return {
        "promptTokenCount": 5,
        "candidatesTokenCount": candidates,
        "totalTokenCount": 5 + candidates + 3,
        "thoughtsTokenCount": 3,
        "cachedContentTokenCount": 2,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 5}],
    }


def text_candidate(text: str, finish: str | None = "STOP", index: int = 0) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": index}
    if finish:
        candidate["finishReason"] = finish
    return candidate


FUNCTION_PARTS = [
    {
        "functionCall": {"id": "call-weather-1", "name": "get_weather", "args": {"city": "Paris"}},
        "thoughtSignature": "c2lnbmF0dXJl",
    },
    {"functionCall": {"name": "get_time", "args": {"zone": "CET"}}},
]


def generate_content(model: str) -> dict[str, Any]:
    if model == "gemini-tools":
        parts = [{"text": "Let me check."}, *FUNCTION_PARTS]
        candidates = [{"content": {"parts": parts, "role": "model"}, "finishReason": "STOP", "index": 0}]
    elif model == "gemini-multi":
        candidates = [
            text_candidate("first", index=0),
            {"content": {"parts": [], "role": "model"}, "finishReason": "STOP", "index": 1},
            text_candidate("cut sh", finish="MAX_TOKENS", index=2),
            {
                "finishReason": "SAFETY",
                "index": 3,
                "safetyRatings": [{"category": "HARM_CATEGORY_HARASSMENT"}],
            },
        ]
    elif model == "gemini-blocked":
        return {
            "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []},
            "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5},
        }
    else:
        candidates = [text_candidate("".join(WORDS))]
    return {
        "candidates": candidates,
        "usageMetadata": usage(),
        "modelVersion": f"{model}-001",
        "responseId": "resp-1",
    }


def stream_events(model: str) -> list[dict[str, Any]]:
    if model == "gemini-tools":
        bodies = [
            [text_candidate("Let me check.", finish=None)],
            [{"content": {"parts": [FUNCTION_PARTS[0]], "role": "model"}, "index": 0}],
            [
                {
                    "content": {"parts": [FUNCTION_PARTS[1]], "role": "model"},
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
        ]
    else:
        bodies = [[text_candidate(word, finish=None)] for word in WORDS]
        bodies[-1][0]["finishReason"] = "STOP"
    events = []
    for position, candidates in enumerate(bodies):
        metadata = {"promptTokenCount": 5, "totalTokenCount": 5 + position}
        if position == len(bodies) - 1:
            metadata = usage()
        events.append({"candidates": candidates, "usageMetadata": metadata, "modelVersion": f"{model}-001"})
    return events


def sse(event: dict[str, Any], name: str | None = None) -> bytes:
    head = f"event: {name}\r\n".encode() if name else b""
    return head + b"data: " + orjson.dumps(event) + b"\r\n\r\n"


class GoogleUpstream(RecordingUpstream):
    def __init__(self) -> None:
        super().__init__()
        self.public_keys: dict[str, rsa.RSAPublicKey] = {}  # client_email -> key, set by tests
        self.token_lifetimes: dict[str, int] = {}  # client_email -> expires_in (default 3600)
        self.token_grants: list[dict[str, Any]] = []  # verified JWT claims, one per token issued

    def setup(self, app: web.Application) -> None:
        app.router.add_post("/{version:v1|v1beta|v1alpha}/models/{target}", self.gemini)
        base = "/v1/projects/{project}/locations/{location}"
        app.router.add_post(base + "/publishers/{publisher}/models/{target}", self.vertex)
        app.router.add_post(base + "/endpoints/openapi/chat/completions", self.maas)
        app.router.add_post("/token", self.token)

    # -- Gemini API and Vertex publishers/google -------------------------------------------
    async def gemini(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        model, _, method = request.match_info["target"].partition(":")
        return await self.answer(request, model, method)

    async def vertex(self, request: web.Request) -> web.StreamResponse:
        body = (await self.record(request)).body
        model, _, method = request.match_info["target"].partition(":")
        if request.match_info["publisher"] == "anthropic":
            return await self.claude(request, model, method)
        if method == "predict":
            if model.startswith("gemini-embedding") and len(body["instances"]) > 1:
                return web.json_response(
                    google_error(400, "Only one instance is allowed per request."), status=400
                )
            return web.json_response(predict(body))
        return await self.answer(request, model, method)

    async def answer(self, request: web.Request, model: str, method: str) -> web.StreamResponse:
        body = self.last().body
        error = error_response(model)
        if error is not None:
            return error
        if model.startswith("slow-"):
            await asyncio.sleep(int(model.split("-")[1]) / 1000)
        if method == "streamGenerateContent":
            return await self.stream(request, model)
        if method == "embedContent":
            return web.json_response({"embedding": {"values": vector(body["content"]["parts"][0]["text"])}})
        if method == "batchEmbedContents":
            items = [{"values": vector(item["content"]["parts"][0]["text"])} for item in body["requests"]]
            return web.json_response({"embeddings": items})
        return web.json_response(generate_content(model))

    async def stream(self, request: web.Request, model: str) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for index, event in enumerate(stream_events(model)):
            if model == "stream-error" and index == 1:
                await write_awkwardly(response, sse(google_error(500, "Internal error encountered.")))
                return response
            await write_awkwardly(response, sse(event))
        await response.write_eof()
        return response

    # -- Claude on Vertex (Anthropic Messages) ---------------------------------------------
    async def claude(self, request: web.Request, model: str, method: str) -> web.StreamResponse:
        if method == "rawPredict":
            return web.json_response(claude_message(model))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for event in claude_events(model):
            await write_awkwardly(response, sse(event, event["type"]))
        await response.write_eof()
        return response

    # -- Model as a Service (OpenAI-compatible) --------------------------------------------
    async def maas(self, request: web.Request) -> web.StreamResponse:
        body = (await self.record(request)).body
        if not body.get("stream"):
            return web.json_response(maas_completion(body["model"]))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for word, finish in (("Hi", None), (" there", "stop")):
            chunk = {
                "id": "maas-1",
                "object": "chat.completion.chunk",
                "created": 1700000000,
                "model": body["model"],
                "choices": [
                    {"index": 0, "delta": {"role": "assistant", "content": word}, "finish_reason": finish}
                ],
            }
            await write_awkwardly(response, b"data: " + orjson.dumps(chunk) + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    # -- OAuth2 token endpoint (JWT-bearer grant) ------------------------------------------
    async def token(self, request: web.Request) -> web.Response:
        await self.record(request)
        form = {key: values[0] for key, values in parse_qs(self.last().raw.decode()).items()}
        claims = verify_jwt(form.get("assertion", ""), self.public_keys)
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" or claims is None:
            return web.json_response(
                {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}, status=400
            )
        self.token_grants.append(claims)
        lifetime = self.token_lifetimes.get(claims["iss"], 3600)
        token = f"ya29.test-token-{len(self.token_grants)}"
        return web.json_response({"access_token": token, "expires_in": lifetime, "token_type": "Bearer"})


def error_response(model: str) -> web.Response | None:
    if model == "err-list-400":
        return web.json_response([google_error(400)], status=400)
    if model.startswith("err-"):
        status = int(model[4:])
        return web.json_response(google_error(status), status=status)
    if model == "malformed":
        return web.Response(body=b'{"candidates": [', status=200, content_type="application/json")
    if model == "wrong-shape":
        return web.json_response({"candidates": "not a list"})
    return None


def vector(text: str) -> list[float]:
    return [float(len(text)), 0.5, -0.25]


def predict(body: dict[str, Any]) -> dict[str, Any]:
    predictions = [
        {
            "embeddings": {
                "statistics": {"truncated": False, "token_count": len(item["content"].split())},
                "values": vector(item["content"]),
            }
        }
        for item in body["instances"]
    ]
    return {"predictions": predictions, "metadata": {"billableCharacterCount": 10}}


def verify_jwt(assertion: str, keys: dict[str, rsa.RSAPublicKey]) -> dict[str, Any] | None:
    """RS256 signature and claims of a service-account assertion, checked with the test's key."""
    try:
        head, payload, signature = assertion.split(".")
        claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        key = keys[claims["iss"]]
        raw_signature = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
        key.verify(raw_signature, f"{head}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
    except Exception:
        return None
    return claims


def claude_message(model: str) -> dict[str, Any]:
    return {
        "id": "msg_vrtx_01",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": "Hello from Claude!"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 7, "output_tokens": 5},
    }


def claude_events(model: str) -> list[dict[str, Any]]:
    message = {**claude_message(model), "content": [], "stop_reason": None}
    message["usage"] = {"input_tokens": 7, "output_tokens": 1}
    return [
        {"type": "message_start", "message": message},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " from Claude!"}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 5},
        },
        {"type": "message_stop"},
    ]


def maas_completion(model: str) -> dict[str, Any]:
    return {
        "id": "maas-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Hi there"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }

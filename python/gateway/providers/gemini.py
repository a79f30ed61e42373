"""Gemini through Google AI Studio, the Gemini API (spec §7.9).

Chat and completions use `models/{model}:generateContent`, streamed via
`:streamGenerateContent?alt=sse`; embeddings use `:embedContent` (one input) or
`:batchEmbedContents`. The key travels in the `x-goog-api-key` header, never in the URL, so it
cannot leak into logs or error messages.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from gateway.errors import ConfigError, GatewayError, UpstreamError
from gateway.providers.base import HttpProvider, ProviderConfig, UpstreamRequest, invalid_field
from gateway.providers.gemini_content import completions_as_chat, generate_content_body
from gateway.providers.gemini_replies import (
    GeminiStreamTranslator,
    as_base64,
    chat_response,
    completions_response,
    embeddings_response,
)
from gateway.schemas.responses import Chunk, EmbeddingsResponse, Response
from gateway.types import CHAT, COMPLETIONS, EMBEDDINGS, EndpointType, Payload

DEFAULT_BASE = "https://generativelanguage.googleapis.com/v1beta/models"
API_VERSIONS = ("v1", "v1beta", "v1alpha")
BAD_BASE = (
    "gemini_api_base ending in /models must include a supported API version (/v1, /v1beta, or /v1alpha) "
    "immediately before /models."
)


class GeminiConfig(ProviderConfig):
    gemini_api_key: str
    gemini_api_base: str = DEFAULT_BASE


def models_base(base: str) -> str:
    """MLflow's normalisation: `.../v1beta/models` as is, `.../v1beta` gets `/models`, any other
    path gets `/v1beta/models`."""
    base = base.rstrip("/")
    segments = urlsplit(base).path.rstrip("/").split("/")
    if segments[-1] == "models":
        return base
    if segments[-1] in API_VERSIONS:
        return f"{base}/models"
    return f"{base}/v1beta/models"


def text_inputs(payload: Payload) -> list[str]:
    """Embedding inputs as texts: Google's embedding models take text, not token ids."""
    raw = payload["input"]
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise invalid_field(
            ("input",), "Google embedding models take text: a string or a list of strings.", raw
        )
    return items


def google_error(status: int, reason: str, data: Any) -> GatewayError:
    """Google's `{"error": {"code", "message", "status"}}`, also inside a one-element list (the
    JSON-array form of streamGenerateContent)."""
    if isinstance(data, list) and len(data) == 1 and isinstance(data[0], dict):
        data = data[0]
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        message = error.get("message")
        return UpstreamError(message if isinstance(message, str) else reason, status=status)
    if error is not None:
        return UpstreamError(str(error), status=status)
    return UpstreamError(data, status=status)


class GeminiProvider(HttpProvider):
    display_name = "Gemini"
    config_type = GeminiConfig
    secret_fields = ("gemini_api_key",)
    endpoint_types = frozenset((CHAT, COMPLETIONS, EMBEDDINGS))
    streaming_types = frozenset((CHAT, COMPLETIONS))
    translator = GeminiStreamTranslator

    @classmethod
    def check_config(cls, config: Any, model_name: str | None, endpoint_type: EndpointType) -> None:
        path = urlsplit(config.gemini_api_base.rstrip("/")).path.split("/")
        if path[-1] == "models" and (len(path) < 2 or path[-2] not in API_VERSIONS):
            raise ConfigError(BAD_BASE)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        config: GeminiConfig = self.config
        self.prefix = f"{models_base(config.gemini_api_base)}/{quote(self.model or '', safe='@')}"
        self.headers = {"Content-Type": "application/json", "x-goog-api-key": config.gemini_api_key}

    def build_request(self, kind: EndpointType, payload: Payload, stream: bool) -> UpstreamRequest:
        if kind == EMBEDDINGS:
            return UpstreamRequest(*self.embeddings_request(payload))
        chat = payload if kind == CHAT else completions_as_chat(payload)
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return UpstreamRequest(f"{self.prefix}:{method}", self.headers, generate_content_body(chat))

    def embeddings_request(self, payload: Payload) -> tuple[str, dict[str, str], Payload]:
        texts = text_inputs(payload)
        options = {"outputDimensionality": payload["dimensions"]} if "dimensions" in payload else {}
        if isinstance(payload["input"], str):
            body = {"content": {"parts": [{"text": texts[0]}]}, **options}
            return f"{self.prefix}:embedContent", self.headers, body
        name = f"models/{self.model}"
        requests = [{"model": name, "content": {"parts": [{"text": text}]}, **options} for text in texts]
        return f"{self.prefix}:batchEmbedContents", self.headers, {"requests": requests}

    def parse_response(self, kind: EndpointType, data: Payload) -> Response:
        if kind == CHAT:
            return chat_response(data, self.model or "", self.name)
        if kind == COMPLETIONS:
            return completions_response(data, self.model or "")
        # the response does not say how it was asked: the answer's shape does
        items = [data["embedding"]] if "embedding" in data else data["embeddings"]
        vectors = [item["values"] for item in items]
        return embeddings_response(vectors, self.model or "", {"prompt_tokens": None, "total_tokens": None})

    async def invoke(self, kind: EndpointType, payload: Payload) -> Response:
        response = await super().invoke(kind, payload)
        if isinstance(response, EmbeddingsResponse) and payload.get("encoding_format") == "base64":
            return as_base64(response)
        return response

    def parse_chunk(self, kind: EndpointType, data: Payload) -> Chunk | None:
        raise NotImplementedError("GeminiStreamTranslator handles Gemini events")

    def upstream_error(self, status: int, reason: str, data: Any) -> GatewayError:
        return google_error(status, reason, data)

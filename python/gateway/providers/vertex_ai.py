"""Vertex AI (spec §7.15): Google's models, Claude and Model-as-a-Service partners on one
Google Cloud project, authorised by an OAuth2 bearer token (vertex_auth.py).

The model name picks the family (lower-cased):
* `claude...` -> Anthropic Messages at `publishers/anthropic/models/{model}:rawPredict`
  (`:streamRawPredict`), body without `model` and with `anthropic_version` (anthropic_messages);
* a name with `/`, `mistral...`, `codestral...`, `jamba...` or `...-maas` -> the OpenAI-compatible
  `endpoints/openapi/chat/completions` (chat only), the model in the body;
* anything else -> Gemini: `publishers/google/models/{model}:generateContent`
  (`:streamGenerateContent?alt=sse`), the Gemini body (gemini_content) without call ids.

Embeddings use Vertex's own `:predict` with `instances: [{content}]` (MLflow sends the Gemini
API's shape, which Vertex rejects: spec §12 item 13); `gemini-embedding` models take one instance
per request, so several inputs are sent as concurrent requests. Unlike MLflow, Claude serves
completions too (through the Messages API, like the `anthropic` provider), and a family that
cannot serve an endpoint type is refused when the config loads.

`vertex_api_base` (ours, optional) replaces the `https://...googleapis.com` host, for a proxy,
Private Service Connect or a test emulator.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, Literal, cast
from urllib.parse import quote

from gateway._native import ParamScaler, ScalingError
from gateway.errors import ConfigError, GatewayError, InvalidParameter, UpstreamUnavailable
from gateway.providers import anthropic_messages as claude
from gateway.providers.base import HttpProvider, ProviderConfig, StreamTranslator, UpstreamRequest
from gateway.providers.gemini import google_error, text_inputs
from gateway.providers.gemini_content import completions_as_chat, generate_content_body
from gateway.providers.gemini_replies import (
    GeminiStreamTranslator,
    as_base64,
    chat_response,
    completions_response,
    embeddings_response,
)
from gateway.providers.openai_shapes import chat_chunk
from gateway.providers.openai_shapes import chat_response as openai_chat_response
from gateway.providers.vertex_auth import GoogleTokens, load_credentials
from gateway.schemas.responses import Chunk, EmbeddingsResponse, Response
from gateway.types import CHAT, COMPLETIONS, EMBEDDINGS, EndpointType, Payload

Family = Literal["gemini", "claude", "maas"]
LOCATION = re.compile(r"[a-z0-9-]+")
MAAS_PREFIXES = ("mistral", "codestral", "jamba")
CLAUDE_SCALERS = {kind: ParamScaler(rules) for kind, rules in claude.SCALING_RULES.items()}
FAN_OUT_LIMIT = 8  # concurrent one-instance embedding requests per client request


class VertexAIConfig(ProviderConfig):
    vertex_project: str
    vertex_location: str | None = None
    vertex_credentials: str | None = None
    vertex_anthropic_betas: list[str] | str | None = None
    vertex_api_base: str | None = None


def model_family(model: str) -> Family:
    name = model.lower()
    if name.startswith("claude"):
        return "claude"
    if "/" in name or name.startswith(MAAS_PREFIXES) or name.endswith("-maas"):
        return "maas"
    return "gemini"


def vertex_host(location: str) -> str:
    if location == "global":
        return "https://aiplatform.googleapis.com"
    if location in ("eu", "us"):  # multi-region endpoints
        return f"https://aiplatform.{location}.rep.googleapis.com"
    return f"https://{location}-aiplatform.googleapis.com"


def default_location(family: Family, endpoint_type: EndpointType) -> str:
    """Gemini and Claude are served from `global` (the only home of the newest models); the
    OpenAI-compatible endpoint and the text-embedding models are regional."""
    return "us-central1" if family == "maas" or endpoint_type == EMBEDDINGS else "global"


class VertexStreamTranslator(StreamTranslator):
    """The stream translator of the endpoint's model family."""

    def __init__(self, provider: HttpProvider, kind: EndpointType) -> None:
        super().__init__(provider, kind)
        family = cast("VertexAIProvider", provider).family
        translator: type[StreamTranslator] = StreamTranslator  # MaaS: OpenAI chunks via parse_chunk
        if family == "gemini":
            translator = GeminiStreamTranslator
        elif family == "claude":
            translator = claude.MessagesStreamTranslator
        self.inner = translator(provider, kind)

    def event(self, name: str, data: Any) -> list[Chunk]:
        return self.inner.event(name, data)

    def finish(self) -> list[Chunk]:
        return self.inner.finish()


class VertexAIProvider(HttpProvider):
    display_name = "Vertex AI"
    config_type = VertexAIConfig
    secret_fields = ("vertex_credentials",)
    endpoint_types = frozenset((CHAT, COMPLETIONS, EMBEDDINGS))
    streaming_types = frozenset((CHAT, COMPLETIONS))
    translator = VertexStreamTranslator

    @classmethod
    def check_config(cls, config: Any, model_name: str | None, endpoint_type: EndpointType) -> None:
        location = config.vertex_location
        if location and not LOCATION.fullmatch(location):
            raise ConfigError(
                f"vertex_location must contain only lowercase letters, digits, and hyphens; got '{location}'"
            )
        if config.vertex_credentials:
            load_credentials(config.vertex_credentials)  # a bad credentials JSON stops the load

    @classmethod
    def unavailable(cls, config: Any, model_name: str | None, endpoint_type: EndpointType) -> str | None:
        family = model_family(model_name or "")
        if family == "maas" and endpoint_type == COMPLETIONS:
            # MLflow's message (Claude completions work here, through the Messages API)
            return (
                f"The completions endpoint is not supported for {model_name} on Vertex AI. "
                "Use the chat endpoint instead."
            )
        if family != "gemini" and endpoint_type == EMBEDDINGS:
            return (
                f"The embeddings endpoint is not supported for {model_name} on Vertex AI. "
                "Use a Google embedding model such as text-embedding-005."
            )
        return super().unavailable(config, model_name, endpoint_type)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        config: VertexAIConfig = self.config
        model = self.model or ""
        self.family = model_family(model)
        location = config.vertex_location or default_location(self.family, self.endpoint.endpoint_type)
        host = (config.vertex_api_base or vertex_host(location)).rstrip("/")
        project = f"{host}/v1/projects/{quote(config.vertex_project, safe=':')}/locations/{location}"
        publisher = "anthropic" if self.family == "claude" else "google"
        self.prefix = f"{project}/publishers/{publisher}/models/{quote(model, safe='@')}"
        self.maas_url = f"{project}/endpoints/openapi/chat/completions"
        self.headers = {"Content-Type": "application/json"}
        betas = config.vertex_anthropic_betas
        if self.family == "claude" and betas:
            names = betas.split(",") if isinstance(betas, str) else betas
            self.headers["anthropic-beta"] = ",".join(name.strip() for name in names if name.strip())
        credentials = load_credentials(config.vertex_credentials) if config.vertex_credentials else None
        self.tokens = GoogleTokens(credentials)
        self.one_instance_per_request = model.lower().startswith("gemini-embedding")

    # -- requests ------------------------------------------------------------------------
    def build_request(self, kind: EndpointType, payload: Payload, stream: bool) -> UpstreamRequest:
        if kind == EMBEDDINGS:
            return UpstreamRequest(f"{self.prefix}:predict", self.headers, predict_body(payload))
        if self.family == "claude":
            return self.claude_request(kind, payload, stream)
        if self.family == "maas":
            body: Payload = {"model": self.model, **payload}
            if stream:
                body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
            return UpstreamRequest(self.maas_url, self.headers, body)
        chat = payload if kind == CHAT else completions_as_chat(payload)
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return UpstreamRequest(
            f"{self.prefix}:{method}", self.headers, generate_content_body(chat, call_ids=False)
        )

    def claude_request(self, kind: EndpointType, payload: Payload, stream: bool) -> UpstreamRequest:
        try:
            CLAUDE_SCALERS[kind].apply(payload)  # Anthropic's temperature halving and max_tokens rules
        except ScalingError as exc:
            raise InvalidParameter(str(exc)) from None
        body = claude.vertex_body(
            claude.chat_body(payload) if kind == CHAT else claude.completions_body(payload)
        )
        body.pop("stream", None)
        if stream:
            body["stream"] = True
        method = "streamRawPredict" if stream else "rawPredict"
        return UpstreamRequest(f"{self.prefix}:{method}", self.headers, body)

    async def authorize(self, request: UpstreamRequest, body: bytes) -> dict[str, str]:
        return {**request.headers, **await self.tokens.headers(self.label())}

    # -- answers -------------------------------------------------------------------------
    async def invoke(self, kind: EndpointType, payload: Payload) -> Response:
        if kind == EMBEDDINGS and self.one_instance_per_request and not isinstance(payload.get("input"), str):
            response: Response = await self.embed_one_by_one(payload)
        else:
            response = await super().invoke(kind, payload)
        if isinstance(response, EmbeddingsResponse) and payload.get("encoding_format") == "base64":
            return as_base64(response)
        return response

    async def embed_one_by_one(self, payload: Payload) -> EmbeddingsResponse:
        limit = asyncio.Semaphore(FAN_OUT_LIMIT)

        async def embed(text: str) -> Response:
            async with limit:
                return await super(VertexAIProvider, self).invoke(EMBEDDINGS, {**payload, "input": [text]})

        replies = cast(list[EmbeddingsResponse], await asyncio.gather(*map(embed, text_inputs(payload))))
        vectors = [cast(list[float], reply.data[0].embedding) for reply in replies]
        counts = [reply.usage["prompt_tokens"] for reply in replies]
        tokens = None if None in counts else sum(counts)
        return embeddings_response(
            vectors, self.model or "", {"prompt_tokens": tokens, "total_tokens": tokens}
        )

    def parse_response(self, kind: EndpointType, data: Payload) -> Response:
        model = self.model or ""
        if kind == EMBEDDINGS:
            return predict_response(data, model)
        if self.family == "claude":
            return (
                claude.chat_response(data, self.name) if kind == CHAT else claude.completions_response(data)
            )
        if self.family == "maas":
            return openai_chat_response(data, self.name)
        return chat_response(data, model, self.name) if kind == CHAT else completions_response(data, model)

    def parse_chunk(self, kind: EndpointType, data: Payload) -> Chunk | None:
        """The OpenAI-compatible (MaaS) stream; Gemini and Claude have their own translators."""
        if "error" in data:
            error = data["error"]
            message = error.get("message") if isinstance(error, dict) else error
            raise UpstreamUnavailable(str(message))
        return chat_chunk(data, self.name)

    def upstream_error(self, status: int, reason: str, data: Any) -> GatewayError:
        return google_error(status, reason, data)


def predict_body(payload: Payload) -> Payload:
    """Vertex text-embedding `:predict`: one instance per text; `dimensions` is
    `outputDimensionality`, and an extra `task_type` (RETRIEVAL_QUERY, ...) reaches every instance."""
    task_type = payload.get("task_type")
    instances = [
        {"content": text, **({"task_type": task_type} if task_type else {})} for text in text_inputs(payload)
    ]
    body: Payload = {"instances": instances}
    if "dimensions" in payload:
        body["parameters"] = {"outputDimensionality": payload["dimensions"]}
    return body


def predict_response(data: Payload, model: str) -> EmbeddingsResponse:
    predictions = data["predictions"]
    vectors = [prediction["embeddings"]["values"] for prediction in predictions]
    counts: list[float | None] = []
    for prediction in predictions:
        statistics = prediction["embeddings"].get("statistics") or {}
        counts.append(statistics.get("token_count", statistics.get("tokenCount")))
    tokens = None if None in counts else int(sum(count or 0 for count in counts))
    return embeddings_response(vectors, model, {"prompt_tokens": tokens, "total_tokens": tokens})

"""MosaicML (spec §7.6), spoken as the OpenAI-compatible API that replaced it.

MosaicML's hosted inference API (`{base}/{model}/v1/predict`, Llama-2 prompts rendered by the
gateway) was retired when MosaicML moved into Databricks. The config is unchanged
(`mosaicml_api_key`, `mosaicml_api_base`) and `mosaicml_api_base` is now the base URL of an
OpenAI-compatible API, for example Databricks' `https://<workspace>/serving-endpoints`:
`POST {base}/chat/completions`, `/completions` and `/embeddings`, the model name in the body,
`Authorization: Bearer {key}`, streaming for chat and completions. The server applies the
model's own chat template, so MLflow's rule that chat models start with `llama2` is dropped.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from gateway.errors import GatewayError, InvalidParameter, UpstreamError, UpstreamUnavailable
from gateway.providers.base import HttpProvider, ProviderConfig, UpstreamRequest, upstream_json_error
from gateway.providers.openai_shapes import (
    chat_chunk,
    chat_response,
    completions_chunk,
    completions_response,
    embeddings_response,
)
from gateway.schemas.responses import Chunk, Response
from gateway.types import CHAT, COMPLETIONS, EMBEDDINGS, EndpointType, Payload

logger = logging.getLogger("gateway")

RETIRED_BASE = "https://models.hosted-on.mosaicml.hosting"
PATHS = {CHAT: "chat/completions", COMPLETIONS: "completions", EMBEDDINGS: "embeddings"}


class MosaicMLConfig(ProviderConfig):
    mosaicml_api_key: str
    mosaicml_api_base: str | None = None


class MosaicMLProvider(HttpProvider):
    display_name = "MosaicML"
    config_type = MosaicMLConfig
    secret_fields = ("mosaicml_api_key",)
    endpoint_types = frozenset((CHAT, COMPLETIONS, EMBEDDINGS))
    streaming_types = frozenset((CHAT, COMPLETIONS))
    openai_embeddings = True

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        config: MosaicMLConfig = self.config
        if config.mosaicml_api_base is None:
            logger.warning(
                "%s: MosaicML's hosted API was retired; set mosaicml_api_base to an OpenAI-compatible "
                "base URL such as https://<workspace>/serving-endpoints",
                self.label(),
            )
        base = (config.mosaicml_api_base or RETIRED_BASE).rstrip("/")
        self.urls = {kind: f"{base}/{path}" for kind, path in PATHS.items()}
        key = config.mosaicml_api_key
        # MLflow sent the bare key; OpenAI-compatible servers want a bearer token
        self.headers = {
            "Content-Type": "application/json",
            "Authorization": key if key.startswith("Bearer ") else f"Bearer {key}",
        }

    def prepare(self, kind: EndpointType, payload: Payload, stream: bool) -> UpstreamRequest:
        # MLflow refuses the old predict API's names for the OpenAI fields
        native, ours = ("inputs", "input") if kind == EMBEDDINGS else ("max_new_tokens", "max_tokens")
        if native in payload:
            raise InvalidParameter(f"Invalid parameter {native}. Use {ours} instead.")
        return super().prepare(kind, payload, stream)

    def build_request(self, kind: EndpointType, payload: Payload, stream: bool) -> UpstreamRequest:
        return UpstreamRequest(self.urls[kind], self.headers, {"model": self.model, **payload})

    def upstream_error(self, status: int, reason: str, data: Any) -> GatewayError:
        # Databricks answers {"error_code": ..., "message": ...}; others OpenAI's {"error": {...}}
        if isinstance(data, dict) and "error" not in data and isinstance(data.get("message"), str):
            return UpstreamError(data["message"], status=status)
        return upstream_json_error(status, reason, data)

    def parse_response(self, kind: EndpointType, data: Payload) -> Response:
        # OpenAI-compatible servers differ in what they leave out; fill what MLflow's shapes need
        data.setdefault("model", self.model or "")
        if kind == EMBEDDINGS:
            data.setdefault("usage", {"prompt_tokens": None, "total_tokens": None})
            return embeddings_response(data)
        data.setdefault("created", int(time.time()))
        if kind == CHAT:
            return chat_response(data, self.name)
        data.setdefault("usage", {"prompt_tokens": None, "completion_tokens": None, "total_tokens": None})
        return completions_response(data)

    def parse_chunk(self, kind: EndpointType, data: Payload) -> Chunk | None:
        if "error" in data:
            error = data["error"]
            message = error.get("message") if isinstance(error, dict) else error
            raise UpstreamUnavailable(f"MosaicML failed mid-stream: {message}")
        if kind == CHAT:
            return chat_chunk(data, self.name)
        return completions_chunk(data)

"""Anthropic (spec §7.2): chat and completions, both streamed, through the Messages API.

Completions keep MLflow's config and request rules but are served by `/v1/messages`: the legacy
`/v1/complete` API that MLflow calls is retired (spec §12 item 20). The translation itself lives
in `anthropic_messages`, shared with Claude on Vertex AI.
"""

from __future__ import annotations

from typing import Any

from gateway.providers.anthropic_messages import (
    SCALING_RULES,
    MessagesStreamTranslator,
    chat_body,
    chat_response,
    completions_body,
    completions_response,
)
from gateway.providers.base import HttpProvider, ProviderConfig, UpstreamRequest
from gateway.schemas.responses import Chunk, Response
from gateway.types import CHAT, COMPLETIONS, EndpointType, Payload


class AnthropicConfig(ProviderConfig):
    anthropic_api_key: str
    anthropic_version: str = "2023-06-01"
    anthropic_api_base: str = "https://api.anthropic.com/v1"


class AnthropicProvider(HttpProvider):
    display_name = "Anthropic"
    config_type = AnthropicConfig
    secret_fields = ("anthropic_api_key",)
    endpoint_types = frozenset((CHAT, COMPLETIONS))
    streaming_types = frozenset((CHAT, COMPLETIONS))
    scaling_rules = SCALING_RULES
    translator = MessagesStreamTranslator

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        config: AnthropicConfig = self.config
        self.url = f"{config.anthropic_api_base.rstrip('/')}/messages"
        self.headers = {
            "Content-Type": "application/json",
            "x-api-key": config.anthropic_api_key,
            "anthropic-version": config.anthropic_version,
        }

    def build_request(self, kind: EndpointType, payload: Payload, stream: bool) -> UpstreamRequest:
        body = chat_body(payload) if kind == CHAT else completions_body(payload)
        body = {"model": self.model, **body}
        if stream:
            body["stream"] = True
        return UpstreamRequest(self.url, self.headers, body)

    def parse_response(self, kind: EndpointType, data: Payload) -> Response:
        return chat_response(data, self.name) if kind == CHAT else completions_response(data)

    def parse_chunk(self, kind: EndpointType, data: Payload) -> Chunk | None:
        raise NotImplementedError("MessagesStreamTranslator handles Anthropic events")

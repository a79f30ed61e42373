"""OpenAI, and Azure OpenAI in its `azure` (api-key) and `azuread` (bearer) modes (spec §7.1)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal

from gateway.errors import ConfigError, UpstreamUnavailable
from gateway.providers.base import HttpProvider, ProviderConfig, StreamTranslator, UpstreamRequest
from gateway.providers.openai_shapes import (
    chat_chunk,
    chat_response,
    completions_chunk,
    completions_response,
    embeddings_response,
    with_usage,
)
from gateway.providers.openai_stream import OpenAIChatStream
from gateway.schemas.responses import Chunk, Response
from gateway.types import CHAT, COMPLETIONS, EMBEDDINGS, EndpointType, Payload

PATHS = {CHAT: "chat/completions", COMPLETIONS: "completions", EMBEDDINGS: "embeddings"}
AZURE_TYPES = ("azure", "azuread")


class OpenAIConfig(ProviderConfig):
    openai_api_key: str
    openai_api_type: str = "openai"
    openai_api_base: str | None = None
    openai_api_version: str | None = None
    openai_deployment_name: str | None = None
    openai_organization: str | None = None


class OpenAIProvider(HttpProvider):
    display_name = "OpenAI"
    config_type = OpenAIConfig
    secret_fields = ("openai_api_key",)
    endpoint_types = frozenset((CHAT, COMPLETIONS, EMBEDDINGS))
    streaming_types = frozenset((CHAT, COMPLETIONS))
    openai_embeddings = True
    native_prompt_lists = True  # OpenAI's completions API takes prompt lists and token arrays

    @classmethod
    def check_config(cls, config: Any, model_name: str | None, endpoint_type: EndpointType) -> None:
        api_type = config.openai_api_type.lower()
        if api_type not in ("openai", *AZURE_TYPES):
            raise ConfigError(f"Invalid OpenAI API type '{config.openai_api_type}'")
        if api_type == "openai" and config.openai_deployment_name is not None:
            raise ConfigError(
                "OpenAI route configuration can only specify a value for 'openai_deployment_name' if "
                "'openai_api_type' is 'OpenAIAPIType.AZURE' or 'OpenAIAPIType.AZUREAD'. Found type: 'openai'"
            )
        if api_type in AZURE_TYPES:
            if config.openai_organization is not None:
                raise ConfigError(
                    "OpenAI route configuration can only specify a value for 'openai_organization' if "
                    f"'openai_api_type' is 'OpenAIAPIType.OPENAI'. Found type: '{api_type}'"
                )
            if not (config.openai_api_base and config.openai_deployment_name and config.openai_api_version):
                raise ConfigError(
                    "OpenAI route configuration must specify 'openai_api_base', 'openai_deployment_name', "
                    "and 'openai_api_version' if 'openai_api_type' is 'OpenAIAPIType.AZURE' or "
                    "'OpenAIAPIType.AZUREAD'."
                )

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        config: OpenAIConfig = self.config
        self.api_type: Literal["openai", "azure", "azuread"] = config.openai_api_type.lower()  # type: ignore[assignment]
        base = (config.openai_api_base or "https://api.openai.com/v1").rstrip("/")
        if self.api_type == "openai":
            query = f"?api-version={config.openai_api_version}" if config.openai_api_version else ""
            self.urls = {kind: f"{base}/{path}{query}" for kind, path in PATHS.items()}
        else:
            prefix = f"{base}/openai/deployments/{config.openai_deployment_name}"
            self.urls = {
                kind: f"{prefix}/{path}?api-version={config.openai_api_version}"
                for kind, path in PATHS.items()
            }
        self.headers = {"Content-Type": "application/json"}
        if self.api_type == "azure":
            self.headers["api-key"] = config.openai_api_key
        else:
            self.headers["Authorization"] = f"Bearer {config.openai_api_key}"
        if config.openai_organization:
            self.headers["OpenAI-Organization"] = config.openai_organization

    def build_request(self, kind: EndpointType, payload: Payload, stream: bool) -> UpstreamRequest:
        body = payload if self.api_type != "openai" else {"model": self.model, **payload}
        if stream:
            body["stream_options"] = with_usage(body.get("stream_options"))
        return UpstreamRequest(self.urls[kind], self.headers, body)

    def parse_response(self, kind: EndpointType, data: Payload) -> Response:
        if kind == CHAT:
            return chat_response(data, self.name)
        if kind == COMPLETIONS:
            return completions_response(data)
        return embeddings_response(data)

    async def open_stream(self, kind: EndpointType, payload: Payload) -> AsyncIterator[list[Chunk]]:
        stream = await self.open_upstream_stream(kind, payload)
        chunks = self._relay(self.translator(self, kind), stream)
        if kind == CHAT and _relays_natively(type(self)):
            return OpenAIChatStream(chunks, stream, self)
        return chunks

    def parse_chunk(self, kind: EndpointType, data: Payload) -> Chunk | None:
        if "error" in data:
            error = data["error"]
            message = error.get("message") if isinstance(error, dict) else error
            raise UpstreamUnavailable(str(message))
        if kind == CHAT:
            return chat_chunk(data, self.name)
        return completions_chunk(data)


_NATIVE: dict[type[OpenAIProvider], bool] = {}


def _relays_natively(cls: type[OpenAIProvider]) -> bool:
    """The native chat relay reproduces OpenAIProvider's own stream handling: a subclass (a
    plugin) that reads its streams otherwise keeps the Python path."""
    native = _NATIVE.get(cls)
    if native is None:
        native = _NATIVE[cls] = (
            cls.parse_chunk is OpenAIProvider.parse_chunk
            and cls.translator is StreamTranslator
            and cls.decode_stream is HttpProvider.decode_stream
        )
    return native

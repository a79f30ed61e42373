"""Portkey (spec §7.13): Portkey's AI gateway, which speaks OpenAI's wire format.

Base `https://api.portkey.ai/v1` unless `api_base` is set. Portkey authenticates the gateway with
`x-portkey-api-key: {api_key}` and must also be told where to route: by `portkey_provider` (the
`x-portkey-provider` header: a Model Catalog slug such as `@openai-prod`, or a bare provider
slug such as `openai`), by `portkey_config` (`x-portkey-config`: a saved config id or inline
JSON), or by an `@integration/model` model name. A bare provider slug also needs the upstream's
own key, `provider_api_key`, sent as `Authorization: Bearer ...`; without it no Authorization
header is sent. `api_key` and `provider_api_key` are resolved as `$VAR` / key file / literal.

Chat, chat streams and embeddings behave like OpenAI's (the configured model first in the body,
`stream_options.include_usage` added to streams); completions load with a warning and answer
MLflow's 501, as in MLflow.
"""

from __future__ import annotations

from typing import Any

from gateway.providers.openai_compatible import CompatibleConfig, OpenAICompatibleProvider
from gateway.types import CHAT, EMBEDDINGS


class PortkeyConfig(CompatibleConfig):
    portkey_provider: str | None = None
    portkey_config: str | None = None
    provider_api_key: str | None = None


class PortkeyProvider(OpenAICompatibleProvider):
    display_name = "Portkey"
    config_type = PortkeyConfig
    secret_fields = ("api_key", "provider_api_key")  # type: ignore[assignment]
    default_base = "https://api.portkey.ai/v1"
    endpoint_types = frozenset((CHAT, EMBEDDINGS))
    streaming_types = frozenset((CHAT,))

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        config: PortkeyConfig = self.config
        headers = {"Content-Type": "application/json", "x-portkey-api-key": config.api_key}
        if config.portkey_provider:
            headers["x-portkey-provider"] = config.portkey_provider
        if config.portkey_config:
            headers["x-portkey-config"] = config.portkey_config
        if config.provider_api_key:
            headers["Authorization"] = f"Bearer {config.provider_api_key}"
        self.headers = headers

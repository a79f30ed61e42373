"""AI21 Labs (spec §7.4), spoken over AI21's current Jamba API.

MLflow calls `/studio/v1/{model}/complete` for the Jurassic-2 models, which AI21 retired. The
config is unchanged (`ai21labs_api_key`) and both completions (the prompt as one user message)
and chat go to Jamba's OpenAI-like `POST {base}/chat/completions`, streaming included. The
retired model names are mapped to their Jamba successors (`JURASSIC_TO_JAMBA`); any other
`j2-*` name, or no name, is refused at load with MLflow's message, and every other name
(`jamba-*`, future models) passes through. Temperature is unscaled, as in MLflow (Jamba's range
is 0-2 too).
"""

from __future__ import annotations

import time
from typing import Any

from gateway.errors import ConfigError, GatewayError, InvalidParameter, UpstreamError, UpstreamUnavailable
from gateway.providers.base import HttpProvider, ProviderConfig, UpstreamRequest, upstream_json_error
from gateway.providers.openai_shapes import chat_chunk, chat_response, completions_chunk, completions_response
from gateway.schemas.responses import Chunk, Response
from gateway.types import CHAT, COMPLETIONS, EndpointType, Payload

JURASSIC_TO_JAMBA = {"j2-ultra": "jamba-large", "j2-mid": "jamba-mini", "j2-light": "jamba-mini"}
TEXT_RULES: list[dict[str, Any]] = [
    {"field": "max_tokens", "fallback": "max_completion_tokens"},
    {"field": "max_completion_tokens", "drop": True},
]
# MLflow's completions refuse J2's own names for the OpenAI fields
NATIVE_KEYS = (("stopSequences", "stop"), ("numResults", "n"), ("maxTokens", "max_tokens"))


class AI21LabsConfig(ProviderConfig):
    ai21labs_api_key: str
    # not in MLflow (which ignores unknown keys): a proxy or a private deployment
    ai21labs_api_base: str = "https://api.ai21.com/studio/v1"


def jamba_model(name: str | None) -> str | None:
    return JURASSIC_TO_JAMBA.get(name.lower(), name) if name else name


class AI21LabsProvider(HttpProvider):
    display_name = "AI21Labs"
    config_type = AI21LabsConfig
    secret_fields = ("ai21labs_api_key",)
    endpoint_types = frozenset((CHAT, COMPLETIONS))
    streaming_types = frozenset((CHAT, COMPLETIONS))
    scaling_rules = {CHAT: TEXT_RULES, COMPLETIONS: TEXT_RULES}

    @classmethod
    def check_config(cls, config: Any, model_name: str | None, endpoint_type: EndpointType) -> None:
        name = (model_name or "").lower()
        if not name or (name.startswith("j2-") and name not in JURASSIC_TO_JAMBA):
            raise ConfigError(
                f"An Unsupported AI21Labs model has been specified: '{model_name}'. "
                "Please see documentation for supported models."
            )

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        config: AI21LabsConfig = self.config
        self.url = f"{config.ai21labs_api_base.rstrip('/')}/chat/completions"
        self.upstream_model = jamba_model(self.model)
        self.headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {config.ai21labs_api_key}",
        }

    def prepare(self, kind: EndpointType, payload: Payload, stream: bool) -> UpstreamRequest:
        if kind == COMPLETIONS:
            for native, ours in NATIVE_KEYS:
                if native in payload:
                    raise InvalidParameter(f"Invalid parameter {native}. Use {ours} instead.")
        return super().prepare(kind, payload, stream)

    def build_request(self, kind: EndpointType, payload: Payload, stream: bool) -> UpstreamRequest:
        if kind == COMPLETIONS:
            messages = [{"role": "user", "content": payload.pop("prompt")}]
        else:
            messages = payload.pop("messages")
        return UpstreamRequest(
            self.url, self.headers, {"model": self.upstream_model, "messages": messages, **payload}
        )

    def upstream_error(self, status: int, reason: str, data: Any) -> GatewayError:
        # AI21's error body is FastAPI's {"detail": "..."} (a list of problems for a 422)
        if isinstance(data, dict) and isinstance(data.get("detail"), str | list):
            return UpstreamError(data["detail"], status=status)
        return upstream_json_error(status, reason, data)

    def parse_response(self, kind: EndpointType, data: Payload) -> Response:
        # Jamba's answer has no `created`, and `model` only in some versions
        data.setdefault("created", int(time.time()))
        data.setdefault("model", self.upstream_model)
        if kind == CHAT:
            return chat_response(data, self.name)
        return completions_response(data)

    def parse_chunk(self, kind: EndpointType, data: Payload) -> Chunk | None:
        if "error" in data:
            error = data["error"]
            message = error.get("message") if isinstance(error, dict) else error
            raise UpstreamUnavailable(f"AI21 Labs failed mid-stream: {message}")
        data.setdefault("created", int(time.time()))
        data.setdefault("model", self.upstream_model)
        if kind == CHAT:
            return chat_chunk(data, self.name)
        return completions_chunk(data)

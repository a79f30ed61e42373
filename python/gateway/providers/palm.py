"""PaLM (spec §7.8), spoken as the Gemini API that replaced it.

MLflow calls PaLM's `v1beta3` `generateText` / `generateMessage` / `batchEmbedText`, which Google
retired. The config is unchanged (`palm_api_key`) and this module speaks Gemini's
`generateContent` (and `streamGenerateContent?alt=sse`, which PaLM lacked) and
`embedContent` / `batchEmbedContents` on the same host, with `x-goog-api-key`: it is the
`gemini` provider with PaLM's config, model names and MLflow's PaLM rules.

Model names: a retired PaLM model (`text-bison-001`, `chat-bison-001`, `embedding-gecko-001`,
any `*bison*`, `*gecko*` or `*unicorn*` name) or no name maps to `DEFAULT_MODELS` for the
endpoint type; any other name (`gemini-*`) is used as is. Kept from MLflow: temperature ×0.5 (it
maps our 0-2 onto PaLM's 0-1, so a config keeps its sampling), the refusal of Gemini's own
parameter names, and the PaLM-only `context` and `examples` chat fields, which become the system
instruction and leading example turns. Dropped: MLflow's "max tokens is not supported for PaLM
chat" (Gemini supports it), and the `role: "1"` it returns (the role is `assistant`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from gateway.providers.base import HttpProvider, ProviderConfig, UpstreamRequest
from gateway.providers.gemini import GeminiProvider, models_base
from gateway.types import CHAT, COMPLETIONS, EMBEDDINGS, EndpointType, Payload

DEFAULT_MODELS = {
    CHAT: "gemini-2.5-flash",
    COMPLETIONS: "gemini-2.5-flash",
    EMBEDDINGS: "gemini-embedding-001",
}
RETIRED_FAMILIES = ("bison", "gecko", "unicorn")
TEXT_RULES: list[dict[str, Any]] = [{"field": "temperature", "scale": 0.5}]


class PaLMConfig(ProviderConfig):
    palm_api_key: str
    # not in MLflow (which ignores unknown keys): a proxy or a private deployment
    palm_api_base: str = "https://generativelanguage.googleapis.com/v1beta"


def gemini_model(name: str | None, kind: EndpointType) -> str:
    name = (name or "").removeprefix("models/")
    if not name or any(family in name.lower() for family in RETIRED_FAMILIES):
        return DEFAULT_MODELS[kind]
    return name


def palm_prompt_fields(payload: Payload) -> None:
    """PaLM's `context` leads as a system message and its `examples` ({input, output}
    pairs) as user/assistant turns, ahead of the conversation."""
    context = payload.pop("context", None)
    examples = payload.pop("examples", None) or []
    leading: list[Payload] = [{"role": "system", "content": context}] if context else []
    for example in examples:
        leading.append({"role": "user", "content": (example.get("input") or {}).get("content", "")})
        leading.append({"role": "assistant", "content": (example.get("output") or {}).get("content", "")})
    if leading:
        payload["messages"] = [*leading, *payload["messages"]]


class PaLMProvider(GeminiProvider):
    display_name = "PaLM"
    config_type = PaLMConfig  # type: ignore[assignment]  # PaLM's fields, Gemini's protocol
    secret_fields = ("palm_api_key",)
    scaling_rules = {CHAT: TEXT_RULES, COMPLETIONS: TEXT_RULES}

    @classmethod
    def check_config(cls, config: Any, model_name: str | None, endpoint_type: EndpointType) -> None:
        """No cross-field rules (Gemini's `gemini_api_base` check does not apply)."""

    def __init__(self, *args: Any) -> None:
        HttpProvider.__init__(self, *args)  # GeminiProvider's reads the gemini_* fields
        config: PaLMConfig = self.config
        # the model actually called; responses name it too
        self.model = gemini_model(self.model, self.endpoint.endpoint_type)
        self.prefix = f"{models_base(config.palm_api_base)}/{quote(self.model, safe='@')}"
        self.headers = {"Content-Type": "application/json", "x-goog-api-key": config.palm_api_key}

    def build_request(self, kind: EndpointType, payload: Payload, stream: bool) -> UpstreamRequest:
        if kind == CHAT:
            palm_prompt_fields(payload)
        return super().build_request(kind, payload, stream)

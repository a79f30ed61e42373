"""The OpenAI-compatible family: Groq, DeepSeek, xAI, Ollama and OpenRouter (spec §7.13).

Each speaks OpenAI's wire format under its own base URL with a bearer key, so the request,
response and stream logic is OpenAIProvider's; only the config, the default base and which
endpoint types the upstream really serves differ. What each one serves, from its own API docs:

| provider   | default base                     | chat | completions       | embeddings |
|------------|----------------------------------|------|-------------------|------------|
| groq       | https://api.groq.com/openai/v1   | yes  | no (not offered)  | no         |
| deepseek   | https://api.deepseek.com         | yes  | no (FIM is beta)  | no         |
| xai        | https://api.x.ai/v1              | yes  | yes (legacy API)  | yes        |
| ollama     | http://localhost:11434/v1        | yes  | yes               | yes        |
| openrouter | https://openrouter.ai/api/v1     | yes  | yes               | yes        |

MLflow answers 501 to completions for all five and lets embeddings through for all five (Groq
and DeepSeek then fail upstream). Here Groq and DeepSeek completions load with a warning and
answer MLflow's 501, their embeddings are forwarded as MLflow forwards them (the upstream
answers), and the completions of the other three work.
"""

from __future__ import annotations

from typing import Any, ClassVar

from gateway.providers.base import Provider, ProviderConfig
from gateway.providers.openai import PATHS, OpenAIProvider
from gateway.types import CHAT, COMPLETIONS, EMBEDDINGS, EndpointType

CHAT_ONLY = frozenset((CHAT,))
CHAT_AND_EMBEDDINGS = frozenset((CHAT, EMBEDDINGS))
ALL_TYPES = frozenset((CHAT, COMPLETIONS, EMBEDDINGS))


class CompatibleConfig(ProviderConfig):
    api_key: str
    api_base: str | None = None


class OllamaConfig(ProviderConfig):
    # a local Ollama needs no key; "ollama" is the placeholder its docs use
    api_key: str = "ollama"
    api_base: str | None = None


class OpenAICompatibleProvider(OpenAIProvider):
    # OpenAIProvider narrows config_type to OpenAIConfig; this family has its own config
    config_type: ClassVar[type[ProviderConfig]] = CompatibleConfig  # type: ignore[assignment]
    secret_fields = ("api_key",)
    default_base: ClassVar[str] = ""
    # a key that means "send no Authorization header" (Ollama's placeholder)
    keyless_value: ClassVar[str | None] = None
    native_prompt_lists = False  # not every compatible upstream takes prompt lists

    @classmethod
    def check_config(cls, config: Any, model_name: str | None, endpoint_type: EndpointType) -> None:
        """No cross-field rules (OpenAIProvider's are about Azure)."""

    def __init__(self, *args: Any) -> None:
        # OpenAIProvider.__init__ reads OpenAI's config fields: set up the same attributes here
        Provider.__init__(self, *args)
        config: CompatibleConfig = self.config
        self.api_type = "openai"
        base = config.api_base or self.default_base
        self.urls = {kind: join_url(base, path) for kind, path in PATHS.items()}
        self.headers = {"Content-Type": "application/json"}
        if config.api_key != self.keyless_value:
            self.headers["Authorization"] = f"Bearer {config.api_key}"


def join_url(base: str, path: str) -> str:
    """`{base}/{path}`, with the path placed before any query string of the base."""
    base, question, query = base.partition("?")
    return f"{base.rstrip('/')}/{path}{question}{query}"


class GroqProvider(OpenAICompatibleProvider):
    display_name = "Groq"
    default_base = "https://api.groq.com/openai/v1"
    endpoint_types = CHAT_AND_EMBEDDINGS
    streaming_types = CHAT_ONLY


class DeepSeekProvider(OpenAICompatibleProvider):
    display_name = "DeepSeek"
    # DeepSeek's documented base; MLflow's ".../v1" is an alias DeepSeek keeps for OpenAI SDKs
    default_base = "https://api.deepseek.com"
    endpoint_types = CHAT_AND_EMBEDDINGS
    streaming_types = CHAT_ONLY


class XAIProvider(OpenAICompatibleProvider):
    display_name = "xAI"
    default_base = "https://api.x.ai/v1"
    endpoint_types = ALL_TYPES
    streaming_types = frozenset((CHAT, COMPLETIONS))


class OllamaProvider(OpenAICompatibleProvider):
    display_name = "Ollama"
    config_type = OllamaConfig
    default_base = "http://localhost:11434/v1"
    keyless_value = "ollama"
    endpoint_types = ALL_TYPES
    streaming_types = frozenset((CHAT, COMPLETIONS))


class OpenRouterProvider(OpenAICompatibleProvider):
    display_name = "OpenRouter"
    default_base = "https://openrouter.ai/api/v1"
    endpoint_types = ALL_TYPES
    streaming_types = frozenset((CHAT, COMPLETIONS))

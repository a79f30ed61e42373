"""TogetherAI (spec §7.12): chat, completions and embeddings, chat and completions streaming.

Requests carry the configured model; `top_logprobs` becomes Together's integer `logprobs`, and
completions require `max_tokens`, with MLflow's 422 messages. Two MLflow bugs (spec §12.14) are
fixed: a client `model` is refused like every other provider's (MLflow let it override the
configured model) and `finish_reason` passes through instead of always being null. Embeddings
send the configured model too (MLflow sent none, relying on the client's).

Config: `togetherai_api_key` (secret) and, beyond MLflow, an optional `togetherai_api_base`
(default https://api.together.xyz/v1).
"""

from __future__ import annotations

from typing import Any

from gateway.errors import InvalidParameter, UpstreamUnavailable
from gateway.providers.base import HttpProvider, ProviderConfig, UpstreamRequest
from gateway.providers.openai_shapes import chat_chunk, chat_usage, completions_chunk
from gateway.schemas.responses import (
    ChatChoice,
    ChatMessageOut,
    ChatResponse,
    Chunk,
    CompletionsChoice,
    CompletionsResponse,
    EmbeddingItem,
    EmbeddingsResponse,
    Response,
)
from gateway.types import CHAT, COMPLETIONS, EMBEDDINGS, EndpointType, Payload

PATHS = {CHAT: "chat/completions", COMPLETIONS: "completions", EMBEDDINGS: "embeddings"}
MAX_TOKENS_REQUIRED = (
    "max_tokens is not present in payload.It is a required parameter for TogetherAI completions."
)


class TogetherAIConfig(ProviderConfig):
    togetherai_api_key: str
    togetherai_api_base: str = "https://api.together.xyz/v1"


class TogetherAIProvider(HttpProvider):
    display_name = "TogetherAI"
    config_type = TogetherAIConfig
    secret_fields = ("togetherai_api_key",)
    endpoint_types = frozenset((CHAT, COMPLETIONS, EMBEDDINGS))
    streaming_types = frozenset((CHAT, COMPLETIONS))

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        config: TogetherAIConfig = self.config
        base = config.togetherai_api_base.rstrip("/")
        self.urls = {kind: f"{base}/{path}" for kind, path in PATHS.items()}
        self.headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {config.togetherai_api_key}",
        }

    def build_request(self, kind: EndpointType, payload: Payload, stream: bool) -> UpstreamRequest:
        if kind != EMBEDDINGS:
            _logprobs_to_int(payload)
        if kind == COMPLETIONS and "max_tokens" not in payload:
            raise InvalidParameter(MAX_TOKENS_REQUIRED)
        return UpstreamRequest(self.urls[kind], self.headers, {"model": self.model, **payload})

    def parse_response(self, kind: EndpointType, data: Payload) -> Response:
        if kind == EMBEDDINGS:
            usage = data.get("usage") or {}
            return EmbeddingsResponse(
                data=[
                    EmbeddingItem(embedding=item["embedding"], index=item.get("index", position))
                    for position, item in enumerate(data["data"])
                ],
                model=data.get("model") or self.model or "",
                usage={
                    "prompt_tokens": usage.get("prompt_tokens"),
                    "total_tokens": usage.get("total_tokens"),
                },
            )
        usage = data["usage"]
        counts = {key: usage[key] for key in ("prompt_tokens", "completion_tokens", "total_tokens")}
        if kind == COMPLETIONS:
            return CompletionsResponse(
                id=data.get("id"),
                created=data["created"],
                model=self.model or data["model"],
                choices=[
                    CompletionsChoice(
                        index=index, text=choice.get("text") or "", finish_reason=choice.get("finish_reason")
                    )
                    for index, choice in enumerate(data["choices"])
                ],
                usage=counts,
            )
        choices = []
        for index, choice in enumerate(data["choices"]):
            message = choice["message"]
            out = ChatMessageOut(
                role="assistant", content=message.get("content"), tool_calls=message.get("tool_calls") or None
            )
            choices.append(ChatChoice(index=index, message=out, finish_reason=choice.get("finish_reason")))
        return ChatResponse(
            id=data.get("id"),
            created=data["created"],
            model=self.model or data["model"],
            choices=choices,
            usage=chat_usage({**usage, **counts}),
            provider=self.name,
        )

    def parse_chunk(self, kind: EndpointType, data: Payload) -> Chunk | None:
        if "error" in data:
            error = data["error"]
            message = error.get("message") if isinstance(error, dict) else error
            raise UpstreamUnavailable(str(message))
        if kind == COMPLETIONS:
            return completions_chunk(data)
        for choice in data.get("choices") or ():
            # Together's chat chunks carry the token in `delta.content` and in `text`
            delta = choice.setdefault("delta", {})
            if isinstance(delta, dict) and delta.get("content") is None and choice.get("text") is not None:
                delta["content"] = choice["text"]
        return chat_chunk(data, self.name)


def _logprobs_to_int(payload: Payload) -> None:
    """Together takes the number of top log-probabilities as an integer `logprobs`."""
    if "top_logprobs" in payload:
        top = payload.pop("top_logprobs")
        if not isinstance(top, int):
            raise InvalidParameter("Wrong type for top_logprobs. It should a 32bit integer.")
        payload["logprobs"] = top
    elif "logprobs" in payload and not isinstance(payload["logprobs"], int):
        raise InvalidParameter("Wrong type for logprobs. It should be an 32bit integer.")

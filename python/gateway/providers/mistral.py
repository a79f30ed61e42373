"""Mistral AI (spec §7.11): chat, completions (served by the chat API) and embeddings.

Chat forwards the payload (all extras, `n`) with the configured model. Mistral's reasoning
models answer with `content` as a list of chunks; only the `text` chunks are kept, as MLflow
does. Completions go to `chat/completions` as one user message with temperature halved and `stop`
and `n` removed (MLflow's mapping). Unlike MLflow, completions also stream: the chat stream is
re-emitted as completion chunks. Embeddings keep Mistral's own `index`.

Config: `mistral_api_key` (secret) and, beyond MLflow, an optional `mistral_api_base` (default
https://api.mistral.ai/v1) for proxies and private deployments.
"""

from __future__ import annotations

import time
from typing import Any

from gateway.errors import UpstreamUnavailable
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


class MistralConfig(ProviderConfig):
    mistral_api_key: str
    mistral_api_base: str = "https://api.mistral.ai/v1"


class MistralProvider(HttpProvider):
    display_name = "Mistral"
    config_type = MistralConfig
    secret_fields = ("mistral_api_key",)
    endpoint_types = frozenset((CHAT, COMPLETIONS, EMBEDDINGS))
    streaming_types = frozenset((CHAT, COMPLETIONS))
    scaling_rules = {COMPLETIONS: [{"field": "temperature", "scale": 0.5}]}

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        config: MistralConfig = self.config
        base = config.mistral_api_base.rstrip("/")
        self.chat_url = f"{base}/chat/completions"
        self.embeddings_url = f"{base}/embeddings"
        self.headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {config.mistral_api_key}",
        }

    def build_request(self, kind: EndpointType, payload: Payload, stream: bool) -> UpstreamRequest:
        if kind == EMBEDDINGS:
            return UpstreamRequest(self.embeddings_url, self.headers, {"model": self.model, **payload})
        if kind == COMPLETIONS:
            payload.pop("stop", None)
            payload.pop("n", None)
            prompt = payload.pop("prompt")
            payload = {"messages": [{"role": "user", "content": prompt}], **payload}
        return UpstreamRequest(self.chat_url, self.headers, {"model": self.model, **payload})

    def parse_response(self, kind: EndpointType, data: Payload) -> Response:
        if kind == EMBEDDINGS:
            return EmbeddingsResponse(
                data=[
                    EmbeddingItem(embedding=item["embedding"], index=item.get("index", position))
                    for position, item in enumerate(data["data"])
                ],
                model=self.model or data.get("model") or "",
                usage={
                    "prompt_tokens": data["usage"]["prompt_tokens"],
                    "total_tokens": data["usage"]["total_tokens"],
                },
            )
        usage = data["usage"]
        counts = {key: usage[key] for key in ("prompt_tokens", "completion_tokens", "total_tokens")}
        if kind == COMPLETIONS:
            return CompletionsResponse(
                id=None,
                created=int(time.time()),
                model=self.model or "",
                choices=[
                    CompletionsChoice(
                        index=index,
                        text=text_content(choice["message"].get("content")) or "",
                        finish_reason=choice.get("finish_reason"),
                    )
                    for index, choice in enumerate(data["choices"])
                ],
                usage=counts,
            )
        choices = []
        for index, choice in enumerate(data["choices"]):
            message = choice["message"]
            out = ChatMessageOut(
                role=message.get("role") or "assistant",
                content=text_content(message.get("content")),
                tool_calls=message.get("tool_calls"),
            )
            choices.append(ChatChoice(index=index, message=out, finish_reason=choice.get("finish_reason")))
        return ChatResponse(
            id=data.get("id"),
            created=data["created"],
            model=data["model"],
            choices=choices,
            usage=chat_usage({**usage, **counts}),
            provider=self.name,
        )

    def parse_chunk(self, kind: EndpointType, data: Payload) -> Chunk | None:
        if "error" in data or data.get("object") == "error":
            raise UpstreamUnavailable(stream_error_message(data))
        for choice in data.get("choices") or ():
            delta = choice.get("delta")
            if isinstance(delta, dict) and isinstance(delta.get("content"), list):
                delta["content"] = text_content(delta["content"])
        if kind == CHAT:
            return chat_chunk(data, self.name)
        return completions_chunk(data)


def text_content(content: Any) -> str | None:
    """Mistral content is a string or a list of chunks; `thinking` and other chunks are dropped."""
    if not isinstance(content, list):
        return content if content is None else str(content)
    return "".join(
        part.get("text") or "" for part in content if isinstance(part, dict) and part.get("type") == "text"
    )


def stream_error_message(data: Payload) -> str:
    error = data.get("error", data)
    if isinstance(error, dict):
        message = error.get("message")
        return message if isinstance(message, str) else str(message or error)
    return str(error)

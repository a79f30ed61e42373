"""The built-in `mock` provider: deterministic answers with no network, for demos, tests and
benchmarks. It echoes the prompt's words back, so a response shows what reached the provider.

config (all optional): latency_ms (before answering), output_tokens (default reply length when
the request sets no max_tokens), max_output_tokens (cap), chunk_delay_ms (between stream
chunks), embedding_dimensions.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import struct
import time
from collections.abc import AsyncIterator
from itertools import cycle, islice
from typing import Any

from gateway._native import ParamScaler, ScalingError
from gateway.errors import InvalidParameter
from gateway.providers.base import MODEL_NOT_PERMITTED, Provider, ProviderConfig, invalid_field
from gateway.schemas.responses import (
    ChatChoice,
    ChatChunk,
    ChatChunkChoice,
    ChatDelta,
    ChatMessageOut,
    ChatResponse,
    Chunk,
    CompletionsChoice,
    CompletionsChunk,
    CompletionsChunkChoice,
    CompletionsResponse,
    EmbeddingItem,
    EmbeddingsResponse,
    Response,
)
from gateway.types import CHAT, COMPLETIONS, EMBEDDINGS, EndpointType, Payload


class MockConfig(ProviderConfig):
    latency_ms: float = 0.0
    output_tokens: int = 16
    max_output_tokens: int = 4096
    chunk_delay_ms: float = 0.0
    embedding_dimensions: int = 8


class MockProvider(Provider):
    display_name = "Mock"
    config_type = MockConfig
    endpoint_types = frozenset((CHAT, COMPLETIONS, EMBEDDINGS))
    streaming_types = frozenset((CHAT, COMPLETIONS))

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        config: MockConfig = self.config
        self.model_id = self.model or "mock"
        self.scaler = ParamScaler(
            [
                {"field": "max_tokens", "fallback": "max_completion_tokens", "default": config.output_tokens},
                {"field": "max_tokens", "max": float(config.max_output_tokens)},
            ]
        )

    async def invoke(self, kind: EndpointType, payload: Payload) -> Response:
        payload = self._checked(payload)
        await self._pause(self.config.latency_ms)
        if kind == EMBEDDINGS:
            return self._embeddings(payload)
        words, prompt_tokens, finish = self._reply(kind, payload)
        usage = _usage(prompt_tokens, len(words))
        text = " ".join(words)
        ident, created = self._identity()
        if kind == CHAT:
            message = ChatMessageOut(role="assistant", content=text)
            return ChatResponse(
                id=ident,
                created=created,
                model=self.model_id,
                choices=[ChatChoice(index=0, message=message, finish_reason=finish)],
                usage=usage,
                provider=self.name,
            )
        return CompletionsResponse(
            id=ident,
            created=created,
            model=self.model_id,
            choices=[CompletionsChoice(index=0, text=text, finish_reason=finish)],
            usage=usage,
        )

    async def open_stream(self, kind: EndpointType, payload: Payload) -> AsyncIterator[list[Chunk]]:
        payload = self._checked(payload)
        words, prompt_tokens, finish = self._reply(kind, payload)
        include_usage = (payload.get("stream_options") or {}).get("include_usage", kind == CHAT)
        await self._pause(self.config.latency_ms)
        return self._stream(kind, words, finish, _usage(prompt_tokens, len(words)) if include_usage else None)

    async def _stream(
        self, kind: EndpointType, words: list[str], finish: str, usage: Payload | None
    ) -> AsyncIterator[list[Chunk]]:
        ident, created = self._identity()
        for index, word in enumerate(words):
            if index:
                await self._pause(self.config.chunk_delay_ms)
            text = word if index == 0 else " " + word
            reason = finish if index == len(words) - 1 else None
            yield [self._chunk(kind, ident, created, text, reason, first=index == 0)]
        if usage is not None:
            yield [self._chunk(kind, ident, created, None, None, first=False, usage=usage)]

    def _chunk(
        self,
        kind: EndpointType,
        ident: str,
        created: int,
        text: str | None,
        reason: str | None,
        first: bool,
        usage: Payload | None = None,
    ) -> Chunk:
        if kind == CHAT:
            delta = ChatDelta(role="assistant" if first else None, content=text)
            chat_choices = (
                [] if text is None else [ChatChunkChoice(index=0, finish_reason=reason, delta=delta)]
            )
            return ChatChunk(
                id=ident,
                created=created,
                model=self.model_id,
                choices=chat_choices,
                usage=usage,
                provider=self.name,
            )
        choices = [] if text is None else [CompletionsChunkChoice(index=0, finish_reason=reason, text=text)]
        return CompletionsChunk(id=ident, created=created, model=self.model_id, choices=choices, usage=usage)

    # -- helpers -------------------------------------------------------------------------
    def _checked(self, payload: Payload) -> Payload:
        if payload.get("model") is not None:
            raise InvalidParameter(MODEL_NOT_PERMITTED)
        payload = dict(payload)
        try:
            self.scaler.apply(payload)
        except ScalingError as exc:
            raise InvalidParameter(str(exc)) from None
        return payload

    @staticmethod
    def _identity() -> tuple[str, int]:
        return f"mock-{time.monotonic_ns():x}", int(time.time())

    @staticmethod
    async def _pause(milliseconds: float) -> None:
        if milliseconds > 0:
            await asyncio.sleep(milliseconds / 1000)

    def _reply(self, kind: EndpointType, payload: Payload) -> tuple[list[str], int, str]:
        prompt = _prompt_text(payload) if kind == CHAT else str(payload.get("prompt", ""))
        source = prompt.split() or ["mock"]
        count = int(payload["max_tokens"])
        words = list(islice(cycle(source), count))
        return words, len(prompt.split()), "length" if count < len(source) else "stop"

    def _embeddings(self, payload: Payload) -> EmbeddingsResponse:
        raw = payload.get("input")
        single = isinstance(raw, str) or (isinstance(raw, list) and bool(raw) and isinstance(raw[0], int))
        items = [raw] if single else raw
        if not isinstance(items, list):
            raise invalid_field(("input",), "Input should be a string or a list", raw)
        as_base64 = payload.get("encoding_format") == "base64"
        data = []
        for index, item in enumerate(items):
            vector = _vector(str(item), self.config.embedding_dimensions)
            packed = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append(EmbeddingItem(embedding=packed if as_base64 else vector, index=index))
        tokens = sum(len(str(item).split()) for item in items)
        return EmbeddingsResponse(
            data=data, model=self.model_id, usage={"prompt_tokens": tokens, "total_tokens": tokens}
        )


def _usage(prompt_tokens: int, completion_tokens: int) -> Payload:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _prompt_text(payload: Payload) -> str:
    for message in reversed(payload.get("messages") or ()):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(
                    p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
                )
    return ""


def _vector(text: str, dimensions: int) -> list[float]:
    """Deterministic unit vector from the text's hash."""
    digest = b""
    counter = 0
    while len(digest) < dimensions * 2:
        digest += hashlib.blake2b(f"{counter}:{text}".encode(), digest_size=64).digest()
        counter += 1
    values = [
        (int.from_bytes(digest[i * 2 : i * 2 + 2], "little") / 32767.5) - 1.0 for i in range(dimensions)
    ]
    norm = sum(v * v for v in values) ** 0.5 or 1.0
    return [round(v / norm, 6) for v in values]

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
from gateway.errors import GatewayError
from gateway.providers.base import MODEL_NOT_PERMITTED, Provider, ProviderConfig, invalid_field
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

    async def invoke(self, kind: EndpointType, payload: Payload) -> Payload:
        payload = self._checked(payload)
        await self._pause(self.config.latency_ms)
        if kind == EMBEDDINGS:
            return self._embeddings(payload)
        words, prompt_tokens, finish = self._reply(kind, payload)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(words),
            "total_tokens": prompt_tokens + len(words),
        }
        text = " ".join(words)
        if kind == CHAT:
            message = {"role": "assistant", "content": text, "tool_calls": None, "refusal": None}
            return {
                **self._head("chat.completion"),
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": usage,
                "provider": self.name,
            }
        return {
            **self._head("text_completion"),
            "choices": [{"index": 0, "text": text, "finish_reason": finish}],
            "usage": usage,
        }

    async def open_stream(self, kind: EndpointType, payload: Payload) -> AsyncIterator[list[Payload]]:
        payload = self._checked(payload)
        words, prompt_tokens, finish = self._reply(kind, payload)
        include_usage = (payload.get("stream_options") or {}).get("include_usage", kind == CHAT)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(words),
            "total_tokens": prompt_tokens + len(words),
        }
        await self._pause(self.config.latency_ms)
        return self._stream(kind, words, finish, usage if include_usage else None)

    async def _stream(
        self, kind: EndpointType, words: list[str], finish: str, usage: Payload | None
    ) -> AsyncIterator[list[Payload]]:
        chat = kind == CHAT
        head = self._head("chat.completion.chunk" if chat else "text_completion_chunk")
        tail: dict[str, Any] = {"usage": None, "provider": self.name} if chat else {"usage": None}
        for index, word in enumerate(words):
            if index:
                await self._pause(self.config.chunk_delay_ms)
            text = word if index == 0 else " " + word
            reason = finish if index == len(words) - 1 else None
            if chat:
                delta = {"role": "assistant" if index == 0 else None, "content": text, "tool_calls": None}
                choice: Payload = {"index": 0, "finish_reason": reason, "delta": delta}
            else:
                choice = {"index": 0, "finish_reason": reason, "text": text}
            yield [{**head, "choices": [choice], **tail}]
        if usage is not None:
            yield [{**head, "choices": [], **tail, "usage": usage}]

    # -- helpers -------------------------------------------------------------------------
    def _checked(self, payload: Payload) -> Payload:
        if payload.get("model") is not None:
            raise GatewayError(MODEL_NOT_PERMITTED, status=422)
        payload = dict(payload)
        try:
            self.scaler.apply(payload)
        except ScalingError as exc:
            raise GatewayError(str(exc), status=422) from None
        return payload

    def _head(self, obj: str) -> Payload:
        return {
            "id": f"mock-{time.monotonic_ns():x}",
            "object": obj,
            "created": int(time.time()),
            "model": self.model_id,
        }

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

    def _embeddings(self, payload: Payload) -> Payload:
        raw = payload.get("input")
        items = (
            [raw]
            if isinstance(raw, str) or (isinstance(raw, list) and raw and isinstance(raw[0], int))
            else raw
        )
        if not isinstance(items, list):
            raise invalid_field(("input",), "Input should be a string or a list", raw)
        as_base64 = payload.get("encoding_format") == "base64"
        data = []
        for index, item in enumerate(items):
            vector = _vector(str(item), self.config.embedding_dimensions)
            embedding: Any = (
                base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode() if as_base64 else vector
            )
            data.append({"object": "embedding", "embedding": embedding, "index": index})
        tokens = sum(len(str(item).split()) for item in items)
        return {
            "object": "list",
            "data": data,
            "model": self.model_id,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
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

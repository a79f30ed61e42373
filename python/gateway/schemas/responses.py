"""Response and stream-chunk schemas (spec §4.3-§4.8), encoded by one msgspec Encoder.

Every declared field is emitted, nulls included, in MLflow's key order (declaration order).
Parts providers fill with open-ended data (usage extras, tool calls with optional keys) stay
plain dicts.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import Struct

ENCODER = msgspec.json.Encoder()
encode = ENCODER.encode


class ChatMessageOut(Struct, kw_only=True):
    role: str
    content: str | list[Any] | None
    tool_calls: list[dict[str, Any]] | None = None
    refusal: None = None


class ChatChoice(Struct, kw_only=True):
    index: int
    message: ChatMessageOut
    finish_reason: str | None


class ChatResponse(Struct, kw_only=True):
    id: str | None
    object: str = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: dict[str, Any]
    provider: str


class CompletionsChoice(Struct, kw_only=True):
    index: int
    text: str
    finish_reason: str | None


class CompletionsResponse(Struct, kw_only=True):
    id: str | None
    object: str = "text_completion"
    created: int
    model: str
    choices: list[CompletionsChoice]
    usage: dict[str, Any]


class EmbeddingItem(Struct, kw_only=True):
    object: str = "embedding"
    # Raw: an OpenAI-shaped upstream's vector as it sent it (providers/openai_shapes.py)
    embedding: list[float] | str | msgspec.Raw
    index: int


class EmbeddingsResponse(Struct, kw_only=True):
    object: str = "list"
    data: list[EmbeddingItem]
    model: str
    usage: dict[str, Any]


class ChatDelta(Struct, kw_only=True):
    role: str | None = None
    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class ChatChunkChoice(Struct, kw_only=True):
    index: int
    finish_reason: str | None
    delta: ChatDelta


class ChatChunk(Struct, kw_only=True):
    id: str | None
    object: str = "chat.completion.chunk"
    created: int | None
    model: str | None
    choices: list[ChatChunkChoice]
    usage: dict[str, Any] | None
    provider: str


class CompletionsChunkChoice(Struct, kw_only=True):
    index: int
    finish_reason: str | None
    text: str | None


class CompletionsChunk(Struct, kw_only=True):
    id: str | None
    object: str = "text_completion_chunk"
    created: int | None
    model: str | None
    choices: list[CompletionsChunkChoice]
    usage: dict[str, Any] | None


Response = ChatResponse | CompletionsResponse | EmbeddingsResponse
Chunk = ChatChunk | CompletionsChunk

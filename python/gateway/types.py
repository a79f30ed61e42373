"""ASGI type aliases and the names shared by the control and data planes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Literal

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

EndpointType = Literal["llm/v1/chat", "llm/v1/completions", "llm/v1/embeddings"]
CHAT: EndpointType = "llm/v1/chat"
COMPLETIONS: EndpointType = "llm/v1/completions"
EMBEDDINGS: EndpointType = "llm/v1/embeddings"
ENDPOINT_TYPES: tuple[EndpointType, ...] = (CHAT, COMPLETIONS, EMBEDDINGS)

Payload = dict[str, Any]

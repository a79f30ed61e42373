"""A minimal gateway plugin provider: `echo` answers a chat with the last user message.

It shows the whole plugin protocol: a `ProviderConfig` struct for `model.config` (every field
optional here, so the config may be left out), a `Provider` subclass declaring its display
name, config type and endpoint types, `invoke` for a plain answer, `open_stream` for streaming,
and a `GatewayError` for an error the client should see with its own status.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from gateway.errors import GatewayError
from gateway.providers.base import Provider, ProviderConfig
from gateway.schemas.responses import (
    ChatChoice,
    ChatChunk,
    ChatChunkChoice,
    ChatDelta,
    ChatMessageOut,
    ChatResponse,
    Chunk,
    Response,
)
from gateway.types import CHAT, EndpointType, Payload


class EchoConfig(ProviderConfig):
    prefix: str = "echo: "


class EchoProvider(Provider):
    display_name = "Echo"
    config_type = EchoConfig
    endpoint_types = frozenset((CHAT,))
    streaming_types = frozenset((CHAT,))

    async def invoke(self, kind: EndpointType, payload: Payload) -> Response:
        text = self.reply(payload)
        words = len(text.split())
        return ChatResponse(
            id="echo-1",
            created=int(time.time()),
            model=self.model or "echo",
            choices=[
                ChatChoice(
                    index=0, message=ChatMessageOut(role="assistant", content=text), finish_reason="stop"
                )
            ],
            usage={"prompt_tokens": words, "completion_tokens": words, "total_tokens": 2 * words},
            provider=self.name,
        )

    async def open_stream(self, kind: EndpointType, payload: Payload) -> AsyncIterator[list[Chunk]]:
        words = self.reply(payload).split(" ")  # checked before the stream starts: a real status

        async def chunks() -> AsyncIterator[list[Chunk]]:
            for index, word in enumerate(words):
                last = index == len(words) - 1
                yield [self.chunk(word if last else word + " ", "stop" if last else None)]

        return chunks()

    def reply(self, payload: Payload) -> str:
        users = [
            m for m in payload["messages"] if m.get("role") == "user" and isinstance(m.get("content"), str)
        ]
        if not users or not users[-1]["content"].strip():
            raise GatewayError("There is nothing to echo: send a user message with text.", status=400)
        return f"{self.config.prefix}{users[-1]['content']}"

    def chunk(self, text: str, finish: str | None) -> ChatChunk:
        return ChatChunk(
            id="echo-1",
            created=int(time.time()),
            model=self.model or "echo",
            choices=[ChatChunkChoice(index=0, finish_reason=finish, delta=ChatDelta(content=text))],
            usage=None,
            provider=self.name,
        )

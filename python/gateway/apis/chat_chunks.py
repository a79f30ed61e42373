"""What the translating stream writers (Responses, Gemini native) share: walking the gateway's
Chat chunks, keeping the last usage and finish reason, and handing each text and tool-call
delta to the writer, which encodes it in its own API's events."""

from __future__ import annotations

from gateway.schemas.responses import ChatChunk, Chunk
from gateway.types import Payload


class ChatChunkWriter:
    """A stream writer fed Chat chunks; subclasses encode `text` and `call` deltas."""

    def __init__(self) -> None:
        self.usage: Payload | None = None  # the last Chat usage reported
        self.finish: str | None = None

    def chunks(self, batch: list[Chunk]) -> bytes:
        out: list[bytes] = []
        for chunk in batch:
            if chunk.usage is not None:
                self.usage = chunk.usage
            if not isinstance(chunk, ChatChunk) or not chunk.choices:
                continue
            choice = chunk.choices[0]
            delta = choice.delta
            if delta.content:
                out.append(self.text(delta.content))
            for call in delta.tool_calls or ():
                out.append(self.call(call))
            if choice.finish_reason is not None:
                self.finish = choice.finish_reason
        return b"".join(out)

    def text(self, text: str) -> bytes:
        raise NotImplementedError

    def call(self, call: Payload) -> bytes:
        raise NotImplementedError

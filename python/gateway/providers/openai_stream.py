"""OpenAI-shaped chat streams relayed natively: one call into `ChatStreamRelay`
(rust/src/chatstream/) per upstream read parses its SSE events, normalises each chunk as
`openai_shapes.chat_chunk` does, applies OpenAI's stream contract (proxy/openai_contract.py:
usage placement, stream ids) and writes the client's SSE bytes. The Python path does the same
in several steps per event (JSON decode, chunk objects, the contract, encoding): 333 against
145 us of CPU per 21-event stream (benches/stream_relay.py, benches/results/2026-12-02-streams.md).

The client gets what the Python path would send (tests/providers/test_native_chat_stream.py
holds the two to the same events, usage, text length and errors for any bytes split anywhere),
except in two kinds of event no LLM upstream sends: one nested deeper than 128 levels is skipped
as malformed (the Python path skips past 1,024), and an integer written `-0` comes out as `-0.0`.

Only the chat routes' relay takes a stream over this way, and only before anything read it:
iterated, the stream is the provider's usual batches of chunks, for the APIs that translate them
(Anthropic Messages, Gemini, Responses), token limits and routed endpoints.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, NoReturn

import orjson

from gateway._native import ChatStreamRelay, SseError
from gateway.errors import UpstreamUnavailable
from gateway.providers.base import STREAM_FAULTS, end_stream, stream_failure
from gateway.proxy.limits import BodyLimits
from gateway.schemas.responses import Chunk
from gateway.types import CHAT

if TYPE_CHECKING:
    from gateway.pipeline.context import StreamTally
    from gateway.providers.base import HttpProvider
    from gateway.proxy.upstream import UpstreamStream


class OpenAIChatStream:
    """What an OpenAI-shaped provider's `open_stream` returns for chat: an async iterator of
    chunk batches that the chat relay may take over (`client_events`) while `untouched`."""

    __slots__ = ("_chunks", "_provider", "_upstream", "untouched")

    def __init__(
        self, chunks: AsyncIterator[list[Chunk]], upstream: UpstreamStream, provider: HttpProvider
    ) -> None:
        self._chunks = chunks
        self._upstream = upstream
        self._provider = provider
        self.untouched = True

    def __aiter__(self) -> OpenAIChatStream:
        return self

    async def __anext__(self) -> list[Chunk]:
        self.untouched = False
        return await anext(self._chunks)

    async def aclose(self) -> None:
        aclose = getattr(self._chunks, "aclose", None)
        if aclose is not None:
            await aclose()

    async def client_events(
        self, include_usage: bool, openai_route: bool, tally: StreamTally
    ) -> AsyncIterator[bytes]:
        """The client's SSE bytes, one piece per upstream read, then the held chunk and the
        usage chunk; the stream's failures raise as the Python path raises them."""
        self.untouched = False
        provider = self._provider
        label = provider.label()
        limits = BodyLimits.from_settings()
        relay = ChatStreamRelay(
            provider.name,
            include_usage=include_usage,
            stream_ids=openai_route,
            max_line_bytes=max(1, limits.max_stream_event_bytes),
        )
        upstream = self._upstream
        reads = upstream.iter_chunks()
        clean = False
        try:
            try:
                while True:
                    data = await anext(reads, None)
                    try:  # the end of the body may complete a last event without its blank line
                        out, failed, done = relay.finish() if data is None else relay.feed(data)
                    except SseError:
                        raise limits.event_too_large() from None
                    tally.chars = relay.chars
                    if out:
                        yield out
                    if failed is not None:
                        self._raise_for(failed, label)
                    if done or data is None:
                        break
                if not relay.produced:
                    raise UpstreamUnavailable(f"{label} ended its stream without sending any event.")
                clean = True
            except STREAM_FAULTS as exc:
                raise stream_failure(label, exc) from None
            finally:
                await reads.aclose()  # its idle timer
                await end_stream(upstream, clean)
        except Exception:
            held = relay.flush_held()  # what was delivered before a failure still reaches the client
            if held:
                yield held
            raise
        finally:
            usage = relay.usage
            if usage is not None:
                tally.usage = orjson.loads(usage)
        tail = relay.tail()
        if tail:
            yield tail

    def _raise_for(self, data: bytes, label: str) -> NoReturn:
        """An event the native relay left to Python (an error object, a malformed chunk): the
        provider's own translation raises the error the client gets."""
        provider = self._provider
        provider.translator(provider, CHAT).event("message", orjson.loads(data))
        raise UpstreamUnavailable(f"Malformed stream event from {label}.")  # not reached

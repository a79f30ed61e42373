"""SSE relay (data plane): upstream bytes -> Rust SseParser -> JSON events, and back out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import orjson

from gateway._native import DONE_EVENT, SseError, SseParser, encode_events
from gateway.proxy.limits import BodyLimits
from gateway.schemas.responses import encode

__all__ = ["DONE_EVENT", "StreamDecoder", "encode_chunks", "error_event", "sse_events"]

_DONE = b"[DONE]"


# A stream decoder turns the upstream's raw bytes into batches of (event name, JSON data), one
# batch per upstream read, so a relay writes to the client as often as the upstream writes.
StreamDecoder = Callable[[AsyncIterator[bytes]], AsyncIterator[list[tuple[str, Any]]]]


async def sse_events(chunks: AsyncIterator[bytes]) -> AsyncIterator[list[tuple[str, Any]]]:
    """Server-sent events through the Rust SseParser; stops at `data: [DONE]`. Events that are not
    a JSON object (malformed JSON, or JSON such as `12345`) are skipped, as MLflow skips garbage."""
    # one line or one event's data over GATEWAY_MAX_STREAM_EVENT_BYTES ends the stream
    limits = BodyLimits.from_settings()
    parser = SseParser(max_line_bytes=max(1, limits.max_stream_event_bytes))
    async for chunk in chunks:
        try:
            events = parser.feed_events(chunk)
        except SseError:
            raise limits.event_too_large() from None
        batch, done = _decode(events)
        if batch:
            yield batch
        if done:
            return
    try:  # the body ended: a last event without its blank line still counts
        last = parser.finish()
    except SseError:
        raise limits.event_too_large() from None
    batch, _ = _decode([("message", data) for data in last])
    if batch:
        yield batch


def _decode(events: list[tuple[str, bytes]]) -> tuple[list[tuple[str, Any]], bool]:
    out: list[tuple[str, Any]] = []
    for name, data in events:
        if data == _DONE:
            return out, True
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError:
            continue
        if isinstance(value, dict):
            out.append((name, value))
    return out, False


def encode_chunks(chunks: Iterable[Any]) -> bytes:
    return encode_events([encode(chunk) for chunk in chunks])


def error_event(message: str, error_type: str, code: int) -> bytes:
    return encode_events([orjson.dumps({"error": {"message": message, "type": error_type, "code": code}})])

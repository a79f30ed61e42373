"""SSE relay (data plane): upstream bytes -> Rust SseParser -> JSON events, and back out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

import orjson

from gateway._native import DONE_EVENT, SseParser, encode_events
from gateway.schemas.responses import encode

__all__ = ["DONE_EVENT", "encode_chunks", "error_event", "sse_json_batches"]

_DONE = b"[DONE]"


async def sse_json_batches(chunks: AsyncIterator[bytes]) -> AsyncIterator[list[Any]]:
    """Yield, per upstream read, the JSON events it completed; stop at `[DONE]`.
    Malformed events are skipped, as MLflow does."""
    parser = SseParser()
    async for chunk in chunks:
        batch, done = _decode(parser.feed(chunk))
        if batch:
            yield batch
        if done:
            return
    batch, _ = _decode(parser.finish())
    if batch:
        yield batch


def _decode(datas: list[bytes]) -> tuple[list[Any], bool]:
    out: list[Any] = []
    for data in datas:
        if data == _DONE:
            return out, True
        try:
            out.append(orjson.loads(data))
        except orjson.JSONDecodeError:
            continue
    return out, False


def encode_chunks(chunks: Iterable[Any]) -> bytes:
    return encode_events([encode(chunk) for chunk in chunks])


def error_event(message: str, error_type: str, code: int) -> bytes:
    return encode_events([orjson.dumps({"error": {"message": message, "type": error_type, "code": code}})])

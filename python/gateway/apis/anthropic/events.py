"""Messages API server-sent events: encoding, error events, and the one relay both halves use
(passthrough relays the provider's bytes, translation relays the events it builds).

Headers go out once the upstream has accepted the stream; a failure after that becomes an
Anthropic `error` event (which the anthropic SDK raises as an APIStatusError), then the stream
closes; a worker draining at its deadline sends an `overloaded_error` event the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson

from gateway.errors import ANTHROPIC_TYPES, GatewayError
from gateway.pipeline.context import RequestContext
from gateway.pipeline.record import record_failure
from gateway.pipeline.relay import DRAINING, SHUTDOWN_MESSAGE
from gateway.server.http import SSE_HEADERS

logger = logging.getLogger("gateway")


def event(kind: str, data: dict[str, Any]) -> bytes:
    """One SSE event as Anthropic writes them: `event: <type>` then the JSON `data:` line."""
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def error_event(message: str, status: int) -> bytes:
    error = {"type": ANTHROPIC_TYPES.get(status, "api_error"), "message": message}
    return event("error", {"type": "error", "error": error})


async def relay_events(
    ctx: RequestContext, events: AsyncIterator[bytes], extra: list[tuple[bytes, bytes]]
) -> None:
    send = ctx.send
    task = asyncio.current_task()
    assert task is not None
    DRAINING.streams.add(task)
    ctx.status = 200
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [*SSE_HEADERS, *ctx.answer_headers(), *extra],
        }
    )
    tail = b""
    try:
        async for data in events:
            await send({"type": "http.response.body", "body": data, "more_body": True})
    except GatewayError as exc:
        ctx.error = exc
        record_failure(ctx.scope, exc, None)
        tail = error_event(ctx.table.redactor.text(exc.message), exc.status)
    except asyncio.CancelledError:
        if task not in DRAINING.closing:
            raise  # the client went away (or the worker is being killed): nothing to send
        task.uncancel()
        tail = error_event(SHUTDOWN_MESSAGE, 503)
    except Exception:
        logger.exception("stream failed")
        tail = error_event("Internal server error: see the gateway log.", 500)
    finally:
        DRAINING.streams.discard(task)
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
    await send({"type": "http.response.body", "body": tail, "more_body": False})

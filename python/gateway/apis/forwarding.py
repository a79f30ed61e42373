"""Passthrough plumbing shared by the API adapters: a request forwarded to the endpoint's own
upstream with the gateway's credentials, its answer relayed to the client as the provider sent
it, and its usage read on the side (for the usage record, cost, budgets and token limits).

* `credentials`: the headers a provider sends upstream (its key, organisation, beta flags), after
  its own `authorize` hook (refreshed OAuth tokens for Vertex, SigV4 for Bedrock). The client's
  own credentials never travel upstream.
* `post_whole` / `open_sse`: POSTs through the worker's pooled upstream client. An upstream error
  becomes a gateway error (redacted, rendered in the client's API style by the server).
* `relay_sse`: the upstream's bytes to the client unchanged, events parsed beside them.
* `Forwarder`: other methods (GET/DELETE of stored responses, the raw proxy): aiohttp, not the hot
  path; bounded bodies, HTTP(S)_PROXY honoured, redirects not followed. aiohttp loads on the
  first such request (a worker that never forwards one keeps about 10 MB less).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from gateway._native import SseError, SseParser
from gateway.errors import GatewayError, NotImplementedByProvider, UpstreamTimeout, UpstreamUnavailable
from gateway.pipeline.context import StreamTally
from gateway.pipeline.record import record_failure
from gateway.pipeline.relay import DRAINING, SHUTDOWN_MESSAGE
from gateway.proxy.limits import BodyLimits
from gateway.proxy.upstream import (
    UpstreamResponse,
    UpstreamStream,
    describe,
    import_in_thread,
    transport_errors,
)
from gateway.server.http import JSON, SSE_HEADERS
from gateway.settings import settings

if TYPE_CHECKING:
    import aiohttp
    from yarl import URL

    from gateway.pipeline.context import RequestContext
    from gateway.providers.base import Provider

logger = logging.getLogger("gateway")

# answer headers passed back by the raw proxy and GET/DELETE forwarding (not x-request-id: the
# client gets the gateway's own, once)
PASSED_BACK = ("content-type", "retry-after", "openai-", "x-ratelimit-", "anthropic-")


async def credentials(provider: Provider, url: str, body: bytes) -> dict[str, str]:
    """The provider's upstream headers for `url` (its key; signed or OAuth where it needs it)."""
    from gateway.providers.base import HttpProvider, UpstreamRequest

    if not isinstance(provider, HttpProvider):
        raise NotImplementedByProvider(f"{provider.label()} has no upstream to forward to.")
    headers = dict(getattr(provider, "headers", None) or {"Content-Type": "application/json"})
    return await provider.authorize(UpstreamRequest(url, headers, {}), body)


def meter_usage(ctx: RequestContext, usage: dict[str, Any] | None, streamed: bool) -> None:
    """A passthrough answer's usage (OpenAI Chat's shape) for the token limits' meters."""
    from gateway.control.limits.base import RESPONDED, STREAMED
    from gateway.control.limits.requests import reported_tokens

    for grant in ctx.grants:
        meter = grant.meter
        meter.outcome = STREAMED if streamed else RESPONDED
        if meter.counting and usage is not None:
            meter.reported = reported_tokens(usage)


T = TypeVar("T")


async def open_passthrough(
    ctx: RequestContext, open_one: Callable[[Provider], Awaitable[T]], routed: bool
) -> tuple[T, Callable[[], None]]:
    """A passthrough opened at the endpoint's provider, or, `routed` (every destination of the
    endpoint's router speaks the passthrough's API), through the routing attempt loop (retries,
    breakers, fallbacks, x-gateway-attempts). Returns what `open_one` opened and the function to
    call once its answer has been delivered (a stream counts in its lane until then)."""
    from gateway.routing.attempts import attempts
    from gateway.routing.strategies import Choice, Lane

    assert ctx.target is not None
    router = ctx.target.router
    if router is None or not routed:
        return await timed(ctx, open_one(ctx.target.provider)), _nothing

    async def call(choice: Choice) -> tuple[T, Lane]:
        try:
            return await open_one(choice.lane.target.provider), choice.lane
        except BaseException:
            choice.lane.in_flight -= 1
            raise

    opened, lane = await attempts(ctx, router, call)
    left = False

    def done() -> None:
        nonlocal left
        if not left:
            left = True
            lane.in_flight -= 1

    return opened, done


async def timed(ctx: RequestContext, call: Awaitable[T]) -> T:
    """`call`'s result, its time counted as the upstream's (not the gateway's overhead)."""
    asked = time.perf_counter()
    try:
        return await call
    finally:
        ctx.upstream_seconds += time.perf_counter() - asked


def _nothing() -> None:
    return None


def every_destination(ctx: RequestContext, speaks: Callable[[Provider], Any]) -> bool:
    """The endpoint has a router and each of its destinations speaks the passthrough's API; a
    route mixing providers is served by translation instead (routed by `invoke`)."""
    assert ctx.target is not None
    router = ctx.target.router
    return router is not None and all(
        speaks(choice.lane.target.provider) is not None for tier in router.tiers for choice in tier
    )


async def post_whole(
    provider: Provider, url: str, headers: dict[str, str], body: bytes
) -> tuple[UpstreamResponse, Any]:
    """The upstream's whole answer and its decoded JSON; an error answer raises."""
    response = await provider.client.post(url, headers, body, provider.label())
    return response, _decoded(provider, response, response.body)


async def open_sse(
    provider: Provider,
    url: str,
    headers: dict[str, str],
    body: bytes,
    content_types: tuple[str, ...] = ("text/event-stream",),
) -> UpstreamStream:
    """An upstream event stream, opened; an error answer (or one that is not a stream of
    `content_types`) raises before the client has been sent anything, so it keeps its status."""
    stream = await provider.client.stream(url, headers, body, provider.label())
    if stream.status >= 400 or not any(kind in stream.content_type for kind in content_types):
        raw = await stream.read_all()
        _decoded(provider, stream, raw)
        raise UpstreamUnavailable(f"{provider.label()} did not return an event stream.")
    return stream


def _decoded(provider: Provider, response: UpstreamResponse | UpstreamStream, raw: bytes) -> Any:
    """The answer's JSON; an error answer raises (in the provider's own terms). A JSON array is
    an answer too (Gemini's stream without `alt=sse`)."""
    from gateway.providers.base import HttpProvider

    assert isinstance(provider, HttpProvider)
    if response.status < 400 and raw[:1] == b"[":
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UpstreamUnavailable(f"Malformed JSON in the response from {provider.label()}.") from None
    return provider.answer(response, raw)


async def send_whole(
    ctx: RequestContext,
    status: int,
    body: bytes,
    content_type: bytes = JSON,
    passed: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    """A whole upstream answer to the client, with the upstream headers `passed` on (its
    back-off signals); an error answer with every configured secret and key-shaped token masked
    (an upstream may quote the key it was sent)."""
    if status >= 400:
        body = ctx.table.redactor.text(body.decode("utf-8", "replace")).encode()
    ctx.status = status
    kept = [(name, value) for name, value in passed if name != b"content-type"]
    headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body)), *kept]
    headers += ctx.answer_headers()
    await ctx.send({"type": "http.response.start", "status": status, "headers": headers})
    await ctx.send({"type": "http.response.body", "body": body, "more_body": False})


async def start_sse(ctx: RequestContext, content_type: bytes | None = None) -> None:
    """The headers of a streamed answer: server-sent events, or another streamed type."""
    ctx.status = 200
    ctx.tally = ctx.tally or StreamTally()
    headers = SSE_HEADERS if content_type is None else [(b"content-type", content_type), SSE_HEADERS[1]]
    headers = [*headers, *ctx.answer_headers()]
    await ctx.send({"type": "http.response.start", "status": 200, "headers": headers})


ErrorTail = Callable[[GatewayError], bytes]


async def close_stream(ctx: RequestContext) -> None:
    """Closes the translated call's chunk stream (`open_stream`'s), as a relay's `close`."""
    aclose = getattr(ctx.stream, "aclose", None)
    if aclose is not None:
        await aclose()


async def relay_events(
    ctx: RequestContext, pieces: AsyncIterator[bytes], error_tail: ErrorTail, close: Callable[[], Any]
) -> None:
    """Relays a stream of already-encoded SSE bytes (after `start_sse`); a failure after the
    headers becomes the API's own error event (`error_tail`), then the stream ends. Streams
    still running at the worker's drain deadline are closed the same way."""
    send = ctx.send
    task = asyncio.current_task()
    assert task is not None
    DRAINING.streams.add(task)
    tail = b""
    try:
        async for piece in pieces:
            if piece:
                await send({"type": "http.response.body", "body": piece, "more_body": True})
    except GatewayError as exc:
        ctx.error = exc
        record_failure(ctx.scope, exc, None)
        exc.detail = ctx.table.redactor.value(exc.detail)
        tail = error_tail(exc)
    except asyncio.CancelledError:
        if task not in DRAINING.closing:
            raise  # the client went away: nothing to send
        task.uncancel()
        tail = error_tail(GatewayError(SHUTDOWN_MESSAGE, status=503))
    except Exception:
        logger.exception("stream failed")
        tail = error_tail(GatewayError("Internal server error: see the gateway log."))
    finally:
        DRAINING.streams.discard(task)
        result = close()
        if asyncio.iscoroutine(result):
            await result
    await send({"type": "http.response.body", "body": tail, "more_body": False})


Watch = Callable[[str, dict[str, Any]], None]


def upstream_pieces(stream: UpstreamStream, provider: Provider, watch: Watch) -> AsyncIterator[bytes]:
    """The upstream's SSE bytes as they arrive, unchanged; each complete event's JSON is shown
    to `watch` (usage is read there)."""
    return watched_sse(stream.iter_chunks(), provider.label(), watch)


async def watched_sse(chunks: AsyncIterator[bytes], label: str, watch: Watch) -> AsyncIterator[bytes]:
    """SSE bytes passed on unchanged, each piece's complete events shown to `watch` before the
    piece goes on (so what an event says, a response id, is known before the client sees it)."""
    limits = BodyLimits.from_settings()
    parser = SseParser(max_line_bytes=max(1, limits.max_stream_event_bytes))
    async for chunk in chunks:
        try:
            events = parser.feed_events(chunk)
        except SseError:
            raise UpstreamUnavailable(f"{label} {limits.event_too_large()}") from None
        for name, data in events:
            if data == b"[DONE]":
                continue
            try:
                value = orjson.loads(data)
            except orjson.JSONDecodeError:
                continue
            if isinstance(value, dict):
                watch(name, value)
        yield chunk


# -- other methods: aiohttp ---------------------------------------------------------------
class Forwarded:
    """An answer to a forwarded request: status, the headers passed back, and either the whole
    body or its pieces as they arrive (event streams)."""

    def __init__(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        body: bytes | None,
        pieces: AsyncIterator[bytes] | None,
    ) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.pieces = pieces


class Forwarder:
    """One aiohttp session per worker, made on first use, for requests that are not the
    gateway's POSTs: GET/DELETE of stored responses and the raw proxy."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def _client(self) -> aiohttp.ClientSession:
        await import_in_thread("aiohttp")
        import aiohttp

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ssl=ssl.create_default_context()),
                trust_env=True,  # HTTPS_PROXY / HTTP_PROXY / NO_PROXY, as the POST path honours them
                auto_decompress=False,  # identity asked for below: no decompression bomb to fear
            )
        return self._session

    async def request(
        self, method: str, url: str | URL, headers: dict[str, str], body: bytes, label: str
    ) -> Forwarded:
        timeout = settings().route_timeout_seconds
        limits = BodyLimits.from_settings()
        headers = {**headers, "Accept-Encoding": "identity"}
        session = await self._client()
        import aiohttp

        try:
            response = await session.request(
                method,
                url,
                data=body or None,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout),
            )
        except TimeoutError:
            raise UpstreamTimeout(f"{label} did not answer within {timeout:g}s.") from None
        except transport_errors() as exc:
            raise UpstreamUnavailable(f"{label} could not be reached: {describe(exc)}") from None
        passed = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in response.headers.items()
            if name.lower().startswith(PASSED_BACK)
        ]
        if "text/event-stream" in response.headers.get("Content-Type", ""):
            return Forwarded(response.status, passed, None, _pieces(response, label, limits))
        try:
            data = await _whole(response, label, limits)
        finally:
            response.release()
        return Forwarded(response.status, passed, data, None)

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()


async def _whole(response: aiohttp.ClientResponse, label: str, limits: BodyLimits) -> bytes:
    cap = limits.max_response_bytes
    parts, size = [], 0
    try:
        async for part in response.content.iter_any():
            size += len(part)
            if cap and size > cap:
                raise UpstreamUnavailable(f"{label} {limits.response_too_large()}")
            parts.append(part)
    except transport_errors() as exc:
        raise UpstreamUnavailable(f"{label} could not be reached: {describe(exc)}") from None
    return b"".join(parts)


async def _pieces(response: aiohttp.ClientResponse, label: str, limits: BodyLimits) -> AsyncIterator[bytes]:
    try:
        async for part in response.content.iter_any():
            yield part
    except TimeoutError:
        raise UpstreamTimeout(f"{label} stopped sending.") from None
    except transport_errors() as exc:
        raise UpstreamUnavailable(f"{label} could not be reached: {describe(exc)}") from None
    finally:
        response.release()


FORWARDER = Forwarder()

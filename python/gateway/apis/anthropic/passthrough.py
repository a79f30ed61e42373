"""Messages passthrough for Claude upstreams: the `anthropic` provider and Claude on Vertex AI.

What the client sent goes on as sent: the body (only `model` becomes the endpoint's model;
on Vertex, `model` leaves the body and `anthropic_version` joins it, as Vertex requires), with
`anthropic-version` and `anthropic-beta`. The gateway's provider credentials replace the
client's (its gateway key never leaves the gateway). Answers come back byte for byte: a whole
answer as the provider wrote it, a stream event by event (cut only at event boundaries, so a
failure can still end it with a well-formed `error` event), while the usage in `message_start`
and `message_delta` is read on the side for the usage record, cost, budgets and token limits.
Provider errors reach the client in Anthropic's own shape, with its status, `request-id` and
rate-limit headers.
"""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import orjson

from gateway._native import SseError, SseParser
from gateway.apis.anthropic.events import relay_events
from gateway.control.limits.base import RESPONDED, STREAMED
from gateway.control.limits.requests import reported_tokens
from gateway.errors import ANTHROPIC_TYPES, UpstreamError, UpstreamUnavailable
from gateway.pipeline.context import RequestContext, StreamTally
from gateway.providers.anthropic import AnthropicProvider
from gateway.providers.anthropic_messages import VERTEX_ANTHROPIC_VERSION, usage
from gateway.providers.base import Provider
from gateway.proxy.limits import BodyLimits
from gateway.proxy.upstream import UpstreamResponse, UpstreamStream
from gateway.server.http import JSON, header, send_bytes
from gateway.types import Payload

if TYPE_CHECKING:
    from gateway.providers.vertex_ai import VertexAIProvider

# answer headers the client gets from the provider: its request id and its back-off signals
PASSED_PREFIXES = ("anthropic-ratelimit-", "x-ratelimit-", "ratelimit-")
PASSED = frozenset(("request-id", "retry-after", "retry-after-ms"))
STATUS_OF_TYPE = {kind: status for status, kind in reversed(ANTHROPIC_TYPES.items())}


class ClaudeUpstream:
    """Where an endpoint's Messages requests go, and with which credentials."""

    stream_type = "text/event-stream"  # the content type of the provider's streams

    def __init__(self, provider: Provider) -> None:
        self.provider = provider
        self.label = provider.label()

    def url(self, stream: bool) -> str:
        raise NotImplementedError

    def count_url(self) -> str | None:
        """count_tokens' URL; None where the provider has none (the gateway estimates)."""
        return None

    def body(self, ctx: RequestContext, raw: bytes) -> bytes:
        raise NotImplementedError

    async def headers(self, ctx: RequestContext, url: str, body: bytes) -> dict[str, str]:
        raise NotImplementedError

    def events(self, stream: UpstreamStream) -> AsyncIterator[bytes]:
        """The stream's bytes as Anthropic's SSE events."""
        return stream.iter_chunks()


class AnthropicMessages(ClaudeUpstream):
    provider: AnthropicProvider

    def url(self, stream: bool) -> str:
        return self.provider.url

    def count_url(self) -> str | None:
        return f"{self.provider.url}/count_tokens"

    def body(self, ctx: RequestContext, raw: bytes) -> bytes:
        model = self.provider.model
        if model is None or ctx.payload.get("model") == model:
            return raw  # byte for byte
        return orjson.dumps({**ctx.payload, "model": model})

    async def headers(self, ctx: RequestContext, url: str, body: bytes) -> dict[str, str]:
        config = self.provider.config
        headers = {
            "content-type": "application/json",
            "x-api-key": config.anthropic_api_key,
            "anthropic-version": header(ctx.scope, b"anthropic-version") or config.anthropic_version,
        }
        betas = client_betas(ctx)
        if betas:
            headers["anthropic-beta"] = betas
        return headers


class VertexClaudeMessages(ClaudeUpstream):
    provider: VertexAIProvider

    def url(self, stream: bool) -> str:
        return f"{self.provider.prefix}:{'streamRawPredict' if stream else 'rawPredict'}"

    def body(self, ctx: RequestContext, raw: bytes) -> bytes:
        body = {key: value for key, value in ctx.payload.items() if key != "model"}
        body.setdefault("anthropic_version", VERTEX_ANTHROPIC_VERSION)
        return orjson.dumps(body)

    async def headers(self, ctx: RequestContext, url: str, body: bytes) -> dict[str, str]:
        provider = self.provider
        headers = {**provider.headers, **await provider.tokens.headers(self.label)}
        betas = [b for b in (provider.headers.get("anthropic-beta"), client_betas(ctx)) if b]
        if betas:
            headers["anthropic-beta"] = ",".join(betas)
        return headers


def claude_upstream(provider: Provider) -> ClaudeUpstream | None:
    """The passthrough for an endpoint whose provider speaks the Messages API; None: translate."""
    if isinstance(provider, AnthropicProvider):
        return AnthropicMessages(provider)
    # Vertex AI and Bedrock providers exist only once their modules (with google-auth or
    # botocore, about 10 MB each) were loaded for such an endpoint: other gateways never load them
    if "gateway.providers.vertex_ai" in sys.modules:
        from gateway.providers.vertex_ai import VertexAIProvider

        if isinstance(provider, VertexAIProvider) and provider.family == "claude":
            return VertexClaudeMessages(provider)
    if "gateway.providers.bedrock" in sys.modules:
        from gateway.providers.bedrock import BedrockProvider

        if isinstance(provider, BedrockProvider) and provider.family == "anthropic":
            from gateway.apis.anthropic.bedrock import BedrockClaudeMessages

            return BedrockClaudeMessages(provider)
    return None


def client_betas(ctx: RequestContext) -> str:
    values = [
        value.decode("latin-1").strip() for name, value in ctx.scope["headers"] if name == b"anthropic-beta"
    ]
    return ",".join(value for value in values if value)


class ProviderError(UpstreamError):
    """The provider's own error answer, passed on as it wrote it (secrets masked) when it is in
    Anthropic's shape, else wrapped in that shape."""

    def __init__(
        self, status: int, body: bytes, headers: dict[str, str], ctx: RequestContext, label: str
    ) -> None:
        text = ctx.table.redactor.text(body.decode("utf-8", "replace"))
        try:
            data: Any = orjson.loads(text)
        except orjson.JSONDecodeError:
            data = None
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            message = error["message"]
            self.raw = text.encode()
        elif isinstance(data, dict) and isinstance(data.get("message"), str):  # Bedrock's errors
            message, self.raw = data["message"], b""
        else:
            message = f"{label} failed (upstream HTTP {status}): {text[:500]}"
            self.raw = b""
        super().__init__(message, status=status if status >= 400 else 502)  # a 3xx is not followed
        self.upstream_headers = passed_headers(headers)

    def body(self, style: Any = False) -> bytes:
        return self.raw or super().body(style)


def passed_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [
        (name.encode("latin-1"), value.encode("latin-1"))
        for name, value in headers.items()
        if name in PASSED or name.startswith(PASSED_PREFIXES)
    ]


async def post(ctx: RequestContext, upstream: ClaudeUpstream, url: str, body: bytes) -> UpstreamResponse:
    """One whole exchange; an error answer raised as a ProviderError."""
    headers = await upstream.headers(ctx, url, body)
    asked = time.perf_counter()
    try:
        response = await upstream.provider.client.post(url, headers, body, upstream.label)
    finally:
        ctx.upstream_seconds += time.perf_counter() - asked
    if response.status >= 300:
        raise ProviderError(response.status, response.body, response.headers, ctx, upstream.label)
    return response


async def answer(ctx: RequestContext, upstream: ClaudeUpstream, raw: bytes) -> None:
    asked = time.perf_counter()
    try:
        opened = await open_exchange(ctx, upstream, raw)
    finally:
        ctx.upstream_seconds += time.perf_counter() - asked
    await deliver(ctx, upstream, opened)


async def open_exchange(
    ctx: RequestContext, upstream: ClaudeUpstream, raw: bytes
) -> UpstreamResponse | UpstreamStream:
    """The request sent: the whole answer, or a stream the provider accepted (its headers); an
    error answer raised as a ProviderError (the routing attempt loop classifies it)."""
    body = upstream.body(ctx, raw)
    url = upstream.url(ctx.streaming)
    headers = await upstream.headers(ctx, url, body)
    client = upstream.provider.client
    if not ctx.streaming:
        response = await client.post(url, headers, body, upstream.label)
        if response.status >= 300:
            raise ProviderError(response.status, response.body, response.headers, ctx, upstream.label)
        return response
    stream = await client.stream(url, headers, body, upstream.label)
    if stream.status >= 300 or upstream.stream_type not in stream.content_type:
        answered = await stream.read_all()
        status = stream.status if stream.status >= 300 else 502
        raise ProviderError(status, answered, stream.headers, ctx, upstream.label)
    return stream


async def deliver(
    ctx: RequestContext,
    upstream: ClaudeUpstream,
    opened: UpstreamResponse | UpstreamStream,
    done: Callable[[], None] | None = None,
) -> None:
    """The provider's answer to the client as it wrote it; `done` runs once a stream ends."""
    if isinstance(opened, UpstreamResponse):
        try:
            data = orjson.loads(opened.body)
        except orjson.JSONDecodeError:
            raise UpstreamUnavailable(f"Malformed JSON in the response from {upstream.label}.") from None
        ctx.usage = usage(data.get("usage")) if isinstance(data, dict) and data.get("usage") else None
        meter(ctx, ctx.usage, streamed=False)
        ctx.status = 200
        extra = [*passed_headers(opened.headers), *ctx.answer_headers()]
        await send_bytes(ctx.send, 200, opened.body, JSON, extra)
        return
    stream = opened

    def release() -> None:
        stream.release()
        if done is not None:
            done()

    ctx.tally = StreamTally()
    meter(ctx, None, streamed=True)
    watch = UsageWatch(ctx, upstream.label)
    await relay_events(ctx, watch.relay(upstream.events(stream), release), passed_headers(stream.headers))


class UsageWatch:
    """Relays the provider's stream bytes unchanged, cut at event boundaries, reading the usage
    (and any `error` event) on the side."""

    def __init__(self, ctx: RequestContext, label: str) -> None:
        self.ctx = ctx
        self.label = label
        self.cap = BodyLimits.from_settings().max_stream_event_bytes
        self.parser = SseParser(max_line_bytes=max(1, self.cap))
        self.raw_usage: Payload = {}
        self.ended = False  # message_stop or an error event: the provider ended it properly

    async def relay(self, chunks: AsyncIterator[bytes], release: Callable[[], None]) -> AsyncIterator[bytes]:
        pending = bytearray()
        try:
            async for chunk in chunks:
                pending += chunk
                cut = event_boundary(pending)
                if cut:
                    out = bytes(pending[:cut])
                    del pending[:cut]
                    self.observe(out)
                    yield out
                elif self.cap and len(pending) > self.cap:
                    raise UpstreamUnavailable(f"{self.label} sent a stream event over {self.cap} bytes.")
            if pending:
                tail = bytes(pending) + b"\n\n"
                self.observe(tail)
                yield tail
            if not self.ended:
                raise UpstreamUnavailable(f"{self.label} ended the stream before message_stop.")
        finally:
            release()

    def observe(self, data: bytes) -> None:
        try:
            events = self.parser.feed_events(data)
        except SseError:
            raise UpstreamUnavailable(f"{self.label} sent a stream event over {self.cap} bytes.") from None
        for name, payload in events:
            if name == "message_start" or name == "message_delta":
                value = orjson.loads(payload)
                reported = (
                    value.get("message", {}).get("usage") if name == "message_start" else value.get("usage")
                )
                if isinstance(reported, dict):
                    self.raw_usage.update({k: v for k, v in reported.items() if v is not None})
                    assert self.ctx.tally is not None
                    self.ctx.tally.usage = usage(self.raw_usage)
                    meter(self.ctx, self.ctx.tally.usage, streamed=True)
            elif name == "message_stop":
                self.ended = True
            elif name == "error":
                self.ended = True
                error = orjson.loads(payload).get("error") or {}
                status = STATUS_OF_TYPE.get(str(error.get("type")), 500)
                self.ctx.error = UpstreamError(str(error.get("message")), status=status)


def event_boundary(data: bytearray) -> int:
    """The end of the last complete event in `data` (after its blank line), 0 when none."""
    ends = [at + len(mark) for mark in (b"\n\n", b"\r\n\r\n", b"\r\r") if (at := data.rfind(mark)) >= 0]
    return max(ends, default=0)


def meter(ctx: RequestContext, reported: Payload | None, streamed: bool) -> None:
    """Token limits reconcile with the usage the provider reported (as `invoke` does)."""
    for grant in ctx.grants:
        grant.meter.outcome = STREAMED if streamed else RESPONDED
        if grant.meter.counting:
            grant.meter.reported = reported_tokens(reported)

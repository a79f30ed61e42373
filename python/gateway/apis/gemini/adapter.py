"""Gemini's native API: `POST /v1beta/models/{endpoint}:generateContent` and
`:streamGenerateContent` (`?alt=sse` for server-sent events, else a streamed JSON array), and
`:countTokens`; also under `/v1/` and `/v1alpha/`, as the SDKs choose.

* Gemini and Vertex AI (Gemini model) endpoints: passthrough. The body goes to the endpoint's
  model as sent, with the gateway's key (Vertex: its OAuth token); the answer and every event
  come back as Google sent them, the usage read on the side (a JSON-array stream item by item,
  whatever its size). An endpoint with a router whose destinations all speak this API is tried
  through the routing attempt loop; a route mixing providers is translated (routed by `invoke`).
  countTokens generates nothing: its usage record counts no tokens.
* Every other chat endpoint: translation to Chat Completions (requests.py) and back
  (answers.py), streams included.

Errors are Google's `{"error": {"code", "message", "status"}}`, in a stream as its last event.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

import orjson

from gateway.apis.forwarding import (
    close_stream,
    credentials,
    every_destination,
    meter_usage,
    open_passthrough,
    open_sse,
    post_whole,
    relay_events,
    send_whole,
    start_sse,
    timed,
    watched_sse,
)
from gateway.apis.gemini.answers import GeminiStreamWriter, generate_content_response
from gateway.apis.gemini.requests import chat_payload
from gateway.apis.usage_watch import GEMINI as GEMINI_USAGE
from gateway.apis.usage_watch import JsonArrayItems, StreamUsage, decoded, whole_usage
from gateway.control.limits.requests import CHARS_PER_TOKEN, estimate_tokens
from gateway.errors import GEMINI, BadRequest, GatewayError
from gateway.pipeline.context import RequestContext, StreamTally
from gateway.pipeline.invoke import invoke, open_stream
from gateway.providers.base import Provider
from gateway.providers.gemini import GeminiProvider
from gateway.proxy.limits import BodyLimits
from gateway.proxy.upstream import UpstreamResponse, UpstreamStream
from gateway.schemas.responses import ChatResponse
from gateway.schemas.validation import decode_json_body, validate_payload
from gateway.server.http import JSON, header, read_body, send_json
from gateway.settings import settings
from gateway.types import CHAT, Payload

GENERATE, STREAM, COUNT = "generateContent", "streamGenerateContent", "countTokens"
ESTIMATED = (b"x-gateway-token-count", b"estimated")
JSON_ARRAY = ("text/event-stream", "application/json")  # a stream's two forms (`alt=sse` or not)
# the SDKs' API versions (google-genai uses v1beta or v1); the upstream call uses the endpoint's
PREFIXES = ("/v1beta/models/", "/v1/models/", "/v1alpha/models/", "/gateway/gemini/v1beta/models/")


def gemini_target(path: str) -> tuple[str, str] | None:
    """(endpoint name, method) of a native Gemini path, else None."""
    for prefix in PREFIXES:
        if path.startswith(prefix):
            name, colon, method = path[len(prefix) :].rpartition(":")
            if colon and name and "/" not in name and method in (GENERATE, STREAM, COUNT):
                return name, method
    return None


def wants_sse(ctx: RequestContext) -> bool:
    query = ctx.scope.get("query_string", b"")
    return b"alt=sse" in query.split(b"&")


def native_prefix(provider: Provider) -> str | None:
    """The `.../models/{model}` URL of an endpoint whose upstream speaks this API."""
    if type(provider) is GeminiProvider:
        return str(provider.prefix)
    # a Vertex AI provider exists only once its module (with google-auth, about 10 MB) was
    # loaded for a Vertex endpoint: other gateways never load it
    if "gateway.providers.vertex_ai" in sys.modules:
        from gateway.providers.vertex_ai import VertexAIProvider

        if isinstance(provider, VertexAIProvider) and provider.family == "gemini":
            return str(provider.prefix)
    return None


class GeminiApi:
    style = GEMINI

    def __init__(self, method: str) -> None:
        self.method = method
        self.body: Payload = {}

    async def read(self, ctx: RequestContext) -> str:
        raw = await read_body(ctx.scope, ctx.receive, settings().max_request_bytes)
        self.body = await decode_json_body(raw, header(ctx.scope, b"content-type"))
        if self.method == COUNT and isinstance(self.body.get("generateContentRequest"), dict):
            self.body = self.body["generateContentRequest"]  # countTokens' other form
        ctx.kind = CHAT
        ctx.streaming = self.method == STREAM
        try:  # what the limits estimate from
            ctx.payload = chat_payload(self.body)
        except BadRequest:
            ctx.payload = {"messages": []}
        return ctx.asked or ""

    async def call(self, ctx: RequestContext) -> None:
        target = ctx.target
        assert target is not None
        if target.endpoint_type != CHAT:
            raise BadRequest(f"Endpoint '{ctx.asked}' is not a chat endpoint: generateContent needs one.")
        prefix = native_prefix(target.provider)
        if self.method == COUNT:
            await self.count(ctx, target.provider, prefix)
        elif target.router is not None:  # retries, breaker or fallback: routed (routing/)
            routed = every_destination(ctx, native_prefix)
            await (self.passthrough(ctx, routed=True) if routed else self.translated(ctx))
        elif prefix is not None:
            await self.passthrough(ctx, routed=False)
        else:
            await self.translated(ctx)

    async def count(self, ctx: RequestContext, provider: Provider, prefix: str | None) -> None:
        """countTokens: Google's own count for Gemini endpoints, else an estimate (the limits'
        rule: 4 characters a token), said to be one in `x-gateway-token-count: estimated`."""
        ctx.kind = None  # a count uses no model tokens: the usage record counts none
        if prefix is not None:
            url = f"{prefix}:{COUNT}"
            body = orjson.dumps(self.body)
            headers = await credentials(provider, url, body)
            response, _ = await timed(ctx, post_whole(provider, url, headers, body))
            return await send_whole(ctx, response.status, response.body)
        payload = chat_payload(self.body)
        prompt, _ = estimate_tokens(CHAT, payload)
        if payload.get("tools"):
            prompt += -(-len(orjson.dumps(payload["tools"])) // CHARS_PER_TOKEN)
        ctx.status = 200
        await send_json(ctx.send, 200, {"totalTokens": prompt}, [ESTIMATED, *ctx.answer_headers()])

    async def open_upstream(
        self, ctx: RequestContext, provider: Provider
    ) -> UpstreamResponse | UpstreamStream:
        prefix = native_prefix(provider)
        assert prefix is not None
        body = orjson.dumps(self.body)
        sse = ctx.streaming and wants_sse(ctx)
        url = f"{prefix}:{self.method}" + ("?alt=sse" if sse else "")
        headers = await credentials(provider, url, body)
        if ctx.streaming:
            return await open_sse(provider, url, headers, body, JSON_ARRAY)
        return (await post_whole(provider, url, headers, body))[0]

    async def passthrough(self, ctx: RequestContext, routed: bool) -> None:
        opened, done = await open_passthrough(ctx, lambda provider: self.open_upstream(ctx, provider), routed)
        assert ctx.target is not None
        label = ctx.target.provider.label()
        if isinstance(opened, UpstreamResponse):
            done()
            ctx.usage = whole_usage(opened.body, GEMINI_USAGE)
            meter_usage(ctx, ctx.usage, streamed=False)
            return await send_whole(ctx, opened.status, opened.body)
        stream = opened
        tally = ctx.tally = StreamTally()
        watch = StreamUsage(GEMINI_USAGE, tally)

        def release() -> None:
            stream.release()
            done()

        if "event-stream" in stream.content_type:

            def failed(exc: GatewayError) -> bytes:
                return b"data: " + exc.body(GEMINI) + b"\r\n\r\n"

            await start_sse(ctx)
            await relay_events(ctx, watched_sse(stream.iter_chunks(), label, watch), failed, release)
        else:  # the JSON-array form (no `alt=sse`): its items read as they pass

            def array_failed(exc: GatewayError) -> bytes:
                return b"," + exc.body(GEMINI) + b"]"

            await start_sse(ctx, stream.content_type.encode("latin-1") or JSON)
            await relay_events(ctx, watched_array(stream, label, watch), array_failed, release)
        meter_usage(ctx, tally.usage, streamed=True)

    async def translated(self, ctx: RequestContext) -> None:
        assert ctx.target is not None
        payload = chat_payload(self.body)
        if ctx.streaming:
            payload["stream"] = True
        validate_payload(payload, CHAT)
        ctx.payload = payload
        model = ctx.target.config.model_name or ctx.asked or ""
        if not ctx.streaming:
            response = await invoke(ctx)
            assert isinstance(response, ChatResponse)
            ctx.status = 200
            return await send_json(
                ctx.send, 200, generate_content_response(response, model), ctx.answer_headers()
            )
        await open_stream(ctx)
        writer = GeminiStreamWriter(model, wants_sse(ctx))
        tally = ctx.tally = StreamTally()

        async def pieces() -> AsyncIterator[bytes]:
            assert ctx.stream is not None
            async for batch in ctx.stream:
                yield writer.chunks(batch)
                tally.usage, tally.chars = writer.usage, writer.chars
            yield writer.finish_bytes()

        def failed(exc: GatewayError) -> bytes:
            return writer.error(exc.body(GEMINI))

        await start_sse(ctx, None if writer.sse else JSON)
        await relay_events(ctx, pieces(), failed, lambda: close_stream(ctx))


async def watched_array(stream: UpstreamStream, label: str, watch: StreamUsage) -> AsyncIterator[bytes]:
    """A streamed JSON array's bytes as they arrive, each complete item shown to `watch`."""
    items = JsonArrayItems(BodyLimits.from_settings().max_stream_event_bytes, label)
    async for piece in stream.iter_chunks():
        for item in items.feed(piece):
            value = decoded(item)
            if isinstance(value, dict):
                watch("", value)
        yield piece

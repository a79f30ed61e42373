"""Messages passthrough for Claude on Amazon Bedrock (InvokeModel): Bedrock takes Anthropic's
Messages body as is, less `model` (the path names it) and `stream` (the path says it), with
`anthropic_version: bedrock-2023-05-31` and the client's `anthropic-beta` header as the body's
`anthropic_beta` list; requests are signed (SigV4, or a bearer key) as the provider signs them.

A stream (InvokeModelWithResponseStream) comes back as AWS event-stream frames, each `chunk`
carrying one Anthropic event's JSON, base64-encoded: each becomes the SSE event Anthropic would
have sent (`event: <type>`, then those JSON bytes unchanged), and an exception frame ends the
stream with Anthropic's `error` event.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator

import orjson

from gateway._native import EventStreamError, EventStreamParser
from gateway.apis.anthropic.passthrough import ClaudeUpstream, client_betas
from gateway.errors import UpstreamUnavailable
from gateway.pipeline.context import RequestContext
from gateway.providers.bedrock import BedrockProvider
from gateway.providers.bedrock_converse import stream_exception
from gateway.proxy.upstream import UpstreamStream

BEDROCK_ANTHROPIC_VERSION = "bedrock-2023-05-31"
EVENT_STREAM = "application/vnd.amazon.eventstream"


class BedrockClaudeMessages(ClaudeUpstream):
    provider: BedrockProvider
    stream_type = EVENT_STREAM

    def url(self, stream: bool) -> str:
        invoke = self.provider.invoke_url
        return f"{invoke}-with-response-stream" if stream else invoke

    def body(self, ctx: RequestContext, raw: bytes) -> bytes:
        body = {key: value for key, value in ctx.payload.items() if key not in ("model", "stream")}
        body.setdefault("anthropic_version", BEDROCK_ANTHROPIC_VERSION)
        betas = [beta.strip() for beta in client_betas(ctx).split(",") if beta.strip()]
        if betas and "anthropic_beta" not in body:
            body["anthropic_beta"] = betas
        return orjson.dumps(body)

    async def headers(self, ctx: RequestContext, url: str, body: bytes) -> dict[str, str]:
        provider = self.provider
        base = provider.stream_headers if url.endswith("-with-response-stream") else provider.json_headers
        return await provider.auth.headers(url, base, body, self.label)

    async def events(self, stream: UpstreamStream) -> AsyncIterator[bytes]:
        parser = EventStreamParser()
        async for chunk in stream.iter_chunks():
            try:
                messages = parser.feed(chunk)
            except EventStreamError as exc:
                raise UpstreamUnavailable(f"Malformed event stream from {self.label}: {exc}") from None
            out: list[bytes] = []
            for headers, payload in messages:
                if headers.get(":message-type", "event") != "event":
                    if out:
                        yield b"".join(out)
                    raise stream_exception(headers, payload)
                if headers.get(":event-type") == "chunk":
                    out.append(self.sse(payload))
            if out:
                yield b"".join(out)
        if parser.buffered():
            raise UpstreamUnavailable(f"{self.label} ended the event stream mid-message.")

    def sse(self, payload: bytes) -> bytes:
        try:
            data = base64.b64decode(orjson.loads(payload)["bytes"], validate=True)
            kind = orjson.loads(data)["type"]
        except (orjson.JSONDecodeError, binascii.Error, KeyError, TypeError) as exc:
            raise UpstreamUnavailable(
                f"Malformed stream event from {self.label}: {type(exc).__name__}"
            ) from None
        return b"event: " + str(kind).encode() + b"\ndata: " + data + b"\n\n"

"""The Messages API on the request pipeline (`pipeline.run_api`): `/v1/messages` and
`/v1/messages/count_tokens`, also under `/gateway/anthropic/v1/` (MLflow's route family).

The body's `model` names the endpoint (its name, or one of its `aliases`). A Claude upstream
(the `anthropic` provider, Claude on Vertex AI or Bedrock) gets the request passed through; any other chat
endpoint gets it translated to the gateway's chat payload, called through the pipeline's
`invoke`/`open_stream` (so retries and fallbacks apply before the first byte), and the answer
translated back. Errors are Anthropic's `{"type": "error", "error": {...}}` everywhere.
"""

from __future__ import annotations

from gateway.apis.anthropic.count_tokens import count_tokens
from gateway.apis.anthropic.events import relay_events
from gateway.apis.anthropic.passthrough import answer, claude_upstream
from gateway.apis.anthropic.routed import all_claude, answer_routed
from gateway.apis.anthropic.translate_request import chat_payload
from gateway.apis.anthropic.translate_stream import message, translated_events
from gateway.errors import ANTHROPIC, BadRequest, RequestValidationError
from gateway.pipeline.context import RequestContext, StreamTally
from gateway.pipeline.invoke import invoke, open_stream
from gateway.schemas.responses import encode
from gateway.schemas.validation import decode_json_body, validate_payload
from gateway.server.http import JSON, header, read_body, send_bytes
from gateway.settings import settings
from gateway.types import CHAT

MESSAGES_PATHS = ("/v1/messages", "/gateway/anthropic/v1/messages")
COUNT_TOKENS_PATHS = ("/v1/messages/count_tokens", "/gateway/anthropic/v1/messages/count_tokens")


class MessagesApi:
    """One request's adapter (it keeps the raw body, for a byte-faithful passthrough)."""

    style = ANTHROPIC

    def __init__(self, counting: bool = False) -> None:
        self.counting = counting  # count_tokens rather than messages
        self.raw = b""

    async def read(self, ctx: RequestContext) -> str:
        self.raw = await read_body(ctx.scope, ctx.receive, settings().max_request_bytes)
        try:
            payload = await decode_json_body(self.raw, header(ctx.scope, b"content-type"))
        except RequestValidationError as exc:  # not JSON, or not an object: Anthropic says 400
            raise BadRequest(exc.message) from None
        model = payload.get("model")
        if not isinstance(model, str) or not model:
            raise BadRequest("model: Field required")
        if not isinstance(payload.get("messages"), list):
            raise BadRequest("messages: Field required (a list)")
        ctx.payload = payload
        ctx.kind = CHAT  # what the limits estimate from (messages, max_tokens)
        ctx.streaming = not self.counting and payload.get("stream") is True
        return model

    async def call(self, ctx: RequestContext) -> None:
        target = ctx.target
        assert target is not None
        if target.endpoint_type != CHAT:
            raise BadRequest(
                f"Endpoint '{target.name}' is not a chat endpoint: the Messages API serves chat endpoints."
            )
        upstream = claude_upstream(target.provider)
        if self.counting:
            ctx.kind = None  # a count uses no model tokens: the usage record counts none
            return await count_tokens(ctx, upstream, self.raw)
        router = target.router
        if router is not None:  # retries, breaker or fallback configured (routing/)
            if all_claude(router):
                return await answer_routed(ctx, router, self.raw)
            upstream = None  # a mix of providers: translated, routed by `invoke`
        if upstream is not None:
            return await answer(ctx, upstream, self.raw)
        await self.translated(ctx)

    async def translated(self, ctx: RequestContext) -> None:
        model = ctx.payload["model"]
        payload = chat_payload(ctx.payload)
        try:
            validate_payload(payload, CHAT)
        except RequestValidationError as exc:
            raise BadRequest(exc.message) from None
        ctx.payload = payload
        ctx.prompts = None
        if not ctx.streaming:
            response = await invoke(ctx)
            ctx.status = 200
            await send_bytes(ctx.send, 200, encode(message(response, model)), JSON, ctx.answer_headers())
            return
        await open_stream(ctx)
        ctx.tally = StreamTally()
        await relay_events(ctx, translated_events(ctx, model), [])

"""OpenAI's Responses API (`POST /v1/responses`, `GET`/`DELETE /v1/responses/{id}`) on the
request pipeline.

* OpenAI and Azure endpoints: passthrough. The client's body goes upstream as sent, with only
  `model` set to the endpoint's model (Azure: its deployment), and the gateway's key; the answer
  and every SSE event come back as the upstream sent them. The usage is read on the side. An
  endpoint with a router whose destinations are all OpenAI/Azure is tried through the routing
  attempt loop (retries, breakers, fallbacks); a route mixing providers is translated.
* A kept response belongs to the consumer that created it: another key's GET, DELETE or
  `previous_response_id` gets a 404, as for an unknown id.
* Every other chat endpoint: translation to Chat Completions (requests.py) and back (answers.py),
  streams included; `previous_response_id` works through the conversation states the gateway
  keeps (state.py).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from gateway.apis.forwarding import (
    FORWARDER,
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
    upstream_pieces,
)
from gateway.apis.responses.answers import (
    EventWriter,
    ResponseShell,
    chat_usage,
    error_code,
    whole_response,
)
from gateway.apis.responses.requests import chat_payload, input_items
from gateway.apis.responses.state import TOO_LARGE, ResponseState, ResponseStates
from gateway.errors import OPENAI, BadRequest, GatewayError, NotFound
from gateway.pipeline.context import RequestContext, StreamTally
from gateway.pipeline.invoke import invoke, open_stream
from gateway.providers.base import Provider
from gateway.providers.openai import OpenAIProvider
from gateway.providers.openai_compatible import OpenAICompatibleProvider
from gateway.proxy.upstream import UpstreamResponse, UpstreamStream
from gateway.schemas.responses import ChatResponse
from gateway.schemas.validation import decode_json_body, validate_payload
from gateway.server.http import header, read_body, send_json
from gateway.settings import settings
from gateway.types import CHAT, Payload


def responses_base(provider: Provider) -> tuple[str, str] | None:
    """(`.../responses` URL prefix, query string) of an endpoint whose upstream has the
    Responses API (OpenAI, Azure OpenAI); None for every other provider."""
    if not isinstance(provider, OpenAIProvider) or isinstance(provider, OpenAICompatibleProvider):
        return None
    config = provider.config
    base = (config.openai_api_base or "https://api.openai.com/v1").rstrip("/")
    if provider.api_type == "openai":
        query = f"?api-version={config.openai_api_version}" if config.openai_api_version else ""
        return f"{base}/responses", query
    return f"{base}/openai/responses", f"?api-version={config.openai_api_version}"


def upstream_model(provider: Provider) -> str | None:
    if isinstance(provider, OpenAIProvider) and provider.api_type != "openai":
        return str(provider.config.openai_deployment_name)
    return provider.model


class ResponsesApi:
    """One request's adapter (it keeps the body between `read` and `call`)."""

    style = OPENAI

    def __init__(self, states: ResponseStates) -> None:
        self.states = states
        self.body: Payload = {}

    async def read(self, ctx: RequestContext) -> str:
        raw = await read_body(ctx.scope, ctx.receive, settings().max_request_bytes)
        body = await decode_json_body(raw, header(ctx.scope, b"content-type"))
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise BadRequest("Missing required parameter: 'model'.")
        if not isinstance(body.get("stream", False), bool):
            raise BadRequest("Invalid type for 'stream': expected a boolean.")
        self.body = body
        ctx.kind = CHAT
        ctx.streaming = body.get("stream") is True
        try:  # what the limits estimate from; a translated call builds it again with its history
            ctx.payload = chat_payload(body)
        except BadRequest:
            ctx.payload = {"messages": []}  # a passthrough upstream may take what Chat cannot
        return model

    async def call(self, ctx: RequestContext) -> None:
        target = ctx.target
        assert target is not None
        if target.endpoint_type != CHAT:
            raise BadRequest(f"Endpoint '{ctx.asked}' is not a chat endpoint: the Responses API needs one.")
        if target.router is not None:  # retries, breaker or fallback: routed (routing/)
            routed = every_destination(ctx, responses_base)
            await (self.passthrough(ctx, routed=True) if routed else self.translated(ctx))
        elif responses_base(target.provider) is not None:
            await self.passthrough(ctx, routed=False)
        else:
            await self.translated(ctx)

    # -- passthrough ---------------------------------------------------------------------
    async def open_upstream(
        self, ctx: RequestContext, provider: Provider
    ) -> UpstreamResponse | UpstreamStream:
        base = responses_base(provider)
        assert base is not None
        url = base[0] + base[1]
        body = orjson.dumps({**self.body, "model": upstream_model(provider)})
        headers = await credentials(provider, url, body)
        if ctx.streaming:
            return await open_sse(provider, url, headers, body)
        return (await post_whole(provider, url, headers, body))[0]

    async def passthrough(self, ctx: RequestContext, routed: bool) -> None:
        previous = self.body.get("previous_response_id")
        if previous is not None and await self.states.find(str(previous), owner_of(ctx)) is None:
            # the upstream keeps the conversation, but only its creator may continue it
            raise NotFound(f"Previous response with id '{previous}' not found.")
        opened, done = await open_passthrough(ctx, lambda provider: self.open_upstream(ctx, provider), routed)
        assert ctx.target is not None
        endpoint = ctx.target.name  # the destination that answered: GET/DELETE go there
        if isinstance(opened, UpstreamResponse):
            done()
            answer = orjson.loads(opened.body)
            ctx.usage = chat_usage(answer.get("usage"))
            meter_usage(ctx, ctx.usage, streamed=False)
            await self.keep_passthrough(ctx, answer.get("id"), endpoint)
            return await send_whole(ctx, opened.status, opened.body)
        stream = opened
        tally = ctx.tally = StreamTally()
        created: list[Any] = []  # the response's id, from its `response.created` event

        def watch(name: str, event: dict[str, Any]) -> None:
            response = event.get("response")
            if isinstance(response, dict):
                usage = chat_usage(response.get("usage"))
                if usage is not None:
                    tally.usage = usage
                if event.get("type") == "response.created":
                    created.append(response.get("id"))
            delta = event.get("delta")
            if event.get("type") == "response.output_text.delta" and isinstance(delta, str):
                tally.chars += len(delta)

        async def pieces() -> AsyncIterator[bytes]:
            kept = False
            async for piece in upstream_pieces(stream, provider_of(ctx), watch):
                if created and not kept:  # before the client learns the id, as for whole answers
                    kept = True
                    await self.keep_passthrough(ctx, created[0], endpoint)
                yield piece

        def release() -> None:
            stream.release()
            done()

        await start_sse(ctx)
        await relay_events(ctx, pieces(), passthrough_error, release)
        meter_usage(ctx, tally.usage, streamed=True)

    async def keep_passthrough(self, ctx: RequestContext, response_id: Any, endpoint: str) -> None:
        if isinstance(response_id, str) and self.body.get("store", True) is not False:
            await self.states.remember(response_id, ResponseState(endpoint, owner=owner_of(ctx)))

    # -- translation ---------------------------------------------------------------------
    async def translated(self, ctx: RequestContext) -> None:
        assert ctx.target is not None
        body = self.body
        history = await self.history(body.get("previous_response_id"), owner_of(ctx))
        payload = chat_payload(body, history)
        validate_payload(payload, CHAT)
        ctx.payload = payload
        shell = ResponseShell(body, ctx.target.config.model_name or ctx.asked or "")
        asked = [*history, *input_items(body.get("input"))]
        if not ctx.streaming:
            response = await invoke(ctx)
            assert isinstance(response, ChatResponse)
            answer = whole_response(shell, response)
            await self.keep(ctx, shell.id, asked, answer)
            ctx.status = 200
            return await send_json(ctx.send, 200, answer, ctx.answer_headers())
        await open_stream(ctx)
        writer = EventWriter(shell)
        tally = ctx.tally = StreamTally()

        async def pieces() -> AsyncIterator[bytes]:
            assert ctx.stream is not None
            yield writer.start()
            async for batch in ctx.stream:
                yield writer.chunks(batch)
                tally.usage = writer.usage
            tally.chars = sum(len(item.text) for item in writer.items)
            tail = writer.finish_events()
            assert writer.final is not None
            await self.keep(ctx, shell.id, asked, writer.final)
            yield tail

        def failed(exc: GatewayError) -> bytes:
            return writer.error(exc.message, error_code(exc.status))

        await start_sse(ctx)
        await relay_events(ctx, pieces(), failed, lambda: close_stream(ctx))

    async def history(self, previous: Any, owner: str | None) -> list[Payload]:
        if previous is None:
            return []
        if not isinstance(previous, str):
            raise BadRequest("Invalid 'previous_response_id': expected a string.")
        state = await self.states.find(previous, owner)
        if state is None or state.items is None:
            raise NotFound(f"Previous response with id '{previous}' not found.")
        if state.items == [TOO_LARGE]:
            raise BadRequest(
                f"Previous response '{previous}' was not kept: its conversation is larger than the gateway "
                "keeps. Send the whole conversation as `input` instead."
            )
        return list(state.items)

    async def keep(
        self, ctx: RequestContext, response_id: str, asked: list[Payload], answer: Payload
    ) -> None:
        if self.body.get("store", True) is False:
            return
        assert ctx.target is not None
        items = [*asked, *answer["output"]]
        state = ResponseState(ctx.target.name, items, answer, owner=owner_of(ctx))
        await self.states.remember(response_id, state)


def owner_of(ctx: RequestContext) -> str | None:
    """Who a kept response belongs to: the calling consumer, None when anonymous."""
    consumer = ctx.consumer
    return f"{consumer.kind}:{consumer.id}" if consumer is not None else None


def provider_of(ctx: RequestContext) -> Provider:
    assert ctx.target is not None
    return ctx.target.provider


def passthrough_error(exc: GatewayError) -> bytes:
    """A failure after the upstream's stream started: the Responses `error` event."""
    data = {"type": "error", "code": error_code(exc.status), "message": exc.message, "param": None}
    return b"event: error\ndata: " + orjson.dumps(data) + b"\n\n"


# -- GET / DELETE /v1/responses/{id} ---------------------------------------------------------
async def stored_response(ctx: RequestContext, states: ResponseStates, response_id: str) -> None:
    """A response the gateway served: forwarded to the upstream for passthrough endpoints,
    answered from the kept state for translated ones."""
    from gateway.pipeline.authenticate import authenticate
    from gateway.pipeline.authorize import authorize

    await authenticate(ctx)
    state = await states.find(response_id, owner_of(ctx))
    target = ctx.table.targets.get(state.endpoint) if state is not None else None
    if state is None or target is None:
        raise NotFound(f"Response with id '{response_id}' not found.")
    ctx.target, ctx.asked = target, target.name
    authorize(ctx, target.name)
    base = responses_base(target.provider)
    if base is not None:
        url = f"{base[0]}/{response_id}{base[1]}"
        headers = await credentials(target.provider, url, b"")
        headers.pop("Content-Type", None)
        started = time.perf_counter()  # (a stored response is not routed: the id lives at one upstream)
        answer = await FORWARDER.request(ctx.method, url, headers, b"", target.provider.label())
        ctx.upstream_seconds += time.perf_counter() - started
        if ctx.method == "DELETE" and answer.status < 300:
            await states.forget(response_id)
        content_type = dict(answer.headers).get(b"content-type", b"application/json")
        return await send_whole(ctx, answer.status, answer.body or b"", content_type)
    if ctx.method == "DELETE":
        await states.forget(response_id)
        ctx.status = 200
        return await send_json(
            ctx.send, 200, {"id": response_id, "object": "response", "deleted": True}, ctx.answer_headers()
        )
    ctx.status = 200
    await send_json(ctx.send, 200, state.response, ctx.answer_headers())

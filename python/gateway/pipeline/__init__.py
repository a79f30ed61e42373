"""The request pipeline every invocation route runs, one small module per phase.

    authenticate   who is calling (gateway key, JWT; IP lists), from the headers alone
         |
    resolve        the endpoint named in the path (MLflow's routes) ...
         |
    authorize      ... may this consumer call it (allowlist)
         |
    read           body -> validated payload (deadline, size, JSON cost, schema)
         |
    resolve        ... or the endpoint named by the body's `model` (OpenAI routes)
         |
    authorize      ... and may this consumer call it
         |
    admit          limits decide (endpoint, route and consumer limits)  ---- 429 ----+
         |                                                                          |
    invoke         the provider call, or the stream opened                          |
         |                                                                          |
    relay          the answer or the stream to the client (the one relay)           |
         |                                                                          |
    settle         every grant settled once, however it ended  <-------------------+
         |
    record         what is written about the request (failure log; usage, metrics)

A client that disconnects at any phase after resolution cancels the request (the upstream call
with it); errors are raised as `GatewayError`s and rendered once, in the client's style, by the
server (server/app.py), which also records them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from gateway.pipeline.admit import admit
from gateway.pipeline.authenticate import authenticate
from gateway.pipeline.authorize import authorize
from gateway.pipeline.context import RequestContext
from gateway.pipeline.invoke import invoke, open_stream, plan
from gateway.pipeline.read import read
from gateway.pipeline.record import TARGET_KEY, record_gone
from gateway.pipeline.relay import WATCH_AFTER_SECONDS, ClientWatch, relay_response, relay_stream
from gateway.pipeline.resolve import resolve_asked, resolve_model, resolve_name
from gateway.pipeline.settle import settle
from gateway.types import EndpointType

if TYPE_CHECKING:
    from gateway.errors import ApiStyle

__all__ = ["ApiAdapter", "RequestContext", "run_api", "run_invocation"]


async def run_invocation(ctx: RequestContext, name: str | None, kind: EndpointType | None) -> None:
    """MLflow's invocation routes give `name` (from the path); the OpenAI routes give `kind`."""
    await authenticate(ctx)
    if name is not None:
        kind = resolve_name(ctx, name)
        ctx.scope[TARGET_KEY] = ctx.target
        authorize(ctx, name)
    assert kind is not None
    await read(ctx, kind)
    if name is None:
        asked = resolve_model(ctx, kind)
        ctx.scope[TARGET_KEY] = ctx.target
        authorize(ctx, asked)
    plan(ctx)
    await answer(ctx, _invoke_and_relay)


async def _invoke_and_relay(ctx: RequestContext) -> None:
    if ctx.streaming:
        await open_stream(ctx)
        await relay_stream(ctx)
    else:
        await relay_response(ctx, await invoke(ctx))


async def answer(ctx: RequestContext, call: Callable[[RequestContext], Awaitable[None]]) -> None:
    """admit, then `call` (invoke + relay); settled however it ends. A client that goes away
    cancels it (the upstream call with it)."""
    watch = ClientWatch(ctx.receive, 0.0 if ctx.streaming else WATCH_AFTER_SECONDS)
    try:
        await admit(ctx)
        await call(ctx)
    except asyncio.CancelledError:
        watch.absorb()
        assert ctx.target is not None
        record_gone(ctx.target)
    finally:
        watch.stop()
        settle(ctx)


class ApiAdapter(Protocol):
    """Another API family on the same pipeline (Anthropic Messages, OpenAI Responses, Gemini's
    native API): it reads its own bodies and answers in its own shapes; authentication,
    authorization, limits, budgets, settlement and the usage record are the pipeline's."""

    style: ApiStyle  # how errors are rendered for its clients

    async def read(self, ctx: RequestContext) -> str:
        """read: the body into `ctx.payload` (and `ctx.kind`, `ctx.streaming`); returns the
        endpoint name the request asks for (e.g. the body's `model`), resolved next."""
        ...

    async def call(self, ctx: RequestContext) -> None:
        """invoke + relay: call the resolved `ctx.target` (passthrough or translated) and answer
        the client. Leaves the provider-reported usage, in OpenAI's usage shape, in `ctx.usage`
        (whole answers) or `ctx.tally.usage` (streams), and sets `ctx.status`/`ctx.first_byte`
        via `ctx.answer_headers()`, so the usage record is right."""
        ...


async def run_api(ctx: RequestContext, adapter: ApiAdapter, name: str | None = None) -> None:
    """The pipeline for an API adapter; `name` when the path names the endpoint."""
    ctx.style = adapter.style
    await authenticate(ctx)
    if name is not None:
        resolve_name(ctx, name)
        ctx.scope[TARGET_KEY] = ctx.target
        authorize(ctx, name)
    asked = await adapter.read(ctx)
    if name is None:
        resolve_asked(ctx, asked)
        ctx.scope[TARGET_KEY] = ctx.target
        authorize(ctx, asked)
    await answer(ctx, adapter.call)

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

from gateway.pipeline.admit import admit
from gateway.pipeline.authenticate import authenticate
from gateway.pipeline.authorize import authorize
from gateway.pipeline.context import RequestContext
from gateway.pipeline.invoke import invoke, open_stream, plan
from gateway.pipeline.read import read
from gateway.pipeline.record import TARGET_KEY, record_gone
from gateway.pipeline.relay import ClientWatch, relay_response, relay_stream
from gateway.pipeline.resolve import resolve_model, resolve_name
from gateway.pipeline.settle import settle
from gateway.types import EndpointType

__all__ = ["RequestContext", "run_invocation"]


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
    watch = ClientWatch(ctx.receive)
    try:
        await admit(ctx)
        if ctx.streaming:
            await open_stream(ctx)
            await relay_stream(ctx)
        else:
            await relay_response(ctx, await invoke(ctx))
    except asyncio.CancelledError:
        watch.absorb()
        assert ctx.target is not None
        record_gone(ctx.target)
    finally:
        watch.stop()
        settle(ctx)

"""invoke: the provider call. A non-streaming request gets its whole answer here; a stream is
opened here (errors before its first event keep their status) and relayed by `relay`."""

from __future__ import annotations

import time

from gateway.pipeline.context import RequestContext
from gateway.providers.prompts import invoke_each, prepare_prompt
from gateway.routing.attempts import invoke_routed, open_routed
from gateway.schemas.responses import Response
from gateway.types import EMBEDDINGS


def plan(ctx: RequestContext) -> None:
    """Decided from the payload before anything is admitted: stream or not, and how a
    completions prompt list reaches the provider."""
    assert ctx.target is not None and ctx.kind is not None
    ctx.streaming = ctx.payload.get("stream") is True and ctx.kind != EMBEDDINGS
    ctx.prompts = prepare_prompt(ctx.target.provider, ctx.kind, ctx.payload, ctx.streaming)


async def invoke(ctx: RequestContext) -> Response:
    target = ctx.target
    assert target is not None and ctx.kind is not None
    if target.router is not None:
        # retries, breaker, fallback: the attempt loop sums every attempt's wait itself
        response = await invoke_routed(ctx, target.router)
    else:
        provider = target.provider
        ctx.attempts = 1
        asked = time.perf_counter()
        try:
            if ctx.prompts is not None:
                response = await invoke_each(provider, ctx.payload, ctx.prompts)
            else:
                response = await provider.invoke(ctx.kind, ctx.payload)
        finally:
            ctx.upstream_seconds += time.perf_counter() - asked
    ctx.usage = response.usage
    ctx.answer = response
    for grant in ctx.grants:
        grant.meter.response(response)
    return response


async def open_stream(ctx: RequestContext) -> None:
    target = ctx.target
    assert target is not None and ctx.kind is not None
    if target.router is not None:
        stream = await open_routed(ctx, target.router)  # tried again only until its headers
    else:
        ctx.attempts = 1
        asked = time.perf_counter()
        try:
            stream = await target.provider.open_stream(ctx.kind, ctx.payload)
        finally:
            ctx.upstream_seconds += time.perf_counter() - asked
    for grant in ctx.grants:
        stream = grant.meter.watch(stream)
    ctx.stream = stream

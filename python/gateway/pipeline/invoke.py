"""invoke: the provider call. A non-streaming request gets its whole answer here; a stream is
opened here (errors before its first event keep their status) and relayed by `relay`."""

from __future__ import annotations

from gateway.pipeline.context import RequestContext
from gateway.providers.prompts import invoke_each, prepare_prompt
from gateway.schemas.responses import Response
from gateway.types import EMBEDDINGS


def plan(ctx: RequestContext) -> None:
    """Decided from the payload before anything is admitted: stream or not, and how a
    completions prompt list reaches the provider."""
    assert ctx.target is not None and ctx.kind is not None
    ctx.streaming = ctx.payload.get("stream") is True and ctx.kind != EMBEDDINGS
    ctx.prompts = prepare_prompt(ctx.target.provider, ctx.kind, ctx.payload, ctx.streaming)


async def invoke(ctx: RequestContext) -> Response:
    provider = ctx.target.provider if ctx.target is not None else None
    assert provider is not None and ctx.kind is not None
    if ctx.prompts is not None:
        response = await invoke_each(provider, ctx.payload, ctx.prompts)
    else:
        response = await provider.invoke(ctx.kind, ctx.payload)
    for grant in ctx.grants:
        grant.meter.response(response)
    return response


async def open_stream(ctx: RequestContext) -> None:
    provider = ctx.target.provider if ctx.target is not None else None
    assert provider is not None and ctx.kind is not None
    stream = await provider.open_stream(ctx.kind, ctx.payload)
    for grant in ctx.grants:
        stream = grant.meter.watch(stream)
    ctx.stream = stream

"""admit: the limits (calls, tokens, concurrency) decide before the provider is called: the
endpoint's (and a traffic route's) and the consumer's own, all of them or none. Each admission
leaves a grant that `settle` reconciles once the answer has ended."""

from __future__ import annotations

from gateway.control.limits import CombinedLimiter
from gateway.pipeline.context import RequestContext


async def admit(ctx: RequestContext) -> None:
    target = ctx.target
    assert target is not None and ctx.kind is not None
    limiter = target.limiter
    consumer_limiter = ctx.consumer.limiter if ctx.consumer is not None else None
    if consumer_limiter is not None:
        limiter = consumer_limiter if limiter is None else CombinedLimiter(consumer_limiter, limiter)
    if limiter is not None:
        ctx.grants.append(await limiter.admit(ctx.scope, ctx.kind, ctx.payload))

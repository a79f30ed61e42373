"""admit: the budgets, then the limits (calls, tokens, concurrency) decide before the provider is
called: the endpoint's (and a traffic route's) and the consumer's own, all of them or none. A
spent budget refuses first (gateway/budgets/: one ledger read, none when no budget applies; the
spend is settled by the budgets' sink after the answer). Each limit admission leaves a grant
that `settle` reconciles once the answer has ended."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.budgets.admission import applicable, check_budgets
from gateway.budgets.policy import Budget
from gateway.control.limits import CombinedLimiter
from gateway.pipeline.context import RequestContext

if TYPE_CHECKING:
    from gateway.control.table import Target


async def admit(ctx: RequestContext) -> None:
    target = ctx.target
    assert target is not None and ctx.kind is not None
    budgets = applicable(ctx)
    if budgets:
        await check_budgets(ctx, budgets)
    limiter = target.limiter
    consumer_limiter = ctx.consumer.limiter if ctx.consumer is not None else None
    if consumer_limiter is not None:
        limiter = consumer_limiter if limiter is None else CombinedLimiter(consumer_limiter, limiter)
    if limiter is not None:
        ctx.grants.append(await limiter.admit(ctx.scope, ctx.kind, ctx.payload))


async def admit_destination(ctx: RequestContext, target: Target) -> None:
    """A FALLBACK route's destination, as the attempt loop comes to it: its own budget and limit
    (the route's were admitted above). A refusal moves the request on to the next destination."""
    assert ctx.kind is not None
    spec = ctx.table.config.budgets.scoped.get(target.name)
    if spec is not None:
        await check_budgets(ctx, [Budget("endpoint", target.name, spec)])
    if target.limiter is not None:
        ctx.grants.append(await target.limiter.admit(ctx.scope, ctx.kind, ctx.payload))

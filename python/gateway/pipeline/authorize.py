"""authorize: may this consumer call the endpoint (or traffic route) it resolved to. A consumer
with an allowlist of endpoint/route names (glob patterns) may call only those; an anonymous
caller got this far only because keys are not required."""

from __future__ import annotations

from gateway.auth.access import allows, not_allowed
from gateway.pipeline.context import RequestContext


def authorize(ctx: RequestContext, name: str) -> None:
    """`name` is the name asked for. An alias is authorized as the endpoint it reaches: allow
    lists name endpoints and routes, so an alias pattern never widens them."""
    consumer = ctx.consumer
    if consumer is None or not consumer.endpoints:
        return
    table = ctx.table
    if name not in table.invocable and table.aliases:
        owner = table.aliases.lookup(name)
        if owner is not None:
            if not allows(consumer.endpoints, owner):
                raise not_allowed(name)
            return
    if not allows(consumer.endpoints, name):
        raise not_allowed(name)

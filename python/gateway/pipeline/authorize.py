"""authorize: may this consumer call the endpoint (or traffic route) it resolved to. A consumer
with an allowlist of endpoint/route names (glob patterns) may call only those; an anonymous
caller got this far only because keys are not required."""

from __future__ import annotations

from gateway.auth.access import allows, not_allowed
from gateway.pipeline.context import RequestContext


def authorize(ctx: RequestContext, name: str) -> None:
    consumer = ctx.consumer
    if consumer is not None and consumer.endpoints and not allows(consumer.endpoints, name):
        raise not_allowed(name)

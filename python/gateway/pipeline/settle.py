"""settle: every grant is settled exactly once, however the request ended (answered, failed,
client gone): tokens reconciled with the reported usage, concurrency places given back."""

from __future__ import annotations

from gateway.pipeline.context import RequestContext


def settle(ctx: RequestContext) -> None:
    for grant in ctx.grants:
        grant.settle()

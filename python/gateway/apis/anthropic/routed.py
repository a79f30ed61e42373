"""Passthrough under the routing layer (routing/): an endpoint with `retries`, `timeouts` or a
breaker, or a FALLBACK route whose destinations all speak the Messages API, is tried by the same
attempt loop as every other request (same classes of failure, same budgets and breakers), each
attempt a passthrough to that destination. A route mixing Claude and other providers is served
by translation instead, through `invoke`, which routes it the same way: a fallback to another
provider needs the translated shape anyway."""

from __future__ import annotations

from gateway.apis.anthropic.passthrough import ClaudeUpstream, claude_upstream, deliver, open_exchange
from gateway.pipeline.context import RequestContext
from gateway.proxy.upstream import UpstreamResponse, UpstreamStream
from gateway.routing.attempts import attempts
from gateway.routing.strategies import Choice, Lane, Router

Opened = tuple[ClaudeUpstream, UpstreamResponse | UpstreamStream, Lane]


def all_claude(router: Router) -> bool:
    return all(
        claude_upstream(choice.lane.target.provider) is not None for tier in router.tiers for choice in tier
    )


async def answer_routed(ctx: RequestContext, router: Router, raw: bytes) -> None:
    async def call(choice: Choice) -> Opened:
        lane = choice.lane
        upstream = claude_upstream(lane.target.provider)
        assert upstream is not None
        try:
            opened = await open_exchange(ctx, upstream, raw)
        except BaseException:
            lane.in_flight -= 1
            raise
        if isinstance(opened, UpstreamResponse):
            lane.in_flight -= 1  # a stream's lane is counted until it ends
        return upstream, opened, lane

    upstream, opened, lane = await attempts(ctx, router, call)

    def done() -> None:
        lane.in_flight -= 1

    await deliver(ctx, upstream, opened, done if isinstance(opened, UpstreamStream) else None)

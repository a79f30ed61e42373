"""The attempt loop of a routed request: each destination in the router's order, each up to its
`retries.attempts` times, until one answers.

What is tried again, and where:

    failure                          same destination (retries.on)   next destination
    its own budget or limit refuses  -                                yes
    connect error, no answer         "connect"                        yes
    timeout before the headers       "timeout"                        yes
    429                              "429"                            yes
    5xx                              "5xx" (or the status)            yes
    answer cut or unreadable after   only with after_headers: true    only with after_headers
      the upstream's headers
    any other 4xx, the gateway's     no                               no: it is the answer
      own refusals (400, 422, 501)

A stream is attempted until its upstream accepted it (the headers); once its first byte has
reached the client nothing is tried again (a failure ends it with an error event, in relay).
Before each try the destination's breaker is asked (an open one is skipped, a half-open one
lets this request through as its probe) and, before a retry, the endpoint's retry budget. The
last failure is what the client gets, in the usual error vocabulary.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Generic, TypeVar

from gateway.errors import (
    BudgetExceeded,
    GatewayError,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.pipeline.admit import admit_destination
from gateway.pipeline.record import TARGET_KEY
from gateway.providers.prompts import invoke_each, prepare_prompt
from gateway.proxy.upstream import EXCHANGE, Exchange
from gateway.routing.breaker import CLOSED, OPEN
from gateway.routing.policy import asked_wait
from gateway.routing.strategies import Choice, Lane, Router
from gateway.schemas.responses import Chunk, Response

if TYPE_CHECKING:
    from gateway.pipeline.context import RequestContext

logger = logging.getLogger("gateway.routing")
T = TypeVar("T")
MOVES_ON = frozenset(("429", "5xx", "connect", "timeout"))


def classify(exc: GatewayError, exchange: Exchange) -> str | None:
    """The failure's class for the retry rules; None: not a provider failure, so final."""
    if not isinstance(exc, UpstreamError):
        return None
    status = exchange.status
    if status is None:  # nothing of an answer arrived (or a provider outside our transport)
        if exc.status == 429:
            return "429"
        if isinstance(exc, UpstreamTimeout):
            return "timeout"
        if isinstance(exc, UpstreamUnavailable):
            return "connect"
        return "5xx" if exc.status >= 500 else None
    if status == 429:
        return "429"
    if status >= 500:
        return "5xx"
    if status >= 400:
        return None
    return "after_headers"


async def invoke_routed(ctx: RequestContext, router: Router) -> Response:
    assert ctx.kind is not None
    kind = ctx.kind

    async def call(choice: Choice) -> Response:
        provider = choice.lane.target.provider
        try:
            # a completions prompt list as this destination's provider takes it
            prompts = prepare_prompt(provider, kind, ctx.payload, False)
            if prompts is not None:
                return await invoke_each(provider, ctx.payload, prompts)
            return await provider.invoke(kind, ctx.payload)
        finally:
            choice.lane.in_flight -= 1

    return await attempts(ctx, router, call)


async def open_routed(ctx: RequestContext, router: Router) -> AsyncIterator[list[Chunk]]:
    assert ctx.kind is not None
    kind = ctx.kind

    async def call(choice: Choice) -> AsyncIterator[list[Chunk]]:
        lane = choice.lane
        try:
            prepare_prompt(lane.target.provider, kind, ctx.payload, True)
            stream = await lane.target.provider.open_stream(kind, ctx.payload)
        except BaseException:
            lane.in_flight -= 1
            raise
        return _Counted(stream, lane)

    return await attempts(ctx, router, call)


class _Counted:
    """The stream, counted in its lane's in-flight requests until it ends or is closed
    (least_busy); a stream dropped unread is let go when it is collected."""

    __slots__ = ("_lane", "_left", "_stream")

    def __init__(self, stream: AsyncIterator[list[Chunk]], lane: Lane) -> None:
        self._stream = stream
        self._lane = lane
        self._left = False

    def __aiter__(self) -> _Counted:
        return self

    async def __anext__(self) -> list[Chunk]:
        try:
            return await anext(self._stream)
        except BaseException:
            self._leave()
            raise

    async def aclose(self) -> None:
        self._leave()
        aclose = getattr(self._stream, "aclose", None)
        if aclose is not None:
            await aclose()

    def _leave(self) -> None:
        if not self._left:
            self._left = True
            self._lane.in_flight -= 1

    def __del__(self) -> None:
        self._leave()


async def attempts(ctx: RequestContext, router: Router, call: Callable[[Choice], Awaitable[T]]) -> T:
    last: GatewayError | None = None
    skipped: list[Choice] = []
    order = router.order()
    # health checks steer traffic; when they call every destination unhealthy, try them anyway
    healthy = [c for c in order if c.lane.health is None or c.lane.health.healthy]
    fallback = router.strategy == "FALLBACK"
    for choice in healthy or order:
        lane = choice.lane
        if fallback:
            try:  # the destination's own budget and limit, as it is come to
                await admit_destination(ctx, lane.target)
            except (RateLimited, BudgetExceeded) as refused:
                last = refused
                continue
        failure = await _on_lane(ctx, choice, call)
        if isinstance(failure, _Answer):
            return failure.value
        if failure is None:
            skipped.append(choice)
            continue
        kind, last = failure
        if kind not in MOVES_ON and not (kind == "after_headers" and lane.policy.after_headers):
            raise last
        if len(order) > 1:
            logger.info(
                "%s: endpoint '%s' failed (%s, %s) after %d attempt(s) of this request; trying the next destination",
                router.name,
                lane.name,
                kind,
                last.status,
                ctx.attempts,
            )
    if last is not None:
        raise last
    raise _nowhere(router, skipped)


class _Answer(Generic[T]):
    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value


async def _on_lane(
    ctx: RequestContext, choice: Choice, call: Callable[[Choice], Awaitable[T]]
) -> _Answer[T] | tuple[str, GatewayError] | None:
    """Tries one destination up to its attempts: its answer, else the last (failure class,
    error) to decide on the next destination; None when its breaker let nothing through. An
    error that is the final answer is raised."""
    lane = choice.lane
    policy = lane.policy
    breaker = choice.breaker
    began = time.perf_counter()
    tries = 0
    failed: tuple[str, GatewayError] | None = None
    while True:
        verdict = breaker.admit() if breaker is not None else CLOSED
        if verdict == OPEN:
            return failed
        if tries == 0 and policy.budget is not None:
            policy.budget.earn()
        tries += 1
        ctx.attempts += 1
        ctx.target = lane.target
        ctx.scope[TARGET_KEY] = lane.target
        exchange = Exchange()
        token = EXCHANGE.set(exchange)
        lane.in_flight += 1  # the call gives it back (a stream: when it ends)
        asked = time.perf_counter()
        try:
            result = await call(choice)
        except GatewayError as exc:
            kind = classify(exc, exchange)
            error = exc
        except asyncio.CancelledError:
            if breaker is not None:
                breaker.release(verdict)
            raise
        else:
            lane.observe((exchange.head_at or time.perf_counter()) - asked)
            if breaker is not None:
                breaker.success(verdict)
            return _Answer(result)
        finally:
            ctx.upstream_seconds += time.perf_counter() - asked
            EXCHANGE.reset(token)
        if kind is None:
            if breaker is not None:
                # a refusal of the request itself says nothing about the destination's health
                breaker.release(verdict) if exchange.status is None else breaker.success(verdict)
            raise error
        wait = asked_wait(error.headers()) if kind in ("429", "5xx") else None
        if breaker is not None:
            breaker.failure(verdict, wait)
        failed = (kind, error)
        if tries >= policy.attempts or not policy.retries_on(kind, exchange.status or error.status):
            return failed
        delay = policy.delay(tries, wait)
        if time.perf_counter() - began + delay > policy.total:
            return failed
        if policy.budget is not None and not policy.budget.spend():
            return failed
        await asyncio.sleep(delay)
        ctx.upstream_seconds += delay  # waiting on the provider's behalf is not overhead


def _nowhere(router: Router, skipped: list[Choice]) -> GatewayError:
    """Every destination's breaker is open: a 503 at once, with the wait until the first
    cooldown ends as Retry-After."""
    names = ", ".join(f"'{choice.lane.name}'" for choice in skipped)
    error = UpstreamUnavailable(
        f"No destination of '{router.name}' can take requests now: the circuit breaker of "
        f"{names} is open after repeated failures. Retry later.",
        status=503,
    )
    error.error_type = "service_unavailable"
    waits = [choice.breaker.wait() for choice in skipped if choice.breaker is not None]
    if waits:
        error.upstream_headers = [(b"retry-after", str(max(1, math.ceil(min(waits)))).encode())]
    return error

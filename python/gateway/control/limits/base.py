"""The limiter protocol shared by both stores (this host's shared memory, Redis).

A `Limiter` serves one endpoint's (or traffic route's) `limit` block. `admit` decides before
the provider is called: it raises `RateLimited` (429) or `LimitsUnavailable` (503), or returns
a `Grant`. The grant carries the RateLimit-* headers for the response and must be settled once
the response or stream has ended, whatever the outcome: settling reconciles the token estimate
with the usage the `Meter` saw and gives back the concurrency place.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator

from gateway.config import LimitConfig
from gateway.control.limits.requests import CHARS_PER_TOKEN, reported_tokens, streamed_chars
from gateway.errors import LimitsUnavailable, RateLimited
from gateway.schemas.responses import Chunk, Response
from gateway.types import EndpointType, Payload, Scope

logger = logging.getLogger("gateway.limits")

Headers = list[tuple[bytes, bytes]]
PENDING, RESPONDED, STREAMED = 0, 1, 2


def ratelimit_headers(limit: int, remaining: int, reset_seconds: float) -> Headers:
    """The RateLimit-Limit / -Remaining / -Reset fields (IETF httpapi draft): the quota, what is
    left of it, and the whole seconds until it is whole again."""
    reset = int(reset_seconds)
    if reset_seconds - reset > 1e-9:  # rounded up, past float noise
        reset += 1
    return [
        (b"ratelimit-limit", b"%d" % limit),
        (b"ratelimit-remaining", b"%d" % (remaining if remaining > 0 else 0)),
        (b"ratelimit-reset", b"%d" % reset),
    ]


def refused(description: str, retry_after: float, limit: int, remaining: int, reset: float) -> RateLimited:
    return RateLimited(description, retry_after, ratelimit_headers(limit, remaining, reset))


class Meter:
    """What one request used: the usage the provider reported, else the streamed text. Only
    limiters with a token limit turn `counting` on; otherwise the meter stays out of the way."""

    __slots__ = ("chars", "counting", "outcome", "prompt", "reported")

    def __init__(self) -> None:
        self.counting = False
        self.outcome = PENDING
        self.reported: int | None = None
        self.chars = 0
        self.prompt = 0  # the prompt estimate, for streams that report no usage

    def response(self, response: Response) -> None:
        self.outcome = RESPONDED
        if self.counting:
            self.reported = reported_tokens(response.usage)

    def watch(self, stream: AsyncIterator[list[Chunk]]) -> AsyncIterator[list[Chunk]]:
        self.outcome = STREAMED
        return self._count(stream) if self.counting else stream

    async def _count(self, stream: AsyncIterator[list[Chunk]]) -> AsyncIterator[list[Chunk]]:
        """Relays the stream, noting usage (sent in the final chunk) and text as they pass."""
        try:
            async for batch in stream:
                for chunk in batch:
                    if chunk.usage is not None:
                        self.reported = reported_tokens(chunk.usage)
                if self.reported is None:
                    self.chars += streamed_chars(batch)
                yield batch
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()

    def used(self, estimate: int) -> int:
        """Tokens to account for: reported usage first; a stream without it counts its text; a
        response without it keeps the estimate; a call that never answered used nothing."""
        if self.reported is not None:
            return self.reported
        if self.outcome == STREAMED:
            return self.prompt + -(-self.chars // CHARS_PER_TOKEN)
        return estimate if self.outcome == RESPONDED else 0


class Grant:
    """An admitted request's hold on one limit. `settle` (or `cancel`) runs exactly once."""

    __slots__ = ("_done", "headers", "meter", "remaining")

    def __init__(self, meter: Meter, headers: Headers, remaining: int) -> None:
        self.meter = meter
        self.headers = headers
        self.remaining = remaining
        self._done = False

    def settle(self) -> None:
        if not self._done:
            self._done = True
            self._finish(cancelled=False)

    def cancel(self) -> None:
        """The request will not run after all: give back everything it took."""
        if not self._done:
            self._done = True
            self._finish(cancelled=True)

    def _finish(self, cancelled: bool) -> None:
        """Store-specific: reconcile tokens with `self.meter`, leave the concurrency place."""


class Limiter:
    """Enforces one `limit` block for one owner (`endpoint|name` or `route|name`)."""

    def __init__(self, owner: str, limit: LimitConfig, failure_mode: str) -> None:
        self.owner = owner
        self.limit = limit
        self.failure_mode = failure_mode
        self.description = limit.description
        self.tokens_description = f"{limit.tokens} tokens per {limit.unit}"
        self.concurrency_description = f"{limit.concurrency} concurrent requests"
        self.header = limit.header.encode() if limit.header else None
        self._warned_at = -math.inf
        self._suppressed = 0

    async def admit(
        self, scope: Scope, kind: EndpointType, payload: Payload, meter: Meter | None = None
    ) -> Grant:
        raise NotImplementedError

    def same(self, limit: LimitConfig | None, store: object) -> bool:
        """Whether this limiter can serve `limit` on `store` after a reload (keeping its state)."""
        return limit == self.limit and store is self.store_identity()

    def store_identity(self) -> object:
        return None

    def names(self, kind: str) -> str:
        """The stable name of one counter: a changed limit gets fresh counters, an unchanged one
        keeps them across reloads, worker restarts and (with Redis) gateway instances."""
        limit = self.limit
        capacity = {"calls": limit.calls, "tokens": limit.tokens, "concurrency": limit.concurrency}[kind]
        period = round(limit.period_seconds * 1000)
        return f"{kind}|{capacity}|{period}ms|{limit.scope}|{limit.header or ''}|{self.owner}"

    def unavailable(self, reason: str, meter: Meter) -> Grant:
        """The store cannot decide: fail open (admit, warn now and then) or closed (503)."""
        if self.failure_mode == "closed":
            raise LimitsUnavailable(
                f"Rate limits cannot be checked ({reason}); the gateway is configured to refuse "
                "requests until they can (limits_failure_mode: closed)."
            )
        now = time.monotonic()
        if now - self._warned_at >= 10.0:
            more = f" ({self._suppressed} more since the last warning)" if self._suppressed else ""
            logger.warning(
                "rate limits of %s not enforced: %s; admitting requests (limits_failure_mode: open)%s",
                self.owner,
                reason,
                more,
            )
            self._warned_at, self._suppressed = now, 0
        else:
            self._suppressed += 1
        return Grant(meter, [], -1)


class CombinedGrant(Grant):
    __slots__ = ("parts",)

    def __init__(self, meter: Meter, parts: list[Grant]) -> None:
        # the headers of the tighter limit
        shown = min(parts, key=lambda g: g.remaining if g.remaining >= 0 else math.inf)
        super().__init__(meter, shown.headers, shown.remaining)
        self.parts = parts

    def _finish(self, cancelled: bool) -> None:
        for part in self.parts:
            part.cancel() if cancelled else part.settle()


class CombinedLimiter(Limiter):
    """A traffic route's own limit on top of the limit of the destination it picked."""

    def __init__(self, outer: Limiter, inner: Limiter) -> None:
        super().__init__(outer.owner, outer.limit, outer.failure_mode)
        self.outer = outer
        self.inner = inner

    async def admit(
        self, scope: Scope, kind: EndpointType, payload: Payload, meter: Meter | None = None
    ) -> Grant:
        meter = meter or Meter()
        first = await self.outer.admit(scope, kind, payload, meter)
        try:
            second = await self.inner.admit(scope, kind, payload, meter)
        except BaseException:
            first.cancel()
            raise
        return CombinedGrant(meter, [first, second])

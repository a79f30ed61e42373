"""Per-endpoint request limits on the Rust token bucket.

Within a worker: `calls` per renewal period, burst `calls`, refilled continuously. One bucket per
endpoint serves /endpoints/{name}, /gateway/{name} and /v1/* alike (MLflow counts them apart and
never limits /v1). Exact across workers and hosts is a later step (issue 4).
"""

from __future__ import annotations

from gateway._native import TokenBucket
from gateway.config import LimitConfig
from gateway.errors import RateLimited


class EndpointLimiter:
    __slots__ = ("bucket", "limit")

    def __init__(self, limit: LimitConfig) -> None:
        self.limit = limit
        self.bucket = TokenBucket(limit.calls, limit.period_seconds)

    def acquire(self) -> None:
        allowed, _remaining, retry_after = self.bucket.try_acquire(1)
        if not allowed:
            raise RateLimited(self.limit.description, retry_after)

    def same_limit(self, limit: LimitConfig | None) -> bool:
        return limit is not None and (limit.calls, limit.period_seconds) == (
            self.limit.calls,
            self.limit.period_seconds,
        )

"""Rate limits: `limit: {calls, renewal_period, key, tokens, concurrency}` on endpoints and
traffic routes, exact across the workers of an instance and, with `limits_storage: redis://...`,
across instances.

    base.py         the limiter protocol: admit -> Grant (RateLimit-* headers) -> settle
    requests.py     whose counter a request charges; token estimates and reported usage
    host.py         this host's workers: the Rust shared-memory table (lock-free CAS)
    redis_store.py  many hosts: one Lua script per decision

MLflow counts each alias separately, per worker, per client address, never on /v1; here one
counter serves /endpoints/{name}, /gateway/{name} and /v1/* alike, whatever the worker count.
"""

from __future__ import annotations

from gateway.config import GatewayConfig, LimitConfig
from gateway.control.limits.base import CombinedLimiter, Grant, Limiter, Meter, ratelimit_headers
from gateway.control.limits.host import HostLimiter, host_table, host_table_file

__all__ = [
    "CombinedLimiter",
    "Grant",
    "Limiter",
    "Meter",
    "build_limiter",
    "host_table_file",
    "ratelimit_headers",
]


def build_limiter(
    owner: str, limit: LimitConfig, config: GatewayConfig, previous: Limiter | None = None
) -> Limiter:
    """The limiter of `owner` ("endpoint|name" or "route|name"). A reload hands in the previous
    one, kept as is when nothing about it changed (its counters are in the store either way)."""
    uri = config.limits_storage
    mode = config.limits_failure_mode
    if uri:
        # redis-py (about 9 MB) loads only in gateways whose limits live in Redis
        from gateway.control.limits.redis_store import RedisLimiter, redis_store

        store = redis_store(uri)
        if previous is not None and previous.same(limit, store) and previous.failure_mode == mode:
            return previous
        return RedisLimiter(owner, limit, mode, store)
    table = host_table()
    if previous is not None and previous.same(limit, table) and previous.failure_mode == mode:
        return previous
    return HostLimiter(owner, limit, mode, table)

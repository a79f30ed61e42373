"""Limits shared by any number of gateway instances: the buckets live in Redis.

One Lua script decides one request atomically on the server (concurrency, calls, tokens: all
checked before any is taken, so a refusal takes nothing), loaded once and run by EVALSHA; a
second settles it (token reconciliation, concurrency release). Both use the same arithmetic as
the Rust table (gcra.rs) in microseconds of Redis's own clock, so hosts need no clock agreement.

Redis unreachable: the limiter's `limits_failure_mode` decides (open: admit and warn; closed:
503). After a failure Redis is left alone for a short back-off, then tried again on the next
request, so a restarted Redis is picked up without restarting the gateway (redis-py reloads the
scripts when the restarted server answers NOSCRIPT).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import secrets
import time
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from gateway.config import LimitConfig
from gateway.control.limits.base import Grant, Limiter, Meter, ratelimit_headers, refused
from gateway.control.limits.requests import client_key, estimate_tokens
from gateway.settings import settings
from gateway.types import EndpointType, Payload, Scope

logger = logging.getLogger("gateway.limits")

MICROS = 1_000_000
BACKOFF_SECONDS = 0.5
CALLS, TOKENS, CONCURRENCY = 1, 2, 3

# KEYS: calls bucket, tokens bucket, in-flight set
# ARGV: calls interval, calls window, tokens interval (0: no token limit), tokens window, tokens
#       to charge, concurrency cap (0: none), lease id, lease ttl (all times in microseconds)
# -> {status, remaining, reset, retry_after, tokens remaining}; status 0 admitted, else which
#    limit refused (1 calls, 2 tokens, 3 concurrency)
ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function state(key)
  local v = redis.call('GET', key)
  local tat = v and tonumber(v) or 0
  if tat < now then return now end
  return tat
end
local function store(key, tat)
  redis.call('SET', key, string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
end
local ci, cw = tonumber(ARGV[1]), tonumber(ARGV[2])
local ti, tw, cost = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local cap = tonumber(ARGV[6])
if cap > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if redis.call('ZCARD', KEYS[3]) >= cap then return {3, 0, 1000000, 1000000, 0} end
end
local calls = state(KEYS[1])
local calls_after = calls + ci
if calls_after > now + cw then
  return {1, 0, calls - now, calls_after - now - cw, 0}
end
local tokens_after = 0
local tokens_left = 0
if ti > 0 then
  local tokens = state(KEYS[2])
  tokens_after = tokens + cost * ti
  if tokens_after > now + tw then
    return {2, math.floor((now + tw - tokens) / ti), tokens - now, tokens_after - now - tw, 0}
  end
  tokens_left = math.floor((now + tw - tokens_after) / ti)
  store(KEYS[2], tokens_after)
end
store(KEYS[1], calls_after)
if cap > 0 then
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[8]), ARGV[7])
  redis.call('PEXPIRE', KEYS[3], math.ceil(tonumber(ARGV[8]) / 1000) + 1000)
end
return {0, math.floor((now + cw - calls_after) / ci), calls_after - now, 0, tokens_left}
"""

# KEYS: calls bucket, tokens bucket, in-flight set
# ARGV: calls interval (0: keep the call), tokens interval (0: none), tokens delta (more used
#       than charged > 0 > fewer), lease id ('' : none)
SETTLE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function adjust(key, delta)
  local v = redis.call('GET', key)
  local tat = v and tonumber(v) or 0
  if delta > 0 then
    tat = math.max(tat, now) + delta
  elseif tat > now then
    tat = math.max(tat + delta, now)
  else
    return
  end
  redis.call('SET', key, string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
end
local ci, ti, delta = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if ci > 0 then adjust(KEYS[1], -ci) end
if ti > 0 and delta ~= 0 then adjust(KEYS[2], delta * ti) end
if ARGV[4] ~= '' then redis.call('ZREM', KEYS[3], ARGV[4]) end
return 1
"""


def redact(uri: str) -> str:
    """The URI without its password, for messages."""
    scheme, _, rest = uri.partition("://")
    if "@" in rest:
        rest = rest.rsplit("@", 1)[1]
    return f"{scheme}://{rest}"


MAX_CONNECTIONS = 64
POOL_WAIT_SECONDS = 2.0


def connect(uri: str) -> aioredis.Redis:
    """A client that fails fast (GATEWAY_LIMITS_REDIS_TIMEOUT_SECONDS) while Redis is down."""
    timeout = settings().limits_redis_timeout_seconds or 0.5
    # one immediate retry covers a pooled connection that died with a restarted server;
    # redis-py's default (ten retries with back-off) would stall requests while Redis is down.
    # More requests at once than connections wait for one (the default pool raises instead);
    # the wait allows for a burst that opens the pool's connections on a busy host.
    pool = aioredis.BlockingConnectionPool.from_url(
        uri,
        max_connections=MAX_CONNECTIONS,
        timeout=max(timeout, POOL_WAIT_SECONDS),
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 1),
    )
    return aioredis.Redis.from_pool(pool)


class RedisStore:
    """One client per worker and URI, shared by every limiter that uses it."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.where = redact(uri)
        self.client = connect(uri)
        self.acquire = self.client.register_script(ACQUIRE)
        self.settle = self.client.register_script(SETTLE)
        self.lease_micros = int((settings().limits_lease_seconds or 600) * MICROS)
        self.retry_at = 0.0
        self.failure = ""
        self._background: set[asyncio.Task[Any]] = set()

    async def run(self, script: Any, keys: list[str], args: list[Any]) -> list[Any] | None:
        """The script's answer, or None while Redis is unreachable (see `failure`)."""
        if self.retry_at and time.monotonic() < self.retry_at:
            return None
        try:
            result = await script(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            self.retry_at = time.monotonic() + BACKOFF_SECONDS
            self.failure = f"Redis at {self.where} is unreachable: {type(exc).__name__}: {exc}"
            return None
        if self.retry_at:
            logger.warning("Redis at %s answers again; rate limits are enforced", self.where)
            self.retry_at = 0.0
        return list(result)

    def later(self, keys: list[str], args: list[Any]) -> None:
        """Settles in the background: the response is not held up, and a settle that fails
        leaves at worst a lease that expires and a token estimate that stands."""
        task = asyncio.get_running_loop().create_task(self.run(self.settle, keys, args))
        self._background.add(task)
        task.add_done_callback(self._background.discard)


_stores: dict[str, RedisStore] = {}


def redis_store(uri: str) -> RedisStore:
    store = _stores.get(uri)
    if store is None:
        store = _stores[uri] = RedisStore(uri)
    return store


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


class RedisGrant(Grant):
    __slots__ = ("charged", "keys", "lease", "limiter")

    def __init__(
        self,
        limiter: RedisLimiter,
        keys: list[str],
        lease: str,
        meter: Meter,
        charged: int,
        headers: list[tuple[bytes, bytes]],
        remaining: int,
    ) -> None:
        super().__init__(meter, headers, remaining)
        self.limiter = limiter
        self.keys = keys
        self.lease = lease
        self.charged = charged

    def _finish(self, cancelled: bool) -> None:
        limiter = self.limiter
        delta = 0
        if limiter.tokens_interval:
            delta = (0 if cancelled else self.meter.used(self.charged)) - self.charged
        if cancelled or delta or self.lease:
            calls = limiter.calls_interval if cancelled else 0
            limiter.store.later(self.keys, [calls, limiter.tokens_interval, delta, self.lease])


class RedisLimiter(Limiter):
    def __init__(self, owner: str, limit: LimitConfig, failure_mode: str, store: RedisStore) -> None:
        super().__init__(owner, limit, failure_mode)
        self.store = store
        self.keyed = limit.scope != "endpoint"
        period = round(limit.period_seconds * MICROS)
        self.calls_interval = math.ceil(period / limit.calls)
        self.calls_window = self.calls_interval * limit.calls
        self.tokens_interval = math.ceil(period / limit.tokens) if limit.tokens else 0
        self.tokens_window = self.tokens_interval * (limit.tokens or 0)
        # a hash tag keeps one owner's keys on one cluster slot
        prefix = f"gateway:ratelimit:{{{owner}}}"
        self.calls_key = f"{prefix}:calls:{_digest(self.names('calls'))}"
        self.tokens_key = f"{prefix}:tokens:{_digest(self.names('tokens'))}"
        self.concurrency_key = f"{prefix}:inflight"

    def store_identity(self) -> object:
        return self.store

    async def admit(
        self, scope: Scope, kind: EndpointType, payload: Payload, meter: Meter | None = None
    ) -> Grant:
        meter = meter or Meter()
        limit = self.limit
        suffix = ":" + _digest(client_key(scope, limit.scope, self.header)) if self.keyed else ""
        keys = [self.calls_key + suffix, self.tokens_key + suffix, self.concurrency_key]
        charged = 0
        if limit.tokens:
            prompt, completion = estimate_tokens(kind, payload)
            meter.prompt, meter.counting = prompt, True
            charged = min(max(prompt + completion, 1), limit.tokens)
        lease = secrets.token_hex(8) if limit.concurrency else ""
        args = [
            self.calls_interval,
            self.calls_window,
            self.tokens_interval,
            self.tokens_window,
            charged,
            limit.concurrency or 0,
            lease,
            self.store.lease_micros,
        ]
        answer = await self.store.run(self.store.acquire, keys, args)
        if answer is None:
            return self.unavailable(self.store.failure, meter)
        status, remaining, reset, retry, _tokens_left = (int(v) for v in answer)
        if status == CONCURRENCY:
            raise refused(self.concurrency_description, 1.0, limit.concurrency or 0, 0, 1.0)
        if status == CALLS:
            raise refused(self.description, retry / MICROS, limit.calls, 0, reset / MICROS)
        if status == TOKENS:
            raise refused(
                self.tokens_description, retry / MICROS, limit.tokens or 0, remaining, reset / MICROS
            )
        headers = ratelimit_headers(limit.calls, remaining, reset / MICROS)
        return RedisGrant(self, keys, lease, meter, charged, headers, remaining)

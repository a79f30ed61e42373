"""The spend ledger of the budgets: integer counters (nano-USD) per opaque counter key, exact
across the worker processes of one host (a shared-memory table) and across hosts (Redis).

Counter keys are chosen by the budget policy (e.g. "key:k_abc|day:2026-12-01"); each carries
its own expiry (unix seconds: the end of its window plus some slack) so old windows are
reclaimed. A counter that is absent or expired totals 0; an addition whose expiry has already
passed counts nothing (its window is over).

Errors: every failure to read or add (Redis unreachable, shared table full) raises
`LedgerUnavailable`; the policy maps it to its failure mode (open: admit; closed: 503). An
`add` to Redis that fails is not lost: it is queued (bounded) and applied in the background
when Redis answers again, exactly once (each addition carries an id the script remembers).
redis-py loads with the first Redis ledger: the supervisor and Redis-less workers never import it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from gateway._native import CounterTableError, SharedCounters
from gateway.control.limits.host import shared_table_file

__all__ = [
    "Ledger",
    "LedgerUnavailable",
    "budget_table_file",
    "host_ledger",
    "redis_ledger",
]

logger = logging.getLogger("gateway.budgets")

TABLE_ENV = "GATEWAY_BUDGETS_TABLE"
FILE_PREFIX = "gateway-budgets-"
# 64-byte slots: 4 MiB of tmpfs, touched as used; a slot is reused once its window expired
SLOTS = 65536


class LedgerUnavailable(Exception):
    """The ledger cannot answer now (Redis down, shared table full); the message says why,
    without secrets."""


class Ledger(Protocol):
    async def totals(self, keys: Sequence[str]) -> list[int]:
        """The current total of each counter key, in order (0 if absent or expired); one round
        trip for all keys. Raises LedgerUnavailable."""
        ...

    async def add(self, items: Sequence[tuple[str, int]], amount: int) -> list[int]:
        """Adds `amount` to each (counter key, expires_at unix seconds), atomically, and
        returns the new totals in order. Raises LedgerUnavailable (for Redis: after queueing
        the addition for a background retry, so spend is not lost)."""
        ...

    async def close(self) -> None:
        """Stops background work (tries the queued additions one last time)."""
        ...


# -- this host: the shared-memory table --------------------------------------------------------
@contextlib.contextmanager
def budget_table_file() -> Iterator[str]:
    """In the supervisor: the budget table every worker maps (GATEWAY_BUDGETS_TABLE), created
    before they spawn and removed when serving ends."""
    with shared_table_file(TABLE_ENV, FILE_PREFIX, lambda path: SharedCounters.create(path, SLOTS)) as path:
        yield path


class HostLedger:
    """Counters in this instance's shared table: each call is a few atomic operations on the
    mapping (microseconds, no system call), so it runs inline."""

    def __init__(self, table: SharedCounters) -> None:
        self.table = table

    async def totals(self, keys: Sequence[str]) -> list[int]:
        return self.table.totals(list(keys), int(time.time()))

    async def add(self, items: Sequence[tuple[str, int]], amount: int) -> list[int]:
        try:
            return self.table.add(list(items), amount, int(time.time()))
        except CounterTableError as exc:
            raise LedgerUnavailable(str(exc)) from None

    async def close(self) -> None:
        return None


_host: tuple[str | None, HostLedger] | None = None


def host_ledger() -> Ledger:
    """This host's shared-memory ledger (the table file the supervisor names in
    GATEWAY_BUDGETS_TABLE); private to the process without that variable."""
    global _host
    path = os.environ.get(TABLE_ENV) or None
    if _host is None or _host[0] != path:
        table = SharedCounters.open(path) if path else SharedCounters.private(SLOTS)
        _host = (path, HostLedger(table))
    return _host[1]


# -- across hosts: Redis -----------------------------------------------------------------------
# Every key shares one hash tag, so one script may touch them all on a Redis Cluster too.
PREFIX = "{gateway-budgets}:"
BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 5.0
QUEUE_LIMIT = 100_000
# how long an addition's id is remembered: a retry later than this could count twice
OPERATION_TTL_SECONDS = 86_400

# KEYS: the operation id, then the counters; ARGV: amount, then each counter's expires_at.
# An operation seen before only reads (a retry after a lost answer must not count twice);
# expiry only moves later; a window already over counts nothing.
ADD = """
local now = tonumber(redis.call('TIME')[1])
local amount = tonumber(ARGV[1])
local first = redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[#ARGV])
local out = {}
for i = 2, #KEYS do
  local key, expires = KEYS[i], tonumber(ARGV[i])
  if expires <= now then
    out[i - 1] = 0
  elseif first then
    out[i - 1] = redis.call('INCRBY', key, amount)
    local ttl = redis.call('TTL', key)
    if ttl < 0 or now + ttl < expires then redis.call('EXPIREAT', key, expires) end
  else
    out[i - 1] = tonumber(redis.call('GET', key) or '0')
  end
end
return out
"""


@dataclass(frozen=True, slots=True)
class Addition:
    operation: str
    items: tuple[tuple[str, int], ...]
    amount: int


class RedisLedger:
    """Counters in Redis: `totals` is one MGET, `add` one script run."""

    def __init__(self, url: str, failure_mode: str) -> None:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import RedisError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        from gateway.control.limits.redis_store import connect, redact

        # failures of the connection (retried from the queue), not of a command
        self.unreachable = (RedisConnectionError, RedisTimeoutError, OSError)
        self.refused: type[RedisError] = RedisError  # any other Redis error: the server said no
        self.where = redact(url)
        self.failure_mode = failure_mode
        self.client = connect(url)
        self.script = self.client.register_script(ADD)
        self.retry_at = 0.0  # while Redis was just found unreachable, do not wait on it
        self.queue: deque[Addition] = deque()
        self.pending: dict[str, int] = {}  # queued amount per counter key, counted in totals
        self.dropped = 0
        self._failure = ""
        self._drainer: asyncio.Task[None] | None = None
        self._outage = False

    # -- the request path --
    async def totals(self, keys: Sequence[str]) -> list[int]:
        self._refuse_during_backoff()
        try:
            values = await self.client.mget([PREFIX + key for key in keys]) if keys else []
        except (self.refused, OSError) as exc:
            raise self._unreachable(exc) from None
        self._reachable()
        pending = self.pending
        return [int(v or 0) + pending.get(key, 0) for key, v in zip(keys, values, strict=True)]

    async def add(self, items: Sequence[tuple[str, int]], amount: int) -> list[int]:
        addition = Addition(secrets.token_hex(12), tuple(items), amount)
        if self.retry_at and time.monotonic() < self.retry_at:
            self._enqueue(addition)  # never wait on a Redis just found down
            raise LedgerUnavailable(self._failure)
        try:
            totals = await self._apply(addition)
        except self.unreachable as exc:
            self._enqueue(addition)
            raise self._unreachable(exc) from None
        except self.refused as exc:  # the server refused the script: retrying would not help
            logger.error("budget spend not recorded in Redis at %s: %s", self.where, exc)
            raise LedgerUnavailable(f"Redis at {self.where} refused the spend: {exc}") from None
        self._reachable()
        return totals

    async def close(self) -> None:
        if self._drainer is not None:
            self._drainer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drainer
            self._drainer = None
        if self.queue:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drain_once(), 2.0)
        if self.queue:
            logger.error(
                "%d budget spend additions could not reach Redis at %s before shutdown",
                len(self.queue),
                self.where,
            )
        await self.client.aclose()

    # -- Redis calls --
    async def _apply(self, addition: Addition) -> list[int]:
        keys = [PREFIX + "op:" + addition.operation]
        keys += [PREFIX + key for key, _ in addition.items]
        args: list[Any] = [addition.amount, *(expires for _, expires in addition.items)]
        args.append(OPERATION_TTL_SECONDS)
        result = await self.script(keys=keys, args=args)
        return [int(v) for v in result]

    # -- outages --
    def _refuse_during_backoff(self) -> None:
        if self.retry_at and time.monotonic() < self.retry_at:
            raise LedgerUnavailable(self._failure)

    def _unreachable(self, exc: BaseException) -> LedgerUnavailable:
        self.retry_at = time.monotonic() + BACKOFF_SECONDS
        self._failure = f"Redis at {self.where} is unreachable: {type(exc).__name__}: {exc}"
        if not self._outage:
            self._outage = True
            verb = "admit" if self.failure_mode == "open" else "refuse"
            logger.warning(
                "%s; budgets %s requests (failure mode %s) and spend is queued until it answers",
                self._failure,
                verb,
                self.failure_mode,
            )
        return LedgerUnavailable(self._failure)

    def _reachable(self) -> None:
        self.retry_at = 0.0
        if self._outage and not self.queue:
            self._outage = False
            logger.warning("Redis at %s answers again; budgets are enforced", self.where)

    def _enqueue(self, addition: Addition) -> None:
        if len(self.queue) >= QUEUE_LIMIT:
            lost = self.queue.popleft()  # the oldest goes: loud, counted, never silent
            self._forget(lost)
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                logger.error(
                    "budget spend queue for Redis at %s is full: %d additions dropped",
                    self.where,
                    self.dropped,
                )
        self.queue.append(addition)
        for key, _ in addition.items:
            self.pending[key] = self.pending.get(key, 0) + addition.amount
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.get_running_loop().create_task(self._drain())

    def _forget(self, addition: Addition) -> None:
        for key, _ in addition.items:
            left = self.pending.get(key, 0) - addition.amount
            if left:
                self.pending[key] = left
            else:
                self.pending.pop(key, None)

    async def _drain(self) -> None:
        """Applies the queued additions in the background, backing off while Redis is down."""
        delay = BACKOFF_SECONDS
        while self.queue:
            await asyncio.sleep(delay)
            moved = await self._drain_once()
            delay = BACKOFF_SECONDS if moved else min(delay * 2, MAX_BACKOFF_SECONDS)
        self._reachable()

    async def _drain_once(self) -> bool:
        """True if the queue emptied (or moved); False when Redis is still unreachable."""
        applied = 0
        while self.queue:
            addition = self.queue[0]
            try:
                await self._apply(addition)
            except self.unreachable as exc:
                self._unreachable(exc)
                return applied > 0
            except self.refused as exc:
                logger.error("budget spend not recorded in Redis at %s: %s", self.where, exc)
            if self.queue and self.queue[0] is addition:
                self.queue.popleft()
                self._forget(addition)
            applied += 1
        if applied:
            logger.warning("applied %d queued budget spend additions to Redis at %s", applied, self.where)
        return True


_redis: dict[tuple[str, str], RedisLedger] = {}


def redis_ledger(url: str, failure_mode: str) -> Ledger:
    """The ledger in the Redis at `url` (one client per worker, URL and failure mode);
    `failure_mode` ("open" or "closed") words the outage log line."""
    ledger = _redis.get((url, failure_mode))
    if ledger is None:
        ledger = _redis[(url, failure_mode)] = RedisLedger(url, failure_mode)
    return ledger

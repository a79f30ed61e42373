"""Limits exact across the worker processes of one gateway instance: the Rust `SharedLimits`
table in a memory-mapped file.

The supervisor creates the file before Granian spawns workers (`host_table_file`) and names it
in GATEWAY_LIMITS_TABLE; every worker maps it (`host_table`). A decision is a few atomic
operations on that mapping, so N calls per period is N whatever the worker count. Without the
variable (an app built outside `gateway start`) the table is private to the process.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from gateway._native import LimitTableError, SharedConcurrency, SharedLimits
from gateway.config import LimitConfig
from gateway.control.limits.base import Grant, Limiter, Meter, ratelimit_headers, refused
from gateway.control.limits.requests import client_key, estimate_tokens
from gateway.server.process import private_base_directory, process_alive
from gateway.settings import settings
from gateway.types import EndpointType, Payload, Scope

logger = logging.getLogger("gateway.limits")

TABLE_ENV = "GATEWAY_LIMITS_TABLE"
FILE_PREFIX = "gateway-limits-"
DEFAULT_SLOTS = 65536
CONCURRENCY_SLOTS = 1024

_table: SharedLimits | None = None
_table_pid = 0


# -- the table file --------------------------------------------------------------------------
def _slots() -> int:
    wanted = settings().limits_slots or DEFAULT_SLOTS
    return 1 << max(6, (max(wanted, 64) - 1).bit_length())  # a power of two, at least 64


def _directory() -> Path:
    return private_base_directory(settings().limits_dir)


@contextlib.contextmanager
def host_table_file() -> Iterator[str]:
    """In the supervisor: create this instance's table, export its path to the workers it will
    spawn, and remove it when serving ends."""
    with shared_table_file(
        TABLE_ENV, FILE_PREFIX, lambda path: SharedLimits.create(path, _slots(), CONCURRENCY_SLOTS)
    ) as path:
        yield path


@contextlib.contextmanager
def shared_table_file(env: str, prefix: str, create: Callable[[str], object]) -> Iterator[str]:
    """A memory-mapped table for the workers: `create(path)` makes the file (in the private
    directory, after removing files of dead supervisors), its path goes to the workers in the
    environment variable `env`, and the file is removed when serving ends."""
    directory = _directory()
    _remove_stale(directory, prefix)
    path = directory / f"{prefix}{os.getpid()}-{secrets.token_hex(6)}"
    create(str(path))
    previous = os.environ.get(env)
    os.environ[env] = str(path)
    # held while serving (and by forked workers): how other instances tell the file is in use
    in_use = open(path, "rb")  # noqa: SIM115 (held for the whole block)
    fcntl.flock(in_use, fcntl.LOCK_SH)
    try:
        yield str(path)
    finally:
        if previous is None:
            os.environ.pop(env, None)
        else:
            os.environ[env] = previous
        with contextlib.suppress(OSError):
            path.unlink()
        in_use.close()


def _remove_stale(directory: Path, prefix: str) -> None:
    """Files left by supervisors that were killed outright: their pid is gone and no process
    holds the file's lock (a pid alone could be another namespace's)."""
    for stale in directory.glob(f"{prefix}*"):
        pid = stale.name[len(prefix) :].split("-", 1)[0]
        if not pid.isdigit() or process_alive(int(pid)):
            continue
        with contextlib.suppress(OSError), open(stale, "rb") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises while in use
            stale.unlink()


def host_table() -> SharedLimits:
    """This process's handle on the instance table, registered as one of its workers."""
    global _table, _table_pid
    pid = os.getpid()
    if _table is None or _table_pid != pid:  # a forked child registers on its own
        path = os.environ.get(TABLE_ENV)
        table = SharedLimits.open(path) if path else SharedLimits.private(_slots(), CONCURRENCY_SLOTS)
        reap_dead_workers(table)
        table.register_worker(_identity(pid))
        _table, _table_pid = table, pid
    return _table


# -- worker liveness -------------------------------------------------------------------------
def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (tells a reused pid apart)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # fields after the parenthesised command name; starttime is field 22 overall
    fields = stat[stat.rfind(")") + 2 :].split()
    return int(fields[19]) if len(fields) > 19 and fields[19].isdigit() else None


def _identity(pid: int) -> int:
    return (pid << 32) | ((_start_time(pid) or 0) & 0xFFFFFFFF)


def _dead(ident: int) -> bool:
    pid = ident >> 32
    if not process_alive(pid):
        return True
    started = _start_time(pid)
    return started is not None and (started & 0xFFFFFFFF) != (ident & 0xFFFFFFFF)


def reap_dead_workers(table: SharedLimits) -> int:
    """Gives back the in-flight places of workers that died (killed, crashed) mid-request."""
    released = 0
    for index, ident in table.workers():
        if _dead(ident):
            freed = table.reap_worker(index, ident)
            if freed:
                logger.warning("gave back %d in-flight places held by dead worker %d", freed, ident >> 32)
                released += freed
    return released


# -- the limiter -----------------------------------------------------------------------------
class Counter:
    """One bucket, for everyone (`key` None) or per client key: one calling convention."""

    __slots__ = ("capacity", "_everyone", "_per_client")

    def __init__(self, table: SharedLimits, name: str, capacity: int, period: float, keyed: bool) -> None:
        self.capacity = capacity
        self._per_client = table.keyed_bucket(name, capacity, period) if keyed else None
        self._everyone = None if keyed else table.bucket(name, capacity, period)

    def take(self, key: str | None, n: int) -> tuple[bool, int, float, float]:
        if self._everyone is not None:
            return self._everyone.try_acquire(n)
        assert self._per_client is not None and key is not None
        return self._per_client.try_acquire(key, n)

    def adjust(self, key: str | None, delta: int) -> None:
        """Positive: take `delta` more (usage above the charge); negative: give back."""
        if delta == 0:
            return
        bucket = self._everyone
        if bucket is not None:
            bucket.charge(delta) if delta > 0 else bucket.refund(-delta)
            return
        assert self._per_client is not None and key is not None
        with contextlib.suppress(LimitTableError):
            self._per_client.charge(key, delta) if delta > 0 else self._per_client.refund(key, -delta)


class HostGrant(Grant):
    __slots__ = ("charged", "key", "limiter")

    def __init__(
        self,
        limiter: HostLimiter,
        key: str | None,
        meter: Meter,
        charged: int,
        headers: list[tuple[bytes, bytes]],
        remaining: int,
    ) -> None:
        super().__init__(meter, headers, remaining)
        self.limiter = limiter
        self.key = key
        self.charged = charged

    def _finish(self, cancelled: bool) -> None:
        limiter = self.limiter
        try:
            if cancelled:
                limiter.calls.adjust(self.key, -1)
            if limiter.tokens is not None:
                used = 0 if cancelled else self.meter.used(self.charged)
                limiter.tokens.adjust(self.key, used - self.charged)
        finally:
            if limiter.concurrency is not None:
                limiter.concurrency.leave()


class HostLimiter(Limiter):
    """Calls, tokens and concurrency of one limit block, on the host table."""

    def __init__(self, owner: str, limit: LimitConfig, failure_mode: str, table: SharedLimits) -> None:
        super().__init__(owner, limit, failure_mode)
        self.table = table
        self._reaped_at = -1.0
        self.keyed = limit.scope != "endpoint"
        period = limit.period_seconds
        try:
            self.calls = Counter(table, self.names("calls"), limit.calls, period, self.keyed)
            self.tokens = (
                Counter(table, self.names("tokens"), limit.tokens, period, self.keyed)
                if limit.tokens
                else None
            )
            self.concurrency: SharedConcurrency | None = (
                table.concurrency(f"concurrency|{owner}", limit.concurrency) if limit.concurrency else None
            )
        except LimitTableError as exc:
            raise RuntimeError(f"rate limits of {owner}: {exc}") from None

    def store_identity(self) -> object:
        return self.table

    async def admit(
        self, scope: Scope, kind: EndpointType, payload: Payload, meter: Meter | None = None
    ) -> Grant:
        meter = meter or Meter()
        key = client_key(scope, self.limit.scope, self.header) if self.keyed else None
        if self.concurrency is not None and not self._enter():
            cap = self.concurrency.limit
            raise refused(self.concurrency_description, 1.0, cap, 0, 1.0)
        try:
            return self._take(key, kind, payload, meter)
        except LimitTableError as exc:  # a full table of per-client buckets
            self._leave()
            return self.unavailable(str(exc), meter)
        except BaseException:
            self._leave()
            raise

    def _take(self, key: str | None, kind: EndpointType, payload: Payload, meter: Meter) -> Grant:
        calls = self.calls
        allowed, remaining, retry, reset = calls.take(key, 1)
        if not allowed:
            raise refused(self.description, retry, calls.capacity, 0, reset)
        charged = 0
        tokens = self.tokens
        if tokens is not None:
            prompt, completion = estimate_tokens(kind, payload)
            meter.prompt, meter.counting = prompt, True
            # at least one, so a bucket in debt refuses; at most all, so a big prompt can pass
            charged = min(max(prompt + completion, 1), tokens.capacity)
            ok, left, wait, full_in = tokens.take(key, charged)
            if not ok:
                calls.adjust(key, -1)  # a refusal takes nothing
                raise refused(self.tokens_description, wait, tokens.capacity, left, full_in)
        headers = ratelimit_headers(calls.capacity, remaining, reset)
        return HostGrant(self, key, meter, charged, headers, remaining)

    def _enter(self) -> bool:
        assert self.concurrency is not None
        if self.concurrency.try_enter()[0]:
            return True
        # a worker that died mid-request may still hold places: give them back and retry (at
        # most once a second: looking for dead workers reads /proc)
        now = time.monotonic()
        if now - self._reaped_at < 1.0:
            return False
        self._reaped_at = now
        return reap_dead_workers(self.table) > 0 and self.concurrency.try_enter()[0]

    def _leave(self) -> None:
        if self.concurrency is not None:
            self.concurrency.leave()

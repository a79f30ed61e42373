"""Active health checks (`health_check:` of an endpoint): a GET of a cheap URL on an interval, in
each worker, off the request path. `unhealthy_after` failed probes in a row (no answer within
`timeout_seconds`, a connection error, or a 5xx) mark the endpoint unhealthy and routing skips
it; one good probe (any answer below 500: a 401 still says the service is up) brings it back.
No credential is sent, so none can leak to a probe URL.

A checker starts on the first request that consults it (a worker's event loop runs by then) and
stops by itself once no request has asked for a while (its endpoint was removed by a reload).
Probes use aiohttp, imported (off the event loop) by the first one: a worker without health
checks never loads it.
"""

from __future__ import annotations

import asyncio
import logging
import time

from gateway.config.resilience import HealthCheckConfig
from gateway.proxy.upstream import import_in_thread

logger = logging.getLogger("gateway.routing")
IDLE_INTERVALS = 30  # a checker nobody consulted for this many intervals stops

_checkers: dict[tuple[str, HealthCheckConfig], HealthState] = {}


class HealthState:
    __slots__ = ("config", "failures", "name", "_asked", "_healthy", "_task")

    def __init__(self, name: str, config: HealthCheckConfig) -> None:
        self.name = name
        self.config = config
        self.failures = 0
        self._healthy = True
        self._asked = 0.0
        self._task: asyncio.Task[None] | None = None

    @property
    def healthy(self) -> bool:
        self._asked = time.monotonic()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        return self._healthy

    async def _run(self) -> None:
        interval = max(self.config.interval_seconds, 0.05)
        try:
            while time.monotonic() - self._asked < interval * IDLE_INTERVALS:
                self._record(await self._probe())
                await asyncio.sleep(interval)
        finally:
            self._task = None

    async def _probe(self) -> bool:
        # a session per probe: nothing left open when the worker stops (probes are seconds apart)
        await import_in_thread("aiohttp")
        import aiohttp

        try:
            async with (
                asyncio.timeout(self.config.timeout_seconds),
                aiohttp.ClientSession(trust_env=True) as session,
                session.get(self.config.url, allow_redirects=False) as response,
            ):
                return response.status < 500
        except (TimeoutError, OSError, aiohttp.ClientError):
            return False

    def _record(self, ok: bool) -> None:
        if ok:
            if not self._healthy:
                logger.info("endpoint '%s' is healthy again: its health check answered", self.name)
            self.failures = 0
            self._healthy = True
            return
        self.failures += 1
        if self._healthy and self.failures >= self.config.unhealthy_after:
            self._healthy = False
            logger.warning(
                "endpoint '%s' is unhealthy: %d health checks failed in a row; routing skips it",
                self.name,
                self.failures,
            )


def health_state(name: str, config: HealthCheckConfig) -> HealthState:
    """The worker's checker of this endpoint and check; kept across reloads that keep both."""
    key = (name, config)
    state = _checkers.get(key)
    if state is None:
        state = _checkers[key] = HealthState(name, config)
    return state

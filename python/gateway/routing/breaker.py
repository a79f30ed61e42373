"""Circuit breaker per destination, shared by the workers of one host.

The state lives in the host's shared limits table (the memory-mapped Rust `SharedLimits` every
worker maps), as three one-word buckets, so a decision is a few atomic operations and no worker
keeps its own idea of a destination's health:

    failures  capacity N, refilled over the window: a failure takes a token; the one that
              takes the last opens the breaker (N failures within about `window_seconds`)
    tripped   capacity 1, never refills by itself: empty while the breaker is open or half-open
    gate      capacity 1, one token per cooldown: emptied when the breaker opens; once it has
              refilled (the cooldown is over) the first request to take it is the probe, and
              every other request keeps skipping the destination until the probe answers

The probe's success closes the breaker (tripped refilled, failures forgiven); its failure opens
it again for another cooldown. A probe that outlives the cooldown lets one more probe through.
A 429 or 503 asking to wait at least `retry_after_seconds` opens it for that long.

Without the supervisor's table (an app built outside `gateway start`) the table is private to
the process, and so is the breaker.
"""

from __future__ import annotations

import logging
import math

from gateway._native import SharedLimits
from gateway.config.resilience import BreakerConfig
from gateway.observe.metrics import tally

logger = logging.getLogger("gateway.routing")
NEVER_REFILLS = 1e8  # seconds

CLOSED, PROBE, OPEN = 0, 1, 2


class Breaker:
    __slots__ = ("config", "endpoint", "name", "_failures", "_gate", "_tripped")

    def __init__(self, table: SharedLimits, endpoint: str, config: BreakerConfig) -> None:
        self.endpoint = endpoint  # the metric's label
        self.name = f"endpoint '{endpoint}'"
        self.config = config
        # the settings are in the names: a reload that changes them starts afresh
        tag = f"{self.name}|{config.failures}|{config.window_seconds:g}|{config.cooldown_seconds:g}"
        self._failures = table.bucket(f"breaker-failures|{tag}", config.failures, config.window_seconds)
        self._tripped = table.bucket(f"breaker-tripped|{tag}", 1, NEVER_REFILLS)
        self._gate = table.bucket(f"breaker-gate|{tag}", 1, max(config.cooldown_seconds, 0.001))

    def state(self) -> str:
        """The state: "closed", "open" or "half-open" (cooldown over; the probe may go)."""
        if self._tripped.peek()[1] > 0:
            return "closed"
        return "half-open" if self._gate.peek()[1] > 0 else "open"

    def wait(self) -> float:
        """Seconds until the cooldown ends (0 when the breaker is not open)."""
        return self._gate.peek()[2] if self._tripped.peek()[1] == 0 else 0.0

    def admit(self) -> int:
        """CLOSED: send; PROBE: send, this request is the probe; OPEN: skip this destination."""
        if self._tripped.peek()[1] > 0:
            return CLOSED
        return PROBE if self._gate.try_acquire(1)[0] else OPEN

    def success(self, verdict: int) -> None:
        if verdict == PROBE:
            self._tripped.refund(1)
            self._failures.refund(self.config.failures)
            logger.info("circuit breaker of %s closed: its probe succeeded", self.name)
            tally().breaker_changed(self.endpoint, "closed")

    def release(self, verdict: int) -> None:
        """The request let through as the probe never reached the destination (cancelled, or
        refused by the gateway itself): another request may probe at once."""
        if verdict == PROBE:
            self._gate.refund(1)

    def failure(self, verdict: int, asked_wait: float | None = None) -> None:
        long_wait = asked_wait is not None and asked_wait >= self.config.retry_after_seconds
        if verdict == PROBE:
            self._open("its probe failed", asked_wait if long_wait else None, probed=True)
            return
        if verdict == OPEN:
            return
        allowed, remaining, _, _ = self._failures.try_acquire(1)
        if long_wait:
            self._open(f"the provider asked to wait {asked_wait:g}s", asked_wait)
        elif not allowed or remaining == 0:
            self._open(f"{self.config.failures} failures within {self.config.window_seconds:g}s", None)

    def _open(self, why: str, wait: float | None, probed: bool = False) -> None:
        # only the worker that empties `tripped` opens it (and says so); the probe holds the gate
        if not probed and not self._tripped.try_acquire(1)[0]:
            return
        # the gate empty from now: a cooldown from this moment (refund fills it, take empties it)
        self._gate.refund(1)
        self._gate.try_acquire(1)
        cooldown = max(self.config.cooldown_seconds, 0.001)
        if wait is not None and wait > cooldown:
            # one gate token per cooldown: a debt of k tokens keeps it shut k cooldowns longer
            self._gate.charge(max(0, math.ceil(wait / cooldown) - 1))
        logger.warning("circuit breaker of %s opened for %gs: %s", self.name, max(wait or 0.0, cooldown), why)
        tally().breaker_changed(self.endpoint, "open")

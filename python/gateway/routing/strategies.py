"""In which order a request tries the destinations it may reach.

An endpoint with resilience settings is a one-destination router. A FALLBACK route groups its
destinations into tiers (`tier`, by default the position in the list, so a plain list is an
ordered chain): every destination of tier 0 is tried before any of tier 1. Inside a tier,
`balance` orders them per request:

    weighted    a random order drawn by `weight` (the first pick has probability weight/sum)
    least_busy  fewest requests in flight in this worker first (streams count until they end)
    latency     lowest EWMA of the time to the answer's headers first; a destination not yet
                measured goes first, and 1 request in 20 draws a weighted order so a slow
                destination that recovered is measured again

In-flight counts and latencies are per worker (each worker balances its own requests).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from gateway.routing.breaker import Breaker
from gateway.routing.policy import RetryPolicy

if TYPE_CHECKING:
    from gateway.control.table import Target
    from gateway.routing.health import HealthState

EWMA_WEIGHT = 0.3  # of the newest sample
EXPLORE = 0.05


class Lane:
    """One endpoint as routing sees it in this worker."""

    __slots__ = ("breaker", "health", "in_flight", "latency", "name", "policy", "target")

    def __init__(
        self, target: Target, policy: RetryPolicy, breaker: Breaker | None, health: HealthState | None
    ) -> None:
        self.target = target
        self.name = target.name
        self.policy = policy
        self.breaker = breaker
        self.health = health
        self.in_flight = 0
        self.latency: float | None = None  # EWMA seconds to the answer's headers

    def observe(self, seconds: float) -> None:
        latency = self.latency
        self.latency = seconds if latency is None else latency + EWMA_WEIGHT * (seconds - latency)


class Choice:
    """A destination of a router: its lane, weight and breaker (the endpoint's own, else the
    route's)."""

    __slots__ = ("breaker", "lane", "weight")

    def __init__(self, lane: Lane, weight: int, breaker: Breaker | None) -> None:
        self.lane = lane
        self.weight = weight
        self.breaker = breaker


class Router:
    __slots__ = ("balance", "name", "strategy", "tiers", "_fixed")

    def __init__(
        self, name: str, strategy: str, tiers: list[list[Choice]], balance: str = "weighted"
    ) -> None:
        self.name = name
        self.strategy = strategy  # "ENDPOINT" (one destination) or "FALLBACK"
        self.tiers = tiers
        self.balance = balance
        # nothing to draw when every tier has one destination: the same order every time
        self._fixed = [tier[0] for tier in tiers] if all(len(tier) == 1 for tier in tiers) else None

    def order(self) -> list[Choice]:
        if self._fixed is not None:
            return self._fixed
        ordered: list[Choice] = []
        for tier in self.tiers:
            if len(tier) == 1:
                ordered.append(tier[0])
            elif self.balance == "least_busy":
                ordered.extend(sorted(tier, key=lambda c: (c.lane.in_flight, random.random())))
            elif self.balance == "latency" and random.random() >= EXPLORE:
                ordered.extend(sorted(tier, key=_latency_key))
            else:
                ordered.extend(weighted_order(tier))
        return ordered


def _latency_key(choice: Choice) -> tuple[float, float]:
    latency = choice.lane.latency
    return (-1.0 if latency is None else latency, random.random())


def weighted_order(tier: list[Choice]) -> list[Choice]:
    """A random order where each next destination is drawn with probability proportional to its
    weight among those left."""
    left = list(tier)
    ordered = []
    while len(left) > 1:
        point = random.random() * sum(c.weight for c in left)
        picked = len(left) - 1  # float rounding can leave the point past the last weight
        for index, choice in enumerate(left):
            point -= choice.weight
            if point < 0:
                picked = index
                break
        ordered.append(left.pop(picked))
    ordered.extend(left)
    return ordered

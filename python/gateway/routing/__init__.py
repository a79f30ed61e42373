"""Routing: retries, FALLBACK routes, balancing, circuit breaking, per-endpoint timeouts and
health checks (issue 11).

    policy.py      retry policy: which failures, back-off honouring Retry-After, retry budget
    breaker.py     circuit breaker per destination, shared by the workers of the host
    health.py      optional active health checks
    strategies.py  the order of destinations: tiers, weighted / least_busy / latency
    attempts.py    the attempt loop around the provider call (pipeline/invoke.py)

Only endpoints that have resilience settings or are destinations of a FALLBACK route are
"routed": they get a `Router` and a transport with their own timeouts. Every other endpoint
keeps the plain path (one provider call, the route timeout), with nothing added per request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.config import EndpointConfig, GatewayConfig, RouteConfig
from gateway.config.resilience import BreakerConfig, Resilience
from gateway.proxy.upstream import Deadlines, TimedTransport, UpstreamClient
from gateway.routing.breaker import Breaker
from gateway.routing.health import health_state
from gateway.routing.policy import NO_RETRY, RetryBudget, RetryPolicy
from gateway.routing.strategies import Choice, Lane, Router

if TYPE_CHECKING:
    from gateway._native import SharedLimits
    from gateway.control.table import Target

__all__ = ["Router", "Routing", "routed_endpoints", "transport_for"]


def routed_endpoints(config: GatewayConfig) -> frozenset[str]:
    names = {e.name for e in config.endpoints if e.resilience is not None}
    for route in config.routes:
        if route.routing_strategy == "FALLBACK":
            names.update(d.name for d in route.destinations)
    return frozenset(names)


def transport_for(endpoint: EndpointConfig, client: UpstreamClient) -> TimedTransport:
    """The transport of a routed endpoint: its `timeouts:`, else the route timeout's roles."""
    timeouts = endpoint.resilience.timeouts if endpoint.resilience is not None else None
    default = client.timeout_seconds
    if timeouts is None:
        return TimedTransport(client, Deadlines(None, None, default, default, None))
    return TimedTransport(
        client,
        Deadlines(
            connect=timeouts.connect_seconds,
            first_byte=timeouts.first_byte_seconds,
            between_chunks=timeouts.between_chunks_seconds or default,
            total=timeouts.total_seconds or default,
            stream_total=timeouts.total_seconds,
        ),
    )


class Routing:
    """The routers of one endpoint table: a lane per routed endpoint, a router per routed
    endpoint and per FALLBACK route."""

    def __init__(self, config: GatewayConfig, targets: dict[str, Target]) -> None:
        routed = routed_endpoints(config)
        self.lanes: dict[str, Lane] = {}
        self.routes: dict[str, Router] = {}
        if not routed:
            return
        from gateway.control.limits.host import host_table

        table = host_table()
        for name in routed:
            target = targets[name]
            self.lanes[name] = _lane(target, target.config.resilience, table)
            if target.config.resilience is not None:
                lane = self.lanes[name]
                target.router = Router(name, "ENDPOINT", [[Choice(lane, 1, lane.breaker)]])
        for route in config.routes:
            if route.routing_strategy == "FALLBACK":
                self.routes[route.name] = self._fallback(route, table)

    def _fallback(self, route: RouteConfig, table: SharedLimits) -> Router:
        tiers: dict[int, list[Choice]] = {}
        for dest in route.destinations:
            lane = self.lanes[dest.name]
            breaker = lane.breaker or _breaker(table, dest.name, route.circuit_breaker)
            tiers.setdefault(dest.tier, []).append(Choice(lane, dest.weight, breaker))
        return Router(route.name, "FALLBACK", [tiers[tier] for tier in sorted(tiers)], route.balance)


def _lane(target: Target, resilience: Resilience | None, table: SharedLimits) -> Lane:
    if resilience is None:
        return Lane(target, NO_RETRY, None, None)
    retries = resilience.retries
    policy = NO_RETRY
    if retries is not None:
        budget = RetryBudget(table, target.name, retries.budget_ratio) if retries.attempts > 1 else None
        policy = RetryPolicy(retries, budget)
    health = resilience.health_check
    return Lane(
        target,
        policy,
        _breaker(table, target.name, resilience.circuit_breaker),
        health_state(target.name, health) if health is not None else None,
    )


def _breaker(table: SharedLimits, name: str, config: BreakerConfig | None) -> Breaker | None:
    return Breaker(table, name, config) if config is not None else None

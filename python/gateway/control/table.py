"""The endpoint table: what each name serves. Built from a validated config, swapped whole on
reload; a request reads the table once, so in-flight work keeps the objects it started with."""

from __future__ import annotations

import logging
import random
import time
from typing import Any

from gateway.auth.access import Access, build_access
from gateway.config import EndpointConfig, GatewayConfig, LimitConfig, RouteConfig
from gateway.config.aliases import AliasIndex
from gateway.control.limits import CombinedLimiter, Limiter, build_limiter
from gateway.providers import provider_class
from gateway.providers.base import Provider, UnavailableProvider
from gateway.proxy.upstream import UpstreamClient
from gateway.redact import Redactor, config_secrets
from gateway.routing import Router, Routing, routed_endpoints, transport_for
from gateway.types import EndpointType
from gateway.usage.price_table import endpoint_price
from gateway.usage.pricing import Price

logger = logging.getLogger("gateway")


class Target:
    """An invocable endpoint: its provider object and optional limiter."""

    __slots__ = ("config", "endpoint_type", "limiter", "name", "provider", "router")

    def __init__(
        self,
        config: EndpointConfig,
        provider: Provider,
        limiter: Limiter | None,
        router: Router | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self.endpoint_type: EndpointType = config.endpoint_type
        self.provider = provider
        self.limiter = limiter
        # retries / breaker / fallback across destinations (routing/); None: one plain call
        self.router = router


class TrafficRoute:
    """Picks one destination per request with probability proportional to its percentage."""

    __slots__ = ("config", "endpoint_type", "limiter", "name", "_cumulative", "_targets")

    def __init__(
        self, config: RouteConfig, targets: dict[str, Target], limiter: Limiter | None = None
    ) -> None:
        self.config = config
        self.name = config.name
        self.endpoint_type: EndpointType = config.task_type
        self.limiter = limiter
        self._targets = [
            _under_route(targets[d.name], limiter) for d in config.destinations if d.traffic_percentage > 0
        ]
        total = 0
        self._cumulative = []
        for dest in config.destinations:
            if dest.traffic_percentage > 0:
                total += dest.traffic_percentage
                self._cumulative.append(total)

    def pick(self) -> Target:
        point = random.random() * self._cumulative[-1]
        for target, bound in zip(self._targets, self._cumulative, strict=True):
            if point < bound:
                return target
        return self._targets[-1]


class FallbackRoute:
    """A FALLBACK route: resolves to its first destination under the route's own limit; the
    attempt loop (routing/attempts.py) then tries its destinations in the router's order."""

    __slots__ = ("config", "endpoint_type", "limiter", "name", "_front")

    def __init__(
        self, config: RouteConfig, targets: dict[str, Target], limiter: Limiter | None, router: Router
    ) -> None:
        self.config = config
        self.name = config.name
        self.endpoint_type: EndpointType = config.task_type
        self.limiter = limiter
        first = targets[config.destinations[0].name]
        self._front = Target(first.config, first.provider, limiter, router)

    def pick(self) -> Target:
        return self._front


class EndpointTable:
    def __init__(
        self, config: GatewayConfig, client: UpstreamClient, previous: EndpointTable | None = None
    ) -> None:
        self.config = config
        self.created = int(time.time())
        self.targets: dict[str, Target] = {}
        routed = routed_endpoints(config)
        for endpoint in config.endpoints:
            if endpoint.unavailable is None:
                transport = transport_for(endpoint, client) if endpoint.name in routed else client
                provider = provider_class(endpoint.provider)(endpoint, transport)
            else:
                provider = UnavailableProvider(endpoint, client)
            old = previous.targets.get(endpoint.name) if previous else None
            old_limiter = old.limiter if old is not None else None
            limiter = _limiter(f"endpoint|{endpoint.name}", endpoint.limit, config, old_limiter)
            self.targets[endpoint.name] = Target(endpoint, provider, limiter)
        self.routing = Routing(config, self.targets)  # lanes and routers of routed endpoints
        self.routes: dict[str, TrafficRoute | FallbackRoute] = {}
        for route in config.routes:
            old_route = previous.routes.get(route.name) if previous else None
            old_limiter = old_route.limiter if old_route is not None else None
            limiter = _limiter(f"route|{route.name}", route.limit, config, old_limiter)
            router = self.routing.routes.get(route.name)
            if router is not None:
                self.routes[route.name] = FallbackRoute(route, self.targets, limiter, router)
                continue
            self.routes[route.name] = TrafficRoute(route, self.targets, limiter)
        self.invocable: dict[str, Target | TrafficRoute | FallbackRoute] = {**self.targets, **self.routes}
        # other names clients may ask for (agents' built-in model names), per endpoint
        self.aliases = AliasIndex((e.name, e.aliases) for e in config.endpoints)
        self.prices = {e.name: (e, endpoint_price(e)) for e in config.endpoints}
        if config.budgets.configured and previous is None:
            _warn_unpriced(self.prices)
        self.access: Access = build_access(config, previous.access if previous else None)
        # every configured secret, kept out of error bodies, stream error events and logs
        self.redactor = Redactor(
            secret
            for endpoint in config.endpoints
            for secret in config_secrets(
                endpoint.provider_config, provider_class(endpoint.provider).secret_fields
            )
        )

    def resolve(self, name: str) -> Target | None:
        """The endpoint (or a traffic route's pick) a name reaches: its own name first, then
        an alias (config/aliases.py)."""
        entry = self.invocable.get(name)
        if entry is None and self.aliases:
            owner = self.aliases.lookup(name)
            entry = self.invocable.get(owner) if owner is not None else None
        if entry is None or isinstance(entry, Target):
            return entry
        return entry.pick()

    def price_of(self, endpoint: EndpointConfig) -> Price | None:
        """The endpoint's price: its `model.pricing`, else the shipped price table's. Looked up
        once per endpoint when the table is built; a dict read per request."""
        known = self.prices.get(endpoint.name)
        if known is not None and known[0] is endpoint:
            return known[1]
        return endpoint_price(endpoint)  # a config this table was not built from

    def describe_models(self) -> list[dict[str, Any]]:
        models = []
        for name, entry in self.invocable.items():
            owner = entry.config.provider if isinstance(entry, Target) else _route_owner(entry)
            models.append(
                {
                    "id": name,
                    "object": "model",
                    "created": self.created,
                    "owned_by": owner,
                    "endpoint_type": entry.endpoint_type,
                }
            )
        return models


def _limiter(
    owner: str, limit: LimitConfig | None, config: GatewayConfig, previous: Limiter | None
) -> Limiter | None:
    # a reload keeps the counters of endpoints whose limit did not change
    return build_limiter(owner, limit, config, previous) if limit is not None else None


def _under_route(target: Target, route_limiter: Limiter | None) -> Target:
    """A destination as reached through a route with its own limit: both limits apply."""
    if route_limiter is None:
        return target
    limiter = route_limiter if target.limiter is None else CombinedLimiter(route_limiter, target.limiter)
    return Target(target.config, target.provider, limiter, target.router)


def _route_owner(route: TrafficRoute | FallbackRoute) -> str:
    return "fallback-route" if isinstance(route, FallbackRoute) else "traffic-route"


def _warn_unpriced(prices: dict[str, tuple[EndpointConfig, Price | None]]) -> None:
    """Budgets count cost: an endpoint without a price spends nothing against them."""
    for name, (endpoint, price) in prices.items():
        if price is None and endpoint.unavailable is None:
            logger.warning(
                "endpoint '%s': no price is known for model '%s', so its requests cost $0 against "
                "budgets; set model.pricing (USD per million tokens) to count them",
                name,
                endpoint.model_name,
            )

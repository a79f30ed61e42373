"""The endpoint table: what each name serves. Built from a validated config, swapped whole on
reload; a request reads the table once, so in-flight work keeps the objects it started with."""

from __future__ import annotations

import random
import time
from typing import Any

from gateway.config import EndpointConfig, GatewayConfig, RouteConfig
from gateway.control.limits import EndpointLimiter
from gateway.providers.base import Provider
from gateway.proxy.upstream import UpstreamClient
from gateway.types import EndpointType


class Target:
    """An invocable endpoint: its provider object and optional limiter."""

    __slots__ = ("config", "endpoint_type", "limiter", "name", "provider")

    def __init__(self, config: EndpointConfig, provider: Provider, limiter: EndpointLimiter | None) -> None:
        self.config = config
        self.name = config.name
        self.endpoint_type: EndpointType = config.endpoint_type
        self.provider = provider
        self.limiter = limiter


class TrafficRoute:
    """Picks one destination per request with probability proportional to its percentage."""

    __slots__ = ("config", "endpoint_type", "name", "_cumulative", "_targets")

    def __init__(self, config: RouteConfig, targets: dict[str, Target]) -> None:
        self.config = config
        self.name = config.name
        self.endpoint_type: EndpointType = config.task_type
        self._targets = [targets[d.name] for d in config.destinations if d.traffic_percentage > 0]
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


class EndpointTable:
    def __init__(
        self, config: GatewayConfig, client: UpstreamClient, previous: EndpointTable | None = None
    ) -> None:
        self.config = config
        self.created = int(time.time())
        self.targets: dict[str, Target] = {}
        for endpoint in config.endpoints:
            provider = endpoint.provider_class(endpoint, client)
            self.targets[endpoint.name] = Target(endpoint, provider, _limiter(endpoint, previous))
        self.routes = {route.name: TrafficRoute(route, self.targets) for route in config.routes}
        self.invocable: dict[str, Target | TrafficRoute] = {**self.targets, **self.routes}

    def resolve(self, name: str) -> Target | None:
        entry = self.invocable.get(name)
        if entry is None or isinstance(entry, Target):
            return entry
        return entry.pick()

    def describe_models(self) -> list[dict[str, Any]]:
        models = []
        for name, entry in self.invocable.items():
            owner = entry.config.provider if isinstance(entry, Target) else "traffic-route"
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


def _limiter(endpoint: EndpointConfig, previous: EndpointTable | None) -> EndpointLimiter | None:
    if endpoint.limit is None:
        return None
    old = previous.targets.get(endpoint.name) if previous else None
    # a reload keeps the counters of endpoints whose limit did not change
    if old is not None and old.limiter is not None and old.limiter.same_limit(endpoint.limit):
        return old.limiter
    return EndpointLimiter(endpoint.limit)

"""Routes (`routes:`) across endpoints of one type: MLflow's TRAFFIC_SPLIT as MLflow has it, and
FALLBACK: destinations tried in order (grouped into tiers, balanced inside a tier) until one
answers. Messages of the TRAFFIC_SPLIT checks are MLflow's own, word for word."""

from __future__ import annotations

from typing import Any

from gateway.config.endpoints import endpoint_type_of, where
from gateway.config.limits import parse_limit
from gateway.config.model import Destination, EndpointConfig, RouteConfig
from gateway.config.resilience import parse_breaker
from gateway.errors import ConfigError

STRATEGIES = ("TRAFFIC_SPLIT", "FALLBACK")
BALANCES = ("weighted", "least_busy", "latency")


def parse_route(item: Any, index: int) -> RouteConfig:
    location = where("route", item, index)
    if not isinstance(item, dict):
        raise ConfigError(f"{location}: a route must be a mapping")
    try:
        return _parse_route(item)
    except ConfigError as exc:
        raise ConfigError(f"{location}: {exc}") from None


def _parse_route(item: dict[str, Any]) -> RouteConfig:
    name = item.get("name")
    if not isinstance(name, str):
        raise ConfigError("name: Field required (a string)")
    task_type = endpoint_type_of(item.get("task_type"), "task_type")
    strategy = item.get("routing_strategy", "TRAFFIC_SPLIT")
    if strategy not in STRATEGIES:
        raise ConfigError("routing_strategy: Input should be 'TRAFFIC_SPLIT' or 'FALLBACK'")
    raw_destinations = item.get("destinations")
    if not isinstance(raw_destinations, list) or not raw_destinations:
        raise ConfigError("destinations: Field required (a non-empty list)")
    if strategy == "TRAFFIC_SPLIT":
        destinations = [_split_destination(dest) for dest in raw_destinations]
    else:
        destinations = [
            _fallback_destination(dest, position) for position, dest in enumerate(raw_destinations)
        ]
    balance = item.get("balance", "weighted")
    if balance not in BALANCES:
        raise ConfigError(f"balance: Input should be one of {', '.join(BALANCES)}")
    if strategy == "TRAFFIC_SPLIT" and ("balance" in item or "circuit_breaker" in item):
        raise ConfigError("balance and circuit_breaker apply to routing_strategy: FALLBACK routes")
    return RouteConfig(
        name=name,
        task_type=task_type,
        destinations=tuple(destinations),
        routing_strategy=strategy,
        limit=parse_limit(item.get("limit")),
        balance=balance,
        circuit_breaker=parse_breaker(item.get("circuit_breaker")),
    )


def _split_destination(dest: Any) -> Destination:
    if not isinstance(dest, dict) or not isinstance(dest.get("name"), str):
        raise ConfigError("destinations: each needs a name and a traffic_percentage")
    percentage = dest.get("traffic_percentage")
    if isinstance(percentage, bool) or not isinstance(percentage, int):
        raise ConfigError("destinations.traffic_percentage: Input should be a valid integer")
    return Destination(name=dest["name"], traffic_percentage=percentage)


def _fallback_destination(dest: Any, position: int) -> Destination:
    """`{name, tier?, weight?}`; without a tier, its position: a plain list is an ordered chain."""
    if not isinstance(dest, dict) or not isinstance(dest.get("name"), str):
        raise ConfigError("destinations: each needs a name")
    if "traffic_percentage" in dest:
        raise ConfigError(
            "destinations.traffic_percentage: FALLBACK destinations are tried in order; use tier and weight"
        )
    unknown = set(dest) - {"name", "tier", "weight"}
    if unknown:
        raise ConfigError(f"destinations: unknown key '{sorted(unknown)[0]}' (name, tier, weight)")
    tier, weight = dest.get("tier", position), dest.get("weight", 1)
    for key, value, low in (("tier", tier, 0), ("weight", weight, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"destinations.{key}: Input should be an integer of at least {low}")
    return Destination(name=dest["name"], tier=tier, weight=weight)


def check_route(route: RouteConfig, endpoints: dict[str, EndpointConfig]) -> None:
    where = f"route '{route.name}'"
    for dest in route.destinations:
        endpoint = endpoints.get(dest.name)
        if endpoint is None:
            raise ConfigError(
                f"{where}: The route destination name must be a endpoint name, but the route "
                f"'{route.name}' has an invalid destination name '{dest.name}'."
            )
        if endpoint.endpoint_type != route.task_type:
            raise ConfigError(
                f"{where}: The route destination endpoint types in the route '{route.name}' must have "
                f"endpoint type '{route.task_type}' but got endpoint type '{endpoint.endpoint_type}'."
            )
        if route.routing_strategy == "TRAFFIC_SPLIT" and not 0 <= dest.traffic_percentage <= 100:
            raise ConfigError(f"{where}: The route destination traffic percentage must between 0 and 100.")
    if route.routing_strategy == "FALLBACK":
        names = [dest.name for dest in route.destinations]
        if len(set(names)) != len(names):
            raise ConfigError(f"{where}: a FALLBACK route names each destination once")
        return
    if sum(d.traffic_percentage for d in route.destinations) != 100:
        raise ConfigError(
            f"{where}: For each route configuration, the traffic percentage sum of destinations must be 100, "
            f"but got invalid configuration of route '{route.name}'."
        )

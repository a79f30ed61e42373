"""Traffic routes (`routes:`): MLflow's TRAFFIC_SPLIT across endpoints of one type."""

from __future__ import annotations

from typing import Any

from gateway.config.endpoints import endpoint_type_of, where
from gateway.config.limits import parse_limit
from gateway.config.model import Destination, EndpointConfig, RouteConfig
from gateway.errors import ConfigError


def parse_route(item: Any, index: int) -> RouteConfig:
    location = where("route", item, index)
    if not isinstance(item, dict):
        raise ConfigError(f"{location}: a route must be a mapping")
    name = item.get("name")
    if not isinstance(name, str):
        raise ConfigError(f"{location}: name: Field required (a string)")
    try:
        task_type = endpoint_type_of(item.get("task_type"), "task_type")
    except ConfigError as exc:
        raise ConfigError(f"{location}: {exc}") from None
    strategy = item.get("routing_strategy", "TRAFFIC_SPLIT")
    if strategy != "TRAFFIC_SPLIT":
        raise ConfigError(f"{location}: routing_strategy: Input should be 'TRAFFIC_SPLIT'")
    raw_destinations = item.get("destinations")
    if not isinstance(raw_destinations, list) or not raw_destinations:
        raise ConfigError(f"{location}: destinations: Field required (a non-empty list)")
    destinations = []
    for dest in raw_destinations:
        if not isinstance(dest, dict) or not isinstance(dest.get("name"), str):
            raise ConfigError(f"{location}: destinations: each needs a name and a traffic_percentage")
        percentage = dest.get("traffic_percentage")
        if isinstance(percentage, bool) or not isinstance(percentage, int):
            raise ConfigError(f"{location}: destinations.traffic_percentage: Input should be a valid integer")
        destinations.append(Destination(name=dest["name"], traffic_percentage=percentage))
    try:
        limit = parse_limit(item.get("limit"))
    except ConfigError as exc:
        raise ConfigError(f"{location}: {exc}") from None
    return RouteConfig(
        name=name,
        task_type=task_type,
        destinations=tuple(destinations),
        routing_strategy=strategy,
        limit=limit,
    )


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
        if not 0 <= dest.traffic_percentage <= 100:
            raise ConfigError(f"{where}: The route destination traffic percentage must between 0 and 100.")
    if sum(d.traffic_percentage for d in route.destinations) != 100:
        raise ConfigError(
            f"{where}: For each route configuration, the traffic percentage sum of destinations must be 100, "
            f"but got invalid configuration of route '{route.name}'."
        )

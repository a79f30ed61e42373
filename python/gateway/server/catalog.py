"""Read-only routes: health, endpoint listing (MLflow 2.0/3.0 and legacy), /v1/models and the
limits stubs (spec §3)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import msgspec

from gateway.config import EndpointConfig, RouteConfig
from gateway.errors import BadRequest, NotFound, RequestValidationError
from gateway.schemas.validation import decode_json_object
from gateway.server.http import header, read_body
from gateway.types import Receive, Scope, Send

if TYPE_CHECKING:
    from gateway.control.table import EndpointTable
    from gateway.server.app import GatewayApp

PAGE_SIZE = 3000
LIMIT_POSTS = ("/api/2.0/endpoints/limits/", "/api/2.0/gateway/limits/")
ENDPOINT_MISSING = (
    "The endpoint '{}' is not present or active on the server. Please verify the endpoint name."
)
ROUTE_MISSING = "The route '{}' is not present or active on the server. Please verify the route name."


def endpoint_json(e: EndpointConfig) -> dict[str, Any]:
    return {
        "name": e.name,
        "endpoint_type": e.endpoint_type,
        "model": {"name": e.model_name, "provider": e.provider},
        "endpoint_url": f"/gateway/{e.name}/invocations",
        "limit": _limit_json(e),
    }


def legacy_route_json(e: EndpointConfig) -> dict[str, Any]:
    return {
        "name": e.name,
        "route_type": e.endpoint_type,
        "model": {"name": e.model_name, "provider": e.provider},
        "route_url": f"/gateway/{e.name}/invocations",
        "limit": _limit_json(e),
    }


def _limit_json(e: EndpointConfig) -> dict[str, Any] | None:
    if e.limit is None:
        return None
    return {"calls": e.limit.calls, "key": e.limit.key, "renewal_period": e.limit.renewal_period}


def encode_token(index: int) -> str:
    return base64.b64encode(json.dumps({"index": index}).encode()).decode()


def decode_token(token: str) -> int:
    try:
        index = json.loads(base64.b64decode(token, validate=True))["index"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise BadRequest(f"Invalid page_token '{token}': not a token this server issued.") from None
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise BadRequest(f"Invalid page_token '{token}': the index must be a non-negative integer.")
    return index


def static_get_routes(app: GatewayApp) -> dict[str, Any]:
    """GET routes with a fixed path; query strings come from the scope, so handlers get the path."""
    return {
        "/health": lambda _p: (200, {"status": "OK"}),
        "/v1/models": lambda _p: (200, {"object": "list", "data": model_list(app.table)}),
    }


def model_list(table: EndpointTable) -> list[dict[str, Any]]:
    """The endpoints and routes, then each alias a client may ask for (exact names and glob
    patterns, `alias_of` naming the endpoint it reaches)."""
    models = table.describe_models()
    by_id = {model["id"]: model for model in models}
    for alias, owner in table.aliases.listed():
        models.append(alias_model(alias, by_id[owner]))
    return models


def alias_model(alias: str, owner: dict[str, Any]) -> dict[str, Any]:
    return {**owner, "id": alias, "alias_of": owner["id"]}


def model_info(table: EndpointTable, name: str) -> dict[str, Any] | None:
    """/v1/models/{name}: an endpoint or route, or a name one of its aliases matches."""
    owner = table.aliases.lookup(name) if name not in table.invocable else None
    for model in table.describe_models():
        if model["id"] == name:
            return model
        if model["id"] == owner:
            return alias_model(name, model)
    return None


def paged(app: GatewayApp, query: bytes, legacy: bool) -> tuple[int, Any]:
    tokens = parse_qs(query.decode("latin-1")).get("page_token")
    start = decode_token(tokens[0]) if tokens and tokens[0] else 0
    endpoints = app.table.config.endpoints
    page = endpoints[start : start + PAGE_SIZE]
    next_token = encode_token(start + PAGE_SIZE) if start + PAGE_SIZE < len(endpoints) else None
    render = legacy_route_json if legacy else endpoint_json
    key = "routes" if legacy else "endpoints"
    answer = {key: [render(e) for e in page], "next_page_token": next_token}
    routes = app.table.config.routes
    if routes and not legacy and start == 0:
        # MLflow lists endpoints only; routes ride along under their own key (clients that
        # read "endpoints" are unaffected), as GET /api/3.0/gateway/route/{name} shows them
        answer["routes"] = [route_json(route) for route in routes]
    return 200, answer


def route_json(config: RouteConfig) -> dict[str, Any]:
    """A route as MLflow shows traffic routes; a FALLBACK route's destinations carry their tier
    and weight, and the route its balance and circuit breaker."""
    if config.routing_strategy == "TRAFFIC_SPLIT":
        destinations = [
            {"name": d.name, "traffic_percentage": d.traffic_percentage} for d in config.destinations
        ]
        return {
            "name": config.name,
            "task_type": config.task_type,
            "destinations": destinations,
            "routing_strategy": config.routing_strategy,
        }
    breaker = config.circuit_breaker
    return {
        "name": config.name,
        "task_type": config.task_type,
        "destinations": [{"name": d.name, "tier": d.tier, "weight": d.weight} for d in config.destinations],
        "routing_strategy": config.routing_strategy,
        "balance": config.balance,
        "circuit_breaker": msgspec.to_builtins(breaker) if breaker is not None else None,
        "endpoint_url": f"/gateway/{config.name}/invocations",
    }


def dynamic_get(app: GatewayApp, path: str, query: bytes = b"") -> tuple[int, Any] | None:
    """Parametrised GET routes; None when nothing matches the path."""
    table = app.table
    if path == "/api/2.0/endpoints/":
        return paged(app, query, legacy=False)
    if path == "/api/2.0/gateway/routes/":
        return paged(app, query, legacy=True)
    for prefix in ("/api/2.0/endpoints/limits/", "/api/2.0/gateway/limits/"):
        if path.startswith(prefix) and "/" not in path[len(prefix) :] and path != prefix:
            return 501, {"detail": "The get_limits API is not available yet."}
    for prefix in ("/api/2.0/endpoints/", "/api/3.0/gateway/endpoint/"):
        name = _tail(path, prefix)
        if name is not None:
            target = table.targets.get(name)
            if target is None:
                raise NotFound(ENDPOINT_MISSING.format(name))
            return 200, endpoint_json(target.config)
    name = _tail(path, "/api/2.0/gateway/routes/")
    if name is not None:
        target = table.targets.get(name)
        if target is None:
            raise NotFound(ROUTE_MISSING.format(name))
        return 200, legacy_route_json(target.config)
    name = _tail(path, "/api/3.0/gateway/route/")
    if name is not None:
        route = table.routes.get(name)
        if route is None:
            raise NotFound(ROUTE_MISSING.format(name))
        return 200, route_json(route.config)
    name = _tail(path, "/v1/models/")
    if name is not None:
        model = model_info(table, name)
        if model is not None:
            return 200, model
        raise NotFound(f"Model '{name}' is not served by this gateway.")
    return None


GET_LISTS = ("/api/2.0/endpoints/", "/api/2.0/gateway/routes/")
GET_PREFIXES = (
    "/api/2.0/endpoints/limits/",
    "/api/2.0/gateway/limits/",
    "/api/2.0/endpoints/",
    "/api/3.0/gateway/endpoint/",
    "/api/2.0/gateway/routes/",
    "/api/3.0/gateway/route/",
    "/v1/models/",
)


def is_get_path(path: str) -> bool:
    """Whether a GET route has this shape, whatever names exist (for 405 versus 404)."""
    return path in GET_LISTS or any(_tail(path, prefix) is not None for prefix in GET_PREFIXES)


def _tail(path: str, prefix: str) -> str | None:
    if path.startswith(prefix):
        rest = path[len(prefix) :]
        if rest and "/" not in rest:
            return rest
    return None


async def set_limits(scope: Scope, receive: Receive, send: Send, max_body: int) -> None:
    from gateway.server.http import send_json

    payload = decode_json_object(await read_body(scope, receive, max_body), header(scope, b"content-type"))
    problems = []
    if not isinstance(payload.get("route"), str):
        problems.append(
            {"type": "missing", "loc": ["body", "route"], "msg": "Field required", "input": payload}
        )
    if not isinstance(payload.get("limits"), list):
        problems.append(
            {"type": "missing", "loc": ["body", "limits"], "msg": "Field required", "input": payload}
        )
    if problems:
        raise RequestValidationError(problems)
    await send_json(send, 501, {"detail": "The set_limits API is not available yet."})

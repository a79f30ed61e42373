"""The YAML config (MLflow AI Gateway schema, spec §2) -> validated, immutable structs.

Everything a worker needs is checked here, secrets included, so a config that loads is a
config that serves. Error messages keep MLflow's wording and are prefixed with the endpoint or
route and field they concern.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from typing import Any

import msgspec
import yaml

from gateway.errors import ConfigError
from gateway.providers import ALLOWED_ALIASES, canonical_name, is_plugin, provider_class
from gateway.providers.base import Provider
from gateway.secrets import resolve_secret
from gateway.settings import settings
from gateway.types import ENDPOINT_TYPES, EndpointType

logger = logging.getLogger("gateway.config")
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9_\-\.]+$")
PERIOD_PATTERN = re.compile(r"^\s*(\d+)?\s*(second|minute|hour|day|month|year)s?\s*$", re.IGNORECASE)
# the `limits` library's granularities (a month is 30 days, a year 12 of them)
PERIOD_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "month": 2592000, "year": 31104000}
LIMIT_ERROR = (
    "Failed to parse the rate limit configuration.Please make sure limit.calls is a positive number "
    "andlimit.renewal_period is a right granularity"
)
DUPLICATE_NAMES = (
    "Duplicate names found in endpoint / route configurations. Please remove the duplicate endpoint / "
    "route name from the configuration to ensure that endpoints / routes are created properly."
)


class LimitConfig(msgspec.Struct, frozen=True):
    calls: int
    renewal_period: str
    key: str | None  # as written, echoed by the endpoint API
    period_seconds: float
    description: str  # "N per M unit", as MLflow's 429 body renders it
    tokens: int | None = None  # model tokens per period, reconciled with reported usage
    concurrency: int | None = None  # requests in flight at once
    # whom one counter serves: "endpoint" (everyone), "ip", "consumer" or "header"
    scope: str = "endpoint"
    header: str | None = None  # lower-case request header for scope "header"
    unit: str = ""  # "M unit" of the period, as in "1 minute"


class EndpointConfig(msgspec.Struct, frozen=True):
    name: str
    endpoint_type: EndpointType
    provider: str
    model_name: str | None
    provider_config: Any
    limit: LimitConfig | None
    provider_class: type[Provider]
    # set when the endpoint loads but cannot be served: what every call answers (501)
    unavailable: str | None = None


class Destination(msgspec.Struct, frozen=True):
    name: str
    traffic_percentage: int


class RouteConfig(msgspec.Struct, frozen=True):
    name: str
    task_type: EndpointType
    destinations: tuple[Destination, ...]
    routing_strategy: str = "TRAFFIC_SPLIT"
    limit: LimitConfig | None = None  # on top of each destination's own limit


class GatewayConfig(msgspec.Struct, frozen=True):
    endpoints: tuple[EndpointConfig, ...]
    routes: tuple[RouteConfig, ...]
    text: str
    limits_storage: str | None = None  # redis URI shared by many hosts; None = this host's memory
    limits_failure_mode: str = "open"  # when that storage is unreachable: "open" or "closed"
    # endpoints that load but cannot be served, one line each (logged at start-up, printed by
    # `gateway validate`, fatal with `--strict`)
    warnings: tuple[str, ...] = ()


def load_config(path: str) -> GatewayConfig:
    return parse_config(read_config_text(path), path)


def read_config_text(path: str) -> str:
    """The file's text, or a one-line ConfigError for anything that is not a readable UTF-8
    file of at most `max_config_bytes`: a directory, a FIFO or device (opened without blocking,
    never read), a huge file (never read whole), bytes that are not UTF-8."""
    limit = settings().max_config_bytes
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"{path} cannot be read: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ConfigError(f"{path} cannot be read: Is a directory")
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{path} is not a regular file")
        if info.st_size > limit:
            raise ConfigError(_too_large(path, limit, info.st_size))
        chunks: list[bytes] = []
        left = limit + 1
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as exc:
        raise ConfigError(f"{path} cannot be read: {exc.strerror}") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:  # grew since fstat
        raise ConfigError(_too_large(path, limit))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path} is not UTF-8 text: byte 0x{data[exc.start]:02x} at offset {exc.start}"
        ) from None


def _too_large(path: str, limit: int, size: int | None = None) -> str:
    actual = f"{size} bytes, " if size is not None else ""
    return f"{path} is {actual}over the {limit}-byte limit for a config file (GATEWAY_MAX_CONFIG_BYTES)"


# what a document may expand to through YAML aliases and merge keys (`&a ... *a`, `<<: *a`):
# PyYAML shares an aliased node instead of copying it, so a 600-byte "billion laughs" loads in
# milliseconds and then costs minutes and gigabytes to whatever walks it (str(), msgspec, JSON)
MAX_YAML_NODES = 1_000_000
MAX_YAML_DEPTH = 100


class _BoundedLoader(yaml.SafeLoader):
    """yaml.safe_load's loader, refusing a document before construction when its node graph,
    aliases expanded, has more than MAX_YAML_NODES nodes, nests deeper than MAX_YAML_DEPTH, or
    contains itself."""

    def construct_document(self, node: yaml.Node) -> Any:
        check_yaml_graph(node)
        return super().construct_document(node)


def check_yaml_graph(root: yaml.Node) -> None:
    """One pass over the distinct nodes (iterative, memoised), so its cost is the file's size,
    not the expansion's."""
    expanded: dict[int, tuple[int, int]] = {}  # id(node) -> (nodes, depth) once expanded
    open_nodes: set[int] = set()  # nodes whose children are being expanded
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if not children_done and key in expanded:
            continue
        children = _yaml_children(node)
        if children_done:
            open_nodes.discard(key)
            nodes = 1 + sum(expanded[id(child)][0] for child in children)
            depth = 1 + max((expanded[id(child)][1] for child in children), default=0)
            if nodes > MAX_YAML_NODES:
                raise ConfigError(
                    f"the YAML document expands to more than {MAX_YAML_NODES:,} nodes through its "
                    "aliases (&anchor / *alias)"
                )
            if depth > MAX_YAML_DEPTH:
                raise ConfigError(f"the YAML document nests more than {MAX_YAML_DEPTH} levels deep")
            expanded[key] = (nodes, depth)
            continue
        if key in open_nodes:  # reached again from one of its own descendants
            raise ConfigError("the YAML document contains itself through an alias (&anchor / *alias)")
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in children if id(child) not in expanded)


def _yaml_children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [item for pair in node.value for item in pair]
    return []


def _load_yaml(text: str) -> Any:
    """yaml.safe_load(text), bounded."""
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def parse_config(text: str, path: str = "<config>") -> GatewayConfig:
    try:
        raw = _load_yaml(text)
    except yaml.YAMLError:
        raise ConfigError(f"The file at {path} is not a valid yaml file") from None
    except RecursionError:  # PyYAML composes recursively: a few hundred levels exhaust the stack
        raise ConfigError(f"the YAML document nests more than {MAX_YAML_DEPTH} levels deep") from None
    if not isinstance(raw, dict):
        raise ConfigError(
            "The gateway configuration is invalid: the file must be a mapping with an 'endpoints' list"
        )
    if "endpoints" not in raw:
        raise ConfigError("The gateway configuration is invalid: endpoints: Field required")
    raw_endpoints = raw["endpoints"] or []
    raw_routes = raw.get("routes") or []
    if not isinstance(raw_endpoints, list):
        raise ConfigError("The gateway configuration is invalid: endpoints: Input should be a valid list")
    if not isinstance(raw_routes, list):
        raise ConfigError("The gateway configuration is invalid: routes: Input should be a valid list")
    endpoints = tuple(_endpoint(item, index) for index, item in enumerate(raw_endpoints))
    routes = tuple(_route(item, index) for index, item in enumerate(raw_routes))
    names = [e.name for e in endpoints] + [r.name for r in routes]
    if len(names) != len(set(names)):
        raise ConfigError(DUPLICATE_NAMES)
    by_name = {e.name: e for e in endpoints}
    for route in routes:
        _check_route(route, by_name)
    storage, failure_mode = _limits_storage(raw)
    return GatewayConfig(
        endpoints=endpoints,
        routes=routes,
        text=text,
        limits_storage=storage,
        limits_failure_mode=failure_mode,
        warnings=tuple(
            f"endpoint '{e.name}' ({e.provider}, {e.endpoint_type}) cannot be served and answers 501: "
            f"{e.unavailable}"
            for e in endpoints
            if e.unavailable is not None
        ),
    )


def _where(kind: str, item: Any, index: int) -> str:
    name = item.get("name") if isinstance(item, dict) else None
    return f"{kind} '{name}'" if isinstance(name, str) else f"{kind} #{index + 1}"


def _endpoint(item: Any, index: int) -> EndpointConfig:
    where = _where("endpoint", item, index)
    try:
        return _parse_endpoint(item)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _parse_endpoint(item: Any) -> EndpointConfig:
    if not isinstance(item, dict):
        raise ConfigError("an endpoint must be a mapping")
    if "route_type" in item:
        raise ConfigError(
            "route_type: The 'route_type' configuration key is not supported in the configuration file. "
            "Use 'endpoint_type' instead."
        )
    name = item.get("name")
    if not isinstance(name, str):
        raise ConfigError("name: Field required (a string)")
    if not NAME_PATTERN.fullmatch(name):
        raise ConfigError(
            "name: The route name provided contains disallowed characters for a url endpoint. "
            f"'{name}' is invalid. Names cannot contain spaces or any non alphanumeric characters "
            "other than hyphen, underscore and dot."
        )
    endpoint_type = _endpoint_type(item.get("endpoint_type"), "endpoint_type")
    model = item.get("model")
    if not isinstance(model, dict):
        raise ConfigError("model: Field required (a mapping with provider, name and config)")
    provider = _provider(model.get("provider"))
    model_name = model.get("name")
    if model_name is not None and not isinstance(model_name, str):
        model_name = str(model_name)
    cls = provider_class(provider)
    config = _provider_config(cls, provider, model.get("config"))
    try:
        cls.check_config(config, model_name, endpoint_type)
    except ConfigError as exc:
        raise ConfigError(f"model.config: {exc}") from None
    # MLflow loads endpoints its providers cannot serve and fails them per call: so do we
    unavailable = cls.unavailable(config, model_name, endpoint_type)
    return EndpointConfig(
        name=name,
        endpoint_type=endpoint_type,
        provider=provider,
        model_name=model_name,
        provider_config=config,
        limit=_limit(item.get("limit")),
        provider_class=cls,
        unavailable=unavailable,
    )


def _endpoint_type(value: Any, field: str) -> EndpointType:
    if value is None:
        raise ConfigError(f"{field}: Field required")
    for endpoint_type in ENDPOINT_TYPES:
        if value == endpoint_type:
            return endpoint_type
    raise ConfigError(f"{field}: The route_type '{value}' is not supported.")


def _provider(value: Any) -> str:
    if value is None:
        raise ConfigError("model.provider: Field required")
    try:
        provider = canonical_name(value)
    except ConfigError as exc:
        raise ConfigError(f"model.provider: {exc}") from None
    allowed = os.environ.get("MLFLOW_GATEWAY_ALLOWED_PROVIDERS")
    if allowed:
        names = {ALLOWED_ALIASES.get(n, n) for n in (canonical_name_or_self(p) for p in allowed.split(","))}
        if ALLOWED_ALIASES.get(provider, provider) not in names:
            raise ConfigError(
                f"model.provider: Provider '{provider}' is not allowed by the current gateway provider policy."
            )
    return provider


def canonical_name_or_self(value: str) -> str:
    value = value.strip()
    try:
        return canonical_name(value)
    except ConfigError:
        return value.lower()


def _provider_config(cls: type[Provider], provider: str, raw: Any) -> Any:
    if raw is None and is_plugin(provider):
        raw = {}  # plugin providers may omit `config` (spec §8)
    if raw is None:
        raise ConfigError(
            "model.config: A config must be supplied when setting a provider. "
            f"The provider entry for {provider} is incorrect."
        )
    if not isinstance(raw, dict):
        raise ConfigError("model.config: Input should be a valid mapping")
    resolved = dict(raw)
    for field in cls.secret_fields:
        if field in resolved:
            try:
                resolved[field] = resolve_secret(resolved[field])
            except ConfigError as exc:
                raise ConfigError(f"model.config.{field}: {exc}") from None
    try:
        return msgspec.convert(resolved, cls.config_type, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"model.config{_msgspec_path(str(exc))}") from None


def _msgspec_path(message: str) -> str:
    """'Object missing required field `x`' -> '.x: Field required'; '... - at `$.a`' -> '.a: ...'."""
    missing = re.match(r"Object missing required field `(\w+)`(?: - at `\$(.*)`)?", message)
    if missing:
        return f"{missing.group(2) or ''}.{missing.group(1)}: Field required"
    located = re.match(r"(.*) - at `\$(.*)`", message)
    if located:
        return f"{located.group(2)}: {located.group(1)}"
    return f": {message}"


def _limit(raw: Any) -> LimitConfig | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ConfigError(f"limit: {LIMIT_ERROR}")
    calls, period, key = raw.get("calls"), raw.get("renewal_period"), raw.get("key")
    match = PERIOD_PATTERN.fullmatch(period) if isinstance(period, str) else None
    if isinstance(calls, bool) or not isinstance(calls, int) or calls <= 0 or match is None:
        raise ConfigError(f"limit: {LIMIT_ERROR}")
    multiplier = int(match.group(1) or 1)
    unit = match.group(2).lower()
    if multiplier <= 0:
        raise ConfigError(f"limit: {LIMIT_ERROR}")
    if key is not None and not isinstance(key, str):
        raise ConfigError("limit.key: Input should be a valid string")
    scope, header = _limit_scope(key)
    return LimitConfig(
        calls=calls,
        renewal_period=str(period),
        key=key,
        period_seconds=float(multiplier * PERIOD_SECONDS[unit]),
        description=f"{calls} per {multiplier} {unit}",
        tokens=_positive(raw.get("tokens"), "limit.tokens"),
        concurrency=_positive(raw.get("concurrency"), "limit.concurrency"),
        scope=scope,
        header=header,
        unit=f"{multiplier} {unit}",
    )


# `limit.key` values: MLflow accepts any string and ignores it; here it picks whom a counter serves
LIMIT_SCOPES = {
    "endpoint": "endpoint",
    "global": "endpoint",
    "ip": "ip",
    "client_ip": "ip",
    "remote_address": "ip",
    "consumer": "consumer",
    "user": "consumer",
}


def _limit_scope(key: str | None) -> tuple[str, str | None]:
    if key is None or not key.strip():
        return "endpoint", None
    word = key.strip()
    if word.lower().startswith("header:"):
        name = word[len("header:") :].strip()
        if name and re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", name):
            return "header", name.lower()
        raise ConfigError(f"limit.key: '{key}' names no valid header; use header:<Name>")
    if word.lower() in LIMIT_SCOPES:
        return LIMIT_SCOPES[word.lower()], None
    # MLflow accepts any string here and ignores it: a drop-in config must still load
    logger.warning(
        "limit.key '%s' is not one of endpoint, ip, consumer, header:<Name>; counting per endpoint",
        key,
    )
    return "endpoint", None


def _positive(value: Any, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{field}: Input should be a positive integer")
    return value


STORAGE_ENV = "MLFLOW_GATEWAY_RATE_LIMITS_STORAGE_URI"
STORAGE_SCHEMES = ("redis://", "rediss://", "unix://")


def _limits_storage(raw: dict[str, Any]) -> tuple[str | None, str]:
    """`limits_storage` (else MLflow's env variable): a Redis URI shares limits between hosts;
    unset or memory:// keeps them in this host's shared memory."""
    uri = raw.get("limits_storage")
    source = "limits_storage"
    if uri is None:
        uri, source = os.environ.get(STORAGE_ENV) or None, STORAGE_ENV
    if uri is not None and (not isinstance(uri, str) or not uri.strip()):
        raise ConfigError(f"{source}: Input should be a URI string")
    if uri is not None and uri.strip().startswith("memory://"):
        uri = None
    if uri is not None and not uri.strip().startswith(STORAGE_SCHEMES):
        # name the scheme only: the rest of a URI can hold a password, never echo it
        scheme = uri.strip().split("://", 1)[0] if "://" in uri else ""
        shown = f"'{scheme}://'" if re.fullmatch(r"[A-Za-z][A-Za-z0-9+.\-]{0,20}", scheme) else "this value"
        raise ConfigError(
            f"{source}: storage {shown} is not supported; use redis://, rediss:// or unix:// "
            "(Redis, shared by every host) or memory:// (this host's workers)"
        )
    mode = raw.get("limits_failure_mode", "open")
    if mode not in ("open", "closed"):
        raise ConfigError("limits_failure_mode: Input should be 'open' or 'closed'")
    return (uri.strip() if uri else None), mode


def _route(item: Any, index: int) -> RouteConfig:
    where = _where("route", item, index)
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: a route must be a mapping")
    name = item.get("name")
    if not isinstance(name, str):
        raise ConfigError(f"{where}: name: Field required (a string)")
    try:
        task_type = _endpoint_type(item.get("task_type"), "task_type")
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    strategy = item.get("routing_strategy", "TRAFFIC_SPLIT")
    if strategy != "TRAFFIC_SPLIT":
        raise ConfigError(f"{where}: routing_strategy: Input should be 'TRAFFIC_SPLIT'")
    raw_destinations = item.get("destinations")
    if not isinstance(raw_destinations, list) or not raw_destinations:
        raise ConfigError(f"{where}: destinations: Field required (a non-empty list)")
    destinations = []
    for dest in raw_destinations:
        if not isinstance(dest, dict) or not isinstance(dest.get("name"), str):
            raise ConfigError(f"{where}: destinations: each needs a name and a traffic_percentage")
        percentage = dest.get("traffic_percentage")
        if isinstance(percentage, bool) or not isinstance(percentage, int):
            raise ConfigError(f"{where}: destinations.traffic_percentage: Input should be a valid integer")
        destinations.append(Destination(name=dest["name"], traffic_percentage=percentage))
    try:
        limit = _limit(item.get("limit"))
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return RouteConfig(
        name=name,
        task_type=task_type,
        destinations=tuple(destinations),
        routing_strategy=strategy,
        limit=limit,
    )


def _check_route(route: RouteConfig, endpoints: dict[str, EndpointConfig]) -> None:
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

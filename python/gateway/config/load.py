"""The YAML config (MLflow AI Gateway schema, spec §2) -> validated, immutable structs.

Everything a worker needs is checked here, secrets included, so a config that loads is a
config that serves. Error messages keep MLflow's wording and are prefixed with the endpoint or
route and field they concern. The environment is read only through the `Settings` passed in
(by default the process's, read once).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from gateway.config.aliases import check_aliases
from gateway.config.auth import parse_auth, parse_database_url
from gateway.config.budgets import parse_budgets
from gateway.config.endpoints import parse_endpoint
from gateway.config.files import MAX_YAML_DEPTH, load_yaml, read_config_text
from gateway.config.model import GatewayConfig
from gateway.config.routes import check_route, parse_route
from gateway.errors import ConfigError
from gateway.settings import Settings, settings

DUPLICATE_NAMES = (
    "Duplicate names found in endpoint / route configurations. Please remove the duplicate endpoint / "
    "route name from the configuration to ensure that endpoints / routes are created properly."
)


def load_config(path: str, env: Settings | None = None) -> GatewayConfig:
    return parse_config(read_config_text(path), path, env)


def parse_config(text: str, path: str = "<config>", env: Settings | None = None) -> GatewayConfig:
    env = env or settings()
    try:
        raw = load_yaml(text)
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
    endpoints = tuple(
        parse_endpoint(item, index, env.allowed_providers) for index, item in enumerate(raw_endpoints)
    )
    routes = tuple(parse_route(item, index) for index, item in enumerate(raw_routes))
    names = [e.name for e in endpoints] + [r.name for r in routes]
    if len(names) != len(set(names)):
        raise ConfigError(DUPLICATE_NAMES)
    by_name = {e.name: e for e in endpoints}
    for route in routes:
        check_route(route, by_name)
    check_aliases([*((e.name, e.aliases) for e in endpoints), *((r.name, ()) for r in routes)])
    storage, failure_mode = _limits_storage(raw, env)
    auth = parse_auth(raw.get("auth"))
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
        auth=auth,
        database_url=parse_database_url(raw.get("database_url"), env, auth),
        log_payloads=_log_payloads(raw.get("log_payloads", False)),
        budgets=parse_budgets(raw),
    )


def _log_payloads(value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigError("log_payloads: Input should be a valid boolean (true or false)")
    return value


STORAGE_ENV = "MLFLOW_GATEWAY_RATE_LIMITS_STORAGE_URI"
STORAGE_SCHEMES = ("redis://", "rediss://", "unix://")


def _limits_storage(raw: dict[str, Any], env: Settings) -> tuple[str | None, str]:
    """`limits_storage` (else MLflow's env variable): a Redis URI shares limits between hosts;
    unset or memory:// keeps them in this host's shared memory."""
    uri = raw.get("limits_storage")
    source = "limits_storage"
    if uri is None:
        uri, source = env.limits_storage_uri or None, STORAGE_ENV
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

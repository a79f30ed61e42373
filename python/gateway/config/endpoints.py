"""Endpoints (`endpoints:`): name, type, provider and its config (secrets resolved), limit."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from gateway.config.aliases import parse_aliases
from gateway.config.limits import parse_limit
from gateway.config.model import EndpointConfig
from gateway.config.resilience import parse_resilience
from gateway.errors import ConfigError
from gateway.providers import ALLOWED_ALIASES, canonical_name, is_plugin, provider_class
from gateway.providers.base import Provider
from gateway.secrets import resolve_secret
from gateway.types import ENDPOINT_TYPES, EndpointType
from gateway.usage.pricing import parse_pricing

NAME_PATTERN = re.compile(r"^[a-zA-Z0-9_\-\.]+$")


def where(kind: str, item: Any, index: int) -> str:
    name = item.get("name") if isinstance(item, dict) else None
    return f"{kind} '{name}'" if isinstance(name, str) else f"{kind} #{index + 1}"


def parse_endpoint(item: Any, index: int, allowed_providers: str = "") -> EndpointConfig:
    location = where("endpoint", item, index)
    try:
        return _parse_endpoint(item, allowed_providers)
    except ConfigError as exc:
        raise ConfigError(f"{location}: {exc}") from None


def _parse_endpoint(item: Any, allowed_providers: str) -> EndpointConfig:
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
    endpoint_type = endpoint_type_of(item.get("endpoint_type"), "endpoint_type")
    model = item.get("model")
    if not isinstance(model, dict):
        raise ConfigError("model: Field required (a mapping with provider, name and config)")
    provider = _provider(model.get("provider"), allowed_providers)
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
        limit=parse_limit(item.get("limit")),
        unavailable=unavailable,
        aliases=parse_aliases(item.get("aliases")),
        resilience=parse_resilience(item),  # retries, timeouts, circuit_breaker, health_check
        pricing=parse_pricing(model.get("pricing")),
    )


def endpoint_type_of(value: Any, field: str) -> EndpointType:
    if value is None:
        raise ConfigError(f"{field}: Field required")
    for endpoint_type in ENDPOINT_TYPES:
        if value == endpoint_type:
            return endpoint_type
    raise ConfigError(f"{field}: The route_type '{value}' is not supported.")


def _provider(value: Any, allowed: str) -> str:
    if value is None:
        raise ConfigError("model.provider: Field required")
    try:
        provider = canonical_name(value)
    except ConfigError as exc:
        raise ConfigError(f"model.provider: {exc}") from None
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

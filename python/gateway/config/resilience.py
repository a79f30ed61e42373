"""Resilience blocks of an endpoint (`retries:`, `timeouts:`, `circuit_breaker:`, `health_check:`)
and of a route (`circuit_breaker:`). Each is optional; an endpoint without any keeps MLflow's
behaviour: one upstream call, `MLFLOW_GATEWAY_ROUTE_TIMEOUT_SECONDS` as its timeout.

The data (frozen structs) lives here with its parser so config/model.py stays a list of fields.
"""

from __future__ import annotations

import math
from typing import Any, TypeVar

import msgspec

from gateway.errors import ConfigError

# what `retries.on` may name: a status class, one status, or a transport failure
RETRY_CLASSES = ("429", "5xx", "connect", "timeout")
T = TypeVar("T")
DEFAULT_RETRY_ON = ("429", "5xx", "connect", "timeout")


class RetryConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    attempts: int = 3  # tries of this endpoint per request, the first included
    on: tuple[str, ...] = DEFAULT_RETRY_ON  # classes ("429", "5xx", "connect", "timeout") or statuses
    backoff_seconds: float = 0.5  # first back-off; doubles each retry, jittered
    max_backoff_seconds: float = 8.0  # cap of one back-off (a longer Retry-After is still honoured)
    total_seconds: float = 30.0  # no retry starts later than this after the first attempt
    budget_ratio: float = 0.2  # retries earned per first attempt (host-wide token bucket)
    after_headers: bool = False  # retry answers cut (or unreadable) after the upstream's headers


class TimeoutConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """None: the route timeout (`MLFLOW_GATEWAY_ROUTE_TIMEOUT_SECONDS`) as today."""

    connect_seconds: float | None = None  # TCP + TLS
    first_byte_seconds: float | None = None  # request sent -> the answer's headers
    between_chunks_seconds: float | None = None  # longest silence inside a stream
    total_seconds: float | None = None  # a whole answer; for a stream, its whole duration


class BreakerConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    failures: int  # this many failures within `window_seconds` open the breaker
    cooldown_seconds: float  # open this long, then one probe request (half-open)
    window_seconds: float = 60.0
    # a 429/503 whose Retry-After asks at least this long opens the breaker for that long
    retry_after_seconds: float = 30.0


class HealthCheckConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    url: str  # probed with GET, no credential sent; any answer below 500 is healthy
    interval_seconds: float = 10.0
    timeout_seconds: float = 2.0
    unhealthy_after: int = 2  # consecutive failed probes before the endpoint is skipped


class Resilience(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    retries: RetryConfig | None = None
    timeouts: TimeoutConfig | None = None
    circuit_breaker: BreakerConfig | None = None
    health_check: HealthCheckConfig | None = None


RESILIENCE_KEYS = ("retries", "timeouts", "circuit_breaker", "health_check")


def parse_resilience(item: dict[str, Any]) -> Resilience | None:
    """The endpoint's resilience blocks; None when it has none (the fast path)."""
    if not any(item.get(key) is not None for key in RESILIENCE_KEYS):
        return None
    return Resilience(
        retries=_retries(item.get("retries")),
        timeouts=_struct(TimeoutConfig, item.get("timeouts"), "timeouts"),
        circuit_breaker=parse_breaker(item.get("circuit_breaker")),
        health_check=_struct(HealthCheckConfig, item.get("health_check"), "health_check"),
    )


def parse_breaker(raw: Any) -> BreakerConfig | None:
    config = _struct(BreakerConfig, raw, "circuit_breaker")
    if config is not None and config.failures < 1:
        raise ConfigError("circuit_breaker.failures: Input should be at least 1")
    return config


def _retries(raw: Any) -> RetryConfig | None:
    if isinstance(raw, dict):
        # YAML 1.1 (PyYAML, MLflow's loader) reads a bare `on` key as the boolean true
        raw = {("on" if key is True or key == "retry_on" else key): value for key, value in raw.items()}
        if "on" in raw:
            raw["on"] = _retry_on(raw["on"])
    config = _struct(RetryConfig, raw, "retries")
    if config is None:
        return None
    if config.attempts < 1:
        raise ConfigError("retries.attempts: Input should be at least 1")
    if not 0 <= config.budget_ratio <= 10:
        raise ConfigError("retries.budget_ratio: Input should be between 0 and 10")
    return config


def _retry_on(raw: Any) -> list[str]:
    if not isinstance(raw, list):
        raise ConfigError("retries.on: Input should be a list such as [429, 5xx, connect, timeout]")
    names = []
    for value in raw:
        name = str(value).lower()
        if name not in RETRY_CLASSES and not (name.isdigit() and 400 <= int(name) <= 599):
            raise ConfigError(
                f"retries.on: '{value}' is not one of 429, 5xx, connect, timeout or an HTTP status 400-599"
            )
        names.append(name)
    return names


def _struct(cls: type[T], raw: Any, key: str) -> T | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ConfigError(f"{key}: Input should be a valid mapping")
    try:
        value = msgspec.convert(raw, cls, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{key}: {_located(str(exc))}") from None
    for field in msgspec.structs.fields(cls):  # type: ignore[arg-type]
        number = getattr(value, field.name)
        if isinstance(number, float) and (not math.isfinite(number) or number < 0):
            raise ConfigError(f"{key}.{field.name}: Input should be a non-negative number")
    return value


def _located(message: str) -> str:
    """msgspec's '... - at `$.x`' -> 'x: ...'."""
    if " - at `$." in message:
        text, _, path = message.rpartition(" - at `$.")
        return f"{path.rstrip('`')}: {text}"
    return message

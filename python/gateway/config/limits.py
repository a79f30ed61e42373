"""`limit:` blocks (MLflow's `calls` / `renewal_period`, plus `key`, `tokens`, `concurrency`)."""

from __future__ import annotations

import logging
import re
from typing import Any

from gateway.config.model import LimitConfig
from gateway.errors import ConfigError

logger = logging.getLogger("gateway.config")
PERIOD_PATTERN = re.compile(r"^\s*(\d+)?\s*(second|minute|hour|day|month|year)s?\s*$", re.IGNORECASE)
# the `limits` library's granularities (a month is 30 days, a year 12 of them)
PERIOD_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "month": 2592000, "year": 31104000}
LIMIT_ERROR = (
    "Failed to parse the rate limit configuration.Please make sure limit.calls is a positive number "
    "andlimit.renewal_period is a right granularity"
)


def parse_limit(raw: Any) -> LimitConfig | None:
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

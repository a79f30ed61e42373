"""The configuration as immutable data: what each endpoint, route and limit is. It names a
provider by its canonical name and imports no provider (the registry validates the names when
the config loads, config/load.py)."""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.budgets.policy import BudgetsConfig
from gateway.config.resilience import BreakerConfig, Resilience
from gateway.types import EndpointType
from gateway.usage.pricing import Price


class JwtConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Signed bearer JWTs accepted as consumer credentials."""

    issuer: str
    audience: str | None = None
    jwks_url: str | None = None  # fetched off the event loop and cached
    jwks_file: str | None = None
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    consumer_claim: str = "sub"  # the consumer's identity
    team_claim: str | None = None  # the consumer's team
    endpoints_claim: str | None = None  # a list of endpoint/route globs the token allows
    leeway_seconds: float = 30.0


class AuthConfig(msgspec.Struct, frozen=True):
    admin_key: str | None = None  # resolved secret; None: the admin API is off
    require_keys: bool = False  # False: MLflow's open gateway (a valid gateway key still applies)
    ip_allow: tuple[str, ...] = ()  # CIDRs; empty: every address
    ip_deny: tuple[str, ...] = ()  # CIDRs; deny wins
    trusted_proxies: tuple[str, ...] = ()  # CIDRs whose X-Forwarded-For is believed
    jwt: JwtConfig | None = None

    @property
    def enabled(self) -> bool:
        """Whether anything restricts who may call."""
        return bool(self.require_keys or self.ip_allow or self.ip_deny or self.jwt)


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
    # set when the endpoint loads but cannot be served: what every call answers (501)
    unavailable: str | None = None
    # other model names (exact, or glob patterns) that reach this endpoint (config/aliases.py)
    aliases: tuple[str, ...] = ()
    # retries, timeouts, circuit breaker, health check (config/resilience.py); None: none
    resilience: Resilience | None = None
    # `model.pricing`: USD per million tokens, wins over the shipped price table
    pricing: Price | None = None


class Destination(msgspec.Struct, frozen=True):
    name: str
    traffic_percentage: int = 0  # TRAFFIC_SPLIT only
    tier: int = 0  # FALLBACK: tried in tier order; defaults to the position in the list
    weight: int = 1  # FALLBACK: share within its tier (balance: weighted)


class RouteConfig(msgspec.Struct, frozen=True):
    name: str
    task_type: EndpointType
    destinations: tuple[Destination, ...]
    routing_strategy: str = "TRAFFIC_SPLIT"  # or "FALLBACK"
    limit: LimitConfig | None = None  # on top of each destination's own limit
    balance: str = "weighted"  # FALLBACK, inside a tier: "weighted", "least_busy" or "latency"
    circuit_breaker: BreakerConfig | None = None  # for destinations without their own


class GatewayConfig(msgspec.Struct, frozen=True):
    endpoints: tuple[EndpointConfig, ...]
    routes: tuple[RouteConfig, ...]
    text: str
    limits_storage: str | None = None  # redis URI shared by many hosts; None = this host's memory
    limits_failure_mode: str = "open"  # when that storage is unreachable: "open" or "closed"
    # endpoints that load but cannot be served, one line each (logged at start-up, printed by
    # `gateway validate`, fatal with `--strict`)
    warnings: tuple[str, ...] = ()
    # who may call: consumer keys, JWTs, IP lists, the admin API (config/auth.py)
    auth: AuthConfig = AuthConfig()
    # where consumer keys live: SQLAlchemy URL (SQLite by default, PostgreSQL for several hosts);
    # None when nothing needs a database (no admin key, keys not required)
    database_url: str | None = None
    # the access log carries each request's messages/prompt and the answer text (off: never)
    log_payloads: bool = False
    # USD budgets: global, teams, each endpoint's and route's, alerts (config/budgets.py)
    budgets: BudgetsConfig = BudgetsConfig()

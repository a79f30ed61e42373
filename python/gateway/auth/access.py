"""The access rules of one configuration (`auth:`), built once per config load and used by the
request pipeline's authenticate and authorize phases; and the per-consumer limiters.

Credentials are taken where each SDK sends them: `Authorization: Bearer ...` (the openai SDK,
MLflow's client with MLFLOW_TRACKING_TOKEN, JWTs) or `x-api-key` (the anthropic SDK).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from gateway.auth.network import IpPolicy, TrustedProxies, client_address
from gateway.config import AuthConfig, GatewayConfig, parse_limit
from gateway.errors import ConfigError, Forbidden, Unauthorized
from gateway.types import Scope

if TYPE_CHECKING:
    from gateway.auth.jwt import JwtVerifier
    from gateway.control.limits import Limiter
    from gateway.store import KeyRecord

KEY_PREFIX = "gw-"
KEY_REQUIRED = (
    "A gateway key is required: send it as `Authorization: Bearer gw-...` (or in the `x-api-key` header)."
)
ADDRESS_REFUSED = "Requests from this address are not allowed."


class Access:
    __slots__ = ("config", "ip_policy", "jwt", "require_keys", "trusted")

    def __init__(self, config: AuthConfig) -> None:
        self.config = config
        self.require_keys = config.require_keys
        self.trusted = TrustedProxies(config.trusted_proxies)
        restricted = config.ip_allow or config.ip_deny
        self.ip_policy = IpPolicy(config.ip_allow, config.ip_deny) if restricted else None
        self.jwt: JwtVerifier | None = None
        if config.jwt is not None:  # PyJWT and cryptography load only where JWTs are accepted
            from gateway.auth.jwt import JwtVerifier

            self.jwt = JwtVerifier(config.jwt)

    def check_address(self, scope: Scope) -> None:
        if self.ip_policy is not None and not self.ip_policy.permits(client_address(scope, self.trusted)):
            raise Forbidden(ADDRESS_REFUSED)


def build_access(config: GatewayConfig, previous: Access | None) -> Access:
    """A reload keeps the previous rules (and the JWKS their verifier fetched) when `auth:` did
    not change."""
    if previous is not None and previous.config == config.auth:
        return previous
    return Access(config.auth)


def credential(scope: Scope) -> str | None:
    """The bearer token or x-api-key a client presented, if any."""
    api_key: str | None = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            text: str = value.decode("latin-1").strip()
            if text[:7].lower() == "bearer ":
                token = text[7:].strip()
                if token:
                    return token
        elif name == b"x-api-key":
            api_key = value.decode("latin-1").strip() or None
    return api_key


def is_gateway_key(token: str) -> bool:
    return token.startswith(KEY_PREFIX)


def is_jwt(access: Access, token: str) -> bool:
    if access.jwt is None:
        return False
    from gateway.auth.jwt import looks_like_jwt

    return looks_like_jwt(token)


def refuse_missing(access: Access) -> None:
    if access.require_keys:
        raise Unauthorized(KEY_REQUIRED)


def unknown_key() -> Unauthorized:
    return Unauthorized("Invalid gateway key: it is unknown or has been revoked.")


def expired_key() -> Unauthorized:
    return Unauthorized("This gateway key has expired.")


def allows(patterns: tuple[str, ...], name: str) -> bool:
    """An empty allowlist allows every endpoint; otherwise a name must match one glob."""
    return not patterns or any(_matcher(pattern)(name) for pattern in patterns)


@lru_cache(maxsize=4096)
def _matcher(pattern: str) -> Callable[[str], Any]:
    return re.compile(fnmatch.translate(pattern)).match


def not_allowed(name: str) -> Forbidden:
    return Forbidden(f"This consumer may not call '{name}': it is outside its allowlist.")


class KeyLimiters:
    """Each consumer key's own `limit`, as a limiter on the same engine as the endpoints' (this
    host's shared memory or Redis), built once per key revision and storage."""

    def __init__(self) -> None:
        self._limiters: dict[str, tuple[tuple[Any, ...], Limiter | None]] = {}

    def get(self, record: KeyRecord, config: GatewayConfig) -> Limiter | None:
        if not record.limit:
            return None
        signature = (record.revision, config.limits_storage, config.limits_failure_mode)
        known = self._limiters.get(record.id)
        if known is not None and known[0] == signature:
            return known[1]
        from gateway.control.limits import build_limiter

        try:
            limit = parse_limit(record.limit)
        except ConfigError:
            limit = None  # validated when stored; a bad one never blocks the key's calls
        previous = known[1] if known is not None else None
        limiter = build_limiter(f"key|{record.id}", limit, config, previous) if limit else None
        self._limiters[record.id] = (signature, limiter)
        return limiter

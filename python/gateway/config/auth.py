"""`auth:` (who may call) and `database_url` (where consumer keys live) at the top of the config.

    auth:
      admin_key: $GATEWAY_ADMIN_KEY      # the admin API's bearer secret ($VAR, key file or literal)
      require_keys: false                # true: every invocation needs a gateway key or a JWT
      ip_allow: [10.0.0.0/8]             # CIDRs (IPv4 and IPv6); empty: every address
      ip_deny: [10.6.6.0/24]             # deny wins over allow
      trusted_proxies: [127.0.0.1/32]    # only their X-Forwarded-For is believed
      jwt: {issuer: ..., audience: ..., jwks_url: ... | jwks_file: ..., team_claim: team}
    database_url: postgresql://...        # else GATEWAY_DATABASE_URL, else SQLite in the state dir

With no `auth:` block the gateway is MLflow's: open, and nothing opens a database.
"""

from __future__ import annotations

import ipaddress
import os
from typing import Any

import msgspec

from gateway.config.model import AuthConfig, JwtConfig
from gateway.errors import ConfigError
from gateway.secrets import resolve_secret
from gateway.settings import Settings

AUTH_KEYS = frozenset(("admin_key", "require_keys", "ip_allow", "ip_deny", "trusted_proxies", "jwt"))
DATABASE_SCHEMES = ("sqlite", "postgresql", "postgres")


def parse_auth(raw: Any) -> AuthConfig:
    if raw is None:
        return AuthConfig()
    if not isinstance(raw, dict):
        raise ConfigError("auth: Input should be a mapping")
    unknown = sorted(set(raw) - AUTH_KEYS)
    if unknown:  # a typo here would silently open the gateway: refuse it
        raise ConfigError(f"auth: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(AUTH_KEYS))}")
    admin_key = raw.get("admin_key")
    if admin_key is not None:
        try:
            admin_key = resolve_secret(admin_key)
        except ConfigError as exc:
            raise ConfigError(f"auth.admin_key: {exc}") from None
        if not isinstance(admin_key, str) or len(admin_key) < 16:
            raise ConfigError("auth.admin_key: must be a secret of at least 16 characters")
    require_keys = raw.get("require_keys", False)
    if not isinstance(require_keys, bool):
        raise ConfigError("auth.require_keys: Input should be a valid boolean")
    return AuthConfig(
        admin_key=admin_key,
        require_keys=require_keys,
        ip_allow=_networks(raw.get("ip_allow"), "auth.ip_allow"),
        ip_deny=_networks(raw.get("ip_deny"), "auth.ip_deny"),
        trusted_proxies=_networks(raw.get("trusted_proxies"), "auth.trusted_proxies"),
        jwt=_jwt(raw.get("jwt")),
    )


def _networks(raw: Any, field: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        raise ConfigError(f"{field}: Input should be a list of CIDRs")
    networks = []
    for item in raw:
        try:
            networks.append(str(ipaddress.ip_network(str(item).strip(), strict=False)))
        except ValueError:
            raise ConfigError(f"{field}: '{item}' is not an IPv4 or IPv6 address or CIDR") from None
    return tuple(networks)


def _jwt(raw: Any) -> JwtConfig | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ConfigError("auth.jwt: Input should be a mapping")
    data = dict(raw)
    if isinstance(data.get("algorithms"), list):
        data["algorithms"] = tuple(data["algorithms"])
    try:
        jwt: JwtConfig = msgspec.convert(data, JwtConfig, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"auth.jwt: {exc}") from None
    if (jwt.jwks_url is None) == (jwt.jwks_file is None):
        raise ConfigError("auth.jwt: give exactly one of jwks_url or jwks_file")
    if any(alg.upper().startswith("HS") or alg.lower() == "none" for alg in jwt.algorithms):
        raise ConfigError(
            "auth.jwt.algorithms: only public-key algorithms (RS*, PS*, ES*, EdDSA) are accepted"
        )
    return jwt


def parse_database_url(raw: Any, env: Settings, auth: AuthConfig) -> str | None:
    """The config's `database_url`, else GATEWAY_DATABASE_URL, else (only when something needs
    keys: an admin key, or keys required) SQLite in the state directory."""
    url = raw if raw is not None else (env.database_url or None)
    if url is not None:
        if not isinstance(url, str) or not url.strip():
            raise ConfigError("database_url: Input should be a database URL")
        url = resolve_secret(url.strip()) if url.strip().startswith("$") else url.strip()
        scheme = url.split(":", 1)[0].split("+", 1)[0]
        if scheme not in DATABASE_SCHEMES:
            raise ConfigError(
                "database_url: use sqlite:///PATH (one host) or postgresql://... (several hosts)"
            )  # never echo the URL: it can hold a password
        return url
    if auth.admin_key is None and not auth.require_keys:
        return None
    return f"sqlite:///{os.path.join(env.state_dir or default_state_dir(), 'gateway.db')}"


def default_state_dir() -> str:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "gateway")

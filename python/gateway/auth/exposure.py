"""`gateway start` on an address other hosts can reach, with nothing restricting who may call:
one warning line at start-up, since anyone who reaches the port spends the provider keys."""

from __future__ import annotations

import ipaddress
import logging

from gateway.config.model import AuthConfig

logger = logging.getLogger("gateway.auth")


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 (or IPv4-mapped loopback) and `localhost`; "" (every interface) and
    any other name or address are not."""
    host = host.strip().strip("[]").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def exposure_warning(host: str, port: int, auth: AuthConfig) -> str | None:
    """The warning for an open gateway on a reachable address, None when there is none."""
    if is_loopback(host) or auth.enabled or auth.admin_key is not None:
        return None
    where = f"[{host}]:{port}" if ":" in host else f"{host or '0.0.0.0'}:{port}"
    return (
        f"Listening on {where} with no access control: anyone who can reach this port can call "
        "every endpoint and spend its provider keys. Restrict it with an `auth:` block in the config "
        "(require_keys: true, jwt: ..., or ip_allow: [CIDR, ...]) or listen on 127.0.0.1 (--host)."
    )


def warn_if_exposed(host: str, port: int, auth: AuthConfig) -> bool:
    """Logs the warning (one line) when there is one; whether it did."""
    warning = exposure_warning(host, port, auth)
    if warning is not None:
        logger.warning("%s", warning)
    return warning is not None

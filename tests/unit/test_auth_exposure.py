"""auth/exposure.py: the start-up warning for an open gateway on a reachable address."""

from __future__ import annotations

import logging

import pytest

from gateway.auth.exposure import exposure_warning, is_loopback, warn_if_exposed
from gateway.config.auth import parse_auth
from gateway.config.model import AuthConfig, JwtConfig

OPEN = AuthConfig()


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.0.0.53",
        "127.255.255.254",
        "::1",
        "[::1]",
        "localhost",
        "LOCALHOST",
        "localhost.",
        "::ffff:127.0.0.1",
    ],
)
def test_loopback_hosts(host):
    assert is_loopback(host)
    assert exposure_warning(host, 5000, OPEN) is None


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "::", "", "10.0.0.5", "192.168.1.2", "2001:db8::1", "gateway.internal", "128.0.0.1"]
)
def test_reachable_hosts_warn_when_open(host):
    assert not is_loopback(host)
    warning = exposure_warning(host, 5000, OPEN)
    assert warning is not None and "\n" not in warning
    assert "anyone who can reach this port" in warning and "provider keys" in warning
    assert "auth:" in warning and "127.0.0.1" in warning


def test_the_address_is_named():
    assert "Listening on 0.0.0.0:8080 " in (exposure_warning("0.0.0.0", 8080, OPEN) or "")
    assert "Listening on [::]:8080 " in (exposure_warning("::", 8080, OPEN) or "")
    assert "Listening on 0.0.0.0:8080 " in (exposure_warning("", 8080, OPEN) or "")


@pytest.mark.parametrize(
    "auth",
    [
        AuthConfig(require_keys=True),
        AuthConfig(ip_allow=("10.0.0.0/8",)),
        AuthConfig(ip_deny=("10.6.6.0/24",)),
        AuthConfig(jwt=JwtConfig(issuer="https://idp", jwks_url="https://idp/certs")),
        AuthConfig(admin_key="an-admin-key-of-enough-length"),
    ],
)
def test_any_restriction_silences_it(auth):
    assert exposure_warning("0.0.0.0", 5000, auth) is None


def test_trusted_proxies_alone_restrict_nothing():
    assert exposure_warning("0.0.0.0", 5000, parse_auth({"trusted_proxies": ["10.0.0.1"]})) is not None


def test_logged_once(caplog):
    caplog.set_level(logging.WARNING, logger="gateway.auth")
    assert warn_if_exposed("0.0.0.0", 5000, OPEN)
    assert not warn_if_exposed("127.0.0.1", 5000, OPEN)
    assert [record.levelno for record in caplog.records] == [logging.WARNING]

"""`gateway start` on a non-loopback address with an open config logs one warning line; an
`auth:` block that restricts access, or a loopback address, logs none."""

from __future__ import annotations

import httpx

WARNING = "with no access control: anyone who can reach this port can call every endpoint"

OPEN_CONFIG = """
endpoints:
  - name: chat
    endpoint_type: llm/v1/chat
    model: {provider: mock, name: mock-chat, config: {}}
"""

RESTRICTED_CONFIG = (
    OPEN_CONFIG
    + """
auth:
  ip_allow: [127.0.0.0/8, "::1/128"]
"""
)


def warnings_in(log: str) -> list[str]:
    return [line for line in log.splitlines() if WARNING in line]


def test_open_gateway_on_all_interfaces_warns_once(start_gateway):
    gateway = start_gateway(OPEN_CONFIG, workers=2, extra_args=["--host", "0.0.0.0"])
    assert httpx.get(f"{gateway.url}/health", timeout=5).status_code == 200
    lines = warnings_in(gateway.log())
    assert len(lines) == 1, gateway.log()
    assert "WARNING gateway.auth:" in lines[0]
    assert f"Listening on 0.0.0.0:{gateway.port} " in lines[0]
    assert "spend its provider keys" in lines[0] and "auth:" in lines[0]


def test_restricted_gateway_on_all_interfaces_does_not_warn(start_gateway):
    gateway = start_gateway(RESTRICTED_CONFIG, extra_args=["--host", "0.0.0.0"])
    assert httpx.get(f"{gateway.url}/health", timeout=5).status_code == 200
    assert warnings_in(gateway.log()) == [], gateway.log()


def test_open_gateway_on_loopback_does_not_warn(start_gateway):
    gateway = start_gateway(OPEN_CONFIG)  # --host defaults to 127.0.0.1
    assert warnings_in(gateway.log()) == [], gateway.log()

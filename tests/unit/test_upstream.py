"""Proxy selection: HTTPS_PROXY / NO_PROXY decided once per upstream origin."""

from __future__ import annotations

import pytest

from gateway.proxy.upstream import UpstreamClient, bypasses_proxy


@pytest.mark.parametrize(
    ("host", "no_proxy", "expected"),
    [
        ("api.openai.com", "openai.com", True),
        ("api.openai.com", ".openai.com", True),
        ("notopenai.com", "openai.com", False),
        ("localhost", "localhost,127.0.0.1", True),
        ("anything", "*", True),
        ("api.anthropic.com", "", False),
    ],
)
def test_no_proxy_rules(host, no_proxy, expected):
    assert bypasses_proxy(host, no_proxy) is expected


def test_proxy_from_environment(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    monkeypatch.setenv("NO_PROXY", "internal.corp")
    client = UpstreamClient(timeout_seconds=5)
    assert client.proxy_for("https://api.openai.com/v1/chat/completions") == "http://proxy.corp:3128"
    assert client.proxy_for("https://llm.internal.corp/v1/chat/completions") is None
    assert client.proxy_for("http://127.0.0.1:8000/v1") is None  # no HTTP_PROXY set

"""Active health checks steer a route away from an endpoint its probes call unhealthy; the
resilience keys load, and refuse what they cannot mean with a message naming the key."""

from __future__ import annotations

import time

import httpx
import pytest

from gateway.config.load import parse_config
from gateway.errors import ConfigError
from tests.routing.configs import chat_body, endpoint


def test_an_unhealthy_destination_is_skipped_until_it_recovers(faulty, module_gateway):
    check = f"health_check: {{url: '{faulty.url}/sick-health', interval_seconds: 0.1, timeout_seconds: 0.5, unhealthy_after: 2}}"
    config = (
        "endpoints:\n"
        + endpoint(faulty, "sick", check)
        + endpoint(faulty, "sound")
        + "routes:\n  - name: checked\n    task_type: llm/v1/chat\n    routing_strategy: FALLBACK\n"
        "    destinations: [{name: sick}, {name: sound}]\n"
    )
    gateway = module_gateway(config)
    faulty.default("sick-health", ["503"])
    url = f"{gateway.url}/gateway/checked/invocations"
    assert httpx.post(url, json=chat_body(), timeout=10).headers["x-gateway-destination"] == "sick"
    time.sleep(0.6)  # the checker started with that request; two failed probes since
    for _ in range(5):
        response = httpx.post(url, json=chat_body(), timeout=10)
        assert (response.headers["x-gateway-destination"], response.headers["x-gateway-attempts"]) == (
            "sound",
            "1",
        )
    assert faulty.count("sick") == 1
    faulty.default("sick-health", ["ok"])
    time.sleep(0.4)
    assert httpx.post(url, json=chat_body(), timeout=10).headers["x-gateway-destination"] == "sick"
    assert faulty.count("sick-health") >= 4


ENDPOINT = """endpoints:
  - name: a
    endpoint_type: llm/v1/chat
    model: {{provider: openai, name: m, config: {{openai_api_key: k}}}}
{extra}
  - name: b
    endpoint_type: llm/v1/chat
    model: {{provider: openai, name: m, config: {{openai_api_key: k}}}}
"""


def test_every_key_loads():
    config = parse_config(
        ENDPOINT.format(
            extra="    retries: {attempts: 4, on: [429, 5xx, 504, connect], backoff_seconds: 1, "
            "max_backoff_seconds: 4, total_seconds: 20, budget_ratio: 0.1, after_headers: true}\n"
            "    timeouts: {connect_seconds: 2, first_byte_seconds: 10, between_chunks_seconds: 30, total_seconds: 120}\n"
            "    circuit_breaker: {failures: 5, cooldown_seconds: 30, window_seconds: 10, retry_after_seconds: 60}\n"
            "    health_check: {url: 'https://example.com/v1/models', interval_seconds: 5}"
        )
        + "routes:\n  - name: r\n    task_type: llm/v1/chat\n    routing_strategy: FALLBACK\n"
        "    balance: latency\n    circuit_breaker: {failures: 2, cooldown_seconds: 5}\n"
        "    destinations: [{name: a, tier: 0, weight: 2}, {name: b, tier: 0}]\n"
    )
    resilience = config.endpoints[0].resilience
    assert resilience is not None and resilience.retries is not None
    assert resilience.retries.on == ("429", "5xx", "504", "connect")
    assert resilience.timeouts is not None and resilience.timeouts.between_chunks_seconds == 30
    assert config.endpoints[1].resilience is None
    route = config.routes[0]
    assert [(d.name, d.tier, d.weight) for d in route.destinations] == [("a", 0, 2), ("b", 0, 1)]


@pytest.mark.parametrize(
    ("extra", "route", "message"),
    [
        ("    retries: {attempts: 0}", "", "retries.attempts: Input should be at least 1"),
        ("    retries: {on: [teapot]}", "", "retries.on: 'teapot' is not one of"),
        ("    retries: {atempts: 3}", "", "retries: Object contains unknown field `atempts`"),
        (
            "    timeouts: {first_byte_seconds: -1}",
            "",
            "timeouts.first_byte_seconds: Input should be a non-negative",
        ),
        (
            "    circuit_breaker: {failures: 3}",
            "",
            "circuit_breaker: Object missing required field `cooldown_seconds`",
        ),
        (
            "",
            "routing_strategy: ROUND_ROBIN",
            "routing_strategy: Input should be 'TRAFFIC_SPLIT' or 'FALLBACK'",
        ),
        ("", "routing_strategy: FALLBACK\n    balance: random", "balance: Input should be one of"),
        ("", "balance: latency", "apply to routing_strategy: FALLBACK routes"),
    ],
)
def test_mistakes_are_named(extra, route, message):
    destinations = "    destinations: [{name: a, traffic_percentage: 100}]\n"
    if "FALLBACK" in route:
        destinations = "    destinations: [{name: a}, {name: b}]\n"
    text = ENDPOINT.format(extra=extra) + "routes:\n  - name: r\n    task_type: llm/v1/chat\n"
    text += (f"    {route}\n" if route else "") + destinations
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        parse_config(text)


def test_fallback_destinations_take_no_percentage():
    text = ENDPOINT.format(extra="") + (
        "routes:\n  - name: r\n    task_type: llm/v1/chat\n    routing_strategy: FALLBACK\n"
        "    destinations: [{name: a, traffic_percentage: 50}, {name: b, traffic_percentage: 50}]\n"
    )
    with pytest.raises(ConfigError, match="FALLBACK destinations are tried in order"):
        parse_config(text)

"""Balancing inside a tier: weights within statistical bounds, least_busy and latency steering
away from a slow destination."""

from __future__ import annotations

import concurrent.futures
import math

import httpx
import pytest

from tests.routing.configs import chat_body, endpoint


def _route(name: str, balance: str, first: str, second: str, weight: int = 1) -> str:
    return (
        f"  - name: {name}\n    task_type: llm/v1/chat\n    routing_strategy: FALLBACK\n"
        f"    balance: {balance}\n    destinations:\n"
        f"      - {{name: {first}, tier: 0, weight: {weight}}}\n      - {{name: {second}, tier: 0}}\n"
    )


@pytest.fixture(scope="module")
def gateway(faulty, module_gateway):
    names = ("heavy", "light", "busy-slow", "busy-fast", "lat-slow", "lat-fast")
    endpoints = "".join(endpoint(faulty, name) for name in names)
    routes = (
        _route("weighted", "weighted", "heavy", "light", weight=3)
        + _route("least-busy", "least_busy", "busy-slow", "busy-fast")
        + _route("latency", "latency", "lat-slow", "lat-fast")
    )
    return module_gateway("endpoints:\n" + endpoints + "routes:\n" + routes)


def test_weights_are_honoured(faulty, gateway):
    n = 400
    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        for _ in range(n):
            assert client.post("/gateway/weighted/invocations", json=chat_body()).status_code == 200
    heavy = faulty.count("heavy")
    assert heavy + faulty.count("light") == n
    # binomial(400, 3/4): mean 300, sd 8.7; 5 sd either side fails about once in 3.5 million runs
    sd = math.sqrt(n * 0.75 * 0.25)
    assert abs(heavy - 300) <= 5 * sd, heavy


def _load(gateway, route: str, requests: int, concurrency: int) -> None:
    with httpx.Client(base_url=gateway.url, timeout=10) as client:

        def one(_: int) -> int:
            return client.post(f"/gateway/{route}/invocations", json=chat_body()).status_code

        with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
            assert set(pool.map(one, range(requests))) == {200}


def test_least_busy_steers_away_from_a_slow_destination(faulty, gateway):
    faulty.default("busy-slow", ["slow:0.5"])
    _load(gateway, "least-busy", 60, 6)
    slow, fast = faulty.count("busy-slow"), faulty.count("busy-fast")
    assert slow + fast == 60
    # requests pile up on the slow one, so new ones go to the idle fast one (even split: 30)
    assert slow <= 12, (slow, fast)
    assert faulty.most_in_flight.get("busy-slow", 0) <= 3


def test_latency_prefers_the_faster_destination(faulty, gateway):
    faulty.default("lat-slow", ["slow:0.2"])
    _load(gateway, "latency", 60, 1)
    slow, fast = faulty.count("lat-slow"), faulty.count("lat-fast")
    # each is measured once, then the slow one only gets the 1-in-20 exploration draws
    assert slow <= 10, (slow, fast)

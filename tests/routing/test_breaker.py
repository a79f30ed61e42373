"""Circuit breaking: a destination that keeps failing gets no traffic for the cooldown, then
exactly one probe; the state is shared by the workers of the host."""

from __future__ import annotations

import concurrent.futures
import time

import httpx
import pytest

from tests.routing.configs import chat_body, endpoint

BREAKER = "circuit_breaker: {failures: 3, cooldown_seconds: 1.5}"


@pytest.fixture(scope="module")
def gateway(faulty, module_gateway):
    # two workers: the breaker must be one state for both
    endpoints = [
        endpoint(faulty, "flaky", "circuit_breaker: {failures: 3, cooldown_seconds: 3}"),
        endpoint(faulty, "slow-probe", BREAKER),
        endpoint(faulty, "main"),
        endpoint(faulty, "spare"),
        endpoint(
            faulty, "limited", "circuit_breaker: {failures: 50, cooldown_seconds: 1, retry_after_seconds: 2}"
        ),
    ]
    route = (
        "  - name: guarded\n    task_type: llm/v1/chat\n    routing_strategy: FALLBACK\n"
        "    destinations: [{name: main}, {name: spare}]\n"
        "    circuit_breaker: {failures: 2, cooldown_seconds: 30}\n"
    )
    return module_gateway("endpoints:\n" + "".join(endpoints) + "routes:\n" + route, workers=2)


def _call(gateway, name: str) -> httpx.Response:
    return httpx.post(f"{gateway.url}/gateway/{name}/invocations", json=chat_body(), timeout=20)


def test_an_open_breaker_sends_nothing_until_its_probe(faulty, gateway):
    faulty.default("flaky", ["503"])
    for _ in range(3):
        assert _call(gateway, "flaky").status_code == 503
    assert faulty.count("flaky") == 3
    # open: 20 requests, spread over both workers, reach no upstream and fail fast
    started = time.monotonic()
    for _ in range(20):
        response = _call(gateway, "flaky")
        assert response.status_code == 503
        assert "circuit breaker" in response.json()["detail"]
        assert 1 <= int(response.headers["retry-after"]) <= 3
    assert time.monotonic() - started < 2.5  # well inside the cooldown
    assert faulty.count("flaky") == 3
    faulty.default("flaky", ["ok"])
    time.sleep(3.1 - (time.monotonic() - started))
    # half-open: one probe goes through and succeeds; the breaker closes for every worker
    assert _call(gateway, "flaky").status_code == 200
    assert faulty.count("flaky") == 4
    for _ in range(10):
        assert _call(gateway, "flaky").status_code == 200
    assert faulty.count("flaky") == 14
    # the breaker's opening and closing are counted, once each, whichever worker saw them
    time.sleep(1.2)  # workers write their counts at least once a second
    scrape = httpx.get(f"{gateway.url}/metrics", timeout=10).text
    for state in ("open", "closed"):
        line = f'gateway_circuit_breaker_transitions_total{{endpoint="flaky",state="{state}"}} 1.0'
        assert line in scrape, state


def test_half_open_lets_exactly_one_probe_through(faulty, gateway):
    faulty.default("slow-probe", ["503"])
    for _ in range(3):
        _call(gateway, "slow-probe")
    time.sleep(1.6)
    faulty.default("slow-probe", ["slow:1"])  # the probe takes a second to answer
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: _call(gateway, "slow-probe").status_code, range(8)))
    assert sorted(answers) == [200] + [503] * 7
    assert faulty.count("slow-probe") == 3 + 1
    assert _call(gateway, "slow-probe").status_code == 200  # closed by the probe's success


def test_a_route_stops_sending_to_a_broken_destination(faulty, gateway):
    faulty.default("main", ["503"])
    for _ in range(2):
        response = _call(gateway, "guarded")
        assert response.status_code == 200
        assert response.headers["x-gateway-attempts"] == "2"
    for _ in range(10):
        response = _call(gateway, "guarded")
        assert response.status_code == 200
        assert (response.headers["x-gateway-destination"], response.headers["x-gateway-attempts"]) == (
            "spare",
            "1",
        )
    assert (faulty.count("main"), faulty.count("spare")) == (2, 12)


def test_a_long_retry_after_opens_the_breaker_for_that_long(faulty, gateway):
    faulty.script("limited", ["429:3"])
    assert _call(gateway, "limited").status_code == 429
    time.sleep(1.2)  # past the 1 s cooldown, still inside the 3 s the provider asked for
    response = _call(gateway, "limited")
    assert response.status_code == 503 and "circuit breaker" in response.json()["detail"]
    assert faulty.count("limited") == 1

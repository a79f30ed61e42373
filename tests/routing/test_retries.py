"""Retries on one endpoint: back-off honouring Retry-After, caps on attempts and time, the retry
budget during a total outage, and streams never retried once their first byte went out."""

from __future__ import annotations

import time

import httpx
import orjson
import pytest

from tests.routing.configs import chat_body, endpoint

FAST = "backoff_seconds: 0.01, max_backoff_seconds: 0.02"


@pytest.fixture(scope="module")
def gateway(faulty, module_gateway):
    endpoints = [
        endpoint(faulty, "plain"),
        endpoint(faulty, "retry3", f"retries: {{attempts: 3, {FAST}}}"),
        endpoint(faulty, "honour", "retries: {attempts: 2, backoff_seconds: 0.01, total_seconds: 10}"),
        endpoint(faulty, "short-total", "retries: {attempts: 3, backoff_seconds: 0.01, total_seconds: 0.5}"),
        endpoint(faulty, "only-5xx", f"retries: {{attempts: 3, on: [5xx], {FAST}}}"),
        endpoint(
            faulty,
            "outage",
            "retries: {attempts: 5, backoff_seconds: 0.001, max_backoff_seconds: 0.001, budget_ratio: 0.2}",
        ),
        endpoint(faulty, "streamy", f"retries: {{attempts: 3, {FAST}}}"),
    ]
    split = (
        "routes:\n  - name: split\n    task_type: llm/v1/chat\n"
        "    destinations: [{name: retry3, traffic_percentage: 100}, {name: plain, traffic_percentage: 0}]\n"
    )
    return module_gateway("endpoints:\n" + "".join(endpoints) + split)


@pytest.fixture(autouse=True)
def fresh_counts(faulty):
    faulty.reset_counts()


def _call(gateway, name: str, **extra: object) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/endpoints/{name}/invocations", json={**chat_body(), **extra}, timeout=20
    )


def test_an_endpoint_without_retries_says_one_attempt(faulty, gateway):
    response = _call(gateway, "plain")
    assert response.status_code == 200
    assert (response.headers["x-gateway-destination"], response.headers["x-gateway-attempts"]) == (
        "plain",
        "1",
    )
    faulty.script("plain", ["503"])
    assert _call(gateway, "plain").status_code == 503
    assert faulty.count("plain") == 2


def test_failures_are_retried_up_to_the_attempts(faulty, gateway):
    faulty.script("retry3", ["503", "reset-before", "reset-before", "ok"])
    response = _call(gateway, "retry3")
    assert response.status_code == 200
    assert response.headers["x-gateway-attempts"] == "3"
    faulty.script("retry3", ["503", "502", "500"])
    response = _call(gateway, "retry3")
    assert response.status_code == 500  # the last attempt's error, as the client gets it today
    assert response.headers["x-gateway-attempts"] == "3"
    assert faulty.count("retry3") == 4 + 3  # one reset was re-sent by the transport itself


def test_only_the_configured_failures_are_retried(faulty, gateway):
    faulty.script("only-5xx", ["429:1"])
    response = _call(gateway, "only-5xx")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"  # passed on to the client
    assert faulty.count("only-5xx") == 1


@pytest.mark.parametrize("fault", ["429:1", "429-date:2"])
def test_retry_after_is_honoured(faulty, gateway, fault):
    faulty.script("honour", [fault])
    started = time.monotonic()
    response = _call(gateway, "honour")
    took = time.monotonic() - started
    assert response.status_code == 200
    assert response.headers["x-gateway-attempts"] == "2"
    # an HTTP date has whole seconds: 2 s ahead is at least 1 s from now
    assert took >= 0.95, took
    assert took < 3.5, took


def test_a_retry_after_beyond_the_total_time_is_not_waited_for(faulty, gateway):
    faulty.script("short-total", ["429:5"])
    started = time.monotonic()
    response = _call(gateway, "short-total")
    assert response.status_code == 429
    assert time.monotonic() - started < 1
    assert response.headers["retry-after"] == "5"
    assert faulty.count("short-total") == 1


def test_retries_stop_at_the_budget_during_a_total_outage(faulty, gateway):
    faulty.default("outage", ["503"])
    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        for _ in range(100):
            assert client.post("/endpoints/outage/invocations", json=chat_body()).status_code == 503
    # 100 first attempts; retries: the reserve of 10 plus 0.2 per first attempt (not 4 x 100)
    assert 100 + 25 <= faulty.count("outage") <= 100 + 10 + 20 + 1


def test_a_stream_is_retried_until_its_headers(faulty, gateway):
    faulty.script("streamy", ["503", "reset-before", "reset-before"])
    with httpx.stream(
        "POST", f"{gateway.url}/endpoints/streamy/invocations", json=chat_body(stream=True)
    ) as response:
        assert response.status_code == 200
        assert response.headers["x-gateway-attempts"] == "3"
        events = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"


def test_a_stream_failing_after_its_first_byte_is_not_retried(faulty, gateway):
    faulty.script("streamy", ["stream-cut:2"])
    with httpx.stream(
        "POST", f"{gateway.url}/endpoints/streamy/invocations", json=chat_body(stream=True)
    ) as response:
        assert response.status_code == 200
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    contents = [orjson.loads(e)["choices"][0]["delta"].get("content") for e in events[:-1]]
    assert contents == ["Hello", " from"]
    error = orjson.loads(events[-1])["error"]
    assert "streamy" in error["message"] and error["code"] == 502
    assert faulty.count("streamy") == 1


def test_a_traffic_split_destination_keeps_its_retries(faulty, gateway):
    faulty.script("retry3", ["502"])
    response = _call(gateway, "split")
    assert response.status_code == 200
    assert (response.headers["x-gateway-destination"], response.headers["x-gateway-attempts"]) == (
        "retry3",
        "2",
    )
    assert faulty.count("retry3") == 2

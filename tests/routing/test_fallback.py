"""FALLBACK routes: the next destination answers when one fails in a retryable way, within the
configured time; what is not retryable is the answer. Counts are upstream requests received."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from tests.routing.configs import chat_body, endpoint


def _route(name: str, first: str, second: str, extra: str = "") -> str:
    return (
        f"  - name: {name}\n    task_type: llm/v1/chat\n    routing_strategy: FALLBACK\n"
        f"    destinations:\n      - name: {first}\n      - name: {second}\n{extra}"
    )


@pytest.fixture(scope="module")
def gateway(faulty, module_gateway):
    endpoints = [
        endpoint(faulty, "slow-primary", "timeouts: {first_byte_seconds: 0.5}"),
        endpoint(faulty, "cut-primary", "retries: {attempts: 1, after_headers: true}"),
        *(endpoint(faulty, name) for name in ("primary", "backup", "other", "other-backup")),
    ]
    routes = [
        _route("chat", "primary", "backup"),
        _route("slow-chat", "slow-primary", "backup"),
        _route("cut-chat", "cut-primary", "backup"),
        "  - name: balanced\n    task_type: llm/v1/chat\n    routing_strategy: FALLBACK\n"
        "    destinations:\n      - {name: other, tier: 0, weight: 3}\n      - {name: other-backup, tier: 0}\n"
        "    balance: least_busy\n    circuit_breaker: {failures: 5, cooldown_seconds: 30}\n",
    ]
    return module_gateway("endpoints:\n" + "".join(endpoints) + "routes:\n" + "".join(routes))


@pytest.fixture(autouse=True)
def fresh_counts(faulty):
    faulty.reset_counts()


def test_fallback_answers_within_the_first_byte_timeout(faulty, gateway):
    faulty.script("slow-primary", ["slow:5"])
    started = time.monotonic()
    response = httpx.post(f"{gateway.url}/gateway/slow-chat/invocations", json=chat_body(), timeout=10)
    took = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert 0.5 <= took < 1.5, took
    assert response.headers["x-gateway-destination"] == "backup"
    assert response.headers["x-gateway-attempts"] == "2"
    assert response.json()["choices"][0]["message"]["content"] == "Hello from the faulty upstream!"
    assert (faulty.count("slow-primary"), faulty.count("backup")) == (1, 1)


def test_each_retryable_failure_falls_back_once(faulty, gateway):
    faults = ["503", "500", "502", "429:1", "reset-before"]
    # a kept-alive connection reset before any answer is sent once more on a new connection
    # by the transport itself (the request never reached the server): hence two resets
    faulty.script("primary", [*faults, "reset-before"])
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)
    for fault in faults:
        raw = client.chat.completions.with_raw_response.create(
            model="chat", messages=[{"role": "user", "content": "hi"}]
        )
        assert raw.headers["x-gateway-destination"] == "backup", fault
        assert raw.headers["x-gateway-attempts"] == "2", fault
        assert raw.parse().choices[0].message.content == "Hello from the faulty upstream!"
    assert (faulty.count("primary"), faulty.count("backup")) == (6, 5)
    # the primary answering again takes the traffic back, in one attempt
    raw = client.chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": "hi"}]
    )
    assert (raw.headers["x-gateway-destination"], raw.headers["x-gateway-attempts"]) == ("primary", "1")


def test_an_answer_cut_after_its_headers_is_not_sent_again(faulty, gateway):
    # the upstream may have processed (and billed) it: the client gets the error, as today
    faulty.script("primary", ["reset-after-headers", "garbage"])
    for _ in range(2):
        response = httpx.post(f"{gateway.url}/gateway/chat/invocations", json=chat_body(), timeout=10)
        assert response.status_code == 502, response.text
        assert "primary" in response.json()["detail"]
        assert response.headers["x-gateway-destination"] == "primary"
        assert response.headers["x-gateway-attempts"] == "1"
    assert (faulty.count("primary"), faulty.count("backup")) == (2, 0)


def test_after_headers_true_sends_a_cut_answer_elsewhere(faulty, gateway):
    faulty.script("cut-primary", ["reset-after-headers"])
    response = httpx.post(f"{gateway.url}/gateway/cut-chat/invocations", json=chat_body(), timeout=10)
    assert response.status_code == 200
    assert response.headers["x-gateway-destination"] == "backup"
    assert (faulty.count("cut-primary"), faulty.count("backup")) == (1, 1)


def test_a_client_error_is_the_answer(faulty, gateway):
    response = httpx.post(
        f"{gateway.url}/gateway/chat/invocations", json={**chat_body(), "temperature": 99}, timeout=10
    )
    assert response.status_code == 422  # refused before any upstream: nothing to fall back to
    assert (faulty.count("primary"), faulty.count("backup")) == (0, 0)


def test_every_destination_failing_gives_the_last_error(faulty, gateway):
    faulty.script("primary", ["503"])
    faulty.script("backup", ["502"])
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions", json={**chat_body(), "model": "chat"}, timeout=10
    )
    assert response.status_code == 502
    assert response.json()["error"]["message"].startswith("endpoint 'backup' (provider openai) failed")
    assert response.headers["x-gateway-destination"] == "backup"
    assert response.headers["x-gateway-attempts"] == "2"


def test_a_stream_falls_back_until_its_headers(faulty, gateway):
    faulty.script("primary", ["503"])
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)
    stream = client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "Hello from the faulty upstream!"
    assert (faulty.count("primary"), faulty.count("backup")) == (1, 1)


def test_routes_are_listed_with_their_strategy(gateway):
    listed = httpx.get(f"{gateway.url}/api/2.0/endpoints/").json()
    assert [e["name"] for e in listed["endpoints"]][:2] == ["slow-primary", "cut-primary"]
    balanced = {
        "name": "balanced",
        "task_type": "llm/v1/chat",
        "destinations": [
            {"name": "other", "tier": 0, "weight": 3},
            {"name": "other-backup", "tier": 0, "weight": 1},
        ],
        "routing_strategy": "FALLBACK",
        "balance": "least_busy",
        "circuit_breaker": {
            "failures": 5,
            "cooldown_seconds": 30.0,
            "window_seconds": 60.0,
            "retry_after_seconds": 30.0,
        },
        "endpoint_url": "/gateway/balanced/invocations",
    }
    assert [r["name"] for r in listed["routes"]] == ["chat", "slow-chat", "cut-chat", "balanced"]
    assert listed["routes"][3] == balanced
    assert listed["routes"][0]["destinations"] == [
        {"name": "primary", "tier": 0, "weight": 1},
        {"name": "backup", "tier": 1, "weight": 1},
    ]
    assert httpx.get(f"{gateway.url}/api/3.0/gateway/route/balanced").json() == balanced
    models = {m["id"]: m["owned_by"] for m in httpx.get(f"{gateway.url}/v1/models").json()["data"]}
    assert models["chat"] == "fallback-route"

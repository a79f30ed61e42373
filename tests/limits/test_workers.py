"""Calls limits on one host: exact whatever the worker count, one counter for every alias, the
MLflow 429 body with Retry-After and RateLimit-* headers, per-client keys, traffic routes and
reloads that keep counters."""

from __future__ import annotations

import math
import threading
import time

import httpx
import openai
import pytest

from tests.limits.configs import config, endpoint
from tests.limits.conftest import CHAT, aliases, fire, statuses, wait_for

HOUR = "renewal_period: hour"


def test_four_workers_admit_exactly_n_under_many_concurrent_clients(start_gateway):
    gateway = start_gateway(config(endpoint("chat", f"calls: 40\n{HOUR}")), workers=4)
    answers = fire(aliases(gateway.url, "chat", 300))
    assert statuses(answers) == {200: 40, 429: 260}, gateway.log()
    # a second wave finds the counter where the first left it, on every worker
    assert statuses(fire(aliases(gateway.url, "chat", 60))) == {429: 60}


def test_four_workers_hold_the_rate_over_several_periods(start_gateway):
    """Hammered for ~5 s, `6 per 2 seconds` admits the token-bucket amount: the burst of 6 plus
    3 a second, never more (per-worker counting would admit up to four times that)."""
    gateway = start_gateway(config(endpoint("chat", "calls: 6\nrenewal_period: 2 seconds")), workers=4)
    url = f"{gateway.url}/endpoints/chat/invocations"
    admitted = 0
    lock = threading.Lock()
    stop = time.monotonic() + 5.0

    def hammer() -> None:
        nonlocal admitted
        with httpx.Client(timeout=30) as client:
            while time.monotonic() < stop:
                if client.post(url, json=CHAT).status_code == 200:
                    with lock:
                        admitted += 1

    threads = [threading.Thread(target=hammer) for _ in range(12)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    most = 6 + math.floor(elapsed * 3)
    assert most - 4 <= admitted <= most, (admitted, elapsed)


def test_headers_and_bodies_on_every_alias(start_gateway):
    limited = endpoint("chat", f"calls: 3\n{HOUR}")
    gateway = start_gateway(config(limited, endpoint("free")), workers=2)
    base = gateway.url
    # invalid bodies are refused before the limiter: they take nothing
    assert httpx.post(f"{base}/endpoints/chat/invocations", json={"messages": []}).status_code == 422
    seen = []
    for url, body in aliases(base, "chat", 3):
        reply = httpx.post(url, json=body)
        assert reply.status_code == 200, reply.text
        seen.append(tuple(reply.headers[f"ratelimit-{h}"] for h in ("limit", "remaining", "reset")))
    # one token every 20 minutes: the reset is the wait until the quota is whole again
    assert seen == [("3", "2", "1200"), ("3", "1", "2400"), ("3", "0", "3600")]

    refused = httpx.post(f"{base}/endpoints/chat/invocations", json=CHAT)
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/json"
    assert refused.json() == {"error": "Rate limit exceeded: 3 per 1 hour"}
    assert 1190 <= int(refused.headers["retry-after"]) <= 1200
    assert refused.headers["ratelimit-limit"] == "3"
    assert refused.headers["ratelimit-remaining"] == "0"
    assert 3590 <= int(refused.headers["ratelimit-reset"]) <= 3600
    assert httpx.post(f"{base}/gateway/chat/invocations", json=CHAT).status_code == 429

    # the openai SDK sees a RateLimitError carrying the message and the headers
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
    assert "Rate limit exceeded: 3 per 1 hour" in str(caught.value)
    assert caught.value.response.headers["retry-after"]

    # endpoints without a limit carry no RateLimit headers
    free = httpx.post(f"{base}/endpoints/free/invocations", json=CHAT)
    assert free.status_code == 200
    assert "ratelimit-limit" not in free.headers


def test_streams_carry_the_headers_too(start_gateway):
    gateway = start_gateway(config(endpoint("chat", f"calls: 2\n{HOUR}")))
    url = f"{gateway.url}/endpoints/chat/invocations"
    with httpx.stream("POST", url, json={**CHAT, "stream": True}) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        assert (reply.headers["ratelimit-limit"], reply.headers["ratelimit-remaining"]) == ("2", "1")
        assert reply.read().decode().endswith("data: [DONE]\n\n")
    assert httpx.post(url, json={**CHAT, "stream": True}).status_code == 200
    refused = httpx.post(url, json={**CHAT, "stream": True})
    assert refused.status_code == 429
    assert refused.json() == {"error": "Rate limit exceeded: 2 per 1 hour"}


def test_per_client_address(start_gateway):
    gateway = start_gateway(config(endpoint("chat", f"calls: 2\n{HOUR}\nkey: ip")), workers=2)
    url = f"{gateway.url}/endpoints/chat/invocations"

    def post_from(address: str) -> int:
        transport = httpx.HTTPTransport(local_address=address)
        with httpx.Client(transport=transport) as client:
            return client.post(url, json=CHAT).status_code

    assert [post_from("127.0.0.1") for _ in range(3)] == [200, 200, 429]
    assert [post_from("127.0.0.2") for _ in range(3)] == [200, 200, 429]


def test_per_consumer_header_then_bearer_then_address(start_gateway):
    gateway = start_gateway(config(endpoint("chat", f"calls: 1\n{HOUR}\nkey: consumer")), workers=2)
    url = f"{gateway.url}/endpoints/chat/invocations"

    def post(headers: dict[str, str]) -> int:
        return httpx.post(url, json=CHAT, headers=headers).status_code

    assert [post({"X-Gateway-Consumer": "alice"}) for _ in range(2)] == [200, 429]
    assert post({"X-Gateway-Consumer": "bob"}) == 200
    # the consumer header wins over the bearer token; the bearer counts alone without it
    assert post({"X-Gateway-Consumer": "alice", "Authorization": "Bearer t-1"}) == 429
    assert [post({"Authorization": "Bearer t-1"}) for _ in range(2)] == [200, 429]
    assert post({"Authorization": "Bearer t-2"}) == 200
    assert [post({}) for _ in range(2)] == [200, 429]  # no identity: the client address


def test_per_named_header(start_gateway):
    gateway = start_gateway(config(endpoint("chat", f"calls: 1\n{HOUR}\nkey: header:X-Team")))
    url = f"{gateway.url}/v1/chat/completions"
    body = {**CHAT, "model": "chat"}
    assert httpx.post(url, json=body, headers={"x-team": "red"}).status_code == 200
    assert httpx.post(url, json=body, headers={"X-Team": "red"}).status_code == 429
    assert httpx.post(url, json=body, headers={"X-Team": "blue"}).status_code == 200


def test_traffic_routes_carry_limits(start_gateway):
    routes = """
  - name: to-a
    task_type: llm/v1/chat
    destinations: [{name: a, traffic_percentage: 100}]
    limit: {calls: 5, renewal_period: hour}
  - name: to-b
    task_type: llm/v1/chat
    destinations: [{name: b, traffic_percentage: 100}]
    limit: {calls: 2, renewal_period: hour}
"""
    text = config(endpoint("a", f"calls: 1\n{HOUR}"), endpoint("b"), routes=routes)
    gateway = start_gateway(text, workers=2)
    base = gateway.url

    def call(name: str) -> httpx.Response:
        return httpx.post(f"{base}/gateway/{name}/invocations", json=CHAT)

    # both the route's limit and the limit of the endpoint it picked apply
    first = call("to-a")
    assert first.status_code == 200
    assert first.headers["ratelimit-limit"] == "1"  # the tighter of the two is shown
    assert call("to-a").json() == {"error": "Rate limit exceeded: 1 per 1 hour"}
    assert call("a").status_code == 429
    # a route's own limit
    assert [call("to-b").status_code for _ in range(3)] == [200, 200, 429]
    assert call("to-b").json() == {"error": "Rate limit exceeded: 2 per 1 hour"}
    v1 = httpx.post(f"{base}/v1/chat/completions", json={**CHAT, "model": "to-b"})
    assert v1.status_code == 429
    assert call("b").status_code == 200  # the endpoint itself has no limit


def test_reload_keeps_counters_of_unchanged_limits(start_gateway):
    limit = f"calls: 3\n{HOUR}"
    gateway = start_gateway(config(endpoint("chat", limit)), workers=2)
    url = f"{gateway.url}/endpoints/chat/invocations"
    assert [httpx.post(url, json=CHAT).status_code for _ in range(2)] == [200, 200]

    gateway.config_path.write_text(config(endpoint("chat", limit), endpoint("added")))
    added = f"{gateway.url}/api/2.0/endpoints/added"
    assert wait_for(lambda: all(httpx.get(added).status_code == 200 for _ in range(8))), gateway.log()
    assert [httpx.post(url, json=CHAT).status_code for _ in range(2)] == [200, 429]

    # a changed limit starts afresh
    gateway.config_path.write_text(config(endpoint("chat", f"calls: 4\n{HOUR}"), endpoint("added")))
    described = f"{gateway.url}/api/2.0/endpoints/chat"
    assert wait_for(lambda: all(httpx.get(described).json()["limit"]["calls"] == 4 for _ in range(8)))
    assert [httpx.post(url, json=CHAT).status_code for _ in range(5)] == [200] * 4 + [429]
    assert httpx.get(described).json()["limit"] == {"calls": 4, "key": None, "renewal_period": "hour"}

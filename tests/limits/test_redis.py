"""`limits_storage: redis://...`: gateway instances sharing one Redis share every limit; Redis
going away follows `limits_failure_mode` and coming back is picked up without a restart."""

from __future__ import annotations

import time

import httpx

from tests.limits.configs import config, endpoint
from tests.limits.conftest import CHAT, aliases, fire, statuses, wait_for

HOUR = "renewal_period: hour"


def storage(url: str, mode: str = "open") -> str:
    return f"limits_storage: {url}\nlimits_failure_mode: {mode}\n"


def test_two_instances_sharing_redis_admit_exactly_n(start_gateway, redis_server):
    text = config(endpoint("chat", f"calls: 30\n{HOUR}"), top=storage(redis_server.url))
    first = start_gateway(text, workers=2)
    second = start_gateway(text, workers=2)
    wave = aliases(first.url, "chat", 100) + aliases(second.url, "chat", 100)
    answers = fire(wave)
    assert statuses(answers) == {200: 30, 429: 170}, first.log() + second.log()
    by_instance = statuses(answers[:100]), statuses(answers[100:])
    assert by_instance[0][200] + by_instance[1][200] == 30
    refused = next(a for a in answers if a.status_code == 429 and "/v1/" not in str(a.request.url))
    assert refused.json() == {"error": "Rate limit exceeded: 30 per 1 hour"}
    assert refused.headers["ratelimit-limit"] == "30"
    ok = next(a for a in answers if a.status_code == 200)
    assert ok.headers["ratelimit-limit"] == "30"
    assert 0 <= int(ok.headers["ratelimit-remaining"]) < 30


def test_the_env_variable_selects_redis_and_keys_stay_per_client(start_gateway, redis_server):
    text = config(endpoint("chat", f"calls: 2\n{HOUR}\nkey: consumer"))
    env = {"MLFLOW_GATEWAY_RATE_LIMITS_STORAGE_URI": redis_server.url}
    first = start_gateway(text, env=env)
    second = start_gateway(text, env=env)

    def post(gateway, consumer: str) -> int:
        url = f"{gateway.url}/endpoints/chat/invocations"
        return httpx.post(url, json=CHAT, headers={"X-Gateway-Consumer": consumer}).status_code

    assert [post(first, "alice"), post(second, "alice"), post(first, "alice")] == [200, 200, 429]
    assert [post(second, "bob"), post(first, "bob"), post(second, "bob")] == [200, 200, 429]


def test_tokens_and_concurrency_in_redis(start_gateway, redis_server):
    limit = f"calls: 1000\n{HOUR}\ntokens: 200\nconcurrency: 2"
    text = config(
        endpoint("chat", limit, config="{max_output_tokens: 5}"),
        endpoint("slow", f"calls: 1000\n{HOUR}\nconcurrency: 2", config="{latency_ms: 3000}"),
        top=storage(redis_server.url),
    )
    first = start_gateway(text, workers=2)
    second = start_gateway(text, workers=2)
    body = {"messages": [{"role": "user", "content": "hello world"}], "max_tokens": 100}
    # 107 charged, 7 used each time: 14 calls fit in 200 tokens, spread over both instances
    results = [httpx.post(f"{g.url}/endpoints/chat/invocations", json=body) for g in [first, second] * 8]
    assert [r.status_code for r in results] == [200] * 14 + [429] * 2
    assert results[-1].json() == {"error": "Rate limit exceeded: 200 tokens per 1 hour"}

    slow = [(f"{g.url}/endpoints/slow/invocations", CHAT) for g in (first, second) for _ in range(3)]
    answers = fire(slow)
    assert statuses(answers) == {200: 2, 429: 4}
    assert next(a for a in answers if a.status_code == 429).json() == {
        "error": "Rate limit exceeded: 2 concurrent requests"
    }
    assert statuses(fire(slow[:2])) == {200: 2}  # the leases were given back


def _statuses_while(gateway, count: int) -> list[int]:
    url = f"{gateway.url}/endpoints/chat/invocations"
    return [httpx.post(url, json=CHAT, timeout=10).status_code for _ in range(count)]


def test_redis_down_fails_open_with_a_warning_and_recovers(start_gateway, redis_server):
    text = config(endpoint("chat", f"calls: 3\n{HOUR}"), top=storage(redis_server.url, "open"))
    gateway = start_gateway(text, workers=2)
    assert _statuses_while(gateway, 4) == [200, 200, 200, 429]

    redis_server.kill()
    started = time.monotonic()
    assert _statuses_while(gateway, 10) == [200] * 10  # admitted, unlimited
    assert time.monotonic() - started < 8, "a dead Redis must not stall requests"
    log = gateway.log()
    assert "rate limits of endpoint|chat not enforced: Redis at redis://127.0.0.1" in log
    assert "limits_failure_mode: open" in log
    assert log.count("not enforced") <= 4, "the warning is rate-limited"

    redis_server.start()  # same port, empty: counting starts afresh
    assert wait_for(lambda: _statuses_while(gateway, 1) == [429], 20), gateway.log()
    assert "answers again" in gateway.log()
    time.sleep(1.0)  # both workers past their 0.5 s back-off
    redis_server.flush()
    assert _statuses_while(gateway, 4) == [200, 200, 200, 429]


def test_redis_down_fails_closed_with_503_and_recovers(start_gateway, redis_server):
    text = config(endpoint("chat", f"calls: 3\n{HOUR}"), top=storage(redis_server.url, "closed"))
    gateway = start_gateway(text, workers=2)
    assert _statuses_while(gateway, 1) == [200]

    redis_server.kill()
    url = f"{gateway.url}/endpoints/chat/invocations"
    refused = httpx.post(url, json=CHAT)
    assert refused.status_code == 503
    detail = refused.json()["detail"]
    assert "Rate limits cannot be checked" in detail
    assert "limits_failure_mode: closed" in detail
    assert "Redis at redis://127.0.0.1" in detail
    v1 = httpx.post(f"{gateway.url}/v1/chat/completions", json={**CHAT, "model": "chat"})
    assert v1.status_code == 503
    assert v1.json()["error"]["type"] == "service_unavailable"

    redis_server.start()
    assert wait_for(lambda: _statuses_while(gateway, 1) == [200], 20), gateway.log()
    # one worker answered; the other may still sit in its 0.5 s back-off after a failed try
    time.sleep(1.0)
    assert _statuses_while(gateway, 3) == [200, 200, 429]

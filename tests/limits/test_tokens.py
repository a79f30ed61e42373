"""`tokens` per period: an estimate is charged up front (prompt size + max_tokens) and
reconciled with the usage the provider reports, after a response or at the end of a stream.

The mock provider reports real usage: prompt tokens are the prompt's words, completion tokens
the words it wrote (at most its `max_output_tokens`, whatever max_tokens asked for)."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.limits.configs import config, endpoint

TOKENS = "calls: 1000\nrenewal_period: hour\ntokens: 200"
CAPPED = "{max_output_tokens: 5}"  # asks for 100, writes 5
HELLO = {"messages": [{"role": "user", "content": "hello world"}], "max_tokens": 100}


def count_admitted(post: Callable[[], httpx.Response], attempts: int = 30) -> tuple[int, httpx.Response]:
    for done in range(attempts):
        reply = post()
        if reply.status_code != 200:
            return done, reply
    raise AssertionError(f"all {attempts} requests were admitted")


def test_unused_allowance_is_given_back(start_gateway):
    """Each call is charged 107 up front (3 + 4 prompt, 100 max_tokens) and uses 7 (2 words in,
    5 out). Without reconciliation only one call would fit in 200 tokens; with it, calls go
    through until fewer than 107 tokens are left: 200 - 14 x 7 = 102 after the 14th."""
    gateway = start_gateway(config(endpoint("chat", TOKENS, config=CAPPED)), workers=2)
    url = f"{gateway.url}/endpoints/chat/invocations"
    first = httpx.post(url, json=HELLO)
    assert first.json()["usage"] == {"prompt_tokens": 2, "completion_tokens": 5, "total_tokens": 7}
    admitted, refused = count_admitted(lambda: httpx.post(url, json=HELLO))
    assert admitted + 1 == 14
    assert refused.status_code == 429
    assert refused.json() == {"error": "Rate limit exceeded: 200 tokens per 1 hour"}
    assert refused.headers["ratelimit-limit"] == "200"
    assert refused.headers["ratelimit-remaining"] == "102"
    assert int(refused.headers["retry-after"]) >= 1
    # a smaller request still fits what is left
    assert httpx.post(url, json={**HELLO, "max_tokens": 50}).status_code == 200


def test_usage_above_the_estimate_is_charged(start_gateway):
    """150 one-letter words are estimated at 79 tokens (299 characters / 4, plus 4) but cost
    151: the second identical call no longer fits (200 - 151 < 80), which it would have on the
    estimate alone."""
    gateway = start_gateway(config(endpoint("chat", TOKENS)), workers=2)
    url = f"{gateway.url}/v1/chat/completions"
    body = {
        "model": "chat",
        "messages": [{"role": "user", "content": " ".join(["a"] * 150)}],
        "max_tokens": 1,
    }
    first = httpx.post(url, json=body)
    assert first.status_code == 200
    assert first.json()["usage"]["total_tokens"] == 151
    second = httpx.post(url, json=body)
    assert second.status_code == 429
    assert second.json()["error"]["message"] == "Rate limit exceeded: 200 tokens per 1 hour"
    assert second.headers["ratelimit-remaining"] == "49"


def test_streams_reconcile_with_the_usage_in_their_final_chunk(start_gateway):
    gateway = start_gateway(config(endpoint("chat", TOKENS, config=CAPPED)), workers=2)
    url = f"{gateway.url}/endpoints/chat/invocations"

    def stream() -> httpx.Response:
        reply = httpx.post(url, json={**HELLO, "stream": True})
        if reply.status_code == 200:
            assert '"usage":{"prompt_tokens":2,"completion_tokens":5,"total_tokens":7}' in reply.text
            assert reply.text.endswith("data: [DONE]\n\n")
        return reply

    admitted, refused = count_admitted(stream)
    assert admitted == 14
    assert refused.json() == {"error": "Rate limit exceeded: 200 tokens per 1 hour"}


def test_streams_without_usage_are_counted_from_their_text(start_gateway):
    """A completions stream that reports no usage: "a b c" (2 tokens estimated) comes back as
    "a b c a b", 9 characters, 3 tokens; 5 used of the 102 charged each time."""
    gateway = start_gateway(config(endpoint("done", TOKENS, kind="completions", config=CAPPED)))
    url = f"{gateway.url}/endpoints/done/invocations"
    body = {"prompt": "a b c", "max_tokens": 100, "stream": True}

    def stream() -> httpx.Response:
        reply = httpx.post(url, json=body)
        if reply.status_code == 200:
            assert '"usage"' not in reply.text.replace('"usage":null', "")
        return reply

    admitted, refused = count_admitted(stream, attempts=40)
    assert admitted == 20  # 200 - 20 x 5 = 100 < 102
    assert refused.headers["ratelimit-remaining"] == "100"

"""Per-endpoint limit on the Rust token bucket (one worker): one counter for every alias."""

from __future__ import annotations

import httpx

CONFIG = """
endpoints:
  - name: limited
    endpoint_type: llm/v1/chat
    model:
      provider: mock
      config: {}
    limit:
      calls: 3
      renewal_period: minute
"""
CHAT = {"messages": [{"role": "user", "content": "hi"}]}


def test_limit_is_shared_by_aliases_and_answers_429(start_gateway):
    gateway = start_gateway(CONFIG)
    url = gateway.url
    assert httpx.post(f"{url}/endpoints/limited/invocations", json=CHAT).status_code == 200
    assert httpx.post(f"{url}/gateway/limited/invocations", json=CHAT).status_code == 200
    assert httpx.post(f"{url}/v1/chat/completions", json={**CHAT, "model": "limited"}).status_code == 200
    # invalid bodies do not consume quota
    assert httpx.post(f"{url}/endpoints/limited/invocations", json={"messages": []}).status_code == 422
    refused = httpx.post(f"{url}/endpoints/limited/invocations", json=CHAT)
    assert refused.status_code == 429
    assert refused.json() == {"error": "Rate limit exceeded: 3 per 1 minute"}
    assert 1 <= int(refused.headers["retry-after"]) <= 20
    assert httpx.post(f"{url}/v1/chat/completions", json={**CHAT, "model": "limited"}).status_code == 429

"""Small client helpers shared by the tests that drive a real gateway."""

from __future__ import annotations

import json
from typing import Any

import httpx


def invoke(http: httpx.Client, name: str, body: Any) -> httpx.Response:
    """POST to an endpoint's MLflow invocation route."""
    return http.post(f"/endpoints/{name}/invocations", json=body)


def stream_events(http: httpx.Client, name: str, body: dict[str, Any]) -> list[Any]:
    """A streamed invocation's SSE payloads, decoded; the terminator stays the string "[DONE]"."""
    with http.stream("POST", f"/endpoints/{name}/invocations", json={**body, "stream": True}) as response:
        assert response.status_code == 200
        raw = response.read().decode()
    events = [event for event in raw.split("\n\n") if event]
    return [json.loads(e[len("data: ") :]) if e != "data: [DONE]" else "[DONE]" for e in events]


def upstream_detail(endpoint: str, provider: str, status: int, message: str) -> str:
    """The detail of an upstream's error answer as the gateway passes it on: the upstream's
    message, naming the endpoint and provider when the upstream failed on its side (5xx)."""
    if status < 500:
        return message
    return f"endpoint '{endpoint}' (provider {provider}) failed (upstream HTTP {status}): {message}"

"""The raw proxy (`/gateway/proxy/{endpoint}/{path}`) against a real gateway: what it refuses to
carry upstream (the client's gateway key in the query, the client's own provider headers, paths
outside the provider's base), the headers it passes back, its usage records (streams too, each
provider's usage shape) and its routing (retries and fallbacks between destinations)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest
from aiohttp import web

from tests.providers.anthropic_upstream import AnthropicUpstream
from tests.providers.gemini_upstream import GoogleUpstream
from tests.support.api_gateway import (
    GEMINI_KEY,
    OPENAI_KEY,
    api_config,
    down_endpoints,
    fallback_routes,
    running_gateway,
    started,
    usage_rows,
)
from tests.support.responses_upstream import ResponsesUpstream

HI = [{"role": "user", "content": "hi"}]
ADMIN = "admin-secret-for-the-proxy-tests"
COLUMNS = "path, endpoint, stream, status, prompt_tokens, completion_tokens, cached_tokens, estimated"


class StampingUpstream(ResponsesUpstream):
    """The OpenAI upstream, also keeping each request's raw header list (duplicates included)
    and stamping its own request id and rate-limit headers on every answer."""

    def setup(self, app: web.Application) -> None:
        super().setup(app)
        app.on_response_prepare.append(self.stamp)

    async def record(self, request: web.Request) -> Any:
        recorded = await super().record(request)
        recorded.raw_headers = [(n.decode().lower(), v.decode()) for n, v in request.raw_headers]
        return recorded

    @staticmethod
    async def stamp(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["x-request-id"] = "req_upstream"
        response.headers["x-ratelimit-remaining-requests"] = "99"


@pytest.fixture(scope="module")
def upstreams():
    yield from started(StampingUpstream(), AnthropicUpstream(), GoogleUpstream())


@pytest.fixture(scope="module")
def gateway(upstreams, tmp_path_factory):
    directory = tmp_path_factory.mktemp("raw-proxy")
    url = f"sqlite:///{directory}/gateway.db"
    routes = fallback_routes(**{"gpt-fallback": ["gpt-down", "gpt"]})
    config = api_config(
        *upstreams, extra=f"database_url: {url}\nauth:\n  admin_key: {ADMIN}\n{routes}", more=down_endpoints()
    )
    for process in running_gateway(directory, config):
        process.usage_url = url  # type: ignore[attr-defined]
        yield process


def test_the_gateway_key_in_the_query_stays_here(gateway, upstreams):
    created = httpx.post(
        f"{gateway.url}/admin/v1/keys", json={"name": "cli"}, headers={"Authorization": f"Bearer {ADMIN}"}
    )
    key = created.json()["key"]  # Google's SDKs put it in `?key=`
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    path = "v1beta/models/gemini-2.0-flash:generateContent"
    answer = httpx.post(f"{gateway.url}/gateway/proxy/gem/{path}?key={key}&x=1", json=body, timeout=10)
    assert answer.status_code == 200
    sent = upstreams[2].requests[-1]
    assert sent.query == "x=1" and sent.headers["x-goog-api-key"] == GEMINI_KEY


def test_client_headers_cannot_override_the_providers(gateway, upstreams):
    hostile = {
        "OpenAI-Organization": "org-of-the-client",
        "OpenAI-Project": "proj-of-the-client",
        "x-goog-user-project": "someone-elses",
        "Cookie": "session=abc",
        "X-Api-Key": "sk-client",
        "Content-Type": "application/json",
        "Anthropic-Beta": "prompt-caching-2024-07-31",
    }
    answer = httpx.post(
        f"{gateway.url}/gateway/proxy/gpt/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": HI},
        headers=hostile,
        timeout=10,
    )
    assert answer.status_code == 200
    names = [name for name, _ in upstreams[0].requests[-1].raw_headers]
    assert names.count("content-type") == 1 and names.count("authorization") == 1
    assert not {"openai-organization", "openai-project", "x-goog-user-project", "cookie", "x-api-key"} & set(
        names
    )
    assert dict(upstreams[0].requests[-1].raw_headers)["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert dict(upstreams[0].requests[-1].raw_headers)["authorization"] == f"Bearer {OPENAI_KEY}"


@pytest.mark.parametrize("escaped", ["%252e%252e", "%252E%252e", ".%252e", "%25252e%25252e"])
def test_escaped_dot_segments_are_refused(gateway, upstreams, escaped):
    before = len(upstreams[0].requests)
    answer = httpx.post(
        f"{gateway.url}/gateway/proxy/azure/openai/{escaped}/{escaped}/v1/chat/completions",
        json={"messages": HI},
        timeout=10,
    )
    assert answer.status_code == 400
    assert len(upstreams[0].requests) == before  # nothing went upstream


def test_answer_headers_once_and_back_off_signals_kept(gateway):
    body = {"model": "gpt-4o-mini", "messages": HI}
    whole = httpx.post(f"{gateway.url}/gateway/proxy/gpt/v1/chat/completions", json=body, timeout=10)
    assert whole.headers["x-ratelimit-remaining-requests"] == "99"
    assert whole.headers.get_list("x-request-id") == [whole.headers["x-request-id"]] != ["req_upstream"]
    with httpx.stream(
        "POST",
        f"{gateway.url}/gateway/proxy/gpt/v1/chat/completions",
        json={**body, "stream": True},
        timeout=10,
    ) as streamed:
        b"".join(streamed.iter_bytes())
    assert len(streamed.headers.get_list("x-request-id")) == 1
    assert streamed.headers["x-request-id"] != "req_upstream"


def test_usage_of_proxied_answers_and_streams(gateway):
    openai_body = {
        "model": "gpt-4o-mini",
        "messages": HI,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    claude_body = {"model": "claude-text", "max_tokens": 50, "messages": HI}
    headers = {"anthropic-version": "2023-06-01"}
    calls = [
        ("gpt", "v1/chat/completions", openai_body),
        ("claude", "v1/messages", claude_body),
        ("claude", "v1/messages", {**claude_body, "stream": True}),
    ]
    ids = [f"usage-of-proxied-{uuid.uuid4().hex}" for _ in calls]
    for (endpoint, path, body), request_id in zip(calls, ids, strict=True):
        url = f"{gateway.url}/gateway/proxy/{endpoint}/{path}"
        sent = {**headers, "x-request-id": request_id}
        with httpx.stream("POST", url, json=body, headers=sent, timeout=10) as answer:
            assert answer.status_code == 200, answer.read()
            answer.read()
    # these three requests' records (other tests' may be written later, in another batch)
    deadline = time.monotonic() + 10
    while True:
        found = {row[0]: row[1:] for row in usage_rows(gateway.usage_url, "request_id, " + COLUMNS, 3)}
        if all(request_id in found for request_id in ids) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    proxied = [found.get(request_id) for request_id in ids]
    claude_counts = (38, 12, 10, False)  # input 25 + cache write 3 + cache read 10, as the provider said
    assert proxied == [
        ("/gateway/proxy/gpt/v1/chat/completions", "gpt", True, 200, 5, 6, 0, False),
        ("/gateway/proxy/claude/v1/messages", "claude", False, 200, *claude_counts),
        ("/gateway/proxy/claude/v1/messages", "claude", True, 200, *claude_counts),
    ]


def test_a_fallback_route_moves_on_to_the_next_destination(gateway, upstreams):
    answer = httpx.post(
        f"{gateway.url}/gateway/proxy/gpt-fallback/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": HI},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == "Hello from the mock upstream!"
    assert answer.headers["x-gateway-attempts"] == "2"

"""Responses and Gemini-native passthroughs under the routing layer: a FALLBACK route whose first
destination is down answers from the next one (whole and streamed, `x-gateway-attempts` says how
many tries), and a route mixing providers is served by translation, routed the same way."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.support.api_gateway import api_config, down_endpoints, fallback_routes, running_gateway

BODY = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


@pytest.fixture(scope="module")
def gateway(upstreams, tmp_path_factory):
    routes = fallback_routes(
        **{
            "gpt-fallback": ["gpt-down", "gpt"],
            "gem-fallback": ["gem-down", "gem"],
            "mixed-fallback": ["gpt-down", "claude"],
        }
    )
    config = api_config(*upstreams, extra=routes, more=down_endpoints())
    yield from running_gateway(tmp_path_factory.mktemp("passthrough-routing"), config)


@pytest.fixture(scope="module")
def client(gateway):
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0)


def test_responses_fall_back_to_the_next_destination(client):
    whole = client.responses.with_raw_response.create(model="gpt-fallback", input="hi")
    assert whole.parse().output_text == "Hello from Responses!"
    assert whole.headers["x-gateway-attempts"] == "2"
    with client.responses.stream(model="gpt-fallback", input="hi") as stream:
        assert stream.get_final_response().output_text == "Hello from Responses!"
    mixed = client.responses.with_raw_response.create(model="mixed-fallback", input="hi")
    assert mixed.parse().output_text and mixed.headers["x-gateway-attempts"] == "2"


def test_gemini_falls_back_to_the_next_destination(gateway):
    whole = httpx.post(f"{gateway.url}/v1beta/models/gem-fallback:generateContent", json=BODY, timeout=10)
    assert whole.status_code == 200, whole.text
    assert whole.json()["candidates"][0]["content"]["parts"][0]["text"] == "Hello from Gemini!"
    assert whole.headers["x-gateway-attempts"] == "2"
    url = f"{gateway.url}/v1beta/models/gem-fallback:streamGenerateContent?alt=sse"
    with httpx.stream("POST", url, json=BODY, timeout=10) as streamed:
        assert streamed.status_code == 200 and streamed.headers["x-gateway-attempts"] == "2"
        assert streamed.read().count(b"data: ") >= 2

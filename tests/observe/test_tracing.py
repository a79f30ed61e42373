"""OpenTelemetry traces: one span per request sent over OTLP/HTTP, the client's `traceparent`
continued and passed on to the provider; none of it when no OTLP endpoint is set."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from tests.integration.configs import openai_config
from tests.observe.support import OtlpReceiver

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
CHAT = {"messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def receiver():
    server = OtlpReceiver().start()
    yield server
    server.stop()


def header(recorded, name: str) -> str | None:
    return next((v for k, v in recorded.headers.items() if k.lower() == name), None)


def wait_for_spans(receiver: OtlpReceiver, count: int, timeout: float = 15) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        spans = receiver.spans()
        if len(spans) >= count:
            return spans
        time.sleep(0.1)
    raise AssertionError(f"{len(receiver.spans())} spans arrived, {count} expected")


def test_a_span_per_request_continuing_the_clients_trace_into_the_upstream(start_gateway, upstream, receiver):
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_SERVICE_NAME": "gateway-under-test",
    }
    gateway = start_gateway(openai_config(upstream.base), workers=2, env=env)
    before = len(upstream.requests)
    traced = httpx.post(
        f"{gateway.url}/endpoints/chat/invocations",
        json=CHAT,
        headers={"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"},
        timeout=10,
    )
    assert traced.status_code == 200
    sent = upstream.requests[before]
    upstream_parent = header(sent, "traceparent")
    assert upstream_parent is not None
    version, trace_id, parent_id, flags = upstream_parent.split("-")
    assert (version, trace_id, flags) == ("00", CLIENT_TRACE, "01")
    assert parent_id != CLIENT_SPAN  # the gateway's own span is the provider call's parent

    # a stream on /v1 without a traceparent: a new trace, still passed on
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)
    stream = client.chat.completions.create(model="chat", messages=CHAT["messages"], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    fresh = header(upstream.requests[-1], "traceparent")
    assert fresh is not None and fresh.split("-")[1] != CLIENT_TRACE
    refused = httpx.post(f"{gateway.url}/endpoints/nope/invocations", json=CHAT, timeout=10)
    assert refused.status_code == 404

    spans = {span["trace_id"]: span for span in wait_for_spans(receiver, 3)}
    assert len(spans) == 3
    chat = spans[CLIENT_TRACE]
    assert chat["parent_span_id"] == CLIENT_SPAN and chat["span_id"] == parent_id
    assert chat["service"] == "gateway-under-test"
    assert chat["name"] == "chat gpt-4o-mini"
    assert chat["kind"] == 2  # SERVER
    attributes = chat["attributes"]
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (5, 6)
    assert attributes["http.response.status_code"] == 200
    assert attributes["gateway.request_id"] == traced.headers["x-request-id"]
    assert "error.type" not in attributes
    streamed = spans[fresh.split("-")[1]]
    assert streamed["attributes"]["gateway.stream"] is True
    assert streamed["parent_span_id"] == ""
    missing = next(span for span in spans.values() if span["attributes"]["http.response.status_code"] == 404)
    assert missing["attributes"]["error.type"] == "NotFound"
    assert missing["status"] == 2  # ERROR
    assert gateway.stop() == 0


def test_no_endpoint_no_traces(start_gateway, upstream):
    gateway = start_gateway(openai_config(upstream.base))
    before = len(upstream.requests)
    response = httpx.post(
        f"{gateway.url}/endpoints/chat/invocations",
        json=CHAT,
        headers={"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"},
        timeout=10,
    )
    assert response.status_code == 200
    # the client's header is not forwarded either: the gateway builds the provider's headers
    assert header(upstream.requests[before], "traceparent") is None

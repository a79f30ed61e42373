"""Per-endpoint timeouts: connect, first byte, between stream chunks, total."""

from __future__ import annotations

import time

import httpx
import orjson
import pytest

from tests.routing.configs import chat_body, endpoint


@pytest.fixture(scope="module")
def gateway(faulty, module_gateway):
    endpoints = [
        endpoint(faulty, "total", "timeouts: {total_seconds: 0.5}"),
        endpoint(faulty, "gaps", "timeouts: {between_chunks_seconds: 0.3}"),
        endpoint(faulty, "whole-stream", "timeouts: {total_seconds: 0.6}"),
        endpoint(faulty, "headers", "timeouts: {first_byte_seconds: 0.3}"),
    ]
    return module_gateway("endpoints:\n" + "".join(endpoints))


def _events(gateway, name: str) -> list[str]:
    url = f"{gateway.url}/endpoints/{name}/invocations"
    with httpx.stream("POST", url, json=chat_body(stream=True), timeout=10) as response:
        assert response.status_code == 200
        return [line[6:] for line in response.iter_lines() if line.startswith("data: ")]


def test_a_whole_answer_past_its_total_is_a_504(faulty, gateway):
    faulty.script("total", ["slow:3"])
    started = time.monotonic()
    response = httpx.post(f"{gateway.url}/endpoints/total/invocations", json=chat_body(), timeout=10)
    assert response.status_code == 504
    assert response.json()["detail"] == "endpoint 'total' (provider openai) did not answer within 0.5s."
    assert 0.5 <= time.monotonic() - started < 1.5


def test_headers_past_the_first_byte_timeout_are_a_504(faulty, gateway):
    faulty.script("headers", ["slow:2"])
    response = httpx.post(f"{gateway.url}/endpoints/headers/invocations", json=chat_body(), timeout=10)
    assert response.status_code == 504
    assert "did not answer within 0.3s" in response.json()["detail"]


def test_a_silent_stream_ends_with_an_error_event(faulty, gateway):
    faulty.script("gaps", ["stream-gap:1"])
    events = _events(gateway, "gaps")
    assert orjson.loads(events[0])["choices"][0]["delta"]["content"] == "Hello"
    error = orjson.loads(events[-1])["error"]
    assert error["message"] == "endpoint 'gaps' (provider openai) stopped sending for 0.3s."


def test_a_stream_past_its_total_ends_with_an_error_event(faulty, gateway):
    faulty.script("whole-stream", ["stream-gap:0.2"])  # 7 events: 1.4 s
    started = time.monotonic()
    events = _events(gateway, "whole-stream")
    assert time.monotonic() - started < 1.2
    error = orjson.loads(events[-1])["error"]
    assert (
        error["message"] == "endpoint 'whole-stream' (provider openai) did not finish its stream within 0.6s."
    )
    assert 2 <= len(events) - 1 <= 4

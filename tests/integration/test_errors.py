"""Bad requests and upstream failures get clear answers with the right status; the worker
keeps serving."""

from __future__ import annotations

import contextlib
import json
import socket
import time

import httpx
import pytest

from tests.conftest import free_port, launch
from tests.integration.configs import openai_endpoint
from tests.support.client import upstream_detail

CHAT = {"messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory):
    dead = f"http://127.0.0.1:{free_port()}/v1"
    endpoints = [
        openai_endpoint("chat", "chat", "gpt-4o-mini", upstream.base),
        openai_endpoint("completions", "completions", "gpt-3.5", upstream.base),
        openai_endpoint("embeddings", "embeddings", "emb", upstream.base),
        openai_endpoint("plain-json", "chat", "err-400-plain-json", upstream.base),
        openai_endpoint("text-503", "chat", "err-503-text", upstream.base),
        openai_endpoint("html-502", "chat", "err-502-html", upstream.base),
        openai_endpoint("rate-429", "chat", "err-429", upstream.base),
        openai_endpoint("slow", "chat", "slow-3000", upstream.base),
        openai_endpoint("refused", "chat", "gpt", dead),
        openai_endpoint("stream-break", "chat", "stream-break", upstream.base),
        openai_endpoint("stream-error", "chat", "stream-error-event", upstream.base),
        openai_endpoint("slow-stream", "chat", "stream-gap-500", upstream.base),
        openai_endpoint("wrong-shape", "chat", "stream-wrong-shape", upstream.base),
        openai_endpoint("empty-stream", "chat", "stream-empty", upstream.base),
    ]
    env = {"MLFLOW_GATEWAY_ROUTE_TIMEOUT_SECONDS": "1", "GATEWAY_MAX_REQUEST_BYTES": "2000"}
    process = launch(tmp_path_factory.mktemp("errors"), "endpoints:" + "".join(endpoints), env=env)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def http(gateway):
    with httpx.Client(base_url=gateway.url, timeout=20) as client:
        yield client


def invoke(http, name, body, **kwargs):
    return http.post(
        f"/endpoints/{name}/invocations", **kwargs, **({"json": body} if body is not None else {})
    )


def test_invalid_json(http):
    response = http.post(
        "/endpoints/chat/invocations", content=b'{"messages": [', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert (
        error["type"] == "json_invalid" and error["loc"][0] == "body" and error["msg"] == "JSON decode error"
    )


def test_wrong_types_use_fastapi_list_format(http):
    response = invoke(http, "chat", {**CHAT, "n": "two"})
    assert response.status_code == 422
    assert response.json()["detail"][0] == {
        "type": "int_parsing",
        "loc": ["body", "n"],
        "msg": "Input should be a valid integer, unable to parse string as an integer",
        "input": "two",
    }
    response = invoke(http, "chat", {**CHAT, "temperature": 3})
    assert response.json()["detail"][0]["type"] == "less_than_equal"
    assert response.json()["detail"][0]["msg"] == "Input should be less than or equal to 2"
    response = invoke(http, "chat", {"messages": []})
    assert response.json()["detail"][0]["type"] == "too_short"
    response = invoke(http, "chat", {"messages": [{"content": "no role"}]})
    assert response.json()["detail"][0]["loc"] == ["body", "messages", 0, "role"]
    assert response.json()["detail"][0]["type"] == "missing"
    response = invoke(http, "completions", {"prompt": []})
    assert response.json()["detail"][0]["loc"] == ["body", "prompt", "str"]
    response = invoke(http, "embeddings", {"input": {"not": "valid"}})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "input", "str"]
    response = invoke(
        http, "chat", {"messages": [{"role": "user", "content": [{"type": "video", "url": "x"}]}]}
    )
    assert response.status_code == 422


def test_wrong_content_type_and_non_object(http):
    response = http.post(
        "/endpoints/chat/invocations", content=json.dumps(CHAT), headers={"content-type": "text/plain"}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "model_attributes_type"
    response = invoke(http, "chat", [1, 2])
    assert response.status_code == 422
    response = http.post("/endpoints/chat/invocations", headers={"content-type": "application/json"})
    assert response.json()["detail"] == [
        {"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}
    ]


def test_body_over_the_limit_is_413(http):
    big = {"messages": [{"role": "user", "content": "x" * 5000}]}
    response = invoke(http, "chat", big)
    assert response.status_code == 413
    assert "limit is 2000 bytes" in response.json()["detail"]

    def chunks():
        yield b'{"messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"y" * 500
        yield b'"}]}'

    # no content-length: counted while reading
    response = http.post(
        "/endpoints/chat/invocations", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert invoke(http, "chat", CHAT).status_code == 200  # still serving


def test_upstream_json_error_without_error_key(http):
    response = invoke(http, "plain-json", CHAT)
    assert response.status_code == 400 and response.json() == {"detail": {"foo": "bar"}}


def test_upstream_text_error(http):
    response = invoke(http, "text-503", CHAT)
    message = upstream_detail("text-503", "openai", 503, "upstream overloaded")
    assert response.status_code == 503 and response.json() == {"detail": {"message": message}}


def test_upstream_html_is_502(http):
    response = invoke(http, "html-502", CHAT)
    assert response.status_code == 502
    assert response.json()["detail"].startswith(
        upstream_detail(
            "html-502", "openai", 502, "The returned data type from the route service is not supported."
        )
    )


def test_upstream_429_passes_through(http):
    response = invoke(http, "rate-429", CHAT)
    assert response.status_code == 429 and response.json() == {"detail": "Rate limit reached for requests"}
    # the client backs off as the provider asked; other upstream headers stay behind
    assert response.headers["retry-after"] == "7"
    assert response.headers["x-ratelimit-reset-requests"] == "7s"
    assert response.headers["x-ratelimit-remaining-requests"] == "0"
    assert "x-request-id" not in response.headers or response.headers["x-request-id"] != "req_upstream"


def test_upstream_retry_after_reaches_the_openai_sdk(gateway):
    import openai

    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(model="rate-429", messages=CHAT["messages"])
    assert raised.value.response.headers["retry-after"] == "7"


def test_timeout_is_504_naming_endpoint_and_provider(http):
    response = invoke(http, "slow", CHAT)
    assert response.status_code == 504
    detail = response.json()["detail"]
    assert "endpoint 'slow'" in detail and "openai" in detail


def test_refused_connection_is_502(http):
    response = invoke(http, "refused", CHAT)
    assert response.status_code == 502
    assert "endpoint 'refused'" in response.json()["detail"] and "sk-test" not in response.text


def test_v1_errors_carry_an_openai_error_object(http):
    response = http.post("/v1/chat/completions", json={**CHAT, "model": "rate-429"})
    assert response.status_code == 429
    assert response.json()["error"]["message"] == "Rate limit reached for requests"
    missing = http.post("/v1/chat/completions", json=CHAT)
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["body", "model"]


def gateway_stream(gateway, name, body):
    return httpx.stream("POST", f"{gateway.url}/endpoints/{name}/invocations", json=body, timeout=10)


def read_events(http, name):
    with http.stream("POST", f"/endpoints/{name}/invocations", json={**CHAT, "stream": True}) as response:
        assert response.status_code == 200
        return [e for e in response.read().decode().split("\n\n") if e]


def test_stream_cut_by_upstream_ends_with_error_event(http):
    events = read_events(http, "stream-break")
    assert events[-1] != "data: [DONE]"
    error = json.loads(events[-1][len("data: ") :])["error"]
    assert error["code"] in (502, 504) and "stream-break" in error["message"]


def test_stream_error_event_from_upstream_is_relayed(http):
    events = read_events(http, "stream-error")
    error = json.loads(events[-1][len("data: ") :])["error"]
    assert error["message"] == "The server had an error"


def test_stream_events_of_the_wrong_shape_are_skipped(http):
    events = read_events(http, "wrong-shape")
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e[len("data: ") :]) for e in events[:-1]]
    assert (
        "".join(c["choices"][0]["delta"]["content"] or "" for c in chunks) == "Hello from the mock upstream!"
    )


def test_empty_upstream_stream_is_an_error_event(http):
    events = read_events(http, "empty-stream")
    error = json.loads(events[-1][len("data: ") :])["error"]
    assert error["code"] == 502 and "endpoint 'empty-stream'" in error["message"]
    assert "data: [DONE]" not in events


def test_stream_refused_before_start_is_a_status(http):
    response = invoke(http, "refused", {**CHAT, "stream": True})
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/json"


def test_garbage_on_the_socket_does_not_kill_the_worker(gateway, http):
    with socket.create_connection(("127.0.0.1", gateway.port)) as sock:
        sock.sendall(b"\x00\x01 NOT HTTP\r\n\r\n")
        sock.settimeout(2)
        with contextlib.suppress(OSError):
            sock.recv(100)
    assert http.get("/health").status_code == 200


def test_client_hanging_up_closes_the_upstream_stream(gateway, upstream):
    before = upstream.abandoned_streams
    body = {**CHAT, "stream": True}
    with gateway_stream(gateway, "slow-stream", body) as response:
        next(response.iter_raw())  # the stream is flowing; now hang up
    deadline = time.monotonic() + 3  # the upstream stream would run for 3.5 s more
    while upstream.abandoned_streams == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert upstream.abandoned_streams == before + 1


def test_no_secret_in_the_log(gateway, http):
    invoke(http, "refused", CHAT)
    invoke(http, "rate-429", CHAT)
    assert "sk-test-secret-key" not in gateway.log()

"""What a misbehaving client or upstream can no longer do: make the gateway call an upstream
for nobody, carry the gateway's own key back to a client or a log, fail silently, or be cut
mid-stream without a word when the gateway stops."""

from __future__ import annotations

import json
import signal
import socket
import time

import httpx
import pytest

from tests.conftest import launch
from tests.integration.configs import openai_endpoint

SECRET = "sk-test-secret-key"  # the key every endpoint of tests.integration.configs is given
CHAT = {"messages": [{"role": "user", "content": "a prompt that must not be logged"}]}


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory):
    endpoints = [
        openai_endpoint("chat", "chat", "gpt-4o-mini", upstream.base),
        openai_endpoint("slow", "chat", "slow-1500", upstream.base),
        openai_endpoint("echo-key", "chat", "err-401-echo", upstream.base),
        openai_endpoint("html-502", "chat", "err-502-html", upstream.base),
    ]
    env = {"MLFLOW_GATEWAY_ROUTE_TIMEOUT_SECONDS": "5"}
    process = launch(tmp_path_factory.mktemp("hostile"), "endpoints:" + "".join(endpoints), env=env)
    yield process
    process.stop()


def raw_request(port: int, name: str, body: dict) -> bytes:
    data = json.dumps(body).encode()
    head = (
        f"POST /endpoints/{name}/invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


def wait_for(condition, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_half_closed_client_has_its_upstream_call_aborted_at_once(gateway, upstream):
    """Granian drops a client that half-closes (it cannot be answered); its upstream call must
    not run on: either it is never made, or the gateway hangs up on it as soon as it learns."""
    calls, abandoned = len(upstream.requests), upstream.abandoned_requests
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", gateway.port)) as sock:
            sock.sendall(raw_request(gateway.port, "slow", CHAT))
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(5)
            assert sock.recv(65536) == b""
    time.sleep(2.0)  # the slow upstream answers after 1.5 s to whoever is still there
    made = len(upstream.requests) - calls
    assert upstream.abandoned_requests - abandoned == made, "an upstream call outlived its client"
    assert httpx.post(f"{gateway.url}/endpoints/chat/invocations", json=CHAT).status_code == 200


def test_client_going_away_cancels_a_pending_upstream_call(gateway, upstream):
    abandoned = upstream.abandoned_requests
    with socket.create_connection(("127.0.0.1", gateway.port)) as sock:
        sock.sendall(raw_request(gateway.port, "slow", CHAT))
        time.sleep(0.3)  # the upstream call is under way (it answers after 1.5 s)
    # the gateway hangs up on the upstream at once, not after the route timeout
    assert wait_for(lambda: upstream.abandoned_requests == abandoned + 1, 3)
    assert wait_for(lambda: "the client went away" in gateway.log())


def test_upstream_echoing_the_key_never_reaches_the_client(gateway):
    for url, body in (
        (f"{gateway.url}/endpoints/echo-key/invocations", CHAT),
        (f"{gateway.url}/v1/chat/completions", {**CHAT, "model": "echo-key"}),
    ):
        response = httpx.post(url, json=body)
        assert response.status_code == 401
        assert SECRET not in response.text and "Incorrect API key provided: ***" in response.text
    with httpx.stream(
        "POST", f"{gateway.url}/endpoints/echo-key/invocations", json={**CHAT, "stream": True}
    ) as r:
        assert r.status_code == 401 and SECRET not in r.read().decode()
    assert SECRET not in gateway.log()


def test_every_failed_request_is_logged_once_without_secret_or_prompt(gateway):
    httpx.post(f"{gateway.url}/endpoints/html-502/invocations", json=CHAT)
    httpx.post(f"{gateway.url}/endpoints/echo-key/invocations", json=CHAT)
    assert wait_for(lambda: "html-502" in gateway.log())
    lines = [line for line in gateway.log().splitlines() if "endpoint 'html-502' (provider openai)" in line]
    failed = [line for line in lines if "POST /endpoints/html-502/invocations" in line]
    assert len(failed) == 1, lines
    assert "502 UpstreamUnavailable after" in failed[0] and " ms" in failed[0]
    log = gateway.log()
    assert "must not be logged" not in log and SECRET not in log
    assert (
        "POST /endpoints/echo-key/invocations endpoint 'echo-key' (provider openai): 401 UpstreamError" in log
    )


def test_streams_running_at_the_drain_deadline_get_an_error_event(upstream, tmp_path):
    config = "endpoints:" + openai_endpoint("long", "chat", "stream-gap-1500", upstream.base)
    gateway = launch(tmp_path, config, env={"GATEWAY_DRAIN_SECONDS": "3"})
    with httpx.stream(
        "POST", f"{gateway.url}/endpoints/long/invocations", json={**CHAT, "stream": True}, timeout=20
    ) as response:
        lines = response.iter_lines()
        assert next(lines).startswith("data: ")  # the stream is running
        stopped = time.monotonic()
        gateway.proc.send_signal(signal.SIGTERM)
        rest = [line for line in lines if line.startswith("data: ")]
    took = time.monotonic() - stopped
    error = json.loads(rest[-1][len("data: ") :])["error"]
    assert error["code"] == 503 and "shutting down" in error["message"]
    assert took < 3.5, took
    assert gateway.proc.wait(10) == 0

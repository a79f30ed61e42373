"""Hot reload: a config edit during a long stream leaves the stream untouched, the next request
sees the edit, and an invalid file keeps the old config serving."""

from __future__ import annotations

import threading
import time

import httpx

from tests.integration.configs import openai_config, openai_endpoint

CHAT = {"messages": [{"role": "user", "content": "hi"}]}


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_edit_during_long_stream(start_gateway, upstream):
    slow = openai_endpoint("slow-stream", "chat", "stream-gap-400", upstream.base)
    gateway = start_gateway(openai_config(upstream.base, slow), workers=2)
    result: dict[str, object] = {}

    def consume() -> None:
        with httpx.stream(
            "POST",
            f"{gateway.url}/endpoints/slow-stream/invocations",
            json={**CHAT, "stream": True},
            timeout=30,
        ) as response:
            result["status"] = response.status_code
            result["body"] = response.read().decode()

    reader = threading.Thread(target=consume)
    reader.start()
    time.sleep(0.5)  # the stream is under way (about 3 s long)
    added = openai_endpoint("added", "chat", "gpt-4o-mini", upstream.base)
    gateway.config_path.write_text(openai_config(upstream.base, slow + added))

    def added_everywhere() -> bool:
        # fresh connections spread over both workers
        return all(httpx.get(f"{gateway.url}/api/2.0/endpoints/added").status_code == 200 for _ in range(10))

    assert wait_for(added_everywhere), gateway.log()
    assert reader.is_alive(), "the reload should have landed while the stream was still running"
    reader.join(30)
    assert result["status"] == 200
    body = str(result["body"])
    assert body.endswith("data: [DONE]\n\n")
    assert body.count("chat.completion.chunk") >= 7
    reply = httpx.post(f"{gateway.url}/endpoints/added/invocations", json=CHAT)
    assert reply.status_code == 200


def test_invalid_edit_keeps_serving(start_gateway, upstream):
    gateway = start_gateway(openai_config(upstream.base))
    gateway.config_path.write_text("endpoints:\n  - name: broken\n    endpoint_type: llm/v1/chat\n")
    assert wait_for(lambda: "Invalid configuration" in gateway.log()), gateway.log()
    assert "endpoint 'broken'" in gateway.log()
    assert httpx.post(f"{gateway.url}/endpoints/chat/invocations", json=CHAT).status_code == 200
    # a fix after the bad edit is picked up
    gateway.config_path.write_text(openai_config(upstream.base).replace("name: chat\n", "name: chat2\n", 1))
    assert wait_for(lambda: httpx.get(f"{gateway.url}/api/2.0/endpoints/chat2").status_code == 200)
    assert httpx.get(f"{gateway.url}/api/2.0/endpoints/chat").status_code == 404

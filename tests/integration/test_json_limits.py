"""What one JSON body may cost before it becomes Python objects. A valid 32 MiB body of about a
million tiny messages used to cost ~300 MiB and over a second of the worker's event loop (every
other request waited); it is now refused after one scan of its raw bytes, run in a worker
thread without the GIL, while the loop keeps answering everyone else."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from tests.conftest import launch
from tests.integration.configs import MOCK_CHAT

CONFIG = MOCK_CHAT
MESSAGE = b'{"role":"user","content":"a"}'
MILLION_MESSAGES = b'{"model":"chat","messages":[' + b",".join([MESSAGE] * 1_000_000) + b"]}"
NORMAL = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
PROMPT = 1.0  # seconds a normal request may take while the large body is handled


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    # one worker: the large body and the normal requests share one event loop
    process = launch(tmp_path_factory.mktemp("json-limits"), CONFIG, workers=1)
    yield process
    process.stop()


async def _large_with_normal_traffic(url: str, body: bytes) -> tuple[httpx.Response, float, list[float]]:
    """Sends `body`; meanwhile a normal request every 20 ms, each timed, until the answer."""
    latencies: list[float] = []
    done = asyncio.Event()
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:

        async def normal_traffic() -> None:
            while not done.is_set():
                started = time.monotonic()
                response = await client.post("/v1/chat/completions", json=NORMAL)
                assert response.status_code == 200, response.text
                latencies.append(time.monotonic() - started)
                await asyncio.sleep(0.02)

        traffic = asyncio.create_task(normal_traffic())
        await asyncio.sleep(0.1)
        started = time.monotonic()
        large = await client.post(
            "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
        )
        seconds = time.monotonic() - started
        await asyncio.sleep(0.1)  # a request or two after the answer too
        done.set()
        await traffic
    return large, seconds, latencies


def test_a_million_tiny_messages_are_refused_while_others_are_served(gateway):
    assert len(MILLION_MESSAGES) < 32 * 1024 * 1024  # within the body size limit
    response, seconds, latencies = asyncio.run(_large_with_normal_traffic(gateway.url, MILLION_MESSAGES))
    print(f"\n413 after {seconds:.2f} s; normal requests meanwhile: max {max(latencies) * 1000:.0f} ms")
    assert response.status_code == 413
    body = response.json()
    assert body["detail"] == "Request body too large: more than 50000 messages, the limit is 50000."
    assert body["error"] == {"message": body["detail"], "type": "invalid_request_error", "code": 413}
    assert seconds < 10
    assert len(latencies) >= 3
    assert max(latencies) < PROMPT, latencies


def test_deep_nesting_is_refused(gateway):
    nested = json.dumps({"model": "chat", "messages": NORMAL["messages"]})[:-1].encode()
    deep = nested + b',"x":' + b"[" * 100 + b"]" * 100 + b"}"
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions", content=deep, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["detail"] == (
        "Request body nested too deeply: 101 levels of arrays and objects, the limit is 64."
    )
    assert response.json()["error"]["code"] == 400
    # deeper than any JSON parser of FastAPI's goes: MLflow's own answer, byte for byte
    deeper = b"[" * 5000 + b"]" * 5000
    response = httpx.post(
        f"{gateway.url}/endpoints/chat/invocations",
        content=deeper,
        headers={"content-type": "application/json"},
    )
    assert (response.status_code, response.content) == (
        400,
        b'{"detail":"There was an error parsing the body"}',
    )


def test_deep_nesting_over_a_large_body_does_not_hold_the_loop(gateway):
    """A 30 MiB body of brackets: the scan (in a thread) finds the depth without building it."""
    deep = b'{"model":"chat","x":' + b"[" * (15 * 2**20) + b"]" * (15 * 2**20) + b"}"
    response, seconds, latencies = asyncio.run(_large_with_normal_traffic(gateway.url, deep))
    assert response.status_code == 400
    assert response.json()["detail"] == "There was an error parsing the body"
    assert max(latencies) < PROMPT, latencies


def test_normal_bodies_are_unaffected(gateway):
    body = {
        **NORMAL,
        "messages": NORMAL["messages"] * 1000,
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "f",
                    "parameters": {
                        "type": "object",
                        "properties": {
                            "a": {
                                "type": "object",
                                "properties": {"b": {"type": "array", "items": {"type": "string"}}},
                            }
                        },
                    },
                },
            }
        ],
    }
    response = httpx.post(f"{gateway.url}/v1/chat/completions", json=body, timeout=30)
    assert response.status_code == 200, response.text

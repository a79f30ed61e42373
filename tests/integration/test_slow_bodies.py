"""Slow request bodies: a client that sends a full request head and then trickles its body must
not hold a worker's connections for ever. Each body has a deadline and, after a grace period, a
minimum rate; a body slower than that gets 408 and its connection is closed, so slow clients
cannot starve fast ones even when there are more of them than a worker serves at once.

A bounded load test on 127.0.0.1: a few hundred slow-body connections, more than the connection
cap the gateway is given here, while normal requests are sent meanwhile."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

import pytest

from tests.conftest import launch
from tests.integration.configs import MOCK_CHAT

CONFIG = MOCK_CHAT
WORKERS = 2
PER_WORKER = 64  # GATEWAY_WORKER_CONNECTIONS: open connections one worker serves at once
SLOW = 300  # slow-body connections, more than WORKERS * PER_WORKER
GRACE = 1.0
DEADLINE = 5.0
ENV = {
    "GATEWAY_WORKER_CONNECTIONS": str(PER_WORKER),
    "GATEWAY_BODY_GRACE_SECONDS": str(GRACE),
    "GATEWAY_BODY_MIN_BYTES_PER_SECOND": "1024",
    "GATEWAY_BODY_TIMEOUT_SECONDS": str(DEADLINE),
}
HOLD = 25.0  # how long a slow client keeps trickling before the test gives up on an answer
CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}


@dataclass
class Outcome:
    status: int | None  # the answer's status, None when none came
    body: bytes
    closed_after: float | None  # seconds from connect to the server closing, None if it never did


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    process = launch(tmp_path_factory.mktemp("slow-bodies"), CONFIG, workers=WORKERS, env=ENV)
    yield process
    process.stop()


def _parse(raw: bytes) -> tuple[int | None, bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    parts = head.split(b" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    return status, body


async def slow_client(port: int, path: str) -> Outcome:
    """Sends a head announcing 100,000 bytes, then one byte every half second."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 100000\r\n\r\n{".encode()
    )
    raw = b""
    try:
        while time.monotonic() - started < HOLD:
            try:
                writer.write(b" ")
                await writer.drain()
            except ConnectionError:
                pass  # closed by the server: what it sent is still to be read
            try:
                chunk = await asyncio.wait_for(reader.read(65536), 0.5)
            except TimeoutError:
                continue
            if not chunk:
                return Outcome(*_parse(raw), time.monotonic() - started)
            raw += chunk
        return Outcome(*_parse(raw), None)
    except ConnectionError:
        return Outcome(*_parse(raw), time.monotonic() - started)
    finally:
        writer.close()


async def normal_request(port: int) -> tuple[int | None, float]:
    started = time.monotonic()
    data = json.dumps(CHAT).encode()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(data), data)
        )
        raw = await asyncio.wait_for(reader.read(), HOLD)
        writer.close()
    except (OSError, TimeoutError):
        return None, time.monotonic() - started
    return _parse(raw)[0], time.monotonic() - started


async def load(port: int) -> tuple[list[Outcome], list[tuple[int | None, float]]]:
    paths = ["/v1/chat/completions", "/endpoints/chat/invocations"]
    slow = [asyncio.create_task(slow_client(port, paths[i % 2])) for i in range(SLOW)]
    await asyncio.sleep(0.5)  # every slow connection is open (or queued) before the first normal one
    normal = []
    for _ in range(20):
        normal.append(asyncio.create_task(normal_request(port)))
        await asyncio.sleep(0.25)
    return await asyncio.gather(*slow), await asyncio.gather(*normal)


def test_slow_bodies_get_408_and_do_not_starve_normal_requests(gateway):
    slow, normal = asyncio.run(load(gateway.port))

    statuses = [status for status, _ in normal]
    latencies = sorted(latency for _, latency in normal)
    print(f"\nnormal requests: p50 {latencies[len(latencies) // 2]:.3f} s, max {latencies[-1]:.3f} s")
    closed = sorted(o.closed_after for o in slow if o.closed_after is not None)
    median = f", median after {closed[len(closed) // 2]:.1f} s" if closed else ""
    answered = [o for o in slow if o.status is not None]
    print(f"slow bodies: {len(closed)} of {SLOW} closed{median}, {len(answered)} read their answer")
    assert statuses == [200] * len(normal), statuses

    never_closed = [o for o in slow if o.closed_after is None]
    assert not never_closed, f"{len(never_closed)} slow bodies still open after {HOLD} s"
    # a client still writing may see the close as a reset before it reads the answer
    assert len(answered) >= SLOW * 0.9, f"only {len(answered)} of {SLOW} slow bodies got an answer"
    assert {o.status for o in answered} == {408}
    for outcome in answered:
        detail = json.loads(outcome.body)["detail"]
        assert "Request body not received in time" in detail
    openai_style = [json.loads(o.body) for o in answered if b'"error"' in o.body]
    assert openai_style and all(b["error"]["code"] == 408 for b in openai_style)
    # the first wave was read at once: closed one grace period and a byte's allowance in,
    # long before the hard deadline (the later waves waited for a connection slot first)
    assert closed[0] < DEADLINE


def test_a_body_that_never_comes_is_closed_by_the_deadline(gateway):
    """No byte of the body at all: the same 408 once the grace period is over."""

    async def silent() -> tuple[bytes, float]:
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        started = time.monotonic()
        writer.write(b"POST /endpoints/chat/invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
        raw = await asyncio.wait_for(reader.read(), HOLD)
        writer.close()
        return raw, time.monotonic() - started

    raw, seconds = asyncio.run(silent())
    assert raw.startswith(b"HTTP/1.1 408 ")
    assert b"connection: close" in raw.lower()
    assert seconds < DEADLINE


def test_a_slow_but_steady_body_is_read(gateway):
    """A client on a slow link that keeps up the minimum rate is served."""

    async def steady() -> bytes:
        data = json.dumps({**CHAT, "pad": "x" * 3000}).encode()
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        writer.write(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(data)
        )
        for i in range(0, len(data), 512):  # about 2 KiB/s for 1.5 s, past the grace period
            writer.write(data[i : i + 512])
            await writer.drain()
            await asyncio.sleep(0.25)
        raw = await asyncio.wait_for(reader.read(65536), HOLD)
        writer.close()
        return raw

    assert asyncio.run(steady()).startswith(b"HTTP/1.1 200 ")

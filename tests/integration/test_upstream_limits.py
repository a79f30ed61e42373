"""A hostile upstream behind a running gateway: answers over the ceilings are 502s that say
which limit and name the endpoint and provider; a stream that breaks one ends with an error
event; the worker keeps serving and its memory stays bounded."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import httpx
import orjson
import pytest

from tests.conftest import launch
from tests.integration.configs import openai_endpoint
from tests.support.slow_readers import children, rss_mb
from tests.unit.test_http1 import read_request
from tests.unit.test_upstream_limits import MIB, gzip_of_zeros

CHAT = {"messages": [{"role": "user", "content": "hi"}]}
OK = orjson.dumps(
    {
        "id": "c",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "fine"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
)


class HostileUpstream:
    """Raw asyncio server in a thread; the answer is picked by the request's model."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            server = self.loop.run_until_complete(asyncio.start_server(self.handle, "127.0.0.1", 0))
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        ready.wait(10)
        self.base = f"http://127.0.0.1:{self.port}/v1"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                _, body = await read_request(reader)
                model = orjson.loads(body)["model"]
                await getattr(self, model.replace("-", "_"))(writer)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        writer.close()

    async def fine(self, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(OK)
        )
        writer.write(OK)

    async def json_bomb(self, writer: asyncio.StreamWriter) -> None:
        bomb = gzip_of_zeros(256 * MIB, prefix=b'{"id": "')  # ~250 KB inflating to 256 MiB
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
            b"Content-Length: %d\r\n\r\n" % len(bomb)
        )
        writer.write(bomb)

    async def json_huge(self, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        piece = b"%x\r\n%s\r\n" % (65536, b" " * 65536)
        for _ in range(80 * 16):  # 80 MiB of whitespace, never an end
            writer.write(piece)
            await writer.drain()

    async def stream_bomb(self, writer: asyncio.StreamWriter) -> None:
        bomb = gzip_of_zeros(64 * MIB, unit=b'data: {"choices": []}\n\n')
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: gzip\r\n"
            b"Content-Length: %d\r\n\r\n" % len(bomb)
        )
        writer.write(bomb)

    async def endless_line(self, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        writer.write(b"%x\r\n%s\r\n" % (6, b"data: "))
        piece = b"%x\r\n%s\r\n" % (65536, b"q" * 65536)
        for _ in range(16 * 16):  # 16 MiB without a line end
            writer.write(piece)
            await writer.drain()

    async def endless_headers(self, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\n")
        for _ in range(10_000):
            writer.write(b"X-Pad: " + b"p" * 300 + b"\r\n")
            await writer.drain()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


MODELS = ["fine", "json-bomb", "json-huge", "stream-bomb", "endless-line", "endless-headers"]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, int]]:
    gzip_of_zeros(256 * MIB, prefix=b'{"id": "')  # made once, before any request
    gzip_of_zeros(64 * MIB, unit=b'data: {"choices": []}\n\n')
    hostile = HostileUpstream()
    endpoints = "".join(openai_endpoint(model, "chat", model, hostile.base) for model in MODELS)
    process = launch(tmp_path_factory.mktemp("limits"), "endpoints:" + endpoints)
    (worker,) = children(process.proc.pid)
    yield process, worker
    process.stop()
    hostile.stop()


def invoke(gateway: tuple[object, int], name: str, **extra: object) -> httpx.Response:
    process = gateway[0]
    return httpx.post(
        f"{process.url}/endpoints/{name}/invocations",  # type: ignore[attr-defined]
        json={**CHAT, **extra},
        timeout=60,
    )


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("json-bomb", "larger than the 64 MiB limit (GATEWAY_MAX_RESPONSE_BYTES)"),
        ("json-huge", "larger than the 64 MiB limit (GATEWAY_MAX_RESPONSE_BYTES)"),
        ("endless-headers", "sent response headers larger than the 64 KiB limit"),
    ],
)
def test_answer_over_a_ceiling_is_a_502_naming_the_endpoint(gateway, name: str, says: str) -> None:
    response = invoke(gateway, name)
    assert response.status_code == 502, response.text
    detail = response.json()["detail"]
    assert f"endpoint '{name}' (provider openai)" in detail and says in detail
    assert invoke(gateway, "fine").status_code == 200  # still serving
    assert rss_mb(gateway[1]) < 400  # a 1 GiB bomb once took the tree to 3.17 GB


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("stream-bomb", "GATEWAY_MAX_DECOMPRESSION_RATIO"),
        ("endless-line", "larger than the 8 MiB limit (GATEWAY_MAX_STREAM_EVENT_BYTES)"),
    ],
)
def test_stream_over_a_ceiling_ends_with_an_error_event(gateway, name: str, says: str) -> None:
    response = invoke(gateway, name, stream=True)
    assert response.status_code == 200
    last = [line for line in response.text.splitlines() if line.startswith("data: ")][-1]
    error = orjson.loads(last[len("data: ") :])["error"]
    assert f"endpoint '{name}' (provider openai)" in error["message"] and says in error["message"]
    assert error["code"] == 502
    assert rss_mb(gateway[1]) < 400

"""Hostile upstreams on 127.0.0.1 against the upstream client's ceilings: response size, the
decompression ratio, response-header size and count, and buffering while a reader is slow.

Each test runs both transports where it applies: the lean HTTP/1.1 client (direct origins) and
aiohttp (origins behind a proxy; here the hostile server plays the proxy and answers itself).
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import tracemalloc
import zlib
from collections.abc import Awaitable, Callable, Iterator

import pytest

from gateway.errors import UpstreamTimeout, UpstreamUnavailable
from gateway.proxy.upstream import UpstreamClient
from gateway.settings import reload_settings
from tests.unit.test_http1 import read_request, serve

MIB = 1024 * 1024
LABEL = "endpoint 'bomb' (provider openai)"
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture(autouse=True)
def small_limits(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("GATEWAY_MAX_RESPONSE_BYTES", str(4 * MIB))
    monkeypatch.setenv("GATEWAY_MAX_STREAM_EVENT_BYTES", str(1 * MIB))
    reload_settings()
    yield
    monkeypatch.undo()
    reload_settings()


@functools.cache
def gzip_of_zeros(size: int, prefix: bytes = b"", unit: bytes = b"\0") -> bytes:
    """A gzip member that inflates to `size` bytes (about 1000:1 for zeros)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = (unit * (MIB // len(unit) + 1))[:MIB]
    parts = [packer.compress(prefix)]
    for _ in range(size // MIB):
        parts.append(packer.compress(block))
    parts.append(packer.flush())
    return b"".join(parts)


def answer_once(wire: bytes, pieces: int = 65536, pause: float = 0.0) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await read_request(reader)
            for i in range(0, len(wire), pieces):
                writer.write(wire[i : i + pieces])
                await writer.drain()
                if pause:
                    await asyncio.sleep(pause)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        writer.close()

    return handler


def endless(head: bytes, piece: bytes) -> Handler:
    """Sends `head`, then `piece` forever (until the client goes away)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await read_request(reader)
            writer.write(head)
            while True:
                writer.write(piece)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        writer.close()

    return handler


async def client_for(url: str, via_proxy: bool) -> UpstreamClient:
    client = UpstreamClient(5)
    if via_proxy:  # the hostile server answers as the proxy: the aiohttp transport is used
        origin = client._target(url)[0]
        client._proxy_by_origin[origin] = url.split("/v1")[0]
        assert client.proxy_for(url) is not None
    return client


def peak_mib(run: Callable[[], None]) -> float:
    tracemalloc.start()
    try:
        run()
        peak = tracemalloc.get_traced_memory()[1] / MIB
        print(f"peak traced memory: {peak:.1f} MiB")
        return peak
    finally:
        tracemalloc.stop()


TRANSPORTS = pytest.mark.parametrize("via_proxy", [False, True], ids=["http1", "aiohttp"])


@TRANSPORTS
def test_gzip_bomb_is_cut_at_the_response_cap(via_proxy: bool) -> None:
    """A gzip bomb (here 256 KB inflating to 256 MiB; in the report 1 MB to 1 GiB, RSS 3.17 GB)
    was once relayed whole."""
    bomb = gzip_of_zeros(256 * MIB, prefix=b'{"x": "')
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
    wire = head + b"Content-Length: %d\r\n\r\n" % len(bomb) + bomb

    async def main() -> None:
        server, url = await serve(answer_once(wire))
        client = await client_for(url, via_proxy)
        with pytest.raises(UpstreamUnavailable) as info:
            await client.post(url, {}, b"{}", LABEL)
        message = str(info.value)
        assert LABEL in message and "4 MiB" in message and "GATEWAY_MAX_RESPONSE_BYTES" in message
        assert info.value.status == 502
        await client.close()
        server.close()

    # never more than the cap plus a read or two in memory
    assert peak_mib(lambda: asyncio.run(main())) < 4 + 6


def generated(head: bytes, framing: str, size: int) -> Handler:
    """Answers with `head` and a body of `size` bytes made as it is sent (never held whole)."""
    block = b"y" * 65536

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await read_request(reader)
            if framing == "length":
                writer.write(head + b"Content-Length: %d\r\n\r\n" % size)
            elif framing == "chunked":
                writer.write(head + b"Transfer-Encoding: chunked\r\n\r\n")
            else:
                writer.write(head.replace(b"HTTP/1.1", b"HTTP/1.0") + b"\r\n")
            for _ in range(size // len(block)):
                writer.write(b"%x\r\n%s\r\n" % (len(block), block) if framing == "chunked" else block)
                await writer.drain()
            if framing == "chunked":
                writer.write(b"0\r\n\r\n")
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        writer.close()

    return handler


@TRANSPORTS
@pytest.mark.parametrize("framing", ["length", "chunked", "close"])
def test_large_plain_answer_is_cut_while_reading(via_proxy: bool, framing: str) -> None:
    """A 50 MB JSON answer once cost ~75 MB per request in flight."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"

    async def main() -> None:
        server, url = await serve(generated(head, framing, 48 * MIB))
        client = await client_for(url, via_proxy)
        with pytest.raises(UpstreamUnavailable, match="larger than the 4 MiB limit") as info:
            await client.post(url, {}, b"{}", LABEL)
        assert LABEL in str(info.value) and "GATEWAY_MAX_RESPONSE_BYTES" in str(info.value)
        await client.close()
        server.close()

    # the cap, plus one read, plus the join of the parts at most (a Content-Length over the
    # cap is refused before any of the body is read)
    assert peak_mib(lambda: asyncio.run(main())) < 2 * 4 + 2


@TRANSPORTS
def test_an_answer_under_the_cap_still_arrives_whole(via_proxy: bool) -> None:
    """3 MiB that gzip packs 1000:1: a whole answer is bounded by its size, not its ratio."""
    payload = b'{"x": "' + b"z" * (3 * MIB) + b'"}'
    body = gzip.compress(payload)
    wire = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body) + body
    )

    async def main() -> None:
        server, url = await serve(answer_once(wire, pieces=777))
        client = await client_for(url, via_proxy)
        response = await client.post(url, {}, b"{}", LABEL)
        assert response.body == payload
        await client.close()
        server.close()

    asyncio.run(main())


@TRANSPORTS
def test_stream_gzip_bomb_fails_the_stream(via_proxy: bool) -> None:
    """Valid, tiny events that inflate 1000:1 forever: the ratio cap ends the stream."""
    bomb = gzip_of_zeros(64 * MIB, unit=b"data: {}\n\n")
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: gzip\r\n"
        b"Content-Length: %d\r\n\r\n" % len(bomb)
    )

    async def main() -> None:
        server, url = await serve(answer_once(head + bomb))
        client = await client_for(url, via_proxy)
        stream = await client.stream(url, {}, b"{}", LABEL)
        received = 0
        with pytest.raises(UpstreamUnavailable, match="GATEWAY_MAX_DECOMPRESSION_RATIO") as info:
            async for chunk in stream.iter_chunks():
                received += len(chunk)
        stream.release()
        assert LABEL in str(info.value)
        assert received < 64 * MIB
        await client.close()
        server.close()

    assert peak_mib(lambda: asyncio.run(main())) < 8


@TRANSPORTS
def test_stream_with_no_event_end_is_cut_at_the_event_cap(via_proxy: bool) -> None:
    """An endless line (no blank line, no newline) inside an SSE stream."""
    from gateway.proxy.streaming import sse_events

    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    piece = b"%x\r\n%s\r\n" % (65536, b"data: " + b"q" * (65536 - 6))

    async def main() -> None:
        server, url = await serve(endless(head, piece))
        client = await client_for(url, via_proxy)
        stream = await client.stream(url, {}, b"{}", LABEL)
        with pytest.raises(Exception, match="1 MiB limit") as info:
            async for _ in sse_events(stream.iter_chunks()):
                pass
        stream.release()
        assert "GATEWAY_MAX_STREAM_EVENT_BYTES" in str(info.value)
        await client.close()
        server.close()

    asyncio.run(main())


# -- response heads ------------------------------------------------------------------------


@TRANSPORTS
@pytest.mark.parametrize(
    "head",
    [
        # endless headers, dribbled
        b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"p" * 100 + b"\r\n",
        # endless tiny header lines
        b"HTTP/1.1 200 OK\r\n" + b"a: b\r\n",
        # endless interim responses
        b"HTTP/1.1 100 Continue\r\n\r\n",
    ],
    ids=["big-lines", "many-lines", "interim"],
)
def test_endless_headers_are_cut_with_a_502(via_proxy: bool, head: bytes) -> None:
    interim = head.startswith(b"HTTP/1.1 100")
    first, repeated = (b"", head) if interim else head.split(b"\r\n", 1)

    async def main() -> None:
        start = first + b"\r\n" if first else b""
        server, url = await serve(endless(start, repeated * 64))
        client = await client_for(url, via_proxy)
        if interim and via_proxy:
            # aiohttp reads interim answers without a bound (in constant memory): the
            # exchange's timeout ends it, a 504
            client.timeout_seconds = 1  # the proxied transport, made on first use, takes it
            with pytest.raises(UpstreamTimeout):
                await client.post(url, {}, b"{}", LABEL)
            await client.close()
            server.close()
            return
        with pytest.raises(UpstreamUnavailable) as info:
            async with asyncio.timeout(3):
                await client.post(url, {}, b"{}", LABEL)
        assert LABEL in str(info.value) and info.value.status == 502
        await client.close()
        server.close()

    asyncio.run(main())


@pytest.mark.parametrize(
    "lines",
    [
        [b"X-Pad: " + b"p" * 200_000],  # one huge line
        [b"X-Pad-%d: %s" % (i, b"p" * 60) for i in range(2000)],  # 130 KB of headers
        [b"a: b"] * 5000,  # 30 KB, but 5000 lines
    ],
    ids=["one-huge-line", "large-block", "many-lines"],
)
@pytest.mark.parametrize("delivery", ["at-once-with-body", "byte-by-byte"])
def test_header_limits_hold_whatever_the_read_boundaries(lines: list[bytes], delivery: str) -> None:
    from gateway.proxy.http1 import ProtocolError
    from tests.fuzz.harness import feed

    wire = b"HTTP/1.1 200 OK\r\n" + b"\r\n".join(lines) + b"\r\nContent-Length: 2\r\n\r\n{}"
    splits = [len(wire)] if delivery == "at-once-with-body" else list(range(1, len(wire) + 1))
    result = feed(wire, splits, eof=True)
    assert isinstance(result.error, ProtocolError), result
    assert "header" in str(result.error)


# -- idle connections after a burst --------------------------------------------------------


def test_idle_connections_above_the_pool_size_close(monkeypatch: pytest.MonkeyPatch) -> None:
    """A burst's keep-alive connections once stayed open (up to 512 per origin) until the next
    request happened to sweep them; now a timer closes those above the pool size."""
    from gateway.proxy import http1

    monkeypatch.setattr(http1, "SWEEP_SECONDS", 0.05)
    monkeypatch.setattr(http1, "SURPLUS_IDLE_SECONDS", 0.2)
    monkeypatch.setattr(http1, "IDLE_SECONDS", 0.6)

    async def main() -> None:
        open_connections = 0

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal open_connections
            open_connections += 1
            try:
                while True:
                    await read_request(reader)
                    await asyncio.sleep(0.05)  # so that the burst needs many connections
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                    await writer.drain()
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            open_connections -= 1
            writer.close()

        server, url = await serve(handler)
        client = UpstreamClient(5, pool_size=3)
        await asyncio.gather(*(client.post(url, {}, b"{}", LABEL) for _ in range(12)))
        assert client._pool.idle_count() == 12
        await asyncio.sleep(0.45)  # past the surplus idle time: the pool's size stays
        assert client._pool.idle_count() == 3 and open_connections == 3
        assert (await client.post(url, {}, b"{}", LABEL)).body == b"{}"  # reused
        await asyncio.sleep(1.0)  # past the idle time: none
        assert client._pool.idle_count() == 0 and open_connections == 0
        assert client.active == 0
        await client.close()
        server.close()

    asyncio.run(main())

"""The lean HTTP/1.1 upstream client against scripted raw servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Awaitable, Callable

import pytest

from gateway.errors import GatewayError, UpstreamTimeout, UpstreamUnavailable
from gateway.proxy.upstream import UpstreamClient

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head, await reader.readexactly(length)


async def serve(handler: Handler) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/v1/chat/completions?x=1"


def chunked(*parts: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


async def scripted(
    responses: list[bytes],
    seen: list[bytes] | None = None,
    close_after: bool = False,
    sockets: list[int] | None = None,
) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if sockets is not None:
            sockets.append(1)
        try:
            while responses:
                head, body = await read_request(reader)
                if seen is not None:
                    seen.append(head + body)
                wire = responses.pop(0)
                # dribble the answer out in 3-byte pieces: every boundary gets exercised
                for i in range(0, len(wire), 3):
                    writer.write(wire[i : i + 3])
                    await writer.drain()
                if close_after:
                    break
        except asyncio.IncompleteReadError:
            pass
        writer.close()

    return handler


def run(coro: Awaitable[None]) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_content_length_keep_alive_and_request_bytes() -> None:
    async def main() -> None:
        seen: list[bytes] = []
        sockets: list[int] = []
        answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        server, url = await serve(await scripted([answer, answer], seen, sockets=sockets))
        client = UpstreamClient(5)
        for _ in range(2):
            response = await client.post(url, {"Authorization": "Bearer k"}, b'{"a":1}', "endpoint 'e'")
            assert (response.status, response.body, response.content_type) == (200, b"{}", "application/json")
        assert len(seen) == 2 and len(sockets) == 1  # both on one kept-alive connection
        first = seen[0].decode()
        assert first.startswith("POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: 127.0.0.1:")
        assert "Authorization: Bearer k\r\n" in first and "Content-Length: 7\r\n" in first
        assert first.endswith('\r\n\r\n{"a":1}')
        await client.close()
        server.close()

    run(main())


@pytest.mark.parametrize(
    ("after_the_end", "connections"),
    [(b"", 1), (b"HTTP/1.1 200 OK\r\n", 2)],
    ids=["clean end: kept alive", "bytes past the end: not reused"],
)
def test_chunked_body_with_extensions_and_trailers(after_the_end: bytes, connections: int) -> None:
    """Chunk extensions and trailers (dribbled 3 bytes at a time) give exactly the chunks'
    data; a connection whose answer is followed by stray bytes is not trusted again."""

    async def main() -> None:
        sockets: list[int] = []
        body = b"4;ext=1\r\nabcd\r\n\t3 \r\nefg\r\n0\r\nX-Checksum: 1\r\nX-More: 2\r\n\r\n"
        answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body + after_the_end
        server, url = await serve(await scripted([answer, answer], sockets=sockets))
        client = UpstreamClient(5)
        for _ in range(2):
            response = await client.post(url, {}, b"", "e")
            assert (response.status, response.body) == (200, b"abcdefg")
        assert len(sockets) == connections
        await client.close()
        server.close()

    run(main())


def test_chunked_gzip_stream_in_tiny_pieces() -> None:
    async def main() -> None:
        payload = b"data: " + b"x" * 5000 + b"\n\n" + b"data: [DONE]\n\n"
        body = gzip.compress(payload)
        answer = (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Encoding: gzip\r\n\r\n" + chunked(body[:10], body[10:500], body[500:])
        )
        server, url = await serve(await scripted([answer]))
        client = UpstreamClient(5)
        stream = await client.stream(url, {}, b"{}", "endpoint 'e'")
        assert stream.status == 200 and stream.content_type == "text/event-stream"
        received = b"".join([chunk async for chunk in stream.iter_chunks()])
        stream.release()
        assert received == payload
        await client.close()
        server.close()

    run(main())


def test_body_until_close_and_interim_100() -> None:
    async def main() -> None:
        answer = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello"
        server, url = await serve(await scripted([answer], close_after=True))
        client = UpstreamClient(5)
        response = await client.post(url, {}, b"", "endpoint 'e'")
        assert (response.status, response.body) == (200, b"hello")
        await client.close()
        server.close()

    run(main())


def test_stale_kept_alive_connection_is_retried_once() -> None:
    async def main() -> None:
        answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        connections = 0

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal connections
            connections += 1
            await read_request(reader)
            writer.write(answer)
            await writer.drain()
            # keep-alive promised, but the server drops the connection right after
            await asyncio.sleep(0.05)
            writer.close()

        server, url = await serve(handler)
        client = UpstreamClient(5)
        assert (await client.post(url, {}, b"", "e")).body == b"ok"
        await asyncio.sleep(0.2)
        assert (await client.post(url, {}, b"", "e")).body == b"ok"
        assert connections == 2
        await client.close()
        server.close()

    run(main())


@pytest.mark.parametrize(
    "answer",
    [
        b"garbage\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
)
def test_broken_responses_are_502(answer: bytes) -> None:
    async def main() -> None:
        server, url = await serve(await scripted([answer], close_after=True))
        client = UpstreamClient(5)
        with pytest.raises(UpstreamUnavailable) as info:
            await client.post(url, {}, b"", "endpoint 'e' (provider p)")
        assert "endpoint 'e' (provider p)" in str(info.value)
        await client.close()
        server.close()

    run(main())


def test_timeout_and_refused() -> None:
    async def main() -> None:
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await asyncio.sleep(5)

        server, url = await serve(silent)
        client = UpstreamClient(0.3)
        with pytest.raises(UpstreamTimeout):
            await client.post(url, {}, b"", "e")
        server.close()
        await server.wait_closed()
        with pytest.raises(UpstreamUnavailable, match="connection failed"):
            await client.post(url, {}, b"", "e")
        await client.close()

    run(main())


def test_header_injection_is_refused_without_echoing_the_value() -> None:
    async def main() -> None:
        client = UpstreamClient(1)
        with pytest.raises(GatewayError) as info:
            await client.post("http://127.0.0.1:9/x", {"x-api-key": "secret\r\nX-Evil: 1"}, b"", "e")
        assert "secret" not in str(info.value)

    run(main())


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-3\r\nabcdef\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nabc",
    ],
)
def test_hostile_framing_fails_fast(answer: bytes) -> None:
    """A negative chunk size once spun the worker's event loop forever."""

    async def main() -> None:
        server, url = await serve(await scripted([answer], close_after=False))
        client = UpstreamClient(2)
        with pytest.raises(UpstreamUnavailable):
            async with asyncio.timeout(1):
                await client.post(url, {}, b"", "e")
        await client.close()
        server.close()

    run(main())


def test_no_body_after_204_even_with_junk() -> None:
    async def main() -> None:
        sockets: list[int] = []
        answers = [
            b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nJUNK!",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        ]
        server, url = await serve(await scripted(answers, sockets=sockets))
        client = UpstreamClient(2)
        first = await client.post(url, {}, b"", "e")
        assert (first.status, first.body) == (204, b"")
        await asyncio.sleep(0.05)
        assert (await client.post(url, {}, b"", "e")).body == b"ok"
        assert len(sockets) == 2  # the connection with stray bytes was not reused
        await client.close()
        server.close()

    run(main())


def test_no_retry_once_an_answer_started() -> None:
    """A POST the upstream began to answer may have been processed: never send it twice."""

    async def main() -> None:
        requests = 0

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal requests
            while True:
                try:
                    await read_request(reader)
                except asyncio.IncompleteReadError:
                    break
                requests += 1
                if requests == 1:
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                else:
                    writer.write(b"HTTP/1.1 20")  # a cut answer on the kept-alive connection
                    await writer.drain()
                    break
                await writer.drain()
            writer.close()

        server, url = await serve(handler)
        client = UpstreamClient(2)
        assert (await client.post(url, {}, b"", "e")).body == b"ok"
        with pytest.raises(UpstreamUnavailable):
            await client.post(url, {}, b"", "e")
        assert requests == 2
        await client.close()
        server.close()

    run(main())


def test_stream_connection_is_kept_alive_after_done() -> None:
    """The final empty chunk often comes in its own write, after `data: [DONE]`."""

    async def main() -> None:
        sockets: list[int] = []

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sockets.append(1)
            for _ in range(2):
                await read_request(reader)
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                )
                writer.write(chunked(b"data: [DONE]\n\n")[:-5])  # the data chunk only
                await writer.drain()
                await asyncio.sleep(0.05)
                writer.write(b"0\r\n\r\n")
                await writer.drain()
            writer.close()

        server, url = await serve(handler)
        client = UpstreamClient(2)
        for _ in range(2):
            stream = await client.stream(url, {}, b"", "e")
            chunks = stream.iter_chunks()
            assert b"[DONE]" in await anext(chunks)
            await stream.drain()
        assert len(sockets) == 1
        await client.close()
        server.close()

    run(main())


def test_a_stream_read_to_its_end_goes_back_to_the_pool_at_once() -> None:
    """No drain task when the final empty chunk came with `data: [DONE]`; one when it is late."""

    async def main() -> None:
        sockets: list[int] = []

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sockets.append(1)
            head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
            await read_request(reader)
            writer.write(head + chunked(b"data: [DONE]\n\n"))  # the data and the end, one write
            await writer.drain()
            await read_request(reader)
            writer.write(head + chunked(b"data: [DONE]\n\n")[:-5])  # the end comes later
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
            writer.close()

        server, url = await serve(handler)
        client = UpstreamClient(2)
        stream = await client.stream(url, {}, b"", "e")
        assert b"[DONE]" in await anext(stream.iter_chunks())
        assert await stream.release_if_complete()
        stream = await client.stream(url, {}, b"", "e")
        assert b"[DONE]" in await anext(stream.iter_chunks())
        assert not await stream.release_if_complete()
        await stream.drain()
        assert (await client.post(url, {}, b"", "e")).body == b"ok"
        assert len(sockets) == 1  # the one connection served all three
        await client.close()
        server.close()

    run(main())


def test_ipv6_host_header_has_brackets() -> None:
    async def main() -> None:
        seen: list[bytes] = []
        server = await asyncio.start_server(
            await scripted([b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"], seen), "::1", 0
        )
        port = server.sockets[0].getsockname()[1]
        client = UpstreamClient(2)
        await client.post(f"http://[::1]:{port}/x", {}, b"", "e")
        assert f"Host: [::1]:{port}\r\n".encode() in seen[0]
        await client.close()
        server.close()

    run(main())

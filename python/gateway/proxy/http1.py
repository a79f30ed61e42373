"""A lean HTTP/1.1 client on asyncio protocols: the hot-path upstream transport.

Measured behind the same Granian app forwarding to the same mock: aiohttp's ClientSession
reached about 3,600 req/s, this client about 7,000-8,500 (see benches/README.md). It does only
what an LLM upstream needs: POST with a body, keep-alive pools per origin, TLS, responses framed
by Content-Length, chunked encoding or connection close, gzip/deflate bodies, and streaming with
flow control. Proxied origins go through aiohttp instead (see upstream.py).
"""

from __future__ import annotations

import asyncio
import ssl
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator
from typing import cast

MAX_HEAD_BYTES = 64 * 1024
HEX_DIGITS = b"0123456789abcdefABCDEF"
# pause reading from the upstream when this much streamed body waits for a slow client
HIGH_WATER = 1024 * 1024
IDLE_SECONDS = 20.0
MAX_IDLE_PER_ORIGIN = 512


class ProtocolError(Exception):
    """The upstream broke HTTP/1.1 framing or closed the connection early."""


class ResponseHead:
    __slots__ = ("headers", "reason", "status")

    def __init__(self, status: int, reason: str, headers: dict[str, str]) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers  # lower-case names; repeated headers joined with ", "


class Http1Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self, origin: tuple[str, str, int]) -> None:
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reusable = False
        self.requests = 0
        self.idle_since = 0.0
        self._buffer = bytearray()
        self._head: asyncio.Future[ResponseHead] | None = None
        self._body_mode = ""  # "length" | "chunked" | "close" | "" (no response in progress)
        self._remaining = 0
        self._chunk_state = 0  # chunked: 0 = size line, 1 = data, 2 = CRLF after data, 3 = trailers
        self._chunks: deque[bytes] = deque()
        self._queued = 0
        self._data_ready: asyncio.Future[None] | None = None
        self._finished = False
        self._error: BaseException | None = None
        self._decoder: zlib._Decompress | None = None
        self._paused = False
        self._keep_alive = False
        self.answered = False  # any byte of the current response arrived

    # -- asyncio.Protocol ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport: cast, do not check
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._body_mode == "close" and exc is None:
            self._finish()
            return
        if self._head is not None or (self._body_mode and not self._finished):
            self._fail(ProtocolError("the upstream closed the connection before the response ended"))

    def data_received(self, data: bytes) -> None:
        self.answered = True
        try:
            if self._head is not None:
                self._buffer += data
                self._parse_head()
            elif self._body_mode and not self._finished:
                self._body(data)
            else:  # bytes nobody asked for: the connection cannot be trusted any more
                self.abort()
        except ProtocolError as exc:
            self._fail(exc)
            self.abort()

    def eof_received(self) -> bool | None:
        return None

    # -- request / response ------------------------------------------------------------
    async def send(self, request: bytes) -> ResponseHead:
        assert self.transport is not None
        self.requests += 1
        self.reusable = False
        self.answered = False
        self._buffer.clear()
        self._chunks.clear()
        self._queued = 0
        self._finished = False
        self._error = None
        self._decoder = None
        self._body_mode = ""
        self._head = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self._head

    async def read_body(self) -> bytes:
        parts = []
        async for part in self.iter_body():
            parts.append(part)
        return b"".join(parts)

    async def iter_body(self) -> AsyncIterator[bytes]:
        while True:
            if self._chunks:
                # everything that arrived since the last read, as one piece: a relay then
                # parses, re-encodes and writes once per upstream read, not once per chunk
                part = self._chunks.popleft() if len(self._chunks) == 1 else b"".join(self._chunks)
                self._chunks.clear()
                self._queued = 0
                if self._paused and self.transport is not None:
                    self._paused = False
                    self.transport.resume_reading()
                yield part
                continue
            if self._error is not None:
                raise self._error
            if self._finished:
                return
            self._data_ready = asyncio.get_running_loop().create_future()
            await self._data_ready

    def abort(self) -> None:
        self.closed = True
        self.reusable = False
        if self.transport is not None:
            self.transport.abort()

    # -- parsing -------------------------------------------------------------------------
    def _parse_head(self) -> None:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_HEAD_BYTES:
                raise ProtocolError("response headers too large")
            return
        lines = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
        rest = bytes(self._buffer[end + 4 :])
        self._buffer.clear()
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise ProtocolError(f"not an HTTP/1.x response: {lines[0][:80]!r}")
        status = int(parts[1])
        if 100 <= status < 200:  # interim response (100 Continue): the real one follows
            self._buffer += rest
            self._parse_head()
            return
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise ProtocolError("malformed response header")
            key = name.strip().lower()
            value = value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        keep_alive = parts[0] == "HTTP/1.1" and "close" not in headers.get("connection", "").lower()
        encoding = headers.get("content-encoding", "").lower()
        if encoding in ("gzip", "deflate"):
            self._decoder = zlib.decompressobj(zlib.MAX_WBITS | 32)
        if status in (204, 304):  # never a body, whatever the headers say (RFC 9112 §6.3)
            self._body_mode, self._remaining = "length", 0
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            self._body_mode, self._chunk_state = "chunked", 0
        elif "content-length" in headers:
            declared = headers["content-length"]
            if not declared.isdigit() or len(declared) > 15:
                raise ProtocolError("invalid Content-Length")
            self._remaining = int(declared)
            self._body_mode = "length"
        else:
            self._body_mode, keep_alive = "close", False
        self._keep_alive = keep_alive
        head, self._head = self._head, None
        if self._body_mode == "length" and self._remaining == 0:
            self._finish()
        if head is not None and not head.done():
            head.set_result(ResponseHead(status, parts[2] if len(parts) > 2 else "", headers))
        if rest:
            self._body(rest)

    def _body(self, data: bytes) -> None:
        if self._finished:  # bytes past the end of the response: do not trust the connection
            self._keep_alive = self.reusable = False
            return
        if self._body_mode == "length":
            take = data[: self._remaining]
            self._remaining -= len(take)
            self._push(take)
            if self._remaining == 0:
                self._finish()
                if len(data) > len(take):
                    self._keep_alive = self.reusable = False  # bytes past the framed body
        elif self._body_mode == "chunked":
            self._buffer += data
            self._parse_chunks()
        else:
            self._push(data)

    def _parse_chunks(self) -> None:
        buffer = self._buffer
        while True:
            if self._chunk_state == 0:
                end = buffer.find(b"\r\n")
                if end < 0:
                    if len(buffer) > 1024:
                        raise ProtocolError("malformed chunk size")
                    return
                digits = bytes(buffer[:end]).split(b";", 1)[0].strip()
                # hex digits only: int(x, 16) would also take "-3", "0x1f" or "1_0"
                if not digits or len(digits) > 15 or digits.strip(HEX_DIGITS):
                    raise ProtocolError("malformed chunk size")
                size = int(digits, 16)
                del buffer[: end + 2]
                self._remaining = size
                self._chunk_state = 1 if size else 3
            elif self._chunk_state == 1:
                if not buffer:
                    return
                take = bytes(buffer[: self._remaining])
                del buffer[: len(take)]
                self._remaining -= len(take)
                self._push(take)
                if self._remaining == 0:
                    self._chunk_state = 2
            elif self._chunk_state == 2:
                if len(buffer) < 2:
                    return
                if buffer[:2] != b"\r\n":
                    raise ProtocolError("missing CRLF after chunk data")
                del buffer[:2]
                self._chunk_state = 0
            else:  # trailers, ended by an empty line
                end = buffer.find(b"\r\n")
                if end < 0:
                    return
                del buffer[: end + 2]
                if end == 0:
                    self._finish()
                    return

    def _push(self, data: bytes) -> None:
        if self._decoder is not None:
            try:
                data = self._decoder.decompress(data)
            except zlib.error:
                raise ProtocolError("invalid compressed body") from None
        if not data:
            return
        self._chunks.append(data)
        self._queued += len(data)
        if self._queued > HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def _finish(self) -> None:
        if self._decoder is not None:
            tail = self._decoder.flush()
            if tail:
                self._chunks.append(tail)
        self._finished = True
        self._body_mode = ""
        self.reusable = self._keep_alive and not self.closed and not self._buffer
        self._wake()

    def _fail(self, exc: BaseException) -> None:
        self._error = exc
        self.reusable = False
        if self._head is not None and not self._head.done():
            self._head.set_exception(exc)
            self._head = None
        self._wake()

    def _wake(self) -> None:
        waiter = self._data_ready
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class Http1Pool:
    """Keep-alive connections per origin (scheme, host, port), created on demand."""

    def __init__(self, ssl_context: ssl.SSLContext, connect_timeout: float) -> None:
        self.ssl_context = ssl_context
        self.connect_timeout = connect_timeout
        self._idle: dict[tuple[str, str, int], list[Http1Connection]] = {}

    async def acquire(
        self, origin: tuple[str, str, int], fresh: bool = False
    ) -> tuple[Http1Connection, bool]:
        """An idle connection if one is alive (reused=True), else (or when `fresh`) a new one."""
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle and not fresh:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < IDLE_SECONDS:
                return conn, True
            conn.abort()
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        tls = self.ssl_context if scheme == "https" else None
        async with asyncio.timeout(self.connect_timeout):
            _, conn = await loop.create_connection(
                lambda: Http1Connection(origin), host, port, ssl=tls, server_hostname=host if tls else None
            )
        return conn, False

    def release(self, conn: Http1Connection) -> None:
        if conn.reusable and not conn.closed:
            now = time.monotonic()
            conn.idle_since = now
            idle = self._idle.setdefault(conn.origin, [])
            # the oldest idle connections sit at the front: drop the expired ones
            while idle and (idle[0].closed or now - idle[0].idle_since >= IDLE_SECONDS):
                idle.pop(0).abort()
            if len(idle) < MAX_IDLE_PER_ORIGIN:
                idle.append(conn)
                return
        conn.abort()

    def close(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.abort()
        self._idle.clear()

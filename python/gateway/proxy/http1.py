"""A lean HTTP/1.1 client on asyncio protocols: the hot-path upstream transport.

Measured behind the same Granian app forwarding to the same mock: aiohttp's ClientSession
reached about 3,600 req/s, this client about 7,000-8,500 (see benches/README.md). It does only
what an LLM upstream needs: POST with a body, keep-alive pools per origin, TLS, responses framed
by Content-Length, chunked encoding or connection close, gzip/deflate bodies, and streaming with
flow control. Proxied origins go through aiohttp instead (see upstream.py).

Bounds (a hostile or broken upstream costs at most these, whatever its read boundaries):

* a response head (status line and headers, interim 1xx heads and chunked trailers included):
  `MAX_HEAD_BYTES` and `MAX_HEAD_LINES`;
* a body read whole (`send(..., max_body=N)`): N bytes after decompression, checked as it
  arrives, and a Content-Length over N is refused before any of the body is read; a stream
  (`max_body=0`): the decompression ratio;
* buffering: at most `HIGH_WATER` decoded bytes wait for the reader (plus the one read that
  crossed it), then the socket is paused until the reader has taken them: a slow reader slows
  the upstream instead of growing buffers. Compressed input is inflated in bounded steps, only
  as the reader asks, under a ratio cap (limits.py).
"""

from __future__ import annotations

import asyncio
import re
import ssl
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import cast

from gateway._native import ChunkedDecoder, ChunkedEncodingError, ChunkedTrailersTooLarge
from gateway.proxy.limits import INFLATE_STEP, BodyLimits, Inflater, ProtocolError, ResponseTooLarge

__all__ = ["Http1Connection", "Http1Pool", "ProtocolError", "ResponseHead", "ResponseTooLarge"]

MAX_HEAD_BYTES = 64 * 1024
MAX_HEAD_LINES = 256
MAX_CHUNK_LINE = 1024  # a chunk-size line, extensions included
# Per stream, while its client reads slower than the upstream writes, the gateway holds about
# HIGH_WATER + READ_SIZE bytes here, plus one STREAM_PIECE parsed into events in the relay
# (about 10x its size as Python objects): ~150 KB in all, measured with 300 slow readers
# (tests/integration/test_slow_readers.py). A 1 MiB high water and whole-backlog pieces cost
# ~15 MB per stream.
# pause reading from the upstream when this much decoded body waits for a slow reader
HIGH_WATER = 32 * 1024
# the most one streamed read hands on (a relay parses and re-encodes one piece at a time)
STREAM_PIECE = 8 * 1024
# the most one socket read takes (uvloop's own reads take up to 256 KiB)
READ_SIZE = 32 * 1024
IDLE_SECONDS = 20.0  # an idle kept-alive connection is closed after this long
SURPLUS_IDLE_SECONDS = 2.0  # ... or after this long when more than the pool size are idle
MAX_IDLE_PER_ORIGIN = 512
POOL_SIZE = 64
SWEEP_SECONDS = 1.0
# header lines, each "token:value CRLF", checked in one pass: no space before the colon, no
# folded (indented) continuation, no bare CR or LF and no NUL in a value (some reach the client)
_FIELDS = re.compile(r"(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[^\r\n\x00]*(?:\r\n|\Z))*")


class ResponseHead:
    __slots__ = ("headers", "reason", "status")

    def __init__(self, status: int, reason: str, headers: dict[str, str]) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers  # lower-case names; repeated headers joined with ", "


def _head_too_large() -> ResponseTooLarge:
    return ResponseTooLarge(f"sent response headers larger than the {MAX_HEAD_BYTES // 1024} KiB limit.")


def _too_many_header_lines() -> ResponseTooLarge:
    return ResponseTooLarge(f"sent more than {MAX_HEAD_LINES} response header lines.")


_reads = threading.local()


def _read_buffer() -> memoryview:
    """The buffer socket reads land in: one per thread (event loop), shared by its connections,
    since every read is copied out before anything else runs."""
    view: memoryview | None = getattr(_reads, "view", None)
    if view is None:
        view = _reads.view = memoryview(bytearray(READ_SIZE))
    return view


class Http1Connection(asyncio.BufferedProtocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self, origin: tuple[str, str, int], limits: BodyLimits | None = None) -> None:
        self.origin = origin
        self.limits = limits or BodyLimits()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reusable = False
        self.requests = 0
        self.idle_since = 0.0
        self._buffer = bytearray()
        self._scanned = 0  # head: bytes of _buffer already searched for the blank line
        self._head_bytes = 0  # head bytes of this response so far (interim heads included)
        self._head_lines = 0
        self._pending_lines = 0  # lines of the incomplete head in _buffer[:_scanned]
        self._head: asyncio.Future[ResponseHead] | None = None
        self._body_mode = ""  # "length" | "chunked" | "close" | "" (no response in progress)
        self._remaining = 0
        self._chunked: ChunkedDecoder | None = None  # a chunked body's decoder (Rust)
        self._chunks: deque[bytes] = deque()
        self._queued = 0
        self._received = 0  # decoded body bytes of this response
        self._max_body = 0  # 0: no cap
        self._data_ready: asyncio.Future[None] | None = None
        self._finished = False  # the framing says the body is complete
        self._error: BaseException | None = None
        self._inflater: Inflater | None = None
        self._paused = False
        self._keep_alive = False
        self.answered = False  # any byte of the current response arrived

    # -- asyncio.Protocol ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport: cast, do not check
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._body_mode == "close" and exc is None and self._head is None:
            try:
                self._finish()
            except ProtocolError as error:
                self._fail(error)
            return
        if self._head is not None or (self._body_mode and not self._finished):
            self._fail(ProtocolError("the upstream closed the connection before the response ended"))

    def get_buffer(self, sizehint: int) -> memoryview:
        return _read_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(bytes(_read_buffer()[:nbytes]))

    def data_received(self, data: bytes) -> None:
        self.answered = True
        try:
            if self._head is not None:
                if self._buffer:  # the head came in pieces
                    self._buffer += data
                    self._parse_head(self._buffer)
                else:  # usually: the whole head (and body) in one read, parsed without a copy
                    self._parse_head(data)
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
    async def send(self, request: bytes, max_body: int = 0) -> ResponseHead:
        """Write a request and wait for its response head. `max_body` > 0 caps the (decoded)
        body, for a body read whole; 0 reads a stream, inflated under the ratio cap."""
        assert self.transport is not None
        self.requests += 1
        self.reusable = False
        self.answered = False
        self._buffer.clear()
        self._scanned = self._head_bytes = self._head_lines = self._pending_lines = 0
        self._chunks.clear()
        self._queued = self._received = 0
        self._max_body = max_body
        self._finished = False
        self._error = None
        self._inflater = None
        self._body_mode = ""
        self._head = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self._head

    async def read_body(self) -> bytes:
        parts = []
        async for part in self.iter_body():
            parts.append(part)
        return b"".join(parts)

    async def iter_body(self, piece: int = 0) -> AsyncIterator[bytes]:
        """The body as it arrives, decoded. Each part is everything that arrived since the
        last one (a relay then parses, re-encodes and writes once per upstream read, not once
        per chunk), at most `piece` bytes when `piece` > 0."""
        while True:
            chunks = self._chunks
            if chunks:
                if len(chunks) == 1 and (not piece or len(chunks[0]) <= piece):
                    part = chunks.popleft()  # the usual case: one read, taken whole
                    self._queued -= len(part)
                else:
                    part = self._take(piece)
                if self._paused:
                    self._resume()
                yield part
                continue
            inflater = self._inflater
            if inflater is not None and (inflater.pending or self._finished):
                try:  # compressed input held back while the reader was behind
                    if self._inflate():
                        continue
                except ProtocolError as exc:
                    self._fail(exc)
                    self.abort()
            if self._error is not None:
                raise self._error
            if self._finished:
                return
            self._resume()
            self._data_ready = asyncio.get_running_loop().create_future()
            await self._data_ready

    def complete(self) -> bool:
        """The response's body arrived to its end and the reader took all of it."""
        return (
            self._finished
            and not self._chunks
            and not (self._inflater is not None and self._inflater.pending)
        )

    def buffered(self) -> int:
        """Bytes this connection holds for the current response (head, framing, body)."""
        pending = self._inflater.pending if self._inflater is not None else 0
        return len(self._buffer) + self._queued + pending

    def abort(self) -> None:
        self.closed = True
        self.reusable = False
        if self.transport is not None:
            self.transport.abort()

    # -- parsing -------------------------------------------------------------------------
    def _parse_head(self, buf: bytes | bytearray) -> None:
        """Parse the head(s) at the start of `buf`: this read, or `_buffer` when the head came
        in pieces. What does not complete a head is kept in `_buffer`."""
        offset = 0  # where the current head starts in buf
        while self._head is not None:
            # search only what is new (the blank line may straddle two reads): byte-by-byte
            # delivery costs O(n), not O(n^2)
            end = buf.find(b"\r\n\r\n", offset + max(0, self._scanned - 3))
            if end < 0:
                self._keep_head(buf, offset)
                return
            self._head_bytes += end + 4 - offset
            if self._head_bytes > MAX_HEAD_BYTES:
                raise _head_too_large()
            text = buf[offset:end].decode("latin-1")
            offset = end + 4
            self._scanned = self._pending_lines = 0
            lines = text.split("\r\n")
            self._head_lines += len(lines)
            if self._head_lines > MAX_HEAD_LINES:
                raise _too_many_header_lines()
            version, status, reason = _status_line(lines[0])
            if 100 <= status < 200:  # interim response (100 Continue): the real one follows
                continue
            if len(lines) > 1 and not _FIELDS.fullmatch(text, len(lines[0]) + 2):
                raise ProtocolError("malformed response header")
            self._start_body(version, status, reason, _header_fields(lines))
        rest = bytes(buf[offset:]) if offset < len(buf) else b""
        self._buffer.clear()
        if rest:
            self._body(rest)

    def _keep_head(self, buf: bytes | bytearray, offset: int) -> None:
        """An incomplete head: keep it in `_buffer`, within the head limits."""
        buffer = self._buffer
        if buf is buffer:
            del buffer[:offset]
        else:
            buffer += memoryview(buf)[offset:]
        self._pending_lines += buffer.count(b"\n", self._scanned)
        self._scanned = len(buffer)
        if self._head_bytes + len(buffer) > MAX_HEAD_BYTES:
            raise _head_too_large()
        if self._head_lines + self._pending_lines > MAX_HEAD_LINES:
            raise _too_many_header_lines()

    def _start_body(self, version: str, status: int, reason: str, headers: dict[str, str]) -> None:
        keep_alive = version == "HTTP/1.1" and "close" not in headers.get("connection", "").lower()
        # a body read whole is bounded by its size; a stream, which has no size bound, by the
        # decompression ratio (and its event size, see streaming.py)
        encoding = headers.get("content-encoding")
        if encoding:
            ratio = 0.0 if self._max_body else self.limits.max_decompression_ratio
            self._inflater = Inflater.for_encoding(encoding, ratio)
        if status in (204, 304):  # never a body, whatever the headers say (RFC 9112 §6.3)
            self._body_mode, self._remaining = "length", 0
        elif "transfer-encoding" in headers:
            if headers["transfer-encoding"].lower() != "chunked":
                raise ProtocolError("unsupported Transfer-Encoding")
            self._body_mode = "chunked"
            # trailers may use what the head left of its limits
            self._chunked = ChunkedDecoder(
                max_line=MAX_CHUNK_LINE,
                trailer_bytes=max(0, MAX_HEAD_BYTES - self._head_bytes),
                trailer_lines=max(0, MAX_HEAD_LINES - self._head_lines),
            )
            if "content-length" in headers:  # both: chunked wins, but do not trust the connection
                keep_alive = False
        elif "content-length" in headers:
            declared = headers["content-length"]
            if "," in declared:  # repeated: only the same value each time
                values = {value.strip() for value in declared.split(",")}
                declared = values.pop() if len(values) == 1 else ""
            if not (declared.isascii() and declared.isdigit()) or len(declared) > 15:
                raise ProtocolError("invalid Content-Length")
            self._remaining = int(declared)
            self._body_mode = "length"
            if self._max_body and self._remaining > self._max_body:
                raise self.limits.response_too_large()
        else:
            self._body_mode, keep_alive = "close", False
        self._keep_alive = keep_alive
        head, self._head = self._head, None
        if self._body_mode == "length" and self._remaining == 0:
            self._finish()
        if head is not None and not head.done():
            head.set_result(ResponseHead(status, reason, headers))

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
            self._parse_chunks(data)
        else:
            self._push(data)

    def _parse_chunks(self, data: bytes) -> None:
        """One native call per read: the data of every chunk it completes, joined (a stream of
        one event per chunk is relayed per read, not per event)."""
        assert self._chunked is not None
        try:
            body, done, rest = self._chunked.feed(data)
        except ChunkedTrailersTooLarge:
            raise ResponseTooLarge(
                f"sent response trailers over the {MAX_HEAD_BYTES // 1024} KiB / {MAX_HEAD_LINES} lines limit."
            ) from None
        except ChunkedEncodingError as exc:
            raise ProtocolError(str(exc)) from None
        self._push(body)
        if done:
            if rest:  # bytes past the end of the response: do not trust the connection
                self._keep_alive = False
            self._finish()

    def _push(self, data: bytes) -> None:
        if not data:
            return
        if self._inflater is None:
            self._emit(data)
        else:
            self._inflater.feed(data)
            self._inflate()

    def _inflate(self) -> bool:
        """Inflate held-back input while the reader is not behind; at the end of the body, the
        decoder's tail. True when it produced output."""
        inflater = self._inflater
        assert inflater is not None
        produced = False
        while self._queued < HIGH_WATER:
            out = inflater.read(INFLATE_STEP)
            if not out:
                break
            produced = True
            self._emit(out)
        if self._finished and not inflater.pending:
            tail = inflater.flush()
            if tail:
                produced = True
                self._emit(tail)
        return produced

    def _emit(self, data: bytes) -> None:
        self._received += len(data)
        if self._max_body and self._received > self._max_body:
            raise self.limits.response_too_large()
        self._chunks.append(data)
        self._queued += len(data)
        if self._queued >= HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def _take(self, piece: int) -> bytes:
        chunks = self._chunks
        if len(chunks) == 1 or (piece and len(chunks[0]) >= piece):
            part = chunks.popleft()
            if piece and len(part) > piece:
                chunks.appendleft(part[piece:])
                part = part[:piece]
        elif not piece or self._queued <= piece:
            part = b"".join(chunks)
            chunks.clear()
        else:
            taken = []
            size = 0
            while chunks and size + len(chunks[0]) <= piece:
                size += len(chunks[0])
                taken.append(chunks.popleft())
            part = b"".join(taken)
        self._queued -= len(part)
        return part

    def _resume(self) -> None:
        """Read from the socket again once the reader has caught up."""
        if (
            self._paused
            and self._queued < HIGH_WATER // 2
            and not (self._inflater is not None and self._inflater.pending)
            and self.transport is not None
        ):
            self._paused = False
            self.transport.resume_reading()

    def _finish(self) -> None:
        self._finished = True
        self._body_mode = ""
        self.reusable = self._keep_alive and not self.closed and not self._buffer
        if self._inflater is not None:
            self._inflate()
        self._wake()

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:  # the first failure is the one to report
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


def _status_line(line: str) -> tuple[str, int, str]:
    parts = line.split(" ", 2)
    code = parts[1] if len(parts) > 1 else ""
    reason = parts[2] if len(parts) > 2 else ""
    if (
        parts[0] not in ("HTTP/1.0", "HTTP/1.1")
        or len(code) != 3
        or not (code.isascii() and code.isdigit())
        or "\r" in reason
        or "\n" in reason
        or "\0" in reason
    ):
        raise ProtocolError(f"not an HTTP/1.x response: {line[:80]!r}")
    return parts[0], int(code), reason


def _header_fields(lines: list[str]) -> dict[str, str]:
    """The head's lines after the status line, already checked by _FIELDS."""
    headers: dict[str, str] = {}
    for index in range(1, len(lines)):
        name, _, value = lines[index].partition(":")
        key = name.lower()
        value = value.strip(" \t")
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class Http1Pool:
    """Keep-alive connections per origin (scheme, host, port), created on demand.

    Up to `size` idle connections per origin stay open for IDLE_SECONDS; idle connections
    beyond that (left over from a burst) close after SURPLUS_IDLE_SECONDS. A timer sweeps them
    while any are idle, so a burst's connections do not linger once traffic stops."""

    def __init__(
        self,
        ssl_context: ssl.SSLContext,
        connect_timeout: float,
        limits: BodyLimits | None = None,
        size: int = POOL_SIZE,
    ) -> None:
        self.ssl_context = ssl_context
        self.connect_timeout = connect_timeout
        self.limits = limits or BodyLimits()
        self.size = size
        self._idle: dict[tuple[str, str, int], list[Http1Connection]] = {}
        self._sweeper: asyncio.TimerHandle | None = None

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
        limits = self.limits
        async with asyncio.timeout(self.connect_timeout):
            _, conn = await loop.create_connection(
                lambda: Http1Connection(origin, limits),
                host,
                port,
                ssl=tls,
                server_hostname=host if tls else None,
            )
        return conn, False

    def release(self, conn: Http1Connection) -> None:
        if conn.reusable and not conn.closed and _loop_running():
            conn.idle_since = time.monotonic()
            idle = self._idle.setdefault(conn.origin, [])
            if len(idle) < MAX_IDLE_PER_ORIGIN:
                idle.append(conn)  # the most recently used at the end: reused first
                self._arm()
                return
        conn.abort()

    def idle_count(self) -> int:
        return sum(len(idle) for idle in self._idle.values())

    def sweep(self, now: float | None = None) -> None:
        """Close expired idle connections, oldest first (they sit at the front)."""
        now = time.monotonic() if now is None else now
        for origin, idle in list(self._idle.items()):
            keep = [conn for conn in idle if not conn.closed]
            surplus = len(keep) - self.size
            kept = []
            for conn in keep:
                age = now - conn.idle_since
                if age >= IDLE_SECONDS or (surplus > 0 and age >= SURPLUS_IDLE_SECONDS):
                    surplus -= 1
                    conn.abort()
                else:
                    kept.append(conn)
            if kept:
                self._idle[origin] = kept
            else:
                del self._idle[origin]

    def _arm(self) -> None:
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(SWEEP_SECONDS, self._tick)

    def _tick(self) -> None:
        self._sweeper = None
        self.sweep()
        if self._idle:
            self._arm()

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for idle in self._idle.values():
            for conn in idle:
                conn.abort()
        self._idle.clear()

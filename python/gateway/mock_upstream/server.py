"""The mock upstream server: a raw asyncio Protocol (uvloop when available) with a minimal
HTTP/1.1 parser and keep-alive, so that it costs far less CPU than any gateway in front of it.

Per request it scans the head, finds the body by content-length (or chunked encoding), runs a
few regex searches on the body and writes pre-rendered bytes from `wire.Replies`. Pipelined
requests are answered in order; a delayed or paced reply holds the connection's later requests
until it is written.

Routes (the /v1 prefix is optional; any credentials are accepted, none are required):
  POST /v1/chat/completions, /v1/completions   OpenAI JSON, or SSE when "stream": true
  POST /v1/embeddings                          one embedding per input; base64 honoured
  POST /v1/messages                            Anthropic Messages API, JSON or SSE
  GET  /v1/models, /health
"""

from __future__ import annotations

import asyncio
import random
import re
import signal
from dataclasses import dataclass
from typing import cast

import orjson

from gateway.mock_upstream.wire import STREAM_HEAD, Replies, response

STREAM_RE = re.compile(rb'"stream"\s*:\s*true')
USAGE_RE = re.compile(rb'"include_usage"\s*:\s*true')
BASE64_RE = re.compile(rb'"encoding_format"\s*:\s*"base64"')
LIST_INPUT_RE = re.compile(rb'"input"\s*:\s*\[')
# a model name containing "delay-<N>ms" paces that request's stream at N ms per chunk, so one
# mock serves paced and unpaced endpoints of a gateway in front of it
MODEL_DELAY_RE = re.compile(rb'"model"\s*:\s*"[^"]*delay-(\d+(?:\.\d+)?)ms')
MAX_HEAD = 65536


@dataclass(frozen=True)
class MockOptions:
    host: str = "127.0.0.1"
    port: int = 18000
    latency_ms: tuple[float, float] = (0.0, 0.0)  # uniform in [min, max]; min == max is fixed
    chunks: int = 20
    chunk_delay_ms: float = 0.0
    error_rate: float = 0.0
    error_status: int = 500
    embed_dim: int = 1536


class MockState:
    """What every connection shares: the rendered replies and the options."""

    def __init__(self, options: MockOptions) -> None:
        self.options = options
        self.replies = Replies(options.chunks, options.embed_dim, options.error_status)
        r = self.replies
        # unpaced streams go out in one write, joined once here
        self.joined = {
            ("chat", False): STREAM_HEAD + b"".join(r.chat_stream) + r.done,
            ("chat", True): STREAM_HEAD + b"".join(r.chat_stream) + r.chat_usage + r.done,
            ("completions", False): STREAM_HEAD + b"".join(r.completion_stream) + r.done,
            ("completions", True): STREAM_HEAD + b"".join(r.completion_stream) + r.completion_usage + r.done,
            ("messages", False): STREAM_HEAD + b"".join(r.messages_stream),
        }
        low, high = options.latency_ms
        self.latency_low, self.latency_span = low / 1000.0, (high - low) / 1000.0
        self.chunk_delay = options.chunk_delay_ms / 1000.0
        self.requests = 0

    def latency(self) -> float:
        if self.latency_span > 0:
            return self.latency_low + random.random() * self.latency_span
        return self.latency_low

    def stream_parts(self, kind: str, usage: bool) -> list[bytes]:
        r = self.replies
        if kind == "chat":
            return [*r.chat_stream, (r.chat_usage if usage else b"") + r.done]
        if kind == "completions":
            return [*r.completion_stream, (r.completion_usage if usage else b"") + r.done]
        return list(r.messages_stream)


ROUTES = {b"/chat/completions": "chat", b"/completions": "completions", b"/messages": "messages"}


class MockConnection(asyncio.Protocol):
    state: MockState  # set by serve() before the server starts

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.busy = False  # a delayed reply is pending: hold later requests until it is written

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy:
            self._process()

    def _fail(self, status: int) -> None:
        assert self.transport is not None
        self.transport.write(response(status, b'{"error":{"message":"bad request"}}', close=True))
        self.transport.close()

    def _process(self) -> None:
        transport = self.transport
        assert transport is not None
        while self.buf and not transport.is_closing():
            buf = self.buf
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    self._fail(431)
                return
            head = buf[:end].lower()
            line_end = head.find(b"\r\n")
            parts = (head if line_end < 0 else head[:line_end]).split(b" ")
            if len(parts) < 3:
                self._fail(400)
                return
            start = end + 4
            found = head.find(b"\r\ncontent-length:")
            if found >= 0:
                value_end = head.find(b"\r\n", found + 2)
                try:
                    length = int(head[found + 17 : value_end if value_end >= 0 else len(head)])
                except ValueError:
                    self._fail(400)
                    return
                if len(buf) < start + length:
                    return
                body, self.buf = buf[start : start + length], buf[start + length :]
            elif b"\r\ntransfer-encoding: chunked" in head:
                decoded = dechunk(buf, start)
                if decoded is None:
                    return
                body, self.buf = decoded
            else:
                body, self.buf = b"", buf[start:]
            close = b"\r\nconnection: close" in head
            path = parts[1].split(b"?", 1)[0]
            if path.startswith(b"/v1/"):
                path = path[3:]
            self.state.requests += 1
            if self._answer(parts[0], path, body, close):
                return  # a delayed reply took the connection over; it resumes processing
            if close:
                transport.close()

    def _answer(self, method: bytes, path: bytes, body: bytes, close: bool) -> bool:
        """Write the reply to one request; True when it is deferred (latency or pacing)."""
        state, replies = self.state, self.state.replies
        assert self.transport is not None
        if method == b"get":
            if path == b"/models":
                self.transport.write(replies.models)
            elif path in (b"/health", b"/"):
                self.transport.write(replies.health)
            else:
                self.transport.write(replies.not_found)
            return False
        kind = ROUTES.get(path) or ("embeddings" if path == b"/embeddings" else None)
        if method != b"post" or kind is None:
            self.transport.write(replies.not_found)
            return False
        latency = state.latency()
        if state.options.error_rate > 0 and random.random() < state.options.error_rate:
            error = replies.anthropic_error if kind == "messages" else replies.openai_error
            return self._send([error], latency, 0.0, close)
        if kind == "embeddings":
            return self._send([embeddings_reply(replies, body)], latency, 0.0, close)
        if not STREAM_RE.search(body):
            reply = {"chat": replies.chat, "completions": replies.completion}.get(kind, replies.messages)
            return self._send([reply], latency, 0.0, close)
        usage = kind != "messages" and USAGE_RE.search(body) is not None
        paced = MODEL_DELAY_RE.search(body)
        delay = float(paced.group(1)) / 1000.0 if paced else state.chunk_delay
        if delay <= 0:
            return self._send([state.joined[(kind, usage)]], latency, 0.0, close)
        return self._send([STREAM_HEAD, *state.stream_parts(kind, usage)], latency, delay, close)

    def _send(self, parts: list[bytes], latency: float, delay: float, close: bool) -> bool:
        assert self.transport is not None
        if latency <= 0 and delay <= 0:
            self.transport.write(parts[0])
            return False
        self.busy = True
        asyncio.get_running_loop().create_task(self._send_later(parts, latency, delay, close))
        return True

    async def _send_later(self, parts: list[bytes], latency: float, delay: float, close: bool) -> None:
        transport = self.transport
        assert transport is not None
        try:
            if latency > 0:
                await asyncio.sleep(latency)
            last = len(parts) - 1
            for index, part in enumerate(parts):
                # pace every chunk but the head and the closing part ([DONE] / message_stop)
                if 0 < index < last and delay > 0:
                    await asyncio.sleep(delay)
                if transport.is_closing():
                    return
                transport.write(part)
        finally:
            self.busy = False
        if close:
            transport.close()
        elif self.buf:
            self._process()


def embeddings_reply(replies: Replies, body: bytes) -> bytes:
    count = 1
    if LIST_INPUT_RE.search(body):
        try:
            items = orjson.loads(body).get("input")
        except (orjson.JSONDecodeError, AttributeError):
            items = None
        # a list of token ids is one input; a list of strings or of token lists is many
        if isinstance(items, list) and items and not isinstance(items[0], int):
            count = len(items)
    return replies.embeddings(count, BASE64_RE.search(body) is not None)


def dechunk(buf: bytes, pos: int) -> tuple[bytes, bytes] | None:
    """A whole chunked body from `pos`: (body, rest of the buffer), or None if incomplete."""
    out: list[bytes] = []
    while True:
        line_end = buf.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size = int(buf[pos:line_end].split(b";")[0], 16)
        pos = line_end + 2
        if size == 0:
            trailer_end = buf.find(b"\r\n", pos)
            return None if trailer_end < 0 else (b"".join(out), buf[trailer_end + 2 :])
        if len(buf) < pos + size + 2:
            return None
        out.append(buf[pos : pos + size])
        pos += size + 2


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; plain asyncio still works
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def serve(options: MockOptions) -> None:
    """Run until SIGTERM or SIGINT. Prints one line with the bound address once listening."""
    MockConnection.state = MockState(options)
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(
        loop.create_server(MockConnection, options.host, options.port, backlog=4096, reuse_address=True)
    )
    port = server.sockets[0].getsockname()[1]
    stop: asyncio.Future[None] = loop.create_future()

    def request_stop() -> None:
        if not stop.done():
            stop.set_result(None)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, request_stop)
    low, high = options.latency_ms
    latency = f"{low:g}" if low == high else f"{low:g}-{high:g}"
    print(
        f"mock upstream listening on http://{options.host}:{port}/v1 (openai + anthropic) "
        f"latency_ms={latency} chunks={options.chunks} chunk_delay_ms={options.chunk_delay_ms:g} "
        f"error_rate={options.error_rate:g} error_status={options.error_status} "
        f"embed_dim={options.embed_dim} loop={type(loop).__module__}",
        flush=True,
    )
    try:
        loop.run_until_complete(stop)
    finally:
        server.close()
        loop.close()

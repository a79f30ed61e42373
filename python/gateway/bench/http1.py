"""A lean HTTP/1.1 client connection for the load loop: an asyncio Protocol with keep-alive.

One request at a time per connection. Requests are pre-rendered bytes; a response is parsed
just enough to time it: the status, content-length or chunked framing, and, for
`text/event-stream`, the SSE events (first event, gaps between reads that carry events, the
end marker, error events and output tokens). Bodies are otherwise skipped, except the first
bytes of an error body, which the report quotes.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from gateway.bench.histogram import Histogram

ERROR_BODY_BYTES = 300
# an SSE data line that is an error: {"error": ...} (OpenAI, our gateway) or Anthropic's
# {"type": "error", ...}
SSE_ERROR_RE = re.compile(rb'(?:^|\n)data:\s*\{\s*"(?:error"|type"\s*:\s*"error")')
# usage in the stream: OpenAI's completion_tokens, Anthropic's cumulative output_tokens
SSE_TOKENS_RE = re.compile(rb'"(?:completion_tokens|output_tokens)"\s*:\s*(\d+)')
# text-bearing events (output tokens when the stream carries no usage): "content" or "text"
# strings, minus the empty ones; compact and spaced JSON alike
TEXT_OPENINGS = (b'"content":"', b'"content": "', b'"text":"', b'"text": "')
EMPTY_TEXTS = (b'"content":""', b'"content": ""', b'"text":""', b'"text": ""')

# parser states
HEAD, LENGTH, CHUNK_SIZE, CHUNK_DATA, CHUNK_CRLF, TRAILER, UNTIL_CLOSE, IDLE = range(8)


class ConnectionOwner:
    """What a connection reports to (the load driver)."""

    def on_response(self, conn: ClientConnection) -> None:
        raise NotImplementedError

    def on_closed(self, conn: ClientConnection) -> None:
        raise NotImplementedError


class ClientConnection(asyncio.Protocol):
    def __init__(self, owner: ConnectionOwner, gaps: Histogram) -> None:
        self.owner = owner
        self.gaps = gaps
        self.transport: asyncio.Transport | None = None
        self.open = False
        self.state = IDLE
        self.buf = b""
        self.remaining = 0
        # the current request
        self.started = 0.0  # reference time: the send, or the scheduled send in an open loop
        self.sent_at = 0.0
        self.measured = False
        self.status = 0
        self.error_kind = ""
        self.error_body = b""
        self.keep_alive = True
        self.sse = False
        self.sse_buf = b""
        self.events = 0
        self.content_events = 0
        self.usage_tokens = -1
        self.first_event_at = 0.0
        self.last_event_at = 0.0
        self.done = False
        self.stream_error = False
        self.bytes_received = 0

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.open = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        if self.state == UNTIL_CLOSE:
            self._finish()
        elif self.state != IDLE:
            self._fail("incomplete" if self.status else "closed")
        self.owner.on_closed(self)

    def data_received(self, data: bytes) -> None:
        self.bytes_received += len(data)
        if self.state == IDLE:
            return  # nothing asked: ignore stray bytes
        if self.buf:
            data = self.buf + data
            self.buf = b""
        if self.state == HEAD:
            data = self._parse_head(data)
            if self.state == HEAD or self.state == IDLE:
                return
        if self.state == LENGTH:
            self._length_body(data)
        elif self.state == UNTIL_CLOSE:
            self._body_piece(data)
        else:
            self._chunked_body(data)

    # -- requests

    def send(self, request: bytes, started: float, measured: bool) -> None:
        assert self.transport is not None
        self.started = started
        self.measured = measured
        self.state = HEAD
        self.status = 0
        self.error_kind = ""
        self.error_body = b""
        self.sse = False
        self.sse_buf = b""
        self.events = self.content_events = 0
        self.usage_tokens = -1
        self.first_event_at = self.last_event_at = 0.0
        self.done = self.stream_error = False
        self.sent_at = time.perf_counter()
        self.transport.write(request)

    def abort(self, kind: str) -> None:
        """Give up on the current request (timeout) and drop the connection."""
        if self.state != IDLE:
            self._fail(kind)
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        if self.transport is not None and self.open:
            self.transport.close()

    # -- parsing

    def _parse_head(self, data: bytes) -> bytes:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            if len(data) > 65536:
                self.abort("protocol")
            else:
                self.buf = data
            return b""
        head = data[:end].lower()
        try:
            status = int(head[9:12])
        except ValueError:
            self.abort("protocol")
            return b""
        rest = data[end + 4 :]
        if 100 <= status < 200:  # an interim response (100 Continue): the real one follows
            return self._parse_head(rest) if rest else b""
        self.status = status
        self.keep_alive = not head.startswith(b"http/1.0") and b"\r\nconnection: close" not in head
        self.sse = b"text/event-stream" in head
        found = head.find(b"\r\ncontent-length:")
        if b"\r\ntransfer-encoding: chunked" in head:
            self.state = CHUNK_SIZE
        elif found >= 0:
            value_end = head.find(b"\r\n", found + 2)
            self.remaining = int(head[found + 17 : value_end if value_end >= 0 else len(head)])
            self.state = LENGTH
        elif status == 204 or status == 304:
            self.remaining = 0
            self.state = LENGTH
        else:
            self.state = UNTIL_CLOSE
            self.keep_alive = False
        return rest

    def _length_body(self, data: bytes) -> None:
        piece = data[: self.remaining]
        self.remaining -= len(piece)
        if piece:
            self._body_piece(piece)
        if self.remaining == 0:
            self._finish()

    def _chunked_body(self, data: bytes) -> None:
        """Walk the chunk framing; the payload of one read is handled in one piece."""
        pos, size = 0, len(data)
        pieces: list[bytes] = []
        while pos < size:
            if self.state == CHUNK_SIZE or self.state == TRAILER:
                line_end = data.find(b"\r\n", pos)
                if line_end < 0:
                    self.buf = data[pos:]
                    break
                line = data[pos:line_end]
                pos = line_end + 2
                if self.state == TRAILER:
                    if not line:  # the blank line that ends the trailer
                        self._flush(pieces)
                        self._finish()
                        return
                    continue
                try:
                    chunk = int(line.split(b";", 1)[0], 16)
                except ValueError:
                    self.abort("protocol")
                    return
                if chunk == 0:
                    self.state = TRAILER
                else:
                    self.remaining = chunk
                    self.state = CHUNK_DATA
            elif self.state == CHUNK_DATA:
                take = min(self.remaining, size - pos)
                pieces.append(data[pos : pos + take])
                pos += take
                self.remaining -= take
                if self.remaining == 0:
                    self.state = CHUNK_CRLF
            elif size - pos < 2:  # CHUNK_CRLF, split across reads
                self.buf = data[pos:]
                break
            else:
                pos += 2
                self.state = CHUNK_SIZE
        self._flush(pieces)

    def _flush(self, pieces: list[bytes]) -> None:
        if pieces:
            self._body_piece(pieces[0] if len(pieces) == 1 else b"".join(pieces))

    def _body_piece(self, piece: bytes) -> None:
        if self.sse and self.status < 400:
            self._sse_feed(piece)
        elif self.status >= 400 and len(self.error_body) < ERROR_BODY_BYTES:
            self.error_body += piece[: ERROR_BODY_BYTES - len(self.error_body)]

    def _sse_feed(self, piece: bytes) -> None:
        """Count the complete events of this read with a few C-speed scans (no per-event
        Python work): events, the end marker, error events, usage and text-bearing events."""
        buf = self.sse_buf + piece if self.sse_buf else piece
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n")
        cut = buf.rfind(b"\n\n")
        if cut < 0:
            self.sse_buf = buf
            return
        complete, self.sse_buf = buf[:cut], buf[cut + 2 :]
        events = complete.count(b"\ndata:") + complete.startswith(b"data:")
        if not events:
            return  # comments and keep-alives only
        self.events += events
        if b"[DONE]" in complete:
            self.done = True
        if b'"error"' in complete or b"event: error" in complete:
            error = SSE_ERROR_RE.search(complete)
            if error is not None or b"event: error" in complete:
                self.stream_error = True
                if not self.error_body:
                    start = error.start() if error is not None else complete.find(b"event: error")
                    self.error_body = complete[start : start + ERROR_BODY_BYTES].strip()
        if b'_tokens"' in complete:
            usage = SSE_TOKENS_RE.findall(complete)
            if usage:
                self.usage_tokens = int(usage[-1])
        self.content_events += sum(map(complete.count, TEXT_OPENINGS)) - sum(map(complete.count, EMPTY_TEXTS))
        now = time.perf_counter()
        if self.first_event_at == 0.0:
            self.first_event_at = now
        elif self.measured:
            self.gaps.record_seconds(now - self.last_event_at)
        self.last_event_at = now

    def _finish(self) -> None:
        self.state = IDLE
        self.buf = b""
        self.owner.on_response(self)

    def _fail(self, kind: str) -> None:
        self.error_kind = kind
        self.keep_alive = False
        self._finish()

    @property
    def output_tokens(self) -> int:
        return self.usage_tokens if self.usage_tokens >= 0 else self.content_events

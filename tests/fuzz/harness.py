"""Drives one `Http1Connection` with response bytes split at chosen points, on a fake transport
that honours pause_reading: no sockets, no timing, fully deterministic.

`feed` is shared by the fuzzers (fuzz_http1.py with atheris, test_http1_fuzz.py with
hypothesis) and by unit tests. Everything that can go wrong in a way the invariants forbid is
raised out of it: an exception other than ProtocolError from the parser, a response that neither
completes nor fails once the connection is closed (a hang), buffering beyond its bound.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from gateway.proxy.http1 import STREAM_PIECE, Http1Connection, ProtocolError

REQUEST = b"POST /v1/chat/completions HTTP/1.1\r\nHost: fuzz\r\nContent-Length: 0\r\n\r\n"


class FakeTransport:
    def __init__(self) -> None:
        self.paused = False
        self.aborted = False
        self.written = bytearray()

    def write(self, data: bytes) -> None:
        self.written += data

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def is_reading(self) -> bool:
        return not self.paused

    def abort(self) -> None:
        self.aborted = True

    def close(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.aborted

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default


@dataclass
class Result:
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: BaseException | None = None
    complete: bool = False  # the body ended by its framing (or by the close, when close-framed)
    reusable: bool = False
    most_buffered: int = 0  # the most bytes the connection held at once
    largest_read: int = 0


class Hang(AssertionError):
    """The response neither completed nor failed after the connection closed."""


_LOOP: asyncio.AbstractEventLoop | None = None


def loop() -> asyncio.AbstractEventLoop:
    global _LOOP
    if _LOOP is None or _LOOP.is_closed():
        _LOOP = asyncio.new_event_loop()
    return _LOOP


def pieces(wire: bytes, cuts: Sequence[int]) -> list[bytes]:
    """`wire` cut at the given offsets (any order, out-of-range ones ignored)."""
    points = sorted({c for c in cuts if 0 < c < len(wire)})
    out, start = [], 0
    for point in [*points, len(wire)]:
        if point > start:
            out.append(wire[start:point])
        start = point
    return out


def feed(
    wire: bytes,
    cuts: Sequence[int] = (),
    eof: bool = True,
    max_body: int | None = None,
    slow_reader: bool = False,
    limits: object | None = None,
) -> Result:
    """Feed `wire` (cut at `cuts`) to a fresh connection as the answer to one request, then close
    the connection (when `eof`), and read the body as a relay would. A slow reader takes one
    piece per fed read; otherwise the reader keeps up."""
    return loop().run_until_complete(_drive(pieces(wire, cuts), eof, max_body, slow_reader, limits))


def buffered(conn: Http1Connection) -> int:
    measure = getattr(conn, "buffered", None)
    if measure is not None:
        return int(measure())
    return len(conn._buffer) + conn._queued


class _Exchange:
    """One response read the way a relay reads it, on the fake transport."""

    def __init__(self, max_body: int | None, slow_reader: bool, limits: object | None) -> None:
        extra = {"limits": limits} if limits is not None else {}
        self.conn = Http1Connection(("http", "fuzz", 80), **extra)  # type: ignore[arg-type]
        self.transport = FakeTransport()
        self.conn.connection_made(self.transport)  # type: ignore[arg-type]
        send = self.conn.send(REQUEST, max_body) if max_body is not None else self.conn.send(REQUEST)
        self.head_task = asyncio.ensure_future(send)
        self.body_task: asyncio.Future[None] | None = None
        self.slow_reader = slow_reader
        self.turn = asyncio.Event()
        self.body = bytearray()
        self.result = Result()

    async def read_body(self) -> None:
        async for part in self.conn.iter_body(**({"piece": STREAM_PIECE} if self.slow_reader else {})):
            self.body.extend(part)
            if self.slow_reader:
                self.turn.clear()
                await self.turn.wait()

    def start_body(self) -> None:
        if self.body_task is None and self.head_task.done() and self.head_task.exception() is None:
            head = self.head_task.result()
            self.result.status, self.result.headers = head.status, head.headers
            self.body_task = asyncio.ensure_future(self.read_body())

    async def deliver(self, data: bytes) -> None:
        # a paused transport delivers nothing: let the reader drain before the next read
        for _ in range(10_000):
            if not self.transport.paused or self.transport.aborted:
                break
            self.turn.set()
            await asyncio.sleep(0)
        else:
            raise Hang("the reader never drained a paused connection")
        if self.transport.aborted:
            return
        self.result.largest_read = max(self.result.largest_read, len(data))
        self.conn.data_received(data)
        self.measure()
        await asyncio.sleep(0)
        self.start_body()
        await asyncio.sleep(0)
        self.measure()

    def measure(self) -> None:
        self.result.most_buffered = max(self.result.most_buffered, buffered(self.conn))

    def close(self, eof: bool) -> None:
        if eof and not self.transport.aborted:
            if not self.conn.eof_received():
                self.conn.connection_lost(None)
        elif self.transport.aborted and not self.conn.closed:
            self.conn.connection_lost(None)

    async def finish(self, ended: bool) -> Result:
        """The outcome once every read was delivered (`ended`: and the connection closed)."""
        result = self.result
        await asyncio.sleep(0)
        self.start_body()
        if not self.head_task.done():
            self.head_task.cancel()
            if ended:
                raise Hang("no response head and no error after the connection closed")
            return result
        if self.head_task.exception() is not None:
            result.error = self.head_task.exception()
            _check(result.error)
            return result
        assert self.body_task is not None
        for _ in range(100_000):
            if self.body_task.done():
                break
            self.turn.set()
            await asyncio.sleep(0)
        else:
            self.body_task.cancel()
            if ended:
                raise Hang("the body neither ended nor failed after the connection closed")
            return result
        result.body = bytes(self.body)
        if self.body_task.exception() is not None:
            result.error = self.body_task.exception()
            _check(result.error)
        else:
            result.complete = True
            result.reusable = self.conn.reusable
        return result


async def _drive(
    reads: list[bytes], eof: bool, max_body: int | None, slow_reader: bool, limits: object | None
) -> Result:
    exchange = _Exchange(max_body, slow_reader, limits)
    await asyncio.sleep(0)
    for data in reads:
        await exchange.deliver(data)
        if exchange.transport.aborted:
            break
    exchange.close(eof)
    return await exchange.finish(eof or exchange.transport.aborted)


def _check(error: BaseException | None) -> None:
    if error is not None and not isinstance(error, ProtocolError):
        raise error


def outcome(result: Result) -> tuple[object, ...]:
    """What must not depend on where the reads were cut: the status, whether it failed, and the
    body of a response that did not fail. (Which error is reported may: a corrupt gzip body
    over the size cap fails as corrupt or as too large depending on where zlib stood.)"""
    failed = result.error is not None
    return (result.status, failed, None if failed else result.body, result.complete)


def check(
    wire: bytes,
    cuts: Sequence[int],
    max_body: int = 0,
    slow_reader: bool = False,
    expected: tuple[int, bytes] | None = None,
) -> Result:
    """Every invariant for one input: raises AssertionError (or the parser's stray exception)."""
    from gateway.proxy.http1 import HIGH_WATER, MAX_HEAD_BYTES
    from gateway.proxy.limits import INFLATE_STEP

    cap = max_body or None
    result = feed(wire, cuts, max_body=cap, slow_reader=slow_reader)
    # bounded memory: what waits for the reader, the head and the framing, plus the reads
    bound = HIGH_WATER + INFLATE_STEP + MAX_HEAD_BYTES + 3 * max(result.largest_read, 1)
    assert result.most_buffered <= bound, (result.most_buffered, bound)
    if max_body and result.error is None:
        assert len(result.body) <= max_body
    whole = feed(wire, [], max_body=cap)
    assert outcome(result) == outcome(whole), (outcome(result), outcome(whole))
    if expected is not None:
        assert result.error is None, result.error
        assert result.complete and (result.status, result.body) == expected, (result.status, len(result.body))
    return result

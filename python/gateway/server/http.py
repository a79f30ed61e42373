"""Pure-ASGI request/response helpers: no framework, no per-request objects beyond the needed."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.errors import PayloadTooLarge, RequestTimeout
from gateway.schemas.responses import encode
from gateway.settings import Settings, settings
from gateway.types import Receive, Scope, Send

JSON = b"application/json"
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


# how often the deadlines of the bodies being read are checked: one sweep per event loop, no
# timer per request (arming and cancelling one costs more than reading a small body)
BODY_CHECK_SECONDS = 0.25


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole request body, at most `limit` bytes (else 413). It must arrive in time (else
    408, connection closed): within body_timeout_seconds, and after body_grace_seconds at no
    less than body_min_bytes_per_second on average, so a client trickling its body cannot hold
    a connection (and the worker's place for it) for ever. The deadline moves with each chunk:
    `grace + received / rate` seconds after the body was first awaited, checked every
    BODY_CHECK_SECONDS."""
    declared = header(scope, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"Request body too large: {declared} bytes, the limit is {limit} bytes.")
    loop = asyncio.get_running_loop()
    task = asyncio.current_task(loop)
    progress = [loop.time(), 0]  # when the body was first awaited, bytes received since
    if task is not None:
        _DEADLINES.watch(task, progress)
    chunks = []
    size = 0
    try:
        while True:
            try:
                message = await receive()
            except asyncio.CancelledError:
                if task is None or task not in _DEADLINES.expired:
                    raise
                _DEADLINES.expired.discard(task)
                task.uncancel()  # the sweep's cancellation, not the server's: answered 408
                elapsed = loop.time() - progress[0]
                raise RequestTimeout(_too_slow(settings(), size, declared, elapsed)) from None
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(
                        f"Request body too large: over {limit} bytes, the limit is {limit} bytes."
                    )
                chunks.append(chunk)
                progress[1] = size
            if not message.get("more_body", False):
                break
    finally:
        if task is not None:
            _DEADLINES.reads.pop(task, None)
            _DEADLINES.expired.discard(task)
    return b"".join(chunks) if len(chunks) != 1 else chunks[0]


class _BodyDeadlines:
    """The bodies being read on this process's event loop, and the task that sweeps them every
    BODY_CHECK_SECONDS: a body past its deadline has its reading task cancelled while it waits
    for the next chunk, which `read_body` turns into a 408."""

    def __init__(self) -> None:
        self.reads: dict[asyncio.Task[Any], list[float]] = {}  # task -> [started, received]
        self.expired: set[asyncio.Task[Any]] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.sweeper: asyncio.Task[None] | None = None

    def watch(self, task: asyncio.Task[Any], progress: list[float]) -> None:
        loop = task.get_loop()
        if loop is not self.loop or self.sweeper is None or self.sweeper.done():
            # one event loop per worker process (a new one per test)
            self.loop, self.reads, self.expired = loop, {}, set()
            self.sweeper = loop.create_task(self._sweep(loop))
        self.reads[task] = progress

    async def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            await asyncio.sleep(BODY_CHECK_SECONDS)
            rules = settings()
            if rules.body_timeout_seconds <= 0 and rules.body_min_bytes_per_second <= 0:
                continue
            now = loop.time()
            for task, (started, received) in list(self.reads.items()):
                deadline = _body_deadline(rules, started, int(received))
                if deadline is not None and now >= deadline and task not in self.expired:
                    # a watched task waits in `read_body` for a chunk: the cancellation lands
                    # there, even when the chunk has just come
                    self.expired.add(task)
                    task.cancel()


_DEADLINES = _BodyDeadlines()


def _body_deadline(rules: Settings, started: float, received: int) -> float | None:
    deadline = None
    if rules.body_timeout_seconds > 0:
        deadline = started + rules.body_timeout_seconds
    if rules.body_min_bytes_per_second > 0:
        paced = started + rules.body_grace_seconds + received / rules.body_min_bytes_per_second
        deadline = paced if deadline is None else min(deadline, paced)
    return deadline


def _too_slow(rules: Settings, received: int, declared: str | None, elapsed: float) -> str:
    of = f" of {declared}" if declared is not None and declared.isdigit() else ""
    must = []
    if rules.body_timeout_seconds > 0:
        must.append(f"within {rules.body_timeout_seconds:g} s")
    if rules.body_min_bytes_per_second > 0:
        must.append(
            f"at {rules.body_min_bytes_per_second} bytes/s or faster after the first "
            f"{rules.body_grace_seconds:g} s"
        )
    return (
        f"Request body not received in time: {received}{of} bytes after {elapsed:.1f} s. "
        f"A request body must arrive {', and '.join(must)}."
    )


async def send_bytes(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes = JSON,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def send_json(
    send: Send, status: int, data: Any, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send_bytes(send, status, encode(data), JSON, extra)

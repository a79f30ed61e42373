"""A fault-injecting OpenAI upstream on 127.0.0.1: a raw asyncio HTTP/1.1 server (so a fault can
be placed byte-exactly) in a background thread.

Each destination is a path prefix, `{url}/{name}/v1` (`base(name)`), so one server stands in for
several providers or keys and counts the requests each received (`count(name)`). What a request
gets is scripted per destination: `script(name, [...])` queues faults for the next requests;
`default(name, [...])` is what follows, cycled (a flapping upstream is a default of
["ok", "503"]). Faults:

    "ok"                    a chat completion, or an SSE stream when the request asked for one
    "429:<s>"               429 with `Retry-After: <s>` (seconds) and an OpenAI error body
    "429-date:<s>"          429 with Retry-After as an HTTP date <s> seconds ahead
    "500" / "502" / "503"   that status with an OpenAI error body
    "slow:<s>"              wait <s> seconds before the headers, then "ok"
    "reset-before"          close the connection (RST) without a byte of answer
    "reset-after-headers"   send the headers and half the body, then RST
    "garbage"               200 application/json whose body is not JSON
    "stream-cut:<n>"        a stream request: <n> events, then RST (no [DONE])
    "stream-gap:<s>"        a stream request: events <s> seconds apart
"""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson

WORDS = ["Hello", " from", " the", " faulty", " upstream", "!"]


class FaultyUpstream:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._lock = threading.Lock()
        self._queued: dict[str, list[str]] = {}
        self._defaults: dict[str, Iterator[str]] = {}
        self._counts: dict[str, int] = {}
        self.in_flight: dict[str, int] = {}
        self.most_in_flight: dict[str, int] = {}
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._server: asyncio.Server | None = None

    # -- the test's side ------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def base(self, name: str) -> str:
        return f"{self.url}/{name}/v1"

    def script(self, name: str, faults: list[str]) -> None:
        with self._lock:
            self._queued.setdefault(name, []).extend(faults)

    def default(self, name: str, faults: list[str]) -> None:
        with self._lock:
            self._defaults[name] = itertools.cycle(faults)

    def count(self, name: str) -> int:
        with self._lock:
            return self._counts.get(name, 0)

    def reset_counts(self) -> None:
        with self._lock:
            self._counts.clear()

    def start(self) -> FaultyUpstream:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            serving = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in serving:
                task.cancel()
            await asyncio.gather(*serving, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    # -- the server -----------------------------------------------------------------------
    def _next(self, name: str) -> str:
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + 1
            queued = self._queued.get(name)
            if queued:
                return queued.pop(0)
            cycle = self._defaults.get(name)
            return next(cycle) if cycle is not None else "ok"

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self._server = self.loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self.loop.run_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                headers = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (line.partition(":") for line in lines[1:] if line)
                }
                raw = await reader.readexactly(int(headers.get("content-length", "0")))
                body = orjson.loads(raw) if raw else {}
                name = path.strip("/").split("/")[0]
                fault = self._next(name)
                self.in_flight[name] = self.in_flight.get(name, 0) + 1
                self.most_in_flight[name] = max(self.most_in_flight.get(name, 0), self.in_flight[name])
                try:
                    keep = await self._answer(writer, fault, body)
                finally:
                    self.in_flight[name] -= 1
                if not keep:
                    return
        finally:
            writer.close()

    async def _answer(self, writer: asyncio.StreamWriter, fault: str, body: dict[str, Any]) -> bool:
        """Writes the answer; False when the connection was (or must be) dropped."""
        kind, _, arg = fault.partition(":")
        if kind == "slow":
            await asyncio.sleep(float(arg))
            kind = "ok"
        if kind == "reset-before":
            _reset(writer)
            return False
        if kind in ("429", "429-date"):
            seconds = float(arg or 1)
            after = (
                str(int(seconds))
                if kind == "429"
                else email.utils.formatdate(time.time() + seconds, usegmt=True)
            )
            writer.write(
                _json(429, _error("Rate limit reached", "rate_limit_exceeded"), {"Retry-After": after})
            )
        elif kind in ("500", "502", "503"):
            writer.write(_json(int(kind), _error("The server is overloaded", "server_error")))
        elif kind == "garbage":
            writer.write(_raw(200, b"<html>not json", "application/json"))
        elif kind == "reset-after-headers":
            whole = orjson.dumps(_chat(body))
            writer.write(_head(200, len(whole), "application/json") + whole[: len(whole) // 2])
            await writer.drain()
            await asyncio.sleep(0.01)
            _reset(writer)
            return False
        elif body.get("stream"):
            cut = int(arg) if kind == "stream-cut" else None
            return await self._stream(writer, cut, float(arg) if kind == "stream-gap" else 0.005)
        else:
            writer.write(_json(200, _chat(body)))
        await writer.drain()
        return True

    async def _stream(self, writer: asyncio.StreamWriter, cut_after: int | None, gap: float) -> bool:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        events = [_chunk(index, word) for index, word in enumerate(WORDS)] + [_chunk(len(WORDS), None)]
        for index, event in enumerate(events):
            if cut_after is not None and index == cut_after:
                await writer.drain()
                await asyncio.sleep(0.05)
                _reset(writer)
                return False
            writer.write(_chunked(b"data: " + orjson.dumps(event) + b"\n\n"))
            await writer.drain()
            await asyncio.sleep(gap)
        writer.write(_chunked(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        await writer.drain()
        return True


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST rather than FIN (SO_LINGER 0)."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _head(status: int, length: int, content_type: str, extra: dict[str, str] | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status} X", f"Content-Type: {content_type}", f"Content-Length: {length}"]
    lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _raw(status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> bytes:
    return _head(status, len(body), content_type, extra) + body


def _json(status: int, value: Any, extra: dict[str, str] | None = None) -> bytes:
    return _raw(status, orjson.dumps(value), "application/json", extra)


def _chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _error(message: str, code: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": code, "code": code}}


def _chat(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-faulty",
        "object": "chat.completion",
        "created": 1700000000,
        "model": str(body.get("model")),
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "".join(WORDS)}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 6, "total_tokens": 9},
    }


def _chunk(index: int, word: str | None) -> dict[str, Any]:
    delta = {"content": word} if word is not None else {}
    return {
        "id": "chatcmpl-faulty",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": None if word is not None else "stop"}],
    }

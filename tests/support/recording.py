"""A recording upstream emulation: an aiohttp server on 127.0.0.1 in a background thread.

Subclasses add routes in `setup(app)` and answer in the provider's real wire format; every
request the gateway sends is recorded (method, path, query, headers, parsed JSON body, raw
bytes) so tests can assert exactly what reached the provider.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from typing import Any

import orjson
from aiohttp import web


class RecordedRequest:
    def __init__(self, method: str, path: str, query: str, headers: dict[str, str], raw: bytes) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.raw = raw
        try:
            self.body: Any = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            self.body = None


class RecordingUpstream:
    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.ssl_context = ssl_context
        self.requests: list[RecordedRequest] = []
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def setup(self, app: web.Application) -> None:
        raise NotImplementedError

    def start(self) -> RecordingUpstream:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    def last(self) -> RecordedRequest:
        return self.requests[-1]

    async def record(self, request: web.Request) -> RecordedRequest:
        raw = await request.read()
        recorded = RecordedRequest(
            request.method, request.path, request.query_string, dict(request.headers), raw
        )
        self.requests.append(recorded)
        return recorded

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        self.setup(app)
        runner = self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        self.loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        self.loop.run_until_complete(site.start())
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self._ready.set()
        self.loop.run_forever()


async def write_awkwardly(response: web.StreamResponse, wire: bytes) -> None:
    """Write one event in three pieces, cut mid-payload and between its final newlines, so
    the gateway's incremental parser sees every kind of boundary."""
    cut = max(1, min(7, len(wire) - 2))
    for part in (wire[:cut], wire[cut:-1], wire[-1:]):
        if part:
            await response.write(part)

"""The whole gateway application in process: a config, recorded upstream answers
(tests/support/transport.py) and a sink that keeps every usage record, driven through ASGI
exactly as the server drives it, with a client that may leave mid-answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson

from gateway.config import parse_config
from gateway.control.table import EndpointTable
from gateway.proxy.upstream import UpstreamStream
from gateway.server.app import GatewayApp
from gateway.usage import UsageRecord
from tests.support.transport import RecordedTransport, Sent


class CuttableTransport(RecordedTransport):
    """Recorded answers where a stream's chunk list may hold an exception: raised there, as a
    connection reset by the upstream is."""

    async def stream(self, url: str, headers: dict[str, str], body: bytes, label: str) -> UpstreamStream:
        self.sent.append(Sent(url, headers, body))
        status, answer_headers, chunks = self.answers.pop(0)

        async def pieces() -> AsyncIterator[bytes]:
            for chunk in chunks:
                if isinstance(chunk, BaseException):
                    raise chunk
                yield chunk

        lowered = {name.lower(): value for name, value in answer_headers.items()}
        return UpstreamStream(status, "OK", lowered, pieces(), lambda: None, label, 5.0)


class Capture:
    """A usage sink that keeps what it is given."""

    def __init__(self) -> None:
        self.records: list[UsageRecord] = []

    def record(self, record: UsageRecord, ctx: Any) -> None:
        self.records.append(record)


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return orjson.loads(self.body)

    def events(self) -> list[Any]:
        """A stream's `data:` payloads, `[DONE]` as the string."""
        out: list[Any] = []
        for line in self.body.decode().splitlines():
            if line.startswith("data: "):
                data = line[len("data: ") :]
                out.append(data if data == "[DONE]" else orjson.loads(data))
        return out


class InProcessGateway:
    def __init__(self, endpoints_yaml: str, *answers: tuple[int, dict[str, str], Any]) -> None:
        self.transport = CuttableTransport(*answers)
        config = parse_config("endpoints:" + endpoints_yaml)
        self.table = EndpointTable(config, self.transport)  # type: ignore[arg-type]
        self.app = GatewayApp(self.table, self.transport)  # type: ignore[arg-type]
        self.capture = Capture()
        self.app.services.sinks = (self.capture,)

    @property
    def record(self) -> UsageRecord:
        (record,) = self.capture.records
        return record

    def post(self, path: str, body: Any, leave_after_body_parts: int | None = None) -> Answer:
        """POST `body`; with `leave_after_body_parts`, the client disconnects once it has
        received that many body parts of the answer."""
        return asyncio.run(self._post(path, body, leave_after_body_parts))

    async def _post(self, path: str, body: Any, leave_after: int | None) -> Answer:
        raw = orjson.dumps(body)
        gone = asyncio.Event()
        delivered = False
        status = 0
        headers: dict[str, str] = {}
        parts: list[bytes] = []

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": raw, "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers.update((k.decode(), v.decode()) for k, v in message.get("headers", []))
            elif message["type"] == "http.response.body":
                parts.append(message.get("body", b""))
                if leave_after is not None and len(parts) >= leave_after:
                    gone.set()
                    await asyncio.sleep(0)  # the gateway sees the disconnect before sending more

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"host", b"gateway"),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(raw)).encode()),
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 5000),
        }
        await self.app(scope, receive, send)
        return Answer(status, headers, b"".join(parts))

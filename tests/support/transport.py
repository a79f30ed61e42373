"""A `Transport` (gateway.proxy.upstream) that answers from recorded exchanges, in process: a
provider's request building, response parsing and stream translation are tested without a
gateway process or an upstream server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from gateway.proxy.upstream import UpstreamResponse, UpstreamStream


class Sent:
    def __init__(self, url: str, headers: dict[str, str], body: bytes) -> None:
        self.url = url
        self.headers = headers
        self.body: Any = orjson.loads(body) if body else None


class RecordedTransport:
    """Answers each call with the next recorded answer: `(status, headers, body)` for `post`,
    `(status, headers, [chunks])` for `stream` (chunks split wherever the test likes)."""

    def __init__(self, *answers: tuple[int, dict[str, str], Any]) -> None:
        self.answers = list(answers)
        self.sent: list[Sent] = []

    async def post(self, url: str, headers: dict[str, str], body: bytes, label: str) -> UpstreamResponse:
        self.sent.append(Sent(url, headers, body))
        status, answer_headers, answer = self.answers.pop(0)
        raw = answer if isinstance(answer, bytes) else orjson.dumps(answer)
        return UpstreamResponse(status, "OK" if status < 400 else "Error", _lower(answer_headers), raw)

    async def stream(self, url: str, headers: dict[str, str], body: bytes, label: str) -> UpstreamStream:
        self.sent.append(Sent(url, headers, body))
        status, answer_headers, chunks = self.answers.pop(0)

        async def pieces() -> AsyncIterator[bytes]:
            for chunk in chunks:
                yield chunk

        return UpstreamStream(status, "OK", _lower(answer_headers), pieces(), lambda: None, label, 5.0)


def _lower(headers: dict[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def sse(*events: Any, done: bool = True) -> bytes:
    """Server-sent events as an OpenAI-style upstream writes them."""
    body = b"".join(b"data: " + orjson.dumps(event) + b"\n\n" for event in events)
    return body + (b"data: [DONE]\n\n" if done else b"")


def split_every(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]

"""One object per request, carried through every phase of the pipeline."""

from __future__ import annotations

import os
import re
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Protocol

from gateway.errors import MLFLOW, OPENAI, ApiStyle, GatewayError
from gateway.types import EndpointType, Payload, Receive, Scope, Send

if TYPE_CHECKING:
    from gateway.auth.access import KeyLimiters
    from gateway.budgets.policy import BudgetSpec
    from gateway.control.limits import Grant
    from gateway.control.table import EndpointTable, Target
    from gateway.schemas.responses import Chunk
    from gateway.server.keys import Keys
    from gateway.usage import UsageRecord


class Consumer:
    """Who is calling, once authenticated: a gateway key's holder or a JWT's subject."""

    __slots__ = ("budget", "endpoints", "id", "kind", "limiter", "name", "team")

    def __init__(
        self,
        id: str,
        kind: str,
        name: str | None = None,
        team: str | None = None,
        endpoints: tuple[str, ...] = (),
        limiter: Any = None,
        budget: BudgetSpec | None = None,
    ) -> None:
        self.id = id  # the key's id, or "jwt:<subject>"
        self.kind = kind  # "key" or "jwt"
        self.name = name
        self.team = team
        self.endpoints = endpoints  # glob patterns it may call; empty: all
        self.limiter = limiter  # its own limit, on top of the endpoint's
        self.budget = budget  # a key's own budget (gateway/budgets/), on top of the others


class Services:
    """What a worker gives every request: its consumer keys and their limiters, and the sinks
    that each request's usage record goes to. Built once per worker."""

    __slots__ = ("key_limiters", "keys", "sinks")

    def __init__(
        self, keys: Keys | None = None, key_limiters: KeyLimiters | None = None, sinks: tuple[Sink, ...] = ()
    ) -> None:
        self.keys = keys  # this worker's copy of the consumer keys (None: no key database)
        self.key_limiters = key_limiters
        self.sinks = sinks


class Sink(Protocol):
    """Takes each request's usage record. Must not block: anything slow is queued."""

    def record(self, record: UsageRecord, ctx: RequestContext) -> None: ...


class StreamTally:
    """What a relayed stream delivered: the last usage reported, the text's length."""

    __slots__ = ("chars", "usage")

    def __init__(self) -> None:
        self.usage: dict[str, Any] | None = None
        self.chars = 0


class RequestContext:
    __slots__ = (
        "answer",
        "asked",
        "attempts",
        "consumer",
        "error",
        "first_byte",
        "grants",
        "kind",
        "openai_route",
        "payload",
        "prompts",
        "receive",
        "request_id",
        "scope",
        "send",
        "services",
        "started",
        "started_at",
        "status",
        "stream",
        "streaming",
        "style",
        "table",
        "tally",
        "target",
        "upstream_seconds",
        "usage",
    )

    def __init__(
        self, scope: Scope, receive: Receive, send: Send, table: EndpointTable, services: Services
    ) -> None:
        self.scope = scope
        self.receive = receive
        self.send = send
        # read once: the whole request runs on the table it started with, whatever a reload does
        self.table = table
        self.services = services
        self.openai_route: bool = scope["path"].startswith("/v1/")
        # the API whose shapes the client speaks: errors are rendered in it (errors.py)
        self.style: ApiStyle = OPENAI if self.openai_route else MLFLOW
        self.started = time.perf_counter()
        self.started_at = time.time()
        self.request_id = request_id(scope)
        self.consumer: Consumer | None = None
        self.target: Target | None = None
        self.asked: str | None = None  # the name the client asked for (a traffic route's)
        self.attempts = 0  # upstream attempts made (retries and fallbacks included)
        self.answer: Any = None  # a whole answer (its text is measured only if it reported no usage)
        self.kind: EndpointType | None = None
        self.payload: Payload = {}
        self.streaming = False
        self.prompts: list[str] | None = None  # completions prompts answered one call each
        self.grants: list[Grant] = []
        self.stream: AsyncIterator[list[Chunk]] | None = None
        self.tally: StreamTally | None = None
        self.usage: dict[str, Any] | None = None  # a whole answer's usage, as reported
        self.upstream_seconds = 0.0  # waiting for the provider's answer (or stream's headers)
        self.first_byte: float | None = None  # perf_counter when the answer started
        self.status = 0
        self.error: GatewayError | None = None

    @property
    def keys(self) -> Keys | None:
        return self.services.keys

    @property
    def key_limiters(self) -> KeyLimiters | None:
        return self.services.key_limiters

    @property
    def method(self) -> str:
        return str(self.scope["method"])

    @property
    def path(self) -> str:
        return str(self.scope["path"])

    def overhead_ms(self) -> float:
        """The gateway's own time so far: elapsed, less the wait for the provider."""
        return max(0.0, (time.perf_counter() - self.started - self.upstream_seconds) * 1000)

    def answer_headers(self) -> list[tuple[bytes, bytes]]:
        """Sent with every answer, errors included: the request id, the gateway's overhead up to
        the first byte, and the RateLimit-* headers of the limits that admitted it."""
        self.first_byte = time.perf_counter()
        headers = [
            (b"x-request-id", self.request_id.encode()),
            (b"x-gateway-overhead-ms", b"%.2f" % self.overhead_ms()),
        ]
        for grant in self.grants:
            headers.extend(grant.headers)
        if self.attempts and self.target is not None:
            # which destination answered (or failed last), after how many upstream attempts
            headers.append((b"x-gateway-destination", self.target.name.encode()))
            headers.append((b"x-gateway-attempts", str(self.attempts).encode()))
        return headers


REQUEST_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")


def request_id(scope: Scope) -> str:
    """The client's `x-request-id` when it is a sane token (kept, so logs join up), else a new one."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            if REQUEST_ID.fullmatch(value):
                return str(value.decode("ascii"))
            break
    return os.urandom(12).hex()

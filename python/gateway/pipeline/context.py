"""One object per request, carried through every phase of the pipeline."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from gateway.types import EndpointType, Payload, Receive, Scope, Send

if TYPE_CHECKING:
    from gateway.auth.access import KeyLimiters
    from gateway.control.limits import Grant
    from gateway.control.table import EndpointTable, Target
    from gateway.schemas.responses import Chunk
    from gateway.server.keys import Keys


class Consumer:
    """Who is calling, once authenticated: a gateway key's holder or a JWT's subject."""

    __slots__ = ("endpoints", "id", "kind", "limiter", "name", "team")

    def __init__(
        self,
        id: str,
        kind: str,
        name: str | None = None,
        team: str | None = None,
        endpoints: tuple[str, ...] = (),
        limiter: Any = None,
    ) -> None:
        self.id = id  # the key's id, or "jwt:<subject>"
        self.kind = kind  # "key" or "jwt"
        self.name = name
        self.team = team
        self.endpoints = endpoints  # glob patterns it may call; empty: all
        self.limiter = limiter  # its own limit, on top of the endpoint's


class RequestContext:
    __slots__ = (
        "consumer",
        "grants",
        "key_limiters",
        "keys",
        "kind",
        "openai_route",
        "payload",
        "prompts",
        "receive",
        "scope",
        "send",
        "started",
        "stream",
        "streaming",
        "table",
        "target",
    )

    def __init__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        table: EndpointTable,
        keys: Keys | None = None,
        key_limiters: KeyLimiters | None = None,
    ) -> None:
        self.scope = scope
        self.receive = receive
        self.send = send
        # read once: the whole request runs on the table it started with, whatever a reload does
        self.table = table
        self.keys = keys  # this worker's copy of the consumer keys (None: no key database)
        self.key_limiters = key_limiters
        self.openai_route: bool = scope["path"].startswith("/v1/")
        self.started = time.perf_counter()
        self.consumer: Consumer | None = None
        self.target: Target | None = None
        self.kind: EndpointType | None = None
        self.payload: Payload = {}
        self.streaming = False
        self.prompts: list[str] | None = None  # completions prompts answered one call each
        self.grants: list[Grant] = []
        self.stream: AsyncIterator[list[Chunk]] | None = None

    @property
    def method(self) -> str:
        return str(self.scope["method"])

    @property
    def path(self) -> str:
        return str(self.scope["path"])

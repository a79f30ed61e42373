"""What the gateway keeps about the responses it served, so `previous_response_id` and
`GET`/`DELETE /v1/responses/{id}` work for every endpoint:

* a translated provider (no Responses API of its own): the conversation so far (every turn's
  input and output items) and the response object, so the next turn can send it all again;
* a passthrough endpoint (OpenAI, Azure): only which endpoint the id belongs to (the upstream
  keeps the conversation), so GET/DELETE reach the right upstream.

Each state records its owner (the consumer that created it; None when anonymous) in its encoded
blob, and `find` answers only that owner.

Bounded: a conversation larger than MAX_CONVERSATION_BYTES is not kept (a later
`previous_response_id` to it gets a 400 saying so), entries expire after TTL_SECONDS, and a
worker's memory holds at most MAX_MEMORY_BYTES of them (least recently used dropped first).

With a database configured (`database_url`, as for consumer keys) the states are written there
too (table `response_states`, migration 0004), in a thread, before the answer that names the id
goes out, so every worker and every gateway sharing the database finds them. Clients that send
`store: false` (Codex does) never touch it. Without one they live in each worker's memory only:
with several workers a follow-up turn may reach a worker that has not seen the first, and gets a
404. Run one worker, or configure a database, when clients rely on `previous_response_id`.
SQLAlchemy loads (in the database thread) only with a database.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import Any

import orjson

from gateway.errors import DatabaseUnavailable

logger = logging.getLogger("gateway")

TTL_SECONDS = 24 * 3600
MAX_CONVERSATION_BYTES = 4 * 1024 * 1024
MAX_MEMORY_BYTES = 64 * 1024 * 1024
TOO_LARGE = "too_large"  # the marker kept for a conversation over the cap


class ResponseState:
    """One served response: its endpoint, and for translated providers the conversation
    (items) and the response object."""

    __slots__ = ("endpoint", "expires_at", "items", "owner", "response", "size")

    def __init__(
        self,
        endpoint: str,
        items: list[Any] | None = None,
        response: dict[str, Any] | None = None,
        expires_at: float | None = None,
        size: int = 0,
        owner: str | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.owner = owner  # the consumer that created it (None: anonymous); only it reads it
        self.items = items  # None for passthrough endpoints; TOO_LARGE-marked when over the cap
        self.response = response
        self.expires_at = expires_at if expires_at is not None else time.time() + TTL_SECONDS
        self.size = size

    def encode(self) -> bytes:
        return orjson.dumps(
            {"endpoint": self.endpoint, "items": self.items, "response": self.response, "owner": self.owner}
        )

    @classmethod
    def decode(cls, raw: bytes, expires_at: float) -> ResponseState:
        data = orjson.loads(raw)
        items, response = data.get("items"), data.get("response")
        return cls(data["endpoint"], items, response, expires_at, len(raw), data.get("owner"))


class ResponseStates:
    """This worker's LRU of states, in front of the database when one is configured."""

    def __init__(self, database_url: str | None = None) -> None:
        self.database_url = database_url
        self.memory: OrderedDict[str, ResponseState] = OrderedDict()
        self.bytes = 0

    async def remember(self, response_id: str, state: ResponseState) -> None:
        """Keeps a state: in memory, and in the database (in a thread) before the client learns
        the id, so a follow-up on any worker finds it. A database failure is logged: the answer
        still goes out, and the state is kept in this worker's memory."""
        raw = state.encode()
        if len(raw) > MAX_CONVERSATION_BYTES:
            state = ResponseState(state.endpoint, [TOO_LARGE], None, state.expires_at, owner=state.owner)
            raw = state.encode()
        state.size = len(raw)
        self._put(response_id, state)
        if self.database_url is not None:
            try:
                await asyncio.to_thread(self._insert, response_id, state, raw)
            except DatabaseUnavailable as exc:
                logger.warning("response state not written to the database: %s", exc)
            except Exception as exc:
                logger.warning("response state not written to the database: %s", type(exc).__name__)

    async def find(self, response_id: str, owner: str | None) -> ResponseState | None:
        """The state of `response_id` when `owner` created it; another consumer's is not found."""
        state = await self._find(response_id)
        return state if state is not None and state.owner == owner else None

    async def _find(self, response_id: str) -> ResponseState | None:
        state = self.memory.get(response_id)
        if state is not None:
            if state.expires_at > time.time():
                self.memory.move_to_end(response_id)
                return state
            self._drop(response_id)
        if self.database_url is None:
            return None
        state = await asyncio.to_thread(self._read, response_id)
        if state is not None:
            self._put(response_id, state)
        return state

    async def forget(self, response_id: str) -> None:
        self._drop(response_id)
        if self.database_url is not None:
            await asyncio.to_thread(self._delete, response_id)

    # -- memory --------------------------------------------------------------------------
    def _put(self, response_id: str, state: ResponseState) -> None:
        self._drop(response_id)
        self.memory[response_id] = state
        self.bytes += state.size
        while self.bytes > MAX_MEMORY_BYTES and self.memory:
            _, oldest = self.memory.popitem(last=False)
            self.bytes -= oldest.size

    def _drop(self, response_id: str) -> None:
        old = self.memory.pop(response_id, None)
        if old is not None:
            self.bytes -= old.size

    # -- database (in a thread) ----------------------------------------------------------
    def _insert(self, response_id: str, state: ResponseState, raw: bytes) -> None:
        import sqlalchemy as sa

        from gateway.store.db import transaction
        from gateway.store.schema import response_states

        assert self.database_url is not None
        now = time.time()
        with transaction(self.database_url, write=True) as connection:
            connection.execute(sa.delete(response_states).where(response_states.c.expires_at < now))
            connection.execute(sa.delete(response_states).where(response_states.c.id == response_id))
            connection.execute(
                sa.insert(response_states).values(
                    id=response_id, endpoint=state.endpoint, expires_at=state.expires_at, state=raw
                )
            )

    def _read(self, response_id: str) -> ResponseState | None:
        import sqlalchemy as sa

        from gateway.store.db import transaction
        from gateway.store.schema import response_states

        assert self.database_url is not None
        try:
            with transaction(self.database_url) as connection:
                row = connection.execute(
                    sa.select(response_states.c.state, response_states.c.expires_at).where(
                        response_states.c.id == response_id, response_states.c.expires_at > time.time()
                    )
                ).first()
        except DatabaseUnavailable as exc:
            logger.warning("response state not read from the database: %s", exc)
            return None
        return ResponseState.decode(bytes(row[0]), float(row[1])) if row is not None else None

    def _delete(self, response_id: str) -> None:
        import sqlalchemy as sa

        from gateway.store.db import transaction
        from gateway.store.schema import response_states

        assert self.database_url is not None
        with transaction(self.database_url, write=True) as connection:
            connection.execute(sa.delete(response_states).where(response_states.c.id == response_id))

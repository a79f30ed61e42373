"""A worker's consumer keys: the store, the in-memory cache kept current by a background poll,
each key's limiter, and the admin API's context."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from gateway.auth.access import KeyLimiters

if TYPE_CHECKING:
    from gateway.server.admin import AdminContext
    from gateway.store import KeyCache, KeyRecord, KeyStore

logger = logging.getLogger("gateway.keys")
MISS_REFRESH_SECONDS = 0.1


class Keys:
    def __init__(self, database_url: str) -> None:
        # SQLAlchemy loads only in gateways that have a key database
        from gateway.store import KeyCache, KeyStore

        self.database_url = database_url
        self.store: KeyStore = KeyStore(database_url)
        self.cache: KeyCache = KeyCache(self.store)
        self.limiters = KeyLimiters()
        # team budgets set by the admin API, polled like the keys (gateway/budgets/teams.py)
        from gateway.budgets.teams import TeamBudgets, TeamBudgetStore

        self.team_budgets = TeamBudgets(TeamBudgetStore(database_url))
        self._poll: asyncio.Task[None] | None = None
        self._admin: AdminContext | None = None
        self._admin_key: str | None = None
        self._miss_refresh: asyncio.Task[None] | None = None
        self._missed_at = -MISS_REFRESH_SECONDS

    async def start(self) -> None:
        """Load every key before the worker serves, then keep the copy current (a revoked key
        is refused by every worker within the poll interval)."""
        try:
            await self.cache.refresh()
        except Exception as exc:  # a database down at start: serve, and keep trying in the poll
            logger.warning("consumer keys not loaded yet (%s); retrying in the background", exc)
        self._poll = asyncio.get_running_loop().create_task(self.cache.run())
        await self.team_budgets.start()

    async def lookup(self, secret: str) -> KeyRecord | None:
        """The live key with this secret. A key this worker has not seen yet (created a moment
        ago through another worker or host) is looked for once more after a poll that the misses
        share: at most one per MISS_REFRESH_SECONDS, so made-up keys cannot turn into database
        load; they wait for it instead."""
        record = self.cache.lookup(secret)
        if record is not None:
            return record
        if self._miss_refresh is None:
            delay = max(0.0, self._missed_at + MISS_REFRESH_SECONDS - time.monotonic())
            self._miss_refresh = asyncio.get_running_loop().create_task(self._refresh_after_miss(delay))
        await asyncio.shield(self._miss_refresh)
        return self.cache.lookup(secret)

    async def _refresh_after_miss(self, delay: float) -> None:
        try:
            if delay:
                await asyncio.sleep(delay)
            self._missed_at = time.monotonic()
            await self.cache.refresh()
        except Exception as exc:
            logger.warning("consumer keys: refresh failed (%s)", exc)
        finally:
            self._miss_refresh = None

    async def stop(self) -> None:
        await self.team_budgets.stop()
        if self._poll is not None:
            self._poll.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poll

    def admin(self, admin_key: str | None) -> AdminContext:
        """The admin API's context for the current admin key (a reload may change it)."""
        if self._admin is None or admin_key != self._admin_key:
            from gateway.server.admin import AdminContext

            self._admin = AdminContext.create(self.store, self.cache, admin_key, self.team_budgets)
            self._admin_key = admin_key
        return self._admin

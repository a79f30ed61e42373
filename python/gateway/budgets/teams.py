"""Team budgets set by the admin API: `TeamBudgetStore` (the database, synchronous) and
`TeamBudgets` (each worker's in-memory copy, kept current by a background poll).

Writes are ordered by the same `gateway_revision` counter as the consumer keys (bumped first in
each write transaction, the row stamped with the new value), so a poll asks only for
`revision > R`. A removed budget stays as a row with budget NULL so every worker learns of the
removal. A request never touches the database: admission reads the in-memory copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from gateway.budgets.policy import BudgetSpec
from gateway.config.budgets import parse_budget
from gateway.errors import ConfigError, GatewayError, InvalidParameter, NotFound
from gateway.store.db import transaction
from gateway.store.keys import MAX_TEAM, _bump, format_timestamp, utcnow
from gateway.store.schema import team_budgets

logger = logging.getLogger("gateway.budgets")
POLL_INTERVAL_SECONDS = 0.25
ERROR_LOG_SECONDS = 10.0
BUDGET_FIELDS = frozenset(("usd", "period", "window"))


def check_team_name(team: str) -> str:
    if not team.strip() or len(team) > MAX_TEAM:
        raise InvalidParameter(f"team: must be a string of 1 to {MAX_TEAM} characters")
    return team


def check_team_budget(value: Any) -> dict[str, Any]:
    """A budget body ({"usd": 200, "period": "week"}) checked by the config's own parser."""
    if not isinstance(value, Mapping):
        raise InvalidParameter('budget: must be an object such as {"usd": 200, "period": "week"}')
    try:
        parse_budget(dict(value))
    except ConfigError as error:
        raise InvalidParameter(str(error)) from None
    return {key: value[key] for key in BUDGET_FIELDS if key in value}


def team_json(team: str, row: Mapping[str, Any] | None) -> dict[str, Any]:
    budget = row["budget"] if row is not None else None
    return {
        "team": team,
        "budget": budget,
        "updated_at": format_timestamp(row["updated_at"]) if row is not None else None,
    }


class TeamBudgetStore:
    def __init__(self, url: str) -> None:
        self._url = url

    def get(self, team: str) -> dict[str, Any] | None:
        """The team's row (budget None once removed), or None if it never had one."""
        with transaction(self._url) as connection:
            row = (
                connection.execute(sa.select(team_budgets).where(team_budgets.c.team == team))
                .mappings()
                .first()
            )
        return None if row is None else dict(row)

    def put(self, team: str, budget: dict[str, Any] | None) -> dict[str, Any]:
        """Set (or, with None, remove) the team's budget; returns the row as stored."""
        column = team_budgets.c
        with transaction(self._url, write=True) as connection:
            revision = _bump(connection)
            values = {"budget": budget, "updated_at": utcnow(), "revision": revision}
            exists = connection.execute(sa.select(column.team).where(column.team == team)).first()
            if exists is None:
                if budget is None:
                    raise NotFound(f"Team '{team}' has no budget")  # rolls the bump back
                connection.execute(sa.insert(team_budgets).values(team=team, **values))
            else:
                connection.execute(sa.update(team_budgets).where(column.team == team).values(**values))
        return {"team": team, **values}

    def changes_since(self, revision: int) -> tuple[int, list[dict[str, Any]]]:
        column = team_budgets.c
        query = sa.select(team_budgets).where(column.revision > revision).order_by(column.revision)
        with transaction(self._url) as connection:
            rows = [dict(row) for row in connection.execute(query).mappings()]
        return (int(rows[-1]["revision"]) if rows else revision), rows


class TeamBudgets:
    """This worker's copy of the team budgets: team -> BudgetSpec."""

    def __init__(self, store: TeamBudgetStore | None) -> None:
        self.store = store
        self.revision = 0
        self.budgets: dict[str, BudgetSpec] = {}
        self._seen: dict[str, int] = {}  # team -> revision last applied
        self._lock = asyncio.Lock()
        self._poll: asyncio.Task[None] | None = None
        self._last_error_log = -math.inf

    def get(self, team: str) -> BudgetSpec | None:
        return self.budgets.get(team)

    def put(self, row: Mapping[str, Any]) -> None:
        """One row as written, unless a newer one was applied already."""
        team, revision = str(row["team"]), int(row["revision"])
        if self._seen.get(team, -1) > revision:
            return
        self._seen[team] = revision
        spec = None
        if row["budget"] is not None:
            try:
                spec = parse_budget(row["budget"])
            except ConfigError:  # checked when stored: a bad row never blocks a team's calls
                spec = None
        if spec is None:
            self.budgets.pop(team, None)
        else:
            self.budgets[team] = spec

    async def refresh(self) -> None:
        if self.store is None:
            return
        async with self._lock:
            revision, rows = await asyncio.to_thread(self.store.changes_since, self.revision)
            for row in rows:
                self.put(row)
            self.revision = max(self.revision, revision)

    async def start(self) -> None:
        with contextlib.suppress(Exception):  # a database down at start: the poll keeps trying
            await self.refresh()
        self._poll = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._poll is not None:
            self._poll.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poll

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                now = time.monotonic()
                if now - self._last_error_log >= ERROR_LOG_SECONDS:
                    self._last_error_log = now
                    reason = error.message if isinstance(error, GatewayError) else type(error).__name__
                    logger.warning(
                        "team budgets: cannot poll (%s); keeping the %d known", reason, len(self.budgets)
                    )
            await asyncio.sleep(POLL_INTERVAL_SECONDS)

"""Team budgets in the database (SQLite and a real PostgreSQL): set, replaced, removed, and
each worker's copy following by polling `revision > R`, removals included."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.budgets.policy import BudgetSpec, Period
from gateway.budgets.teams import TeamBudgets, TeamBudgetStore, check_team_budget
from gateway.errors import InvalidParameter, NotFound
from gateway.store import KeyStore, migrate
from gateway.store.db import dispose_engines
from tests.support.postgres import PostgresServer


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/keys.db"
    else:
        server: PostgresServer = request.getfixturevalue("postgres")
        url = server.create_database()
    migrate(url)
    yield url
    dispose_engines()


def test_a_workers_copy_follows_sets_changes_and_removals(db_url: str) -> None:
    store = TeamBudgetStore(db_url)
    copy = TeamBudgets(store)
    store.put("ops", {"usd": 5, "period": "week"})
    store.put("web", {"usd": 1, "period": "rolling", "window": "24h"})
    asyncio.run(copy.refresh())
    assert copy.get("ops") == BudgetSpec(5_000_000_000, Period("week"))
    assert copy.get("web") == BudgetSpec(1_000_000_000, Period("rolling", 86_400))
    store.put("ops", {"usd": 7, "period": "day"})
    store.put("web", None)
    # a key written in between shares the revision counter: the polls still miss nothing
    KeyStore(db_url).create("k", team="ops")
    asyncio.run(copy.refresh())
    assert copy.get("ops") == BudgetSpec(7_000_000_000, Period("day"))
    assert copy.get("web") is None
    removed = store.get("web")
    assert removed is not None and removed["budget"] is None
    assert store.get("nobody") is None


def test_an_older_row_never_replaces_a_newer_one(db_url: str) -> None:
    store = TeamBudgetStore(db_url)
    copy = TeamBudgets(store)
    old = store.put("ops", {"usd": 5, "period": "week"})
    new = store.put("ops", {"usd": 9, "period": "week"})
    copy.put(new)
    copy.put(old)
    assert copy.get("ops") == BudgetSpec(9_000_000_000, Period("week"))


def test_removing_a_budget_that_never_was_is_not_found(db_url: str) -> None:
    with pytest.raises(NotFound):
        TeamBudgetStore(db_url).put("ghost", None)


def test_budget_bodies_are_checked_by_the_config_parser() -> None:
    assert check_team_budget({"usd": 2, "period": "month"}) == {"usd": 2, "period": "month"}
    with pytest.raises(InvalidParameter, match="budget.window: only a rolling period takes a window"):
        check_team_budget({"usd": 2, "period": "month", "window": "1d"})
    with pytest.raises(InvalidParameter, match="must be an object"):
        check_team_budget([2])

"""The admin API's team budgets (server/admin.py routes here; same admin-key authorisation):

    GET    /admin/v1/teams/{team}/budget   -> {"team", "budget": {...} | null, "updated_at"}
    PUT    /admin/v1/teams/{team}/budget   {"usd": 200, "period": "week"} -> the same
    DELETE /admin/v1/teams/{team}/budget   -> the same, budget null (404 if it had none)

A team budget set here wins over the config's `budgets.teams` for that team. The write is
applied to this worker's copy at once and reaches the other workers and hosts by their polls.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from gateway.budgets.teams import TeamBudgetStore, check_team_budget, check_team_name, team_json
from gateway.errors import MethodNotAllowed, NotFound
from gateway.schemas.validation import decode_json_object
from gateway.server.http import header, read_body
from gateway.types import Receive, Scope

if TYPE_CHECKING:
    from gateway.budgets.teams import TeamBudgets

TEAMS_PATH = "/admin/v1/teams/"
BUDGET_SUFFIX = "/budget"
MAX_BODY = 16 * 1024


def is_team_budget_path(path: str) -> bool:
    return path.startswith(TEAMS_PATH) and path.endswith(BUDGET_SUFFIX)


async def team_budget_route(
    scope: Scope, receive: Receive, store_url: str, cache: TeamBudgets | None
) -> tuple[int, Any]:
    path: str = scope["path"].rstrip("/")
    team = path[len(TEAMS_PATH) : -len(BUDGET_SUFFIX)]
    if "/" in team:
        raise NotFound("Not Found")
    team = check_team_name(team)
    store = TeamBudgetStore(store_url)
    method = scope["method"]
    if method in ("GET", "HEAD"):
        row = await asyncio.to_thread(store.get, team)
        return 200, team_json(team, row)
    if method == "PUT":
        body = await read_body(scope, receive, MAX_BODY)
        budget = check_team_budget(decode_json_object(body, header(scope, b"content-type")))
        row = await asyncio.to_thread(store.put, team, budget)
    elif method == "DELETE":
        current = await asyncio.to_thread(store.get, team)
        if current is None or current["budget"] is None:
            raise NotFound(f"Team '{team}' has no budget")
        row = await asyncio.to_thread(store.put, team, None)
    else:
        raise MethodNotAllowed("GET, PUT, DELETE")
    if cache is not None:
        cache.put(row)
    return 200, team_json(team, row)

"""The admin API: consumer keys over HTTP, for the holder of the admin key.

    POST   /admin/v1/keys          {"name", "team"?, "endpoints"?, "expires_at"?, "limit"?, "budget"?,
                                    "metadata"?}  (budget: {"usd": 50, "period": "day"})
                                   -> 201, the record and "key": the secret, shown in this answer only
    GET    /admin/v1/keys          ?page_size=1..1000&page_token=&team=&include_revoked=true
                                   -> {"keys": [...], "next_page_token": str | null}
    GET    /admin/v1/keys/{id}     -> the record
    PATCH  /admin/v1/keys/{id}     any of name, team, endpoints, expires_at, limit, budget, metadata
                                   (null clears; metadata null is {}) -> the record
    DELETE /admin/v1/keys/{id}     revoke (idempotent) -> 200, the record
    GET|PUT|DELETE /admin/v1/teams/{team}/budget   a team's budget (gateway/budgets/admin.py)
    GET    /admin/v1/usage         ?group_by=key|team|endpoint|model|day&start=&end= -> {"usage": [...]}
                                   (summed in SQL, see gateway/usage/query.py)

Authorised only by `Authorization: Bearer <admin key>`, compared as SHA-256 digests in constant
time. No or a wrong credential: 401; a consumer key (`gw-...`): 403; no admin key configured:
404 for every /admin path, as if the API did not exist. Records never carry the secret or its
hash, only `prefix` (its first 12 characters). `expires_at` is an RFC 3339 string or epoch
seconds; every timestamp is rendered as RFC 3339 UTC (`...Z`). Errors are the gateway's
(`{"detail": ...}` plus the OpenAI-style `error` object); unknown body fields are a 422.

All database work runs in a thread (`asyncio.to_thread`); a write is applied to this worker's
key cache at once, and reaches the other workers and hosts through their polls (cache.py).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from gateway.errors import (
    OPENAI,
    BadRequest,
    Forbidden,
    GatewayError,
    InvalidParameter,
    MethodNotAllowed,
    NotFound,
    Unauthorized,
)
from gateway.schemas.validation import decode_json_object
from gateway.server.http import header, read_body, send_bytes, send_json
from gateway.store.cache import KeyCache
from gateway.store.keys import (
    DEFAULT_PAGE_SIZE,
    SECRET_PREFIX,
    UPDATABLE,
    KeyRecord,
    KeyStore,
    hash_secret,
    parse_timestamp,
    record_json,
)
from gateway.types import Receive, Scope, Send

if TYPE_CHECKING:
    from gateway.budgets.teams import TeamBudgets

logger = logging.getLogger("gateway.admin")
ADMIN_PREFIX = "/admin/"
KEYS_PATH = "/admin/v1/keys"
USAGE_PATH = "/admin/v1/usage"
MAX_ADMIN_BODY = 256 * 1024  # metadata is at most 16 KiB; nothing legitimate comes near this
CREATE_FIELDS = UPDATABLE
LIST_PARAMS = frozenset(("page_size", "page_token", "team", "include_revoked"))
KEY_ID = re.compile(r"key_[0-9a-f]{20}")
NO_STORE = [(b"cache-control", b"no-store")]


@dataclass(frozen=True, slots=True)
class AdminContext:
    """What the admin API works with in one worker."""

    store: KeyStore
    cache: KeyCache  # this worker's: a write is applied to it at once
    admin_key_hash: str | None  # SHA-256 hex of the admin key; None: the admin API is off
    team_budgets: TeamBudgets | None = None  # this worker's: a write is applied to it at once

    @classmethod
    def create(
        cls, store: KeyStore, cache: KeyCache, admin_key: str | None, team_budgets: TeamBudgets | None = None
    ) -> AdminContext:
        return cls(store, cache, hash_secret(admin_key) if admin_key else None, team_budgets)


def is_admin_path(path: str) -> bool:
    return path == "/admin" or path.startswith(ADMIN_PREFIX)


async def handle_admin(scope: Scope, receive: Receive, send: Send, admin: AdminContext | None) -> None:
    """Answer one request for a path under /admin/ (is_admin_path), errors included."""
    try:
        if admin is None or admin.admin_key_hash is None:
            raise NotFound("Not Found")
        _authorize(scope, admin)
        status, body = await _route(scope, receive, admin)
        await send_json(send, status, body, NO_STORE)
    except GatewayError as error:
        if error.status in (401, 403):
            logger.warning("admin API: %s %s refused (%d)", scope["method"], scope["path"], error.status)
        await send_bytes(send, error.status, error.body(OPENAI), extra=[*error.headers(), *NO_STORE])
    except Exception:
        logger.exception("admin API: unhandled error on %s %s", scope["method"], scope["path"])
        await send_json(send, 500, {"detail": "Internal server error: see the gateway log."})


def _authorize(scope: Scope, admin: AdminContext) -> None:
    value = header(scope, b"authorization") or ""
    scheme, _, credential = value.strip().partition(" ")
    token = credential.strip() if scheme.lower() == "bearer" else ""
    if not token:
        raise Unauthorized("Missing credentials: the admin API needs `Authorization: Bearer <admin key>`")
    assert admin.admin_key_hash is not None
    if hmac.compare_digest(hash_secret(token), admin.admin_key_hash):
        return
    if token.startswith(SECRET_PREFIX):
        raise Forbidden("consumer keys cannot use the admin API")
    raise Unauthorized("Invalid admin key")


async def _route(scope: Scope, receive: Receive, admin: AdminContext) -> tuple[int, Any]:
    path: str = scope["path"]
    method: str = scope["method"]
    if path.endswith("/") and path != "/":
        path = path[:-1]
    if path == KEYS_PATH:
        if method == "POST":
            return await _create(scope, receive, admin)
        if method in ("GET", "HEAD"):
            return 200, await _list(scope, admin)
        raise MethodNotAllowed("GET, POST")
    if path.startswith("/admin/v1/teams/"):
        from gateway.budgets.admin import is_team_budget_path, team_budget_route

        if is_team_budget_path(path):
            return await team_budget_route(scope, receive, admin.store.url, admin.team_budgets)
    if path == USAGE_PATH:
        if method in ("GET", "HEAD"):
            return 200, await _usage(scope, admin)
        raise MethodNotAllowed("GET")
    if path.startswith(KEYS_PATH + "/") and "/" not in path[len(KEYS_PATH) + 1 :]:
        key_id = path[len(KEYS_PATH) + 1 :]
        if method in ("GET", "HEAD"):
            return 200, record_json(await _get(admin, key_id))
        if method == "PATCH":
            return 200, await _update(scope, receive, admin, key_id)
        if method == "DELETE":
            return 200, await _revoke(admin, key_id)
        raise MethodNotAllowed("GET, PATCH, DELETE")
    raise NotFound("Not Found")


async def _usage(scope: Scope, admin: AdminContext) -> dict[str, Any]:
    from gateway.usage.query import UsageQuery, usage_answer

    query = UsageQuery.from_query_string(scope.get("query_string", b""))
    # the usage records live in the key database
    return await asyncio.to_thread(usage_answer, admin.store.url, query)


async def _json_body(scope: Scope, receive: Receive) -> dict[str, Any]:
    body = await read_body(scope, receive, MAX_ADMIN_BODY)
    return decode_json_object(body, header(scope, b"content-type"))


def _check_known(payload: dict[str, Any]) -> None:
    unknown = sorted(set(payload) - CREATE_FIELDS)
    if unknown:
        raise InvalidParameter(
            f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(CREATE_FIELDS))}"
        )


def _future(value: Any) -> datetime | None:
    expires_at = parse_timestamp(value)
    if expires_at is not None and expires_at <= datetime.now(UTC):
        raise InvalidParameter("expires_at: must be in the future")
    return expires_at


def _missing(key_id: str) -> NotFound:
    return NotFound(f"Key '{key_id}' not found" if KEY_ID.fullmatch(key_id) else "Key not found")


async def _create(scope: Scope, receive: Receive, admin: AdminContext) -> tuple[int, Any]:
    payload = await _json_body(scope, receive)
    _check_known(payload)
    if "name" not in payload:
        raise InvalidParameter("name: Field required")
    fields = {**payload, "expires_at": _future(payload.get("expires_at"))}
    record, secret = await asyncio.to_thread(admin.store.create, **fields)
    admin.cache.put(record)
    logger.info("admin API: created key %s (%s, prefix %s)", record.id, record.name, record.prefix)
    return 201, {**record_json(record), "key": secret}


async def _list(scope: Scope, admin: AdminContext) -> dict[str, Any]:
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    unknown = sorted(set(query) - LIST_PARAMS)
    if unknown:
        raise BadRequest(
            f"unknown query parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(LIST_PARAMS))}"
        )
    params = {name: values[-1] for name, values in query.items()}
    page_size = params.get("page_size", str(DEFAULT_PAGE_SIZE))
    if not page_size.isdigit():
        raise BadRequest("page_size must be an integer between 1 and 1000")
    include_revoked = params.get("include_revoked", "false").lower()
    if include_revoked not in ("true", "false", "1", "0"):
        raise BadRequest("include_revoked must be true or false")
    page = await asyncio.to_thread(
        admin.store.list,
        team=params.get("team") or None,
        include_revoked=include_revoked in ("true", "1"),
        page_size=int(page_size),
        page_token=params.get("page_token") or None,
    )
    return {"keys": [record_json(record) for record in page.keys], "next_page_token": page.next_page_token}


async def _get(admin: AdminContext, key_id: str) -> KeyRecord:
    if not KEY_ID.fullmatch(key_id):
        raise _missing(key_id)
    record = await asyncio.to_thread(admin.store.get, key_id)
    if record is None:
        raise _missing(key_id)
    return record


async def _update(scope: Scope, receive: Receive, admin: AdminContext, key_id: str) -> dict[str, Any]:
    payload = await _json_body(scope, receive)
    _check_known(payload)
    if not KEY_ID.fullmatch(key_id):
        raise _missing(key_id)
    if "expires_at" in payload:
        payload["expires_at"] = _future(payload["expires_at"])
    record = await asyncio.to_thread(admin.store.update, key_id, **payload)
    admin.cache.put(record)
    logger.info(
        "admin API: updated key %s (%s): %s", record.id, record.name, ", ".join(sorted(payload)) or "nothing"
    )
    return record_json(record)


async def _revoke(admin: AdminContext, key_id: str) -> dict[str, Any]:
    if not KEY_ID.fullmatch(key_id):
        raise _missing(key_id)
    record = await asyncio.to_thread(admin.store.revoke, key_id)
    admin.cache.put(record)
    logger.info("admin API: revoked key %s (%s)", record.id, record.name)
    return record_json(record)

"""The admin API's ASGI handler, in process: every route, status and body shape."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.server.admin import AdminContext, handle_admin, is_admin_path
from gateway.store import KeyCache, KeyStore, migrate

ADMIN_KEY = "admin-secret-0123456789abcdef"


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    admin: AdminContext | None,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = ADMIN_KEY,
    query: str = "",
    raw: bytes | None = None,
    content_type: str = "application/json",
    authorization: str | None = None,
) -> Answer:
    """One request through handle_admin with a fake scope / receive / send."""
    payload = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(payload)).encode())]
    if authorization is not None:
        headers.append((b"authorization", authorization.encode()))
    elif token is not None:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": query.encode(),
        "headers": headers,
    }
    sent: list[dict[str, Any]] = []
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if delivered:
            await asyncio.sleep(3600)
        delivered = True
        return {"type": "http.request", "body": payload, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(handle_admin(scope, receive, send, admin))
    start, end = sent
    assert start["type"] == "http.response.start" and end["type"] == "http.response.body"
    answer_headers = {k.decode(): v.decode() for k, v in start["headers"]}
    assert int(answer_headers["content-length"]) == len(end["body"])
    return Answer(start["status"], answer_headers, end["body"])


@pytest.fixture
def admin(tmp_path: Path) -> AdminContext:
    url = f"sqlite:///{tmp_path}/keys.db"
    migrate(url)
    store = KeyStore(url)
    return AdminContext.create(store, KeyCache(store), ADMIN_KEY)


def create(admin: AdminContext, **fields: Any) -> dict[str, Any]:
    answer = call(admin, "POST", "/admin/v1/keys", {"name": "k", **fields})
    assert answer.status == 201, answer.body
    return dict(answer.json())


RECORD_FIELDS = {
    "id",
    "name",
    "team",
    "endpoints",
    "expires_at",
    "limit",
    "budget",
    "metadata",
    "prefix",
    "status",
    "created_at",
    "updated_at",
    "revoked_at",
    "revision",
}


# -- switched off, and who may call ----------------------------------------------------------
def test_admin_api_off_is_404(admin: AdminContext) -> None:
    off = AdminContext.create(admin.store, admin.cache, None)
    for context in (None, off):
        answer = call(context, "GET", "/admin/v1/keys")
        assert answer.status == 404 and answer.json()["detail"] == "Not Found"
        assert call(context, "POST", "/admin/v1/keys", {"name": "x"}).status == 404
    assert is_admin_path("/admin/v1/keys") and is_admin_path("/admin") and not is_admin_path("/administrator")


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (None, 401),
        ("", 401),
        ("Bearer", 401),
        ("Bearer wrong-admin-key-123456789", 401),
        (f"Basic {ADMIN_KEY}", 401),
        (f"Bearer {ADMIN_KEY}x", 401),
        ("Bearer gw-abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", 403),
    ],
)
def test_credentials(admin: AdminContext, authorization: str | None, status: int) -> None:
    if authorization is None:
        answer = call(admin, "GET", "/admin/v1/keys", token=None)
    else:
        answer = call(admin, "GET", "/admin/v1/keys", authorization=authorization)
    assert answer.status == status
    body = answer.json()
    assert set(body) == {"detail", "error"}
    assert body["error"]["code"] == status
    if status == 401:
        assert answer.headers["www-authenticate"] == 'Bearer realm="gateway"'
        assert body["error"]["type"] == "authentication_error"
    else:
        assert body["detail"] == "consumer keys cannot use the admin API"
        assert body["error"]["type"] == "permission_error"
    assert ADMIN_KEY not in answer.body.decode()


def test_a_real_consumer_key_is_forbidden(admin: AdminContext) -> None:
    secret = create(admin)["key"]
    answer = call(admin, "GET", "/admin/v1/keys", token=secret)
    assert answer.status == 403
    assert answer.json()["detail"] == "consumer keys cannot use the admin API"
    assert call(admin, "POST", "/admin/v1/keys", {"name": "x"}, token=secret).status == 403


def test_scheme_is_case_insensitive(admin: AdminContext) -> None:
    assert call(admin, "GET", "/admin/v1/keys", authorization=f"bearer  {ADMIN_KEY}").status == 200


def test_unknown_paths_and_methods(admin: AdminContext) -> None:
    assert call(admin, "GET", "/admin/v1/nothing").status == 404
    assert call(admin, "GET", "/admin/v1/nothing", token=None).status == 401  # nothing shown unauthenticated
    assert call(admin, "GET", "/admin/v1/keys/a/b").status == 404
    answer = call(admin, "PUT", "/admin/v1/keys")
    assert answer.status == 405 and answer.headers["allow"] == "GET, POST"
    record = create(admin)
    answer = call(admin, "POST", f"/admin/v1/keys/{record['id']}")
    assert answer.status == 405 and answer.headers["allow"] == "GET, PATCH, DELETE"


# -- create ----------------------------------------------------------------------------------
def test_create_shows_the_secret_once(admin: AdminContext) -> None:
    expires = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    answer = call(
        admin,
        "POST",
        "/admin/v1/keys",
        {
            "name": "alice",
            "team": "red",
            "endpoints": ["chat*"],
            "expires_at": expires.isoformat().replace("+00:00", "Z"),
            "limit": {"calls": 5, "renewal_period": "minute"},
            "metadata": {"ticket": "OPS-1"},
        },
    )
    assert answer.status == 201
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert set(body) == RECORD_FIELDS | {"key"}
    secret = body["key"]
    assert secret.startswith("gw-") and len(secret) == 46 and body["prefix"] == secret[:12]
    assert body["name"] == "alice" and body["team"] == "red" and body["endpoints"] == ["chat*"]
    assert body["expires_at"] == expires.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert body["limit"] == {"calls": 5, "renewal_period": "minute"}
    assert body["metadata"] == {"ticket": "OPS-1"} and body["status"] == "active"
    assert body["created_at"].endswith("Z") and body["revoked_at"] is None
    assert body["id"].startswith("key_") and body["revision"] == 1
    # this worker's cache has it at once, before any poll
    record = admin.cache.lookup(secret)
    assert record is not None and record.id == body["id"]
    # no other answer ever carries the secret
    others = [
        call(admin, "GET", "/admin/v1/keys"),
        call(admin, "GET", f"/admin/v1/keys/{body['id']}"),
        call(admin, "PATCH", f"/admin/v1/keys/{body['id']}", {"name": "alice2"}),
        call(admin, "DELETE", f"/admin/v1/keys/{body['id']}"),
        call(admin, "GET", "/admin/v1/keys", query="include_revoked=true"),
    ]
    for other in others:
        assert other.status == 200
        assert secret not in other.body.decode() and secret[3:] not in other.body.decode()
        assert "key_hash" not in other.body.decode() and record.key_hash not in other.body.decode()


def test_create_minimal_and_epoch_expiry(admin: AdminContext) -> None:
    body = create(admin)
    assert (body["team"], body["endpoints"], body["expires_at"], body["limit"], body["metadata"]) == (
        None,
        [],
        None,
        None,
        {},
    )
    epoch = int(time.time()) + 3600
    body = create(admin, expires_at=epoch)
    assert body["expires_at"] == datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = create(admin, expires_at="2099-06-01T12:00:00+02:00")
    assert body["expires_at"] == "2099-06-01T10:00:00Z"


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"name": "x", "owner": "me"}, "unknown field(s) owner"),
        ({"team": "red"}, "name: Field required"),
        ({"name": ""}, "name: must be a string"),
        (
            {"name": "x", "limit": {"calls": -1, "renewal_period": "minute"}},
            "limit: Failed to parse the rate limit",
        ),
        (
            {"name": "x", "limit": {"calls": 1, "renewal_period": "minute", "concurrency": 0}},
            "limit.concurrency",
        ),
        ({"name": "x", "endpoints": [""]}, "endpoints: each pattern"),
        ({"name": "x", "endpoints": "chat"}, "endpoints: must be a list"),
        ({"name": "x", "metadata": "text"}, "metadata: must be a JSON object"),
        ({"name": "x", "metadata": {"blob": "x" * 20000}}, "metadata: at most 16 KiB"),
        ({"name": "x", "expires_at": "2000-01-01T00:00:00Z"}, "expires_at: must be in the future"),
        ({"name": "x", "expires_at": 1}, "expires_at: must be in the future"),
        ({"name": "x", "expires_at": "2099-01-01T00:00:00"}, "needs a time zone"),
        ({"name": "x", "expires_at": "soon"}, "is not an RFC 3339 timestamp"),
        ({"name": "x", "expires_at": True}, "expires_at: give an RFC 3339 timestamp or epoch seconds"),
    ],
)
def test_create_refuses_invalid_bodies(admin: AdminContext, body: dict[str, Any], detail: str) -> None:
    answer = call(admin, "POST", "/admin/v1/keys", body)
    assert answer.status == 422, answer.body
    payload = answer.json()
    assert detail in payload["detail"]
    assert payload["error"] == {"message": payload["detail"], "type": "invalid_request_error", "code": 422}
    assert call(admin, "GET", "/admin/v1/keys", query="include_revoked=true").json()["keys"] == []


def test_create_refuses_what_is_not_a_json_object(admin: AdminContext) -> None:
    for raw, content_type in (
        (b"[1]", "application/json"),
        (b"{", "application/json"),
        (b"name=x", "text/plain"),
    ):
        answer = call(admin, "POST", "/admin/v1/keys", raw=raw, content_type=content_type)
        assert answer.status == 422
        assert isinstance(answer.json()["detail"], list)  # FastAPI's list, as everywhere else
    answer = call(admin, "POST", "/admin/v1/keys", raw=b"")
    assert answer.status == 422 and answer.json()["detail"][0]["msg"] == "Field required"
    answer = call(admin, "POST", "/admin/v1/keys", raw=b"{" + b" " * 300_000 + b"}")
    assert answer.status == 413


# -- get / patch / delete -------------------------------------------------------------------
def test_get_patch_delete(admin: AdminContext) -> None:
    created = create(admin, team="red", endpoints=["a"], metadata={"x": 1})
    key_id, secret = created["id"], created.pop("key")
    answer = call(admin, "GET", f"/admin/v1/keys/{key_id}")
    assert answer.status == 200 and answer.json() == created
    assert call(admin, "GET", f"/admin/v1/keys/{key_id}/").json() == created  # a trailing slash is fine

    answer = call(
        admin,
        "PATCH",
        f"/admin/v1/keys/{key_id}",
        {
            "name": "renamed",
            "team": None,
            "endpoints": ["b*", "c"],
            "limit": {"calls": 2, "renewal_period": "hour"},
        },
    )
    assert answer.status == 200
    patched = answer.json()
    assert (patched["name"], patched["team"], patched["endpoints"]) == ("renamed", None, ["b*", "c"])
    assert patched["limit"] == {"calls": 2, "renewal_period": "hour"} and patched["metadata"] == {"x": 1}
    assert patched["revision"] > created["revision"] and patched["created_at"] == created["created_at"]
    record = admin.cache.lookup(secret)
    assert record is not None and record.name == "renamed"  # applied to this worker at once

    assert call(admin, "PATCH", f"/admin/v1/keys/{key_id}", {}).json() == patched  # nothing to change
    assert call(admin, "PATCH", f"/admin/v1/keys/{key_id}", {"key_hash": "x"}).status == 422
    assert call(admin, "PATCH", f"/admin/v1/keys/{key_id}", {"name": None}).status == 422
    assert (
        call(admin, "PATCH", f"/admin/v1/keys/{key_id}", {"expires_at": "1999-01-01T00:00:00Z"}).status == 422
    )
    assert call(admin, "PATCH", f"/admin/v1/keys/{key_id}", {"metadata": None}).json()["metadata"] == {}

    answer = call(admin, "DELETE", f"/admin/v1/keys/{key_id}")
    assert answer.status == 200
    revoked = answer.json()
    assert revoked["status"] == "revoked" and revoked["revoked_at"].endswith("Z")
    assert admin.cache.lookup(secret) is None  # refused by this worker at once
    again = call(admin, "DELETE", f"/admin/v1/keys/{key_id}")
    assert again.status == 200 and again.json() == revoked  # idempotent
    assert call(admin, "GET", f"/admin/v1/keys/{key_id}").json()["status"] == "revoked"


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_unknown_key_is_404(admin: AdminContext, method: str) -> None:
    body = {"name": "x"} if method == "PATCH" else None
    answer = call(admin, method, "/admin/v1/keys/key_0123456789abcdef0123", body)
    assert answer.status == 404
    assert answer.json()["detail"] == "Key 'key_0123456789abcdef0123' not found"
    answer = call(admin, method, "/admin/v1/keys/<script>", body)
    assert answer.status == 404 and answer.json()["detail"] == "Key not found"  # never echoed


# -- list ------------------------------------------------------------------------------------
def test_list_pagination_and_filters(admin: AdminContext) -> None:
    ids = [create(admin, name=f"k{i}", team="red" if i < 3 else "blue")["id"] for i in range(5)]
    call(admin, "DELETE", f"/admin/v1/keys/{ids[1]}")
    answer = call(admin, "GET", "/admin/v1/keys")
    assert answer.status == 200 and answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert set(body) == {"keys", "next_page_token"} and body["next_page_token"] is None
    assert [key["id"] for key in body["keys"]] == [ids[0], *ids[2:]]
    assert all(set(key) == RECORD_FIELDS for key in body["keys"])

    pages, token = [], None
    while True:
        query = "page_size=2" + (f"&page_token={token}" if token else "")
        page = call(admin, "GET", "/admin/v1/keys", query=query + "&include_revoked=true").json()
        pages.append([key["id"] for key in page["keys"]])
        token = page["next_page_token"]
        if token is None:
            break
    assert pages == [ids[0:2], ids[2:4], ids[4:5]]

    red = call(admin, "GET", "/admin/v1/keys", query="team=red").json()
    assert [key["id"] for key in red["keys"]] == [ids[0], ids[2]]
    for query in (
        "page_token=garbage",
        "page_size=0",
        "page_size=1001",
        "page_size=x",
        "include_revoked=maybe",
        "sort=name",
    ):
        answer = call(admin, "GET", "/admin/v1/keys", query=query)
        assert answer.status == 400, query
        assert answer.json()["error"]["code"] == 400

"""Consumer keys: `KeyStore` (the database) and `KeyRecord` (one key, without its secret).

A secret is `gw-` + `secrets.token_urlsafe(32)`: 256 random bits. The database holds only its
SHA-256 (hex, unique, indexed) and its first 12 characters (`prefix`, so a person can tell keys
apart). A fast, unsalted hash is the right tool for such a secret, unlike for a password: a
password is guessable, so it needs a slow salted hash to make each guess cost; 256 random bits
cannot be guessed at any speed (2^255 tries on average), so a leaked table of SHA-256 digests
yields nothing, and a plain digest lets every lookup be one O(1) probe (an index here, a dict
in each worker's cache) instead of a slow-hash verification per request.

Writes are ordered by the `gateway_revision` counter: create, update and revoke each bump it
in their own transaction, first thing (the bump takes the counter row's lock on PostgreSQL,
SQLite's write lock is taken at BEGIN), and stamp the row they write with the new value. A
writer therefore commits after every writer with a lower revision, so a reader that has seen
everything up to revision R needs only `revision > R` (one indexed query) to miss nothing
(`changes_since`). Revoked rows stay, stamped, so caches learn to drop them.

Every method is synchronous: asyncio callers use `asyncio.to_thread`. Field errors raise
`InvalidParameter` (422) with a message naming the field, a missing key `NotFound`, and an
unreachable database `DatabaseUnavailable` (503, no password in it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.config.budgets import parse_budget
from gateway.config.limits import parse_limit
from gateway.errors import BadRequest, ConfigError, InvalidParameter, NotFound
from gateway.store.db import describe, transaction
from gateway.store.schema import REVISION_ROW, consumer_keys, gateway_revision

SECRET_PREFIX = "gw-"
PREFIX_CHARS = 12  # characters of the secret kept for recognition: "gw-" + 9 random
ID_PREFIX = "key_"
MAX_NAME = 200
MAX_TEAM = 200
MAX_ENDPOINTS = 256
MAX_PATTERN = 200
MAX_METADATA_BYTES = 16 * 1024
LIMIT_KEYS = frozenset(("calls", "renewal_period", "key", "tokens", "concurrency"))
UPDATABLE = frozenset(("name", "team", "endpoints", "expires_at", "limit", "metadata", "budget"))
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
LATEST_TIMESTAMP = 253402300799  # 9999-12-31T23:59:59Z


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """SHA-256 hex of a secret (see the module docstring for why a fast hash is right)."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def new_key_id() -> str:
    return ID_PREFIX + secrets.token_hex(10)


def utcnow() -> datetime:
    return datetime.now(UTC)


class KeyRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One consumer key as stored: every column, never the secret."""

    id: str
    name: str
    team: str | None
    endpoints: tuple[str, ...]  # glob patterns (fnmatch, case-sensitive); empty: every endpoint
    expires_at: datetime | None  # aware UTC
    limit: dict[str, Any] | None  # a `limit:` mapping as in the config (gateway.config.parse_limit)
    metadata: dict[str, Any]
    key_hash: str  # SHA-256 hex of the secret
    prefix: str  # the secret's first 12 characters
    created_at: datetime
    updated_at: datetime
    revoked_at: datetime | None
    revision: int
    budget: dict[str, Any] | None = None  # {"usd", "period", "window"?} (gateway.config.budgets)

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def expired(self, now: float | None = None) -> bool:
        """Whether the key has expired at `now` (epoch seconds; default: the current time)."""
        if self.expires_at is None:
            return False
        return self.expires_at.timestamp() <= (time.time() if now is None else now)

    def allows(self, endpoint: str) -> bool:
        """Whether the key may call the endpoint or route named `endpoint`."""
        return not self.endpoints or any(fnmatchcase(endpoint, pattern) for pattern in self.endpoints)

    def status(self, now: float | None = None) -> str:
        return "revoked" if self.revoked else "expired" if self.expired(now) else "active"


class KeyPage(msgspec.Struct, frozen=True):
    keys: list[KeyRecord]
    next_page_token: str | None


# -- rendering and parsing shared by the admin API and the CLI --------------------------------
def format_timestamp(value: datetime | None) -> str | None:
    """RFC 3339 in UTC with a `Z`: `2025-01-02T03:04:05Z` (microseconds when there are any)."""
    if value is None:
        return None
    value = value.astimezone(UTC)
    return (
        value.replace(tzinfo=None).isoformat(timespec="microseconds" if value.microsecond else "seconds")
        + "Z"
    )


def record_json(record: KeyRecord, now: float | None = None) -> dict[str, Any]:
    """A key as the admin API and the CLI show it: no secret, no hash; the prefix instead."""
    return {
        "id": record.id,
        "name": record.name,
        "team": record.team,
        "endpoints": list(record.endpoints),
        "expires_at": format_timestamp(record.expires_at),
        "limit": record.limit,
        "budget": record.budget,
        "metadata": record.metadata,
        "prefix": record.prefix,
        "status": record.status(now),
        "created_at": format_timestamp(record.created_at),
        "updated_at": format_timestamp(record.updated_at),
        "revoked_at": format_timestamp(record.revoked_at),
        "revision": record.revision,
    }


def parse_timestamp(value: Any, field: str = "expires_at") -> datetime | None:
    """An RFC 3339 string (with `Z` or an offset) or epoch seconds -> aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidParameter(f"{field}: give an RFC 3339 timestamp or epoch seconds")
    if isinstance(value, int | float):
        if not math.isfinite(value) or not 0 <= value <= LATEST_TIMESTAMP:
            raise InvalidParameter(f"{field}: epoch seconds must be between 0 and {LATEST_TIMESTAMP}")
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d+(\.\d+)?", text):
            return parse_timestamp(float(text), field)
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise InvalidParameter(
                f"{field}: '{value[:64]}' is not an RFC 3339 timestamp (2025-12-31T23:59:59Z)"
            ) from None
        if parsed.tzinfo is None:
            raise InvalidParameter(f"{field}: '{value[:64]}' needs a time zone (Z or +HH:MM)")
        return parsed.astimezone(UTC)
    raise InvalidParameter(f"{field}: give an RFC 3339 timestamp or epoch seconds")


DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
DURATION_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: str) -> timedelta:
    """`30d`, `12h`, `90m`, `45s`, `2w` or plain seconds."""
    match = DURATION.fullmatch(value.lower())
    if match is None or int(match.group(1)) <= 0:
        raise InvalidParameter(f"'{value[:64]}' is not a duration such as 30d, 12h, 90m or 3600")
    seconds = int(match.group(1)) * DURATION_SECONDS[match.group(2)]
    if seconds > LATEST_TIMESTAMP:
        raise InvalidParameter(f"'{value[:64]}' is too long a duration")
    return timedelta(seconds=seconds)


# -- field validation -------------------------------------------------------------------------
def check_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > MAX_NAME:
        raise InvalidParameter(f"name: must be a string of 1 to {MAX_NAME} characters")
    return value.strip()


def check_team(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > MAX_TEAM:
        raise InvalidParameter(f"team: must be a string of 1 to {MAX_TEAM} characters, or null")
    return value.strip()


def check_endpoints(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise InvalidParameter("endpoints: must be a list of endpoint or route name globs")
    if len(value) > MAX_ENDPOINTS:
        raise InvalidParameter(f"endpoints: at most {MAX_ENDPOINTS} patterns")
    patterns: list[str] = []
    for item in value:
        if not isinstance(item, str) or not item.strip() or len(item.strip()) > MAX_PATTERN:
            raise InvalidParameter(
                f"endpoints: each pattern must be a non-empty string of at most {MAX_PATTERN} characters"
            )
        if item.strip() not in patterns:
            patterns.append(item.strip())
    return patterns


def check_expires_at(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        return parse_timestamp(value)
    if value.tzinfo is None:
        raise InvalidParameter("expires_at: needs a time zone")
    return value.astimezone(UTC)


def check_limit(value: Any) -> dict[str, Any] | None:
    """A `limit:` mapping as the config takes it, checked by the config's own parser."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidParameter('limit: must be an object such as {"calls": 100, "renewal_period": "minute"}')
    unknown = sorted(str(key) for key in value if key not in LIMIT_KEYS)
    if unknown:  # a typo (`token`) would otherwise be a limit silently not applied
        raise InvalidParameter(
            f"limit: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(LIMIT_KEYS))}"
        )
    try:
        parse_limit(dict(value))
    except ConfigError as error:
        raise InvalidParameter(str(error)) from None
    return dict(_json_roundtrip(value, "limit"))


def check_budget(value: Any) -> dict[str, Any] | None:
    """A budget as the config takes it ({"usd": 50, "period": "day"}), checked by its parser and
    stored as written."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidParameter('budget: must be an object such as {"usd": 50, "period": "day"}')
    try:
        parse_budget(dict(value))
    except ConfigError as error:
        raise InvalidParameter(str(error)) from None
    return dict(_json_roundtrip(value, "budget"))


def check_metadata(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidParameter("metadata: must be a JSON object")
    data = _json_roundtrip(value, "metadata")
    if len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()) > MAX_METADATA_BYTES:
        raise InvalidParameter(f"metadata: at most {MAX_METADATA_BYTES // 1024} KiB of JSON")
    return dict(data)


def _json_roundtrip(value: Mapping[str, Any], field: str) -> Any:
    """`value` as strict JSON gives it back (no NaN or Infinity, string keys only)."""
    if any(not isinstance(key, str) for key in value):
        raise InvalidParameter(f"{field}: keys must be strings")
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError):
        raise InvalidParameter(f"{field}: must hold JSON values only (no NaN or Infinity)") from None


def check_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The updatable fields given, validated and normalised as stored."""
    unknown = sorted(set(fields) - UPDATABLE)
    if unknown:
        raise InvalidParameter(
            f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(UPDATABLE))}"
        )
    checks = {
        "name": check_name,
        "team": check_team,
        "endpoints": check_endpoints,
        "expires_at": check_expires_at,
        "limit": check_limit,
        "metadata": check_metadata,
        "budget": check_budget,
    }
    return {name: checks[name](value) for name, value in fields.items()}


# -- page tokens ------------------------------------------------------------------------------
def _page_token(record: KeyRecord) -> str:
    raw = json.dumps([record.created_at.isoformat(), record.id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _read_page_token(token: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        created, key_id = json.loads(raw)
        when = datetime.fromisoformat(created)
        if when.tzinfo is None or not isinstance(key_id, str):
            raise ValueError
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise BadRequest("Invalid page_token") from None
    return when, key_id


# -- the store --------------------------------------------------------------------------------
Records = list[KeyRecord]


def _record(row: Mapping[Any, Any]) -> KeyRecord:
    return KeyRecord(
        id=row["id"],
        name=row["name"],
        team=row["team"],
        endpoints=tuple(row["endpoints"] or ()),
        expires_at=row["expires_at"],
        limit=row["limit"],
        metadata=dict(row["metadata"] or {}),
        key_hash=row["key_hash"],
        prefix=row["prefix"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        revoked_at=row["revoked_at"],
        revision=int(row["revision"]),
        budget=row.get("budget"),
    )


def _bump(connection: Connection) -> int:
    """The next revision. Called first in every write transaction: on PostgreSQL the update
    locks the counter row until commit, so writers commit in revision order."""
    row = gateway_revision.c
    connection.execute(
        sa.update(gateway_revision).where(row.id == REVISION_ROW).values(revision=row.revision + 1)
    )
    return int(connection.execute(sa.select(row.revision).where(row.id == REVISION_ROW)).scalar_one())


class KeyStore:
    """Consumer keys in the database at `url` (migrated beforehand: `gateway.store.migrate`)."""

    def __init__(self, url: str) -> None:
        self._url = url

    def __repr__(self) -> str:
        return f"KeyStore({describe(self._url)})"

    @property
    def url(self) -> str:
        """The database URL (with any password: never show it; `description` is for that)."""
        return self._url

    @property
    def description(self) -> str:
        """Where the keys live, without a password."""
        return describe(self._url)

    def create(
        self,
        name: str,
        team: str | None = None,
        endpoints: Iterable[str] | None = None,
        expires_at: datetime | None = None,
        limit: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        budget: Mapping[str, Any] | None = None,
    ) -> tuple[KeyRecord, str]:
        """A new key: its record and its secret (stored nowhere: show it once)."""
        fields = check_fields(
            {
                "name": name,
                "team": team,
                "endpoints": list(endpoints)
                if endpoints is not None and not isinstance(endpoints, str)
                else endpoints,
                "expires_at": expires_at,
                "limit": limit,
                "metadata": metadata,
                "budget": budget,
            }
        )
        secret = new_secret()
        now = utcnow()
        values = {
            **fields,
            "id": new_key_id(),
            "key_hash": hash_secret(secret),
            "prefix": secret[:PREFIX_CHARS],
            "created_at": now,
            "updated_at": now,
            "revoked_at": None,
        }
        with transaction(self._url, write=True) as connection:
            values["revision"] = _bump(connection)
            connection.execute(sa.insert(consumer_keys).values(**values))
        return _record(values), secret

    def get(self, key_id: str) -> KeyRecord | None:
        with transaction(self._url) as connection:
            row = (
                connection.execute(sa.select(consumer_keys).where(consumer_keys.c.id == key_id))
                .mappings()
                .first()
            )
        return None if row is None else _record(row)

    def list(
        self,
        *,
        team: str | None = None,
        include_revoked: bool = False,
        page_size: int = DEFAULT_PAGE_SIZE,
        page_token: str | None = None,
    ) -> KeyPage:
        """Keys in creation order, `page_size` (1..1000) at a time; pass `next_page_token` back
        for the next page (None: no more)."""
        if (
            isinstance(page_size, bool)
            or not isinstance(page_size, int)
            or not 1 <= page_size <= MAX_PAGE_SIZE
        ):
            raise BadRequest(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        column = consumer_keys.c
        query = sa.select(consumer_keys).order_by(column.created_at, column.id).limit(page_size + 1)
        if not include_revoked:
            query = query.where(column.revoked_at.is_(None))
        if team is not None:
            query = query.where(column.team == team)
        if page_token:
            created, key_id = _read_page_token(page_token)
            query = query.where(
                sa.or_(column.created_at > created, sa.and_(column.created_at == created, column.id > key_id))
            )
        with transaction(self._url) as connection:
            records = [_record(row) for row in connection.execute(query).mappings()]
        more = len(records) > page_size
        records = records[:page_size]
        return KeyPage(records, _page_token(records[-1]) if more else None)

    def update(self, key_id: str, **fields: Any) -> KeyRecord:
        """Change name, team, endpoints, expires_at, limit, budget or metadata (None clears all
        but the name; metadata None is {}). A revoked key stays revoked."""
        values = check_fields(fields)
        if not values:
            record = self.get(key_id)
            if record is None:
                raise NotFound(f"Key '{key_id}' not found")
            return record
        column = consumer_keys.c
        with transaction(self._url, write=True) as connection:
            revision = _bump(connection)
            result = connection.execute(
                sa.update(consumer_keys)
                .where(column.id == key_id)
                .values(**values, updated_at=utcnow(), revision=revision)
            )
            if result.rowcount == 0:
                raise NotFound(f"Key '{key_id}' not found")  # rolls the bump back
            row = connection.execute(sa.select(consumer_keys).where(column.id == key_id)).mappings().one()
        return _record(row)

    def revoke(self, key_id: str) -> KeyRecord:
        """Revoke the key for good (idempotent: revoking it again changes nothing)."""
        column = consumer_keys.c
        with transaction(self._url, write=True) as connection:
            row = connection.execute(sa.select(consumer_keys).where(column.id == key_id)).mappings().first()
            if row is None:
                raise NotFound(f"Key '{key_id}' not found")
            if row["revoked_at"] is None:
                revision = _bump(connection)
                now = utcnow()
                connection.execute(
                    sa.update(consumer_keys)
                    .where(column.id == key_id, column.revoked_at.is_(None))
                    .values(revoked_at=now, updated_at=now, revision=revision)
                )
                row = connection.execute(sa.select(consumer_keys).where(column.id == key_id)).mappings().one()
        return _record(row)

    def changes_since(self, revision: int) -> tuple[int, Records]:
        """Every key written after `revision` (revoked ones included) in revision order, and the
        revision to ask from next time. One query on the revision index."""
        column = consumer_keys.c
        query = sa.select(consumer_keys).where(column.revision > revision).order_by(column.revision)
        with transaction(self._url) as connection:
            records = [_record(row) for row in connection.execute(query).mappings()]
        return (records[-1].revision if records else revision), records

    def current_revision(self) -> int:
        row = gateway_revision.c
        with transaction(self._url) as connection:
            value = connection.execute(sa.select(row.revision).where(row.id == REVISION_ROW)).scalar_one()
        return int(value)

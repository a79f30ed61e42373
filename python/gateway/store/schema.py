"""The key database's tables as SQLAlchemy Core objects, for queries. The migrations
(migrations/versions/) create and change them; a change here needs a new migration there.

    consumer_keys      one row per gateway key; the secret is never stored, only its SHA-256
    gateway_revision   one row: the write counter. Every write (create, update, revoke) bumps
                       it in its own transaction and stamps the rows it writes with the new
                       value, so writers are ordered and `revision > R` is all a reader that
                       has seen R still needs (see keys.py)
    usage_records      one row per request (gateway.usage.UsageRecord), written in batches by
                       each worker's UsageWriter (usage/writer.py); cost in integer nano-USD
    team_budgets       one row per team with a budget set by the admin API; a removed budget
                       stays as a row with budget NULL, stamped with its revision, so the
                       workers' polls (revision > R, as for keys) learn of the removal
    response_states    one row per stored Responses API answer (apis/responses/state.py): its
                       endpoint and encoded conversation; rows expire at `expires_at` (epoch s)
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

VERSION_TABLE = "gateway_alembic_version"  # not "alembic_version": the database may be shared
REVISION_ROW = 1


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out: PostgreSQL stores timestamptz, SQLite a
    naive UTC text that is read back as UTC."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: give a timezone")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _json() -> sa.JSON:
    return sa.JSON(none_as_null=True)


metadata = sa.MetaData()

consumer_keys = sa.Table(
    "consumer_keys",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("team", sa.String(200), nullable=True),
    sa.Column("endpoints", _json(), nullable=True),  # glob patterns; empty or NULL: every endpoint
    sa.Column("expires_at", UTCDateTime(), nullable=True),
    sa.Column("limit", _json(), nullable=True),  # a `limit:` mapping, as in the config
    sa.Column("metadata", _json(), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False),  # SHA-256 hex of the secret
    sa.Column("prefix", sa.String(16), nullable=False),  # the secret's first 12 characters
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("revoked_at", UTCDateTime(), nullable=True),
    sa.Column("revision", sa.BigInteger(), nullable=False),
    sa.Column("budget", _json(), nullable=True),  # {"usd", "period", "window"?} (config/budgets.py)
    sa.Index("ix_consumer_keys_key_hash", "key_hash", unique=True),
    sa.Index("ix_consumer_keys_revision", "revision"),
    sa.Index("ix_consumer_keys_created_at_id", "created_at", "id"),
)

gateway_revision = sa.Table(
    "gateway_revision",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("revision", sa.BigInteger(), nullable=False),
    sa.CheckConstraint(f"id = {REVISION_ROW}", name="ck_gateway_revision_one_row"),
)

NANO_USD = 1_000_000_000  # cost_nano_usd units per USD

# Cost is an integer count of nano-dollars: SUM over integers is exact on both backends (SQLite
# has no decimal type, a float column rounds each addition), and 1e-9 USD is far below the
# price of a single token (the cheapest priced models cost ~1e-8 USD per token).
usage_records = sa.Table(
    "usage_records",
    metadata,
    sa.Column(
        "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
    ),
    sa.Column("request_id", sa.String(128), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("method", sa.String(16), nullable=False),
    sa.Column("path", sa.String(512), nullable=False),
    sa.Column("route", sa.String(32), nullable=False),
    sa.Column("endpoint", sa.String(200), nullable=True),
    sa.Column("asked", sa.String(200), nullable=True),
    sa.Column("provider", sa.String(64), nullable=True),
    sa.Column("model", sa.String(200), nullable=True),
    sa.Column("consumer", sa.String(200), nullable=True),  # consumer_keys.id, or "jwt:<subject>"
    sa.Column("team", sa.String(200), nullable=True),
    sa.Column("stream", sa.Boolean(), nullable=False),
    sa.Column("status", sa.Integer(), nullable=False),
    sa.Column("error", sa.String(64), nullable=True),
    sa.Column("latency_ms", sa.Float(), nullable=False),
    sa.Column("ttft_ms", sa.Float(), nullable=True),
    sa.Column("overhead_ms", sa.Float(), nullable=True),
    sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
    sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
    sa.Column("cached_tokens", sa.BigInteger(), nullable=False),
    sa.Column("cache_write_tokens", sa.BigInteger(), nullable=False),
    sa.Column("reasoning_tokens", sa.BigInteger(), nullable=False),
    sa.Column("total_tokens", sa.BigInteger(), nullable=False),
    sa.Column("estimated", sa.Boolean(), nullable=False),
    sa.Column("cost_nano_usd", sa.BigInteger(), nullable=False),
    sa.Column("priced", sa.Boolean(), nullable=False),
    sa.Column("budget", sa.String(200), nullable=True),
    sa.Index("ix_usage_records_started_at", "started_at"),
)

team_budgets = sa.Table(
    "team_budgets",
    metadata,
    sa.Column("team", sa.String(200), primary_key=True),
    sa.Column("budget", _json(), nullable=True),  # {"usd", "period", "window"?}; NULL: removed
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("revision", sa.BigInteger(), nullable=False),
    sa.Index("ix_team_budgets_revision", "revision"),
)

response_states = sa.Table(
    "response_states",
    metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("endpoint", sa.String(200), nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("state", sa.LargeBinary, nullable=False),
    sa.Index("ix_response_states_expires_at", "expires_at"),
)

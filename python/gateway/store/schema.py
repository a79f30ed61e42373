"""The key database's tables as SQLAlchemy Core objects, for queries. The migrations
(migrations/versions/) create and change them; a change here needs a new migration there.

    consumer_keys      one row per gateway key; the secret is never stored, only its SHA-256
    gateway_revision   one row: the write counter. Every write (create, update, revoke) bumps
                       it in its own transaction and stamps the rows it writes with the new
                       value, so writers are ordered and `revision > R` is all a reader that
                       has seen R still needs (see keys.py)

Usage records and budgets will be tables of their own (later migrations).
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

"""usage records: one row per request

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

Frozen: this file describes the schema as it was when it shipped, so it never imports
gateway.store.schema. Cost is stored as an integer count of nano-dollars (1e-9 USD) so sums
are exact on every backend (a float column would round differently on SQLite and PostgreSQL,
and a NUMERIC one comes back as float from SQLite anyway).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "usage_records",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("path", sa.String(512), nullable=False),
        sa.Column("route", sa.String(32), nullable=False),
        sa.Column("endpoint", sa.String(200), nullable=True),
        sa.Column("asked", sa.String(200), nullable=True),
        sa.Column("provider", sa.String(64), nullable=True),
        sa.Column("model", sa.String(200), nullable=True),
        sa.Column("consumer", sa.String(200), nullable=True),
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
    )
    # one index: every report scans a time range; each more index costs every insert (the
    # writer's CPU on a busy worker) more than it saves a report
    op.create_index("ix_usage_records_started_at", "usage_records", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_usage_records_started_at", table_name="usage_records")
    op.drop_table("usage_records")

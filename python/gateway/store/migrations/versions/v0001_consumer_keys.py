"""consumer keys and the write counter

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Frozen: this file describes the schema as it was when it shipped, so it never imports
gateway.store.schema. Usage records and budgets come as later revisions.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "consumer_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("team", sa.String(200), nullable=True),
        sa.Column("endpoints", sa.JSON(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("limit", sa.JSON(), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revision", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_consumer_keys_key_hash", "consumer_keys", ["key_hash"], unique=True)
    op.create_index("ix_consumer_keys_revision", "consumer_keys", ["revision"])
    op.create_index("ix_consumer_keys_created_at_id", "consumer_keys", ["created_at", "id"])
    revision_table = op.create_table(
        "gateway_revision",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_gateway_revision_one_row"),
    )
    op.bulk_insert(revision_table, [{"id": 1, "revision": 0}])


def downgrade() -> None:
    op.drop_table("gateway_revision")
    op.drop_index("ix_consumer_keys_created_at_id", table_name="consumer_keys")
    op.drop_index("ix_consumer_keys_revision", table_name="consumer_keys")
    op.drop_index("ix_consumer_keys_key_hash", table_name="consumer_keys")
    op.drop_table("consumer_keys")

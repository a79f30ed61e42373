"""budgets: a key's own budget, and team budgets

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

Frozen: this file describes the schema as it was when it shipped, so it never imports
gateway.store.schema. A budget is stored as the admin API takes it ({"usd", "period",
"window"?}); spend is not stored here but in the budgets' ledger (shared memory or Redis).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("consumer_keys") as batch:
        batch.add_column(sa.Column("budget", sa.JSON(), nullable=True))
    op.create_table(
        "team_budgets",
        sa.Column("team", sa.String(200), primary_key=True),
        sa.Column("budget", sa.JSON(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_team_budgets_revision", "team_budgets", ["revision"])


def downgrade() -> None:
    op.drop_index("ix_team_budgets_revision", table_name="team_budgets")
    op.drop_table("team_budgets")
    with op.batch_alter_table("consumer_keys") as batch:
        batch.drop_column("budget")

"""response states: what `previous_response_id` and GET/DELETE /v1/responses/{id} need

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

Frozen: this file describes the schema as it was when it shipped, so it never imports
gateway.apis. One row per response the gateway served and keeps (apis/responses/state.py): the
endpoint it came from and, for providers without the Responses API, the conversation so far
(input and output items, JSON as bytes), bounded in size; rows expire at `expires_at` (epoch
seconds) and are swept as new ones are written.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "response_states",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("endpoint", sa.String(200), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_response_states_expires_at", "response_states", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_response_states_expires_at", table_name="response_states")
    op.drop_table("response_states")

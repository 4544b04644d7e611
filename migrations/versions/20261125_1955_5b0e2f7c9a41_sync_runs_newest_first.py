"""sync runs newest first

An index for `GET /v1/sync/runs`, which pages every run newest first on (created_at, id).

Revision ID: 5b0e2f7c9a41
Revises: e4c7c91b318d
Create Date: 2026-11-25 19:55:00.000000+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "5b0e2f7c9a41"
down_revision: str | None = "e4c7c91b318d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_sync_runs_created_at_id", "sync_runs", ["created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_sync_runs_created_at_id", table_name="sync_runs")

"""sync runs idle

Marks incremental runs that found no new events, so run listings can leave idle polls out.

Revision ID: c7a2d4e9f1b3
Revises: b3f1c8d2e4a6
Create Date: 2026-12-01 11:30:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c7a2d4e9f1b3"
down_revision: str | None = "b3f1c8d2e4a6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "sync_runs",
        sa.Column("idle", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )


def downgrade() -> None:
    op.drop_column("sync_runs", "idle")

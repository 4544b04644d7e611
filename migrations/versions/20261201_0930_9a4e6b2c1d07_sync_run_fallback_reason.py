"""sync run fallback reason

Why an incremental run became a full sync (no cursor, a cursor Clever no longer accepts,
events off, or the last successful sync too long ago).

Revision ID: 9a4e6b2c1d07
Revises: 7c3d91a5e2b8
Create Date: 2026-12-01 09:30:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9a4e6b2c1d07"
down_revision: str | None = "7c3d91a5e2b8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("sync_runs", sa.Column("fallback_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("sync_runs", "fallback_reason")

"""district pauses and connections

Clever's `pause_start`/`pause_end` on districts, and `district_connections`: the districts
no token serves any more. Districts' content hashes are cleared so the next sync stores
their pause fields.

Revision ID: b3f1c8d2e4a6
Revises: 9a4e6b2c1d07
Create Date: 2026-12-01 11:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b3f1c8d2e4a6"
down_revision: str | None = "9a4e6b2c1d07"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("districts", sa.Column("pause_start", sa.DateTime(timezone=True), nullable=True))
    op.add_column("districts", sa.Column("pause_end", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE districts SET content_hash = NULL")
    op.create_table(
        "district_connections",
        sa.Column("district_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column(
            "changed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "status IN ('connected', 'disconnected')", name=op.f("ck_district_connections_status")
        ),
        sa.PrimaryKeyConstraint("district_id", name=op.f("pk_district_connections")),
    )


def downgrade() -> None:
    op.drop_table("district_connections")
    op.drop_column("districts", "pause_end")
    op.drop_column("districts", "pause_start")

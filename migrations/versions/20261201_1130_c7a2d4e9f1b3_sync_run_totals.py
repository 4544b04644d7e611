"""sync run totals

`sync_runs.idle` marks incremental runs that found no new events, so run listings can leave
idle polls out; `sync_runs.clever_errors` counts a run's failed Clever requests by status.
`sync_totals` and `clever_error_totals` add up ended runs per district for `/metrics`.

Revision ID: c7a2d4e9f1b3
Revises: b3f1c8d2e4a6
Create Date: 2026-12-01 11:30:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "c7a2d4e9f1b3"
down_revision: str | None = "b3f1c8d2e4a6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "sync_runs",
        sa.Column("idle", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    op.add_column(
        "sync_runs",
        sa.Column(
            "clever_errors",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
    )
    op.create_table(
        "sync_totals",
        sa.Column("district_id", sa.Text(), nullable=False),
        sa.Column("mode", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("runs", sa.BigInteger(), nullable=False),
        sa.Column("events_applied", sa.BigInteger(), nullable=False),
        sa.Column("clever_requests", sa.BigInteger(), nullable=False),
        sa.Column("duration_seconds", sa.Float(), nullable=False),
        sa.Column("last_finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_duration_seconds", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("district_id", "mode", "status", name=op.f("pk_sync_totals")),
    )
    op.create_table(
        "clever_error_totals",
        sa.Column("district_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("responses", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("district_id", "status", name=op.f("pk_clever_error_totals")),
    )
    # Runs that ended before this migration are added up once.
    op.execute(
        """
        INSERT INTO sync_totals
        SELECT district_id, mode, status, count(*),
               COALESCE(sum((counts->'events'->>'applied')::bigint), 0),
               sum(clever_requests),
               COALESCE(sum(extract(epoch FROM finished_at - COALESCE(started_at, finished_at))), 0),
               max(finished_at),
               COALESCE((array_agg(extract(epoch FROM finished_at - COALESCE(started_at, finished_at))
                         ORDER BY finished_at DESC))[1], 0)
        FROM sync_runs WHERE finished_at IS NOT NULL
        GROUP BY district_id, mode, status
        """
    )


def downgrade() -> None:
    op.drop_table("clever_error_totals")
    op.drop_table("sync_totals")
    op.drop_column("sync_runs", "clever_errors")
    op.drop_column("sync_runs", "idle")

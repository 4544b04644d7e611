"""API key expiry and rotation; the audit trail of key use

`api_keys` gain `expires_at` (none: never) and `replaced_by` (the successor a rotation
issued); `audit_events` keeps one row per request that presented a key or failed to.

Revision ID: a6d8f0b2c4e7
Revises: f4c6e8a0b2d5
Create Date: 2026-12-01 19:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a6d8f0b2c4e7"
down_revision: str | None = "f4c6e8a0b2d5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("api_keys", sa.Column("replaced_by", sa.UUID(), nullable=True))
    op.create_table(
        "audit_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("key_id", sa.UUID(), nullable=True),
        sa.Column("method", sa.Text(), nullable=False),
        sa.Column("route", sa.Text(), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("client", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    op.create_index(op.f("ix_audit_events_at"), "audit_events", ["at"])
    op.create_index(op.f("ix_audit_events_key_id_at"), "audit_events", ["key_id", "at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_audit_events_key_id_at"), table_name="audit_events")
    op.drop_index(op.f("ix_audit_events_at"), table_name="audit_events")
    op.drop_table("audit_events")
    op.drop_column("api_keys", "replaced_by")
    op.drop_column("api_keys", "expires_at")

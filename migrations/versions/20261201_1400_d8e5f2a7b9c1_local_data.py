"""local data: overrides, custom groups, people

Tables the API writes and syncs never touch: `overrides` (local values shown instead of
Clever's), `groups` with `group_members` and `group_changes` (custom groups and their
history), `people` with `person_links` (one person behind several staff records).

Revision ID: d8e5f2a7b9c1
Revises: c7a2d4e9f1b3
Create Date: 2026-12-01 14:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "d8e5f2a7b9c1"
down_revision: str | None = "c7a2d4e9f1b3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _now() -> sa.TextClause:
    return sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "overrides",
        sa.Column("district_id", sa.Text(), nullable=False),
        sa.Column("entity", sa.Text(), nullable=False),
        sa.Column("record_id", sa.Text(), nullable=False),
        sa.Column("field", sa.Text(), nullable=False),
        sa.Column("value", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("clever_value", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "entity IN ('users', 'sections', 'terms')", name=op.f("ck_overrides_entity")
        ),
        sa.ForeignKeyConstraint(
            ["district_id"], ["districts.id"], name=op.f("fk_overrides_district_id_districts")
        ),
        sa.PrimaryKeyConstraint(
            "district_id", "entity", "record_id", "field", name=op.f("pk_overrides")
        ),
    )
    op.create_table(
        "groups",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("district_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("owner_id", sa.Text(), nullable=False),
        sa.Column("source_section_id", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["district_id"], ["districts.id"], name=op.f("fk_groups_district_id_districts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_groups")),
    )
    op.create_index(op.f("ix_groups_district_id_owner_id"), "groups", ["district_id", "owner_id"])
    op.create_index(
        op.f("ix_groups_district_id_source_section_id"),
        "groups",
        ["district_id", "source_section_id"],
    )
    op.create_table(
        "group_members",
        sa.Column("group_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("district_id", sa.Text(), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.Column("added_by", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"], ["groups.id"], name=op.f("fk_group_members_group_id_groups")
        ),
        sa.PrimaryKeyConstraint("group_id", "user_id", name=op.f("pk_group_members")),
    )
    op.create_index(
        op.f("ix_group_members_district_id_user_id"), "group_members", ["district_id", "user_id"]
    )
    op.create_table(
        "group_changes",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("group_id", sa.UUID(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column(
            "detail",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["group_id"], ["groups.id"], name=op.f("fk_group_changes_group_id_groups")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_group_changes")),
    )
    op.create_index(op.f("ix_group_changes_group_id_id"), "group_changes", ["group_id", "id"])
    op.create_table(
        "people",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("district_id", sa.Text(), nullable=False),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["district_id"], ["districts.id"], name=op.f("fk_people_district_id_districts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_people")),
    )
    op.create_index(
        op.f("ix_people_district_id_email"),
        "people",
        ["district_id", "email"],
        unique=True,
        postgresql_where=sa.text("email IS NOT NULL"),
    )
    op.create_table(
        "person_links",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("district_id", sa.Text(), nullable=False),
        sa.Column("person_id", sa.UUID(), nullable=False),
        sa.Column("pinned", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("linked_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_person_links_person_id_people")
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_person_links")),
    )
    op.create_index(op.f("ix_person_links_person_id"), "person_links", ["person_id"])
    op.create_index(
        op.f("ix_person_links_district_id_user_id"), "person_links", ["district_id", "user_id"]
    )


def downgrade() -> None:
    op.drop_table("person_links")
    op.drop_table("people")
    op.drop_table("group_changes")
    op.drop_table("group_members")
    op.drop_table("groups")
    op.drop_table("overrides")

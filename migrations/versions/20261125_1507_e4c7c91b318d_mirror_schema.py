"""mirror schema

The mirror tables, sync bookkeeping, data warnings and API keys, and the `roster_staging`
schema where sync runs stage what they fetched (unlogged tables, one set per run).

Revision ID: e4c7c91b318d
Revises:
Create Date: 2026-11-25 15:07:39.967548+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "e4c7c91b318d"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE SCHEMA IF NOT EXISTS roster_staging")
    op.create_table(
        "api_keys",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("prefix", sa.Text(), nullable=False),
        sa.Column("secret_hash", sa.LargeBinary(), nullable=False),
        sa.Column("scopes", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("district_ids", postgresql.ARRAY(sa.Text()), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_api_keys_secret_hash")),
    )
    op.create_table(
        "data_warnings",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("district_id", sa.Text(), nullable=False),
        sa.Column("entity", sa.Text(), nullable=False),
        sa.Column("record_id", sa.Text(), nullable=True),
        sa.Column("field", sa.Text(), nullable=True),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column(
            "first_seen_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("first_run_id", sa.UUID(), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_run_id", sa.UUID(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_warnings")),
        sa.UniqueConstraint(
            "district_id",
            "entity",
            "record_id",
            "field",
            "code",
            name=op.f("uq_data_warnings_district_id_entity_record_id_field_code"),
            postgresql_nulls_not_distinct=True,
        ),
    )
    op.create_index(
        op.f("ix_data_warnings_district_id_code_resolved_at"),
        "data_warnings",
        ["district_id", "code", "resolved_at"],
        unique=False,
    )
    op.create_table(
        "district_sync_state",
        sa.Column("district_id", sa.Text(), nullable=False),
        sa.Column("events_cursor", sa.Text(), nullable=True),
        sa.Column("events_cursor_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_full_sync_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_full_sync_run_id", sa.UUID(), nullable=True),
        sa.Column("last_incremental_sync_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("district_id", name=op.f("pk_district_sync_state")),
    )
    op.create_table(
        "districts",
        sa.Column("source_last_modified", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "first_seen_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("content_hash", sa.LargeBinary(), nullable=True),
        sa.Column(
            "raw",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("state", sa.Text(), nullable=True),
        sa.Column("sis_type", sa.Text(), nullable=True),
        sa.Column("nces_id", sa.Text(), nullable=True),
        sa.Column("mdr_number", sa.Text(), nullable=True),
        sa.Column("portal_url", sa.Text(), nullable=True),
        sa.Column("last_clever_sync", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sensitive_fields_enabled", sa.Boolean(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_districts")),
    )
    op.create_table(
        "sync_runs",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("district_id", sa.Text(), nullable=False),
        sa.Column("mode", sa.Text(), nullable=False),
        sa.Column("trigger", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "counts",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "progress",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("warnings_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("clever_requests", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("events_cursor", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("held_reason", sa.Text(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.Text(), nullable=True),
        sa.CheckConstraint("mode IN ('full', 'incremental')", name=op.f("ck_sync_runs_mode")),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'held', 'rejected', 'coalesced')",
            name=op.f("ck_sync_runs_status"),
        ),
        sa.CheckConstraint(
            "trigger IN ('schedule', 'api', 'cli', 'webhook')", name=op.f("ck_sync_runs_trigger")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_runs")),
    )
    op.create_index(
        op.f("ix_sync_runs_district_id_created_at"),
        "sync_runs",
        ["district_id", "created_at"],
        unique=False,
    )
    op.create_index(op.f("ix_sync_runs_status"), "sync_runs", ["status"], unique=False)
    op.create_table(
        "contact_relationships",
        sa.Column(
            "first_seen_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("contact_id", sa.Text(), nullable=False),
        sa.Column("student_id", sa.Text(), nullable=False),
        sa.Column("district_id", sa.Text(), nullable=False),
        sa.Column("relationship", sa.Text(), nullable=True),
        sa.Column("type", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["district_id"],
            ["districts.id"],
            name=op.f("fk_contact_relationships_district_id_districts"),
        ),
        sa.PrimaryKeyConstraint("contact_id", "student_id", name=op.f("pk_contact_relationships")),
    )
    op.create_index(
        op.f("ix_contact_relationships_student_id_contact_id"),
        "contact_relationships",
        ["student_id", "contact_id"],
        unique=False,
    )
    op.create_table(
        "courses",
        sa.Column("source_last_modified", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "first_seen_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("content_hash", sa.LargeBinary(), nullable=True),
        sa.Column(
            "raw",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("district_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("number", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["district_id"], ["districts.id"], name=op.f("fk_courses_district_id_districts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_courses")),
    )
    op.create_index(
        op.f("ix_courses_district_id_id"), "courses", ["district_id", "id"], unique=False
    )
    op.create_table(
        "enrollments",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("section_id", sa.Text(), nullable=False),
        sa.Column("student_id", sa.Text(), nullable=False),
        sa.Column("district_id", sa.Text(), nullable=False),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["district_id"], ["districts.id"], name=op.f("fk_enrollments_district_id_districts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrollments")),
    )
    op.create_index(
        op.f("ix_enrollments_district_id"), "enrollments", ["district_id"], unique=False
    )
    op.create_index(
        op.f("ix_enrollments_student_id_section_id"),
        "enrollments",
        ["student_id", "section_id"],
        unique=False,
    )
    op.create_index(
        "uq_enrollments_open",
        "enrollments",
        ["section_id", "student_id"],
        unique=True,
        postgresql_where=sa.text("ended_at IS NULL"),
    )
    op.create_table(
        "schools",
        sa.Column("source_last_modified", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "first_seen_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("content_hash", sa.LargeBinary(), nullable=True),
        sa.Column(
            "raw",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("district_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("school_number", sa.Text(), nullable=True),
        sa.Column("sis_id", sa.Text(), nullable=True),
        sa.Column("state_id", sa.Text(), nullable=True),
        sa.Column("nces_id", sa.Text(), nullable=True),
        sa.Column("mdr_number", sa.Text(), nullable=True),
        sa.Column("low_grade", sa.Text(), nullable=True),
        sa.Column("high_grade", sa.Text(), nullable=True),
        sa.Column("phone", sa.Text(), nullable=True),
        sa.Column("principal_name", sa.Text(), nullable=True),
        sa.Column("principal_email", sa.Text(), nullable=True),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("city", sa.Text(), nullable=True),
        sa.Column("state", sa.Text(), nullable=True),
        sa.Column("zip", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["district_id"], ["districts.id"], name=op.f("fk_schools_district_id_districts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schools")),
    )
    op.create_index(
        op.f("ix_schools_district_id_id"), "schools", ["district_id", "id"], unique=False
    )
    op.create_table(
        "section_teachers",
        sa.Column(
            "first_seen_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("section_id", sa.Text(), nullable=False),
        sa.Column("teacher_id", sa.Text(), nullable=False),
        sa.Column("district_id", sa.Text(), nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.Column("is_primary", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.ForeignKeyConstraint(
            ["district_id"],
            ["districts.id"],
            name=op.f("fk_section_teachers_district_id_districts"),
        ),
        sa.PrimaryKeyConstraint("section_id", "teacher_id", name=op.f("pk_section_teachers")),
    )
    op.create_index(
        op.f("ix_section_teachers_teacher_id_section_id"),
        "section_teachers",
        ["teacher_id", "section_id"],
        unique=False,
    )
    op.create_table(
        "sections",
        sa.Column("source_last_modified", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "first_seen_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("content_hash", sa.LargeBinary(), nullable=True),
        sa.Column(
            "raw",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("district_id", sa.Text(), nullable=False),
        sa.Column("school_id", sa.Text(), nullable=True),
        sa.Column("course_id", sa.Text(), nullable=True),
        sa.Column("term_id", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("display_name", sa.Text(), nullable=True),
        sa.Column("period", sa.Text(), nullable=True),
        sa.Column("section_number", sa.Text(), nullable=True),
        sa.Column("sis_id", sa.Text(), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("grade", sa.Text(), nullable=True),
        sa.Column("grade_level", sa.SmallInteger(), nullable=True),
        sa.Column("primary_teacher_id", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["district_id"], ["districts.id"], name=op.f("fk_sections_district_id_districts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sections")),
    )
    op.create_index(op.f("ix_sections_course_id"), "sections", ["course_id"], unique=False)
    op.create_index(
        op.f("ix_sections_district_id_id"), "sections", ["district_id", "id"], unique=False
    )
    op.create_index(
        op.f("ix_sections_school_id_term_id"), "sections", ["school_id", "term_id"], unique=False
    )
    op.create_index(op.f("ix_sections_term_id"), "sections", ["term_id"], unique=False)
    op.create_table(
        "terms",
        sa.Column("source_last_modified", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "first_seen_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("content_hash", sa.LargeBinary(), nullable=True),
        sa.Column(
            "raw",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("district_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("start_date", sa.Date(), nullable=True),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["district_id"], ["districts.id"], name=op.f("fk_terms_district_id_districts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_terms")),
    )
    op.create_index(
        op.f("ix_terms_district_id_start_date"),
        "terms",
        ["district_id", "start_date"],
        unique=False,
    )
    op.create_table(
        "user_schools",
        sa.Column(
            "first_seen_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("school_id", sa.Text(), nullable=False),
        sa.Column("district_id", sa.Text(), nullable=False),
        sa.Column("is_primary", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.ForeignKeyConstraint(
            ["district_id"], ["districts.id"], name=op.f("fk_user_schools_district_id_districts")
        ),
        sa.PrimaryKeyConstraint("user_id", "role", "school_id", name=op.f("pk_user_schools")),
    )
    op.create_index(
        op.f("ix_user_schools_school_id_role_user_id"),
        "user_schools",
        ["school_id", "role", "user_id"],
        unique=False,
    )
    op.create_table(
        "users",
        sa.Column("source_last_modified", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "first_seen_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("content_hash", sa.LargeBinary(), nullable=True),
        sa.Column(
            "raw",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("district_id", sa.Text(), nullable=False),
        sa.Column(
            "roles",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{}'::text[]"),
            nullable=False,
        ),
        sa.Column("name_first", sa.Text(), nullable=True),
        sa.Column("name_middle", sa.Text(), nullable=True),
        sa.Column("name_last", sa.Text(), nullable=True),
        sa.Column("preferred_first_name", sa.Text(), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("email_normalized", sa.Text(), nullable=True),
        sa.Column("email_valid", sa.Boolean(), nullable=True),
        sa.Column("primary_school_id", sa.Text(), nullable=True),
        sa.Column("sis_id", sa.Text(), nullable=True),
        sa.Column("state_id", sa.Text(), nullable=True),
        sa.Column("student_number", sa.Text(), nullable=True),
        sa.Column("teacher_number", sa.Text(), nullable=True),
        sa.Column("staff_number", sa.Text(), nullable=True),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("grade", sa.Text(), nullable=True),
        sa.Column("grade_level", sa.SmallInteger(), nullable=True),
        sa.Column("graduation_year", sa.SmallInteger(), nullable=True),
        sa.Column("dob", sa.Date(), nullable=True),
        sa.Column("gender", sa.Text(), nullable=True),
        sa.Column("phone", sa.Text(), nullable=True),
        sa.Column("sensitive", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.ForeignKeyConstraint(
            ["district_id"], ["districts.id"], name=op.f("fk_users_district_id_districts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
    )
    op.create_index(op.f("ix_users_district_id_id"), "users", ["district_id", "id"], unique=False)
    op.create_index(op.f("ix_users_email_normalized"), "users", ["email_normalized"], unique=False)
    op.create_index("ix_users_roles", "users", ["roles"], unique=False, postgresql_using="gin")


def downgrade() -> None:
    op.drop_index("ix_users_roles", table_name="users", postgresql_using="gin")
    op.drop_index(op.f("ix_users_email_normalized"), table_name="users")
    op.drop_index(op.f("ix_users_district_id_id"), table_name="users")
    op.drop_table("users")
    op.drop_index(op.f("ix_user_schools_school_id_role_user_id"), table_name="user_schools")
    op.drop_table("user_schools")
    op.drop_index(op.f("ix_terms_district_id_start_date"), table_name="terms")
    op.drop_table("terms")
    op.drop_index(op.f("ix_sections_term_id"), table_name="sections")
    op.drop_index(op.f("ix_sections_school_id_term_id"), table_name="sections")
    op.drop_index(op.f("ix_sections_district_id_id"), table_name="sections")
    op.drop_index(op.f("ix_sections_course_id"), table_name="sections")
    op.drop_table("sections")
    op.drop_index(op.f("ix_section_teachers_teacher_id_section_id"), table_name="section_teachers")
    op.drop_table("section_teachers")
    op.drop_index(op.f("ix_schools_district_id_id"), table_name="schools")
    op.drop_table("schools")
    op.drop_index(
        "uq_enrollments_open",
        table_name="enrollments",
        postgresql_where=sa.text("ended_at IS NULL"),
    )
    op.drop_index(op.f("ix_enrollments_student_id_section_id"), table_name="enrollments")
    op.drop_index(op.f("ix_enrollments_district_id"), table_name="enrollments")
    op.drop_table("enrollments")
    op.drop_index(op.f("ix_courses_district_id_id"), table_name="courses")
    op.drop_table("courses")
    op.drop_index(
        op.f("ix_contact_relationships_student_id_contact_id"), table_name="contact_relationships"
    )
    op.drop_table("contact_relationships")
    op.drop_index(op.f("ix_sync_runs_status"), table_name="sync_runs")
    op.drop_index(op.f("ix_sync_runs_district_id_created_at"), table_name="sync_runs")
    op.drop_table("sync_runs")
    op.drop_table("districts")
    op.drop_table("district_sync_state")
    op.drop_index(op.f("ix_data_warnings_district_id_code_resolved_at"), table_name="data_warnings")
    op.drop_table("data_warnings")
    op.drop_table("api_keys")
    op.execute("DROP SCHEMA IF EXISTS roster_staging CASCADE")

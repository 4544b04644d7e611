"""recheck cross-district references

Syncs before this revision stored links and reference columns that named another district's
records. Records holding any lose their content hash, so the next full sync of their district
normalizes them again and the merge drops those references (with `foreign_reference`
warnings). No row is deleted here; reads already join within the district.

Revision ID: 7c3d91a5e2b8
Revises: 5b0e2f7c9a41
Create Date: 2026-12-01 09:00:00.000000+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "7c3d91a5e2b8"
down_revision: str | None = "5b0e2f7c9a41"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _foreign(table: str, column: str, owner: str) -> str:
    return (
        f"EXISTS (SELECT 1 FROM {table} x WHERE x.id = {owner}.{column}"
        f" AND x.district_id <> {owner}.district_id)"
    )


def _crossing_link(link: str, owner_column: str, ref: str, target: str, owner: str) -> str:
    return (
        f"EXISTS (SELECT 1 FROM {link} l JOIN {target} x ON x.id = l.{ref}"
        f" WHERE l.{owner_column} = {owner}.id AND x.district_id <> l.district_id)"
    )


def statements() -> list[str]:
    """The updates `upgrade` runs (tests run them on planted rows too)."""
    sections = " OR ".join(
        [
            _foreign("schools", "school_id", "s"),
            _foreign("courses", "course_id", "s"),
            _foreign("terms", "term_id", "s"),
            _foreign("users", "primary_teacher_id", "s"),
            _crossing_link("enrollments", "section_id", "student_id", "users", "s"),
            _crossing_link("section_teachers", "section_id", "teacher_id", "users", "s"),
        ]
    )
    users = " OR ".join(
        [
            _foreign("schools", "primary_school_id", "u"),
            _crossing_link("user_schools", "user_id", "school_id", "schools", "u"),
            _crossing_link("contact_relationships", "contact_id", "student_id", "users", "u"),
        ]
    )
    return [
        f"UPDATE sections s SET content_hash = NULL WHERE {sections}",
        f"UPDATE users u SET content_hash = NULL WHERE {users}",
    ]


def upgrade() -> None:
    for statement in statements():
        op.execute(statement)


def downgrade() -> None:
    # Nothing to undo: a cleared hash only makes the next sync look at the record again.
    pass

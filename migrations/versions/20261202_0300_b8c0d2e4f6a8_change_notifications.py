"""change notifications: every write of data the API shows notifies `roster_changes`

A statement trigger on each table the reads show notifies the channel `roster_changes`
with the district the writing transaction named in `roster.district_id` (the merge of a
sync sets it), or `*` when it named none. Notifications are sent at commit, once per
transaction and payload; API processes listen, to drop the answers they keep in memory.

Revision ID: b8c0d2e4f6a8
Revises: a6d8f0b2c4e7
Create Date: 2026-12-02 03:00:00.000000+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "b8c0d2e4f6a8"
down_revision: str | None = "a6d8f0b2c4e7"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = (
    "districts",
    "schools",
    "terms",
    "courses",
    "users",
    "user_schools",
    "sections",
    "section_teachers",
    "enrollments",
    "contact_relationships",
    "data_warnings",
    "overrides",
    "groups",
    "group_members",
    "people",
    "person_links",
)


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION notify_roster_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify(
                'roster_changes',
                coalesce(nullif(current_setting('roster.district_id', true), ''), '*')
            );
            RETURN NULL;
        END $$
        """
    )
    for table in _TABLES:
        op.execute(
            f"CREATE TRIGGER notify_{table}_change"
            f" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table}"
            " FOR EACH STATEMENT EXECUTE FUNCTION notify_roster_change()"
        )


def downgrade() -> None:
    for table in _TABLES:
        op.execute(f"DROP TRIGGER notify_{table}_change ON {table}")
    op.execute("DROP FUNCTION notify_roster_change()")

"""change log: every change to a mirrored record or link, and term and course lineage

`changes` holds one row per change of a live row with the state it left, written by
statement triggers on the live tables (in the transaction of the change); it is both the
change feed and the record versions that answer as-of reads. `history_horizon` records how
far the daily prune went. `terms.lineage_id` and `courses.lineage_id` chain records Clever
recreated with new ids.

Revision ID: e2b4d6f8a1c3
Revises: d8e5f2a7b9c1
Create Date: 2026-12-01 16:00:00.000000+00:00
"""

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "e2b4d6f8a1c3"
down_revision: str | None = "d8e5f2a7b9c1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Never in a change's state: the record as Clever sent it, its digest, its sensitive fields.
_NOT_KEPT = "ARRAY['raw', 'content_hash', 'sensitive']"
# Bookkeeping columns whose change alone is not a change of the record.
_BOOKKEEPING = ("updated_at", "first_seen_at", "source_last_modified", "deleted_at", "ended_at")


@dataclass(frozen=True)
class _Logged:
    """A live table whose changes are logged."""

    table: str
    # SQL over a row `r`: its district, its key (text), its links' records (jsonb or NULL).
    district: str
    key: str
    refs: str = "NULL::jsonb"
    # The column whose being set ends the row (deactivated, or a link ended).
    ends: str = "deleted_at"
    link: bool = False
    # Columns of the live row no merge writes (local settings kept beside Clever's record).
    local: tuple[str, ...] = ()
    # Whether changes keep the row's state: enrollments keep their own history (one row per
    # stay), which as-of reads use instead.
    keeps_state: bool = True
    # The column a row gets the creating transaction's time in.
    born: str = "first_seen_at"

    def stored(self, state: str) -> str:
        return state if self.keeps_state else "NULL::jsonb"


_LOGGED = (
    _Logged(
        "districts",
        district="r.id",
        key="r.id",
        local=("sensitive_fields_enabled",),
    ),
    _Logged("schools", district="r.district_id", key="r.id"),
    _Logged("terms", district="r.district_id", key="r.id"),
    _Logged("courses", district="r.district_id", key="r.id"),
    _Logged("users", district="r.district_id", key="r.id"),
    _Logged("sections", district="r.district_id", key="r.id"),
    _Logged(
        "user_schools",
        district="r.district_id",
        key="jsonb_build_array(r.user_id, r.role, r.school_id)::text",
        refs="jsonb_build_object('user_id', r.user_id, 'school_id', r.school_id, 'role', r.role)",
        link=True,
    ),
    _Logged(
        "section_teachers",
        district="r.district_id",
        key="jsonb_build_array(r.section_id, r.teacher_id)::text",
        refs="jsonb_build_object('section_id', r.section_id, 'user_id', r.teacher_id)",
        link=True,
    ),
    _Logged(
        "contact_relationships",
        district="r.district_id",
        key="jsonb_build_array(r.contact_id, r.student_id)::text",
        refs="jsonb_build_object('user_id', r.contact_id, 'student_id', r.student_id)",
        link=True,
    ),
    _Logged(
        "enrollments",
        district="r.district_id",
        key="jsonb_build_array(r.section_id, r.student_id)::text",
        refs="jsonb_build_object('section_id', r.section_id, 'user_id', r.student_id)",
        ends="ended_at",
        link=True,
        keeps_state=False,
        born="started_at",
    ),
)

_RUN_ID = "nullif(current_setting('roster.run_id', true), '')::uuid"
_XID = "(pg_current_xact_id()::text)::bigint"


def _insert_function(logged: _Logged) -> str:
    op_name = "started" if logged.link else "created"
    return f"""
    CREATE FUNCTION log_{logged.table}_insert() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO changes (district_id, entity, record_id, op, run_id, refs, state)
        SELECT {logged.district}, '{logged.table}', {logged.key}, '{op_name}', {_RUN_ID},
               {logged.refs}, {logged.stored(f"to_jsonb(r) - {_NOT_KEPT}")}
        FROM new_rows r;
        RETURN NULL;
    END $$
    """


def _update_function(logged: _Logged) -> str:
    """Rows whose kept columns changed become changes. A row rewritten without a change of
    its kept columns (a section whose student list changed: its enrollments tell that) is
    `touched`: a version for as-of reads (its `updated_at` moved), not a change to feed.

    A row changed again in the transaction that created it updates that transaction's
    change of it instead of adding one; only then is the log searched (within this
    transaction's changes), so the update of rows of earlier transactions is one insert.
    The states and their differences are materialized: each is computed once per row, not
    once per use."""
    ignored = ", ".join(f"'{column}'" for column in (*_BOOKKEEPING, *logged.local))
    ended, started = ("ended", "started") if logged.link else ("deactivated", "restored")
    first = "'started'" if logged.link else "'created'"
    found = f"""
        WITH pairs AS MATERIALIZED (
            SELECT {logged.district} AS district_id, {logged.key} AS record_id,
                   {logged.refs} AS refs, to_jsonb(r) - {_NOT_KEPT} AS state,
                   r.{logged.ends} IS NOT NULL AS ends_now
            FROM new_rows r
        ), before AS MATERIALIZED (
            SELECT {logged.key} AS record_id, to_jsonb(r) - {_NOT_KEPT} AS state,
                   r.{logged.ends} IS NOT NULL AS ended_before
            FROM old_rows r
        ), diffs AS MATERIALIZED (
            SELECT n.*, CASE
                       WHEN n.ends_now AND NOT b.ended_before THEN '{ended}'
                       WHEN b.ended_before AND NOT n.ends_now THEN '{started}'
                       ELSE 'updated' END AS op,
                   n.state -> 'updated_at' IS DISTINCT FROM b.state -> 'updated_at' AS touched,
                   ARRAY(SELECT k FROM jsonb_object_keys(n.state) k
                         WHERE k NOT IN ({ignored}) AND n.state -> k IS DISTINCT FROM b.state -> k
                         ORDER BY k) AS fields
            FROM pairs n JOIN before b USING (record_id)
        ), found AS (
            SELECT district_id, record_id, refs, state, fields,
                   CASE WHEN op = 'updated' AND fields = '{{}}' THEN 'touched' ELSE op END AS op
            FROM diffs WHERE op <> 'updated' OR fields <> '{{}}' OR touched
        )"""
    insert = f"""
        INSERT INTO changes (district_id, entity, record_id, op, fields, run_id, refs, state)
        SELECT f.district_id, '{logged.table}', f.record_id, f.op,
               CASE WHEN f.fields <> '{{}}' THEN f.fields END,
               {_RUN_ID}, f.refs, {logged.stored("f.state")}
        FROM found f"""
    return f"""
    CREATE FUNCTION log_{logged.table}_update() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NOT EXISTS (SELECT 1 FROM new_rows r WHERE r.{logged.born} = now()) THEN
            {found}{insert};
            RETURN NULL;
        END IF;
        {found}, merged AS (
            UPDATE changes c
            SET state = {logged.stored("f.state")},
                op = CASE WHEN f.op = 'touched' OR (c.op = {first} AND f.op = 'updated')
                          THEN c.op ELSE f.op END,
                fields = CASE WHEN c.op = {first} AND f.op IN ('updated', 'touched') THEN NULL
                              ELSE ARRAY(SELECT DISTINCT x FROM unnest(c.fields || f.fields) x
                                         ORDER BY x) END
            FROM found f
            WHERE c.xid = {_XID} AND c.district_id = f.district_id
              AND c.entity = '{logged.table}' AND c.record_id = f.record_id
            RETURNING c.record_id
        ){insert}
        WHERE f.record_id NOT IN (SELECT record_id FROM merged);
        RETURN NULL;
    END $$
    """


def _baseline(logged: _Logged) -> str:
    """What the mirror already holds, as of now: history starts with the change log."""
    created, ended = ("started", "ended") if logged.link else ("created", "deactivated")
    return f"""
    INSERT INTO changes (district_id, entity, record_id, op, refs, state)
    SELECT {logged.district}, '{logged.table}', {logged.key},
           CASE WHEN r.{logged.ends} IS NULL THEN '{created}' ELSE '{ended}' END,
           {logged.refs}, {logged.stored(f"to_jsonb(r) - {_NOT_KEPT}")}
    FROM {logged.table} r
    """


def upgrade() -> None:
    op.add_column("terms", sa.Column("lineage_id", sa.Text(), nullable=True))
    op.add_column("courses", sa.Column("lineage_id", sa.Text(), nullable=True))
    op.create_table(
        "changes",
        sa.Column("xid", sa.BigInteger(), server_default=sa.text(_XID), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("district_id", sa.Text(), nullable=False),
        sa.Column("entity", sa.Text(), nullable=False),
        sa.Column("record_id", sa.Text(), nullable=False),
        sa.Column("op", sa.Text(), nullable=False),
        sa.Column("fields", postgresql.ARRAY(sa.Text()), nullable=True),
        sa.Column("run_id", sa.UUID(), nullable=True),
        sa.Column(
            "applied_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("refs", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("state", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.PrimaryKeyConstraint("xid", "seq", name=op.f("pk_changes")),
    )
    op.create_index(
        op.f("ix_changes_district_id_entity_record_id_seq"),
        "changes",
        ["district_id", "entity", "record_id", "seq"],
    )
    op.create_table(
        "history_horizon",
        sa.Column("id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("pruned_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("xid", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_history_horizon_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_history_horizon")),
    )
    for logged in _LOGGED:
        op.execute(_insert_function(logged))
        op.execute(_update_function(logged))
        op.execute(
            f"CREATE TRIGGER log_{logged.table}_insert AFTER INSERT ON {logged.table}"
            " REFERENCING NEW TABLE AS new_rows"
            f" FOR EACH STATEMENT EXECUTE FUNCTION log_{logged.table}_insert()"
        )
        op.execute(_baseline(logged))
        op.execute(
            f"CREATE TRIGGER log_{logged.table}_update AFTER UPDATE ON {logged.table}"
            " REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"
            f" FOR EACH STATEMENT EXECUTE FUNCTION log_{logged.table}_update()"
        )


def downgrade() -> None:
    for logged in _LOGGED:
        for event in ("insert", "update"):
            op.execute(f"DROP TRIGGER log_{logged.table}_{event} ON {logged.table}")
            op.execute(f"DROP FUNCTION log_{logged.table}_{event}()")
    op.drop_table("history_horizon")
    op.drop_index(op.f("ix_changes_district_id_entity_record_id_seq"), table_name="changes")
    op.drop_table("changes")
    op.drop_column("courses", "lineage_id")
    op.drop_column("terms", "lineage_id")

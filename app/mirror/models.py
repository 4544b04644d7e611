"""The mirror schema: SQLModel tables for Clever's records, their links, runs and keys.

Design rules:

* Only `id` and `district_id` are required on a mirrored record. Every other column is
  nullable `text` (any length, any UTF-8), and the record as Clever sent it is kept in `raw`.
* Clever ids are globally unique ObjectIds, so `id` alone is the primary key; `district_id`
  scopes every query the API runs.
* Foreign keys: mirrored records reference `districts` only, because a sync always stores
  the district before anything in it. Nothing else is a foreign key: Clever routinely
  references students, teachers, terms and courses it did not share (or deleted), and the
  mirror must store such a section and warn instead of failing the sync. Links therefore
  point at ids that may not exist; readers join and skip what is missing.
* Nothing is hard-deleted. `deleted_at` marks a record Clever no longer shares; a record that
  comes back is restored by clearing it. Enrollments keep history with `started_at` and
  `ended_at` instead, because a student may leave and rejoin a section.
* `content_hash` is a digest of the normalized columns, so a re-sync can find changed rows
  set-wise (anti-join on `(id, content_hash)`) instead of probing every row.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlmodel import Field, SQLModel

# Deterministic constraint names, so Alembic can find (and drop) what it created.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata: MetaData = SQLModel.metadata


def _text(**kwargs: Any) -> Any:
    return Field(default=None, sa_type=Text, **kwargs)


def _timestamp(*, required: bool = False) -> Any:
    kwargs: dict[str, Any] = {}
    if required:
        kwargs |= {"server_default": func.now(), "nullable": False}
    return Field(default=None, sa_type=DateTime(timezone=True), sa_column_kwargs=kwargs)


def _jsonb(*, required: bool = False) -> Any:
    kwargs: dict[str, Any] = {}
    if required:
        kwargs |= {"server_default": text("'{}'::jsonb"), "nullable": False}
    return Field(default=None, sa_type=JSONB, sa_column_kwargs=kwargs)


def _district_fk() -> Any:
    return Field(
        sa_type=Text,
        sa_column_args=[ForeignKey("districts.id")],
        sa_column_kwargs={"nullable": False},
    )


class LifecycleColumns(SQLModel):
    """Bookkeeping every mirrored record carries."""

    source_last_modified: datetime | None = _timestamp()
    first_seen_at: datetime | None = _timestamp(required=True)
    updated_at: datetime | None = _timestamp(required=True)
    deleted_at: datetime | None = _timestamp()
    content_hash: bytes | None = Field(default=None, sa_type=LargeBinary)
    raw: dict[str, Any] | None = _jsonb(required=True)


class LinkLifecycleColumns(SQLModel):
    """Bookkeeping of a link derived from a record (a section's teachers, a user's schools).

    Links have no raw JSON or `last_modified` of their own: they are facts of the record
    that lists them and change when it does.
    """

    first_seen_at: datetime | None = _timestamp(required=True)
    updated_at: datetime | None = _timestamp(required=True)
    deleted_at: datetime | None = _timestamp()


class District(LifecycleColumns, table=True):
    """A Clever district, plus where the service is in syncing it."""

    __tablename__ = "districts"

    id: str = Field(sa_type=Text, primary_key=True)
    name: str | None = _text()
    state: str | None = _text()
    sis_type: str | None = _text()
    nces_id: str | None = _text()
    mdr_number: str | None = _text()
    portal_url: str | None = _text()
    last_clever_sync: datetime | None = _timestamp()
    # Clever's sync pause (a district paused over the summer): `state` is then `paused`, or
    # the pause runs from `pause_start` to `pause_end` (open-ended without one).
    pause_start: datetime | None = _timestamp()
    pause_end: datetime | None = _timestamp()
    sensitive_fields_enabled: bool | None = Field(default=None, sa_type=Boolean)


class DistrictConnection(SQLModel, table=True):
    """A district whose Clever token went away: `disconnected` until a token serves it
    again (`connected`). Districts never disconnected have no row."""

    __tablename__ = "district_connections"
    __table_args__ = (CheckConstraint("status IN ('connected', 'disconnected')", name="status"),)

    district_id: str = Field(sa_type=Text, primary_key=True)
    status: str = Field(sa_type=Text, sa_column_kwargs={"nullable": False})
    reason: str | None = _text()
    changed_at: datetime | None = _timestamp(required=True)


class DistrictSyncState(SQLModel, table=True):
    """Where the service is in syncing a district: its cursors.

    Kept apart from `districts` so that a sync of unchanged data writes no row of mirrored
    data while the cursors still move.
    """

    __tablename__ = "district_sync_state"

    district_id: str = Field(sa_type=Text, primary_key=True)
    # The newest Clever event applied; incremental syncs continue after it.
    events_cursor: str | None = _text()
    events_cursor_at: datetime | None = _timestamp()
    last_full_sync_at: datetime | None = _timestamp()
    last_full_sync_run_id: uuid.UUID | None = Field(default=None, sa_type=UUID(as_uuid=True))
    last_incremental_sync_at: datetime | None = _timestamp()
    updated_at: datetime | None = _timestamp(required=True)


class School(LifecycleColumns, table=True):
    __tablename__ = "schools"
    __table_args__ = (Index(None, "district_id", "id"),)

    id: str = Field(sa_type=Text, primary_key=True)
    district_id: str = _district_fk()
    name: str | None = _text()
    school_number: str | None = _text()
    sis_id: str | None = _text()
    state_id: str | None = _text()
    nces_id: str | None = _text()
    mdr_number: str | None = _text()
    low_grade: str | None = _text()
    high_grade: str | None = _text()
    phone: str | None = _text()
    principal_name: str | None = _text()
    principal_email: str | None = _text()
    address: str | None = _text()
    city: str | None = _text()
    state: str | None = _text()
    zip: str | None = _text()


class Term(LifecycleColumns, table=True):
    __tablename__ = "terms"
    __table_args__ = (Index(None, "district_id", "start_date"),)

    id: str = Field(sa_type=Text, primary_key=True)
    district_id: str = _district_fk()
    name: str | None = _text()
    start_date: date | None = Field(default=None, sa_type=Date)
    end_date: date | None = Field(default=None, sa_type=Date)
    # The first term of the chain this one continues (a term Clever recreated with a new
    # id); null when it continues none. Set by the merge, never by Clever.
    lineage_id: str | None = _text()


class Course(LifecycleColumns, table=True):
    __tablename__ = "courses"
    __table_args__ = (Index(None, "district_id", "id"),)

    id: str = Field(sa_type=Text, primary_key=True)
    district_id: str = _district_fk()
    name: str | None = _text()
    number: str | None = _text()
    # As on terms: the first course of the chain of recreated courses this one continues.
    lineage_id: str | None = _text()


class User(LifecycleColumns, table=True):
    """Any Clever user: student, teacher, staff, district admin or contact (or several).

    Columns hold what the API filters or shows; role details beyond them stay in `raw`.
    Sensitive student fields live in `sensitive` and are only written for districts where
    they are enabled.
    """

    __tablename__ = "users"
    __table_args__ = (
        Index(None, "district_id", "id"),
        Index(None, "email_normalized"),
        Index("ix_users_roles", "roles", postgresql_using="gin"),
    )

    id: str = Field(sa_type=Text, primary_key=True)
    district_id: str = _district_fk()
    roles: list[str] | None = Field(
        default=None,
        sa_type=ARRAY(Text),
        sa_column_kwargs={"server_default": text("'{}'::text[]"), "nullable": False},
    )
    name_first: str | None = _text()
    name_middle: str | None = _text()
    name_last: str | None = _text()
    preferred_first_name: str | None = _text()
    email: str | None = _text()
    email_normalized: str | None = _text()
    email_valid: bool | None = Field(default=None, sa_type=Boolean)
    primary_school_id: str | None = _text()
    sis_id: str | None = _text()
    state_id: str | None = _text()
    student_number: str | None = _text()
    teacher_number: str | None = _text()
    staff_number: str | None = _text()
    title: str | None = _text()
    grade: str | None = _text()
    # Position of `grade` in Clever's ordered grade list, for sorting and ranges.
    grade_level: int | None = Field(default=None, sa_type=SmallInteger)
    graduation_year: int | None = Field(default=None, sa_type=SmallInteger)
    dob: date | None = Field(default=None, sa_type=Date)
    gender: str | None = _text()
    phone: str | None = _text()
    sensitive: dict[str, Any] | None = _jsonb()


class UserSchool(LinkLifecycleColumns, table=True):
    """A user's link to a school in one role; `is_primary` marks Clever's `school`."""

    __tablename__ = "user_schools"
    __table_args__ = (Index(None, "school_id", "role", "user_id"),)

    user_id: str = Field(sa_type=Text, primary_key=True)
    role: str = Field(sa_type=Text, primary_key=True)
    school_id: str = Field(sa_type=Text, primary_key=True)
    district_id: str = _district_fk()
    is_primary: bool = Field(
        default=False,
        sa_type=Boolean,
        sa_column_kwargs={"server_default": text("false"), "nullable": False},
    )


class Section(LifecycleColumns, table=True):
    __tablename__ = "sections"
    __table_args__ = (
        Index(None, "district_id", "id"),
        Index(None, "term_id"),
        Index(None, "course_id"),
        Index(None, "school_id", "term_id"),
    )

    id: str = Field(sa_type=Text, primary_key=True)
    district_id: str = _district_fk()
    school_id: str | None = _text()
    course_id: str | None = _text()
    term_id: str | None = _text()
    name: str | None = _text()
    # `name` when Clever has one, else generated from course, period and teacher.
    display_name: str | None = _text()
    period: str | None = _text()
    section_number: str | None = _text()
    sis_id: str | None = _text()
    subject: str | None = _text()
    grade: str | None = _text()
    grade_level: int | None = Field(default=None, sa_type=SmallInteger)
    primary_teacher_id: str | None = _text()


class SectionTeacher(LinkLifecycleColumns, table=True):
    """A teacher of a section: position 0 is the primary teacher, co-teachers follow in order."""

    __tablename__ = "section_teachers"
    __table_args__ = (Index(None, "teacher_id", "section_id"),)

    section_id: str = Field(sa_type=Text, primary_key=True)
    teacher_id: str = Field(sa_type=Text, primary_key=True)
    district_id: str = _district_fk()
    position: int = Field(sa_type=SmallInteger, sa_column_kwargs={"nullable": False})
    is_primary: bool = Field(
        default=False,
        sa_type=Boolean,
        sa_column_kwargs={"server_default": text("false"), "nullable": False},
    )


class Enrollment(SQLModel, table=True):
    """A student's membership of a section over time.

    One row per stay: leaving sets `ended_at`, rejoining starts a new row, so history
    survives section roll-over. At most one open row per (section, student).
    """

    __tablename__ = "enrollments"
    __table_args__ = (
        Index(
            "uq_enrollments_open",
            "section_id",
            "student_id",
            unique=True,
            postgresql_where=text("ended_at IS NULL"),
        ),
        Index(None, "student_id", "section_id"),
        Index(None, "district_id"),
    )

    id: int | None = Field(
        default=None,
        sa_type=BigInteger,
        sa_column_args=[Identity(always=False)],
        primary_key=True,
    )
    section_id: str = Field(sa_type=Text, sa_column_kwargs={"nullable": False})
    student_id: str = Field(sa_type=Text, sa_column_kwargs={"nullable": False})
    district_id: str = _district_fk()
    started_at: datetime | None = _timestamp(required=True)
    ended_at: datetime | None = _timestamp()


class ContactRelationship(LinkLifecycleColumns, table=True):
    """A contact's relationship to a student (`Parent`, `Emergency`, or anything Clever sends)."""

    __tablename__ = "contact_relationships"
    __table_args__ = (Index(None, "student_id", "contact_id"),)

    contact_id: str = Field(sa_type=Text, primary_key=True)
    student_id: str = Field(sa_type=Text, primary_key=True)
    district_id: str = _district_fk()
    relationship: str | None = _text()
    type: str | None = _text()


class SyncRun(SQLModel, table=True):
    """One sync of one district. Not tied to `districts` by a foreign key: a run
    may be queued for a district the mirror has never seen."""

    __tablename__ = "sync_runs"
    __table_args__ = (
        CheckConstraint("mode IN ('full', 'incremental')", name="mode"),
        CheckConstraint("trigger IN ('schedule', 'api', 'cli', 'webhook')", name="trigger"),
        CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'held', 'rejected',"
            " 'coalesced')",
            name="status",
        ),
        Index(None, "district_id", "created_at"),
        # `GET /v1/sync/runs` pages newest first on (created_at, id).
        Index(None, "created_at", "id"),
        Index(None, "status"),
    )

    id: uuid.UUID = Field(
        default_factory=uuid.uuid4,
        sa_type=UUID(as_uuid=True),
        primary_key=True,
    )
    district_id: str = Field(sa_type=Text, sa_column_kwargs={"nullable": False})
    mode: str = Field(sa_type=Text, sa_column_kwargs={"nullable": False})
    trigger: str = Field(sa_type=Text, sa_column_kwargs={"nullable": False})
    status: str = Field(sa_type=Text, sa_column_kwargs={"nullable": False})
    created_at: datetime | None = _timestamp(required=True)
    started_at: datetime | None = _timestamp()
    finished_at: datetime | None = _timestamp()
    counts: dict[str, Any] | None = _jsonb(required=True)
    progress: dict[str, Any] | None = _jsonb(required=True)
    warnings_count: int = Field(
        default=0,
        sa_type=Integer,
        sa_column_kwargs={"server_default": text("0"), "nullable": False},
    )
    clever_requests: int = Field(
        default=0,
        sa_type=Integer,
        sa_column_kwargs={"server_default": text("0"), "nullable": False},
    )
    # Clever's newest event when the run began: where incremental syncs continue after it.
    events_cursor: str | None = _text()
    error: str | None = _text()
    held_reason: str | None = _text()
    # Why an incremental run became a full sync.
    fallback_reason: str | None = _text()
    # An incremental run that found no new events (an idle poll).
    idle: bool = Field(
        default=False,
        sa_type=Boolean,
        sa_column_kwargs={"server_default": text("false"), "nullable": False},
    )
    # Failed Clever requests by HTTP status (`network`: no answer).
    clever_errors: dict[str, Any] | None = _jsonb(required=True)
    decided_at: datetime | None = _timestamp()
    decided_by: str | None = _text()


class SyncTotals(SQLModel, table=True):
    """Ended runs added up per district, mode and status (for `/metrics`)."""

    __tablename__ = "sync_totals"

    district_id: str = Field(sa_type=Text, primary_key=True)
    mode: str = Field(sa_type=Text, primary_key=True)
    status: str = Field(sa_type=Text, primary_key=True)
    runs: int = Field(sa_type=BigInteger, sa_column_kwargs={"nullable": False})
    events_applied: int = Field(sa_type=BigInteger, sa_column_kwargs={"nullable": False})
    clever_requests: int = Field(sa_type=BigInteger, sa_column_kwargs={"nullable": False})
    duration_seconds: float = Field(sa_type=Float, sa_column_kwargs={"nullable": False})
    last_finished_at: datetime = Field(
        sa_type=DateTime(timezone=True), sa_column_kwargs={"nullable": False}
    )
    last_duration_seconds: float = Field(sa_type=Float, sa_column_kwargs={"nullable": False})


class CleverErrorTotals(SQLModel, table=True):
    """Failed Clever requests of ended runs, per district and HTTP status."""

    __tablename__ = "clever_error_totals"

    district_id: str = Field(sa_type=Text, primary_key=True)
    status: str = Field(sa_type=Text, primary_key=True)
    responses: int = Field(sa_type=BigInteger, sa_column_kwargs={"nullable": False})


class DataWarning(SQLModel, table=True):
    """A problem found in a district's data.

    One row per (district, entity, record, field, code); it stays open while syncs keep
    seeing the problem and gets `resolved_at` when a sync no longer does. A sync that finds
    the same problems again writes nothing.
    """

    __tablename__ = "data_warnings"
    __table_args__ = (
        UniqueConstraint(
            "district_id",
            "entity",
            "record_id",
            "field",
            "code",
            postgresql_nulls_not_distinct=True,
        ),
        Index(None, "district_id", "code", "resolved_at"),
    )

    id: int | None = Field(
        default=None,
        sa_type=BigInteger,
        sa_column_args=[Identity(always=False)],
        primary_key=True,
    )
    district_id: str = Field(sa_type=Text, sa_column_kwargs={"nullable": False})
    entity: str = Field(sa_type=Text, sa_column_kwargs={"nullable": False})
    record_id: str | None = _text()
    field: str | None = _text()
    code: str = Field(sa_type=Text, sa_column_kwargs={"nullable": False})
    detail: str | None = _text()
    first_seen_at: datetime | None = _timestamp(required=True)
    first_run_id: uuid.UUID | None = Field(default=None, sa_type=UUID(as_uuid=True))
    resolved_at: datetime | None = _timestamp()
    resolved_run_id: uuid.UUID | None = Field(default=None, sa_type=UUID(as_uuid=True))


class ApiKey(SQLModel, table=True):
    """A consumer's API key. Only a SHA-256 digest of the secret is stored."""

    __tablename__ = "api_keys"

    id: uuid.UUID = Field(
        default_factory=uuid.uuid4,
        sa_type=UUID(as_uuid=True),
        primary_key=True,
    )
    name: str = Field(sa_type=Text, sa_column_kwargs={"nullable": False})
    # The first characters of the key, shown in listings so a key can be recognised.
    prefix: str = Field(sa_type=Text, sa_column_kwargs={"nullable": False})
    secret_hash: bytes = Field(
        sa_type=LargeBinary, sa_column_kwargs={"nullable": False, "unique": True}
    )
    scopes: list[str] = Field(
        default_factory=list,
        sa_type=ARRAY(Text),
        sa_column_kwargs={"nullable": False},
    )
    # None: every district; otherwise the only districts the key may see.
    district_ids: list[str] | None = Field(default=None, sa_type=ARRAY(Text))
    created_at: datetime | None = _timestamp(required=True)
    last_used_at: datetime | None = _timestamp()
    revoked_at: datetime | None = _timestamp()
    # None: the key never expires. A rotated key expires at the end of its grace period.
    expires_at: datetime | None = _timestamp()
    # The key issued to succeed this one by a rotation.
    replaced_by: uuid.UUID | None = Field(default=None, sa_type=UUID(as_uuid=True))


class AuditEvent(SQLModel, table=True):
    """One request that presented an API key, or failed to: which key, which route, what
    status. Never the query, the body or the presented secret."""

    __tablename__ = "audit_events"
    __table_args__ = (Index(None, "at"), Index(None, "key_id", "at"))

    id: int | None = Field(
        default=None,
        sa_type=BigInteger,
        sa_column_args=[Identity(always=False)],
        primary_key=True,
    )
    at: datetime | None = _timestamp(required=True)
    # None for a failed authentication (no key, or one that is unknown, revoked or expired).
    key_id: uuid.UUID | None = Field(default=None, sa_type=UUID(as_uuid=True))
    method: str = Field(sa_type=Text, sa_column_kwargs={"nullable": False})
    # The route's path template (`/v1/users/{user_id}`), never the path with its ids.
    route: str = Field(sa_type=Text, sa_column_kwargs={"nullable": False})
    status: int = Field(sa_type=SmallInteger, sa_column_kwargs={"nullable": False})
    # The client's address, kept for failed authentications only.
    client: str | None = _text()


# --- Local data: written by the API, never by a sync ----------------------------------------


class Override(SQLModel, table=True):
    """A local value shown instead of Clever's for one field of one record.

    Keyed by district and Clever id, so it outlives the record's soft delete and restore.
    `clever_value` is Clever's value when the override was set: a sync that finds another
    one leaves the override in place and warns (`override_shadowed`).
    """

    __tablename__ = "overrides"
    __table_args__ = (CheckConstraint("entity IN ('users', 'sections', 'terms')", name="entity"),)

    district_id: str = Field(
        sa_type=Text, sa_column_args=[ForeignKey("districts.id")], primary_key=True
    )
    entity: str = Field(sa_type=Text, primary_key=True)
    record_id: str = Field(sa_type=Text, primary_key=True)
    field: str = Field(sa_type=Text, primary_key=True)
    value: Any = Field(sa_type=JSONB, sa_column_kwargs={"nullable": False})
    clever_value: Any = Field(default=None, sa_type=JSONB, sa_column_kwargs={"nullable": True})
    updated_at: datetime | None = _timestamp(required=True)
    updated_by: str = Field(sa_type=Text, sa_column_kwargs={"nullable": False})


class Group(SQLModel, table=True):
    """A custom group of one district's students, owned by one of its teachers."""

    __tablename__ = "groups"
    __table_args__ = (
        Index(None, "district_id", "owner_id"),
        Index(None, "district_id", "source_section_id"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, sa_type=UUID(as_uuid=True), primary_key=True)
    district_id: str = _district_fk()
    name: str = Field(sa_type=Text, sa_column_kwargs={"nullable": False})
    owner_id: str = Field(sa_type=Text, sa_column_kwargs={"nullable": False})
    # The section the group was made from, if any.
    source_section_id: str | None = _text()
    created_at: datetime | None = _timestamp(required=True)
    created_by: str = Field(sa_type=Text, sa_column_kwargs={"nullable": False})
    updated_at: datetime | None = _timestamp(required=True)
    deleted_at: datetime | None = _timestamp()


class GroupMember(SQLModel, table=True):
    __tablename__ = "group_members"
    __table_args__ = (Index(None, "district_id", "user_id"),)

    group_id: uuid.UUID = Field(
        sa_type=UUID(as_uuid=True), sa_column_args=[ForeignKey("groups.id")], primary_key=True
    )
    user_id: str = Field(sa_type=Text, primary_key=True)
    district_id: str = Field(sa_type=Text, sa_column_kwargs={"nullable": False})
    added_at: datetime | None = _timestamp(required=True)
    added_by: str = Field(sa_type=Text, sa_column_kwargs={"nullable": False})


class GroupChange(SQLModel, table=True):
    """Who changed a group, when, and what: one row per change, never updated."""

    __tablename__ = "group_changes"
    __table_args__ = (Index(None, "group_id", "id"),)

    id: int | None = Field(
        default=None,
        sa_type=BigInteger,
        sa_column_args=[Identity(always=False)],
        primary_key=True,
    )
    group_id: uuid.UUID = Field(
        sa_type=UUID(as_uuid=True),
        sa_column_args=[ForeignKey("groups.id")],
        sa_column_kwargs={"nullable": False},
    )
    at: datetime | None = _timestamp(required=True)
    actor: str = Field(sa_type=Text, sa_column_kwargs={"nullable": False})
    action: str = Field(sa_type=Text, sa_column_kwargs={"nullable": False})
    detail: dict[str, Any] | None = _jsonb(required=True)


class Person(SQLModel, table=True):
    """One human behind a district's teacher, staff and district-admin records."""

    __tablename__ = "people"
    __table_args__ = (
        Index(
            None,
            "district_id",
            "email",
            unique=True,
            postgresql_where=text("email IS NOT NULL"),
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, sa_type=UUID(as_uuid=True), primary_key=True)
    district_id: str = _district_fk()
    # The normalized email its records are linked by; null for a record without a valid one.
    email: str | None = _text()
    created_at: datetime | None = _timestamp(required=True)


class PersonLink(SQLModel, table=True):
    """A user record's person. `pinned` links were set by an administrator (a split or a
    merge): syncs keep them as they are."""

    __tablename__ = "person_links"
    __table_args__ = (Index(None, "person_id"), Index(None, "district_id", "user_id"))

    user_id: str = Field(sa_type=Text, primary_key=True)
    district_id: str = Field(sa_type=Text, sa_column_kwargs={"nullable": False})
    person_id: uuid.UUID = Field(
        sa_type=UUID(as_uuid=True),
        sa_column_args=[ForeignKey("people.id")],
        sa_column_kwargs={"nullable": False},
    )
    pinned: bool = Field(
        default=False,
        sa_type=Boolean,
        sa_column_kwargs={"server_default": text("false"), "nullable": False},
    )
    linked_at: datetime | None = _timestamp(required=True)


class Change(SQLModel, table=True):
    """One change a merge made to a mirrored record or link, with the state it left.

    Written by database triggers on the live tables, in the transaction of the change, so a
    rolled-back run leaves none. `(xid, seq)` orders the log: `xid` is the writing
    transaction's id, and a reader only returns changes of transactions older than every
    transaction still running, so the order never changes under a reader's feet.
    """

    __tablename__ = "changes"
    __table_args__ = (Index(None, "district_id", "entity", "record_id", "seq"),)

    xid: int = Field(
        sa_type=BigInteger,
        primary_key=True,
        sa_column_kwargs={"server_default": text("(pg_current_xact_id()::text)::bigint")},
    )
    seq: int | None = Field(
        default=None,
        sa_type=BigInteger,
        sa_column_args=[Identity(always=False)],
        primary_key=True,
    )
    district_id: str = Field(sa_type=Text, sa_column_kwargs={"nullable": False})
    # A live table: `users`, `sections`, ... or a link table such as `enrollments`.
    entity: str = Field(sa_type=Text, sa_column_kwargs={"nullable": False})
    # The record's id; for a link, its key as a JSON array (`["section", "student"]`).
    record_id: str = Field(sa_type=Text, sa_column_kwargs={"nullable": False})
    # created, updated, deactivated, restored; for links started, updated, ended; touched:
    # rewritten without a change of its kept columns (a version, not fed to consumers).
    op: str = Field(sa_type=Text, sa_column_kwargs={"nullable": False})
    fields: list[str] | None = Field(default=None, sa_type=ARRAY(Text))
    run_id: uuid.UUID | None = Field(default=None, sa_type=UUID(as_uuid=True))
    applied_at: datetime | None = _timestamp(required=True)
    # A link's records by role: `section_id` and `user_id`, `school_id`, `student_id`.
    refs: dict[str, Any] | None = Field(default=None, sa_type=JSONB)
    # The row after the change (without `raw`, `content_hash` and sensitive fields); none
    # for enrollments, whose rows keep their own history.
    state: dict[str, Any] | None = Field(default=None, sa_type=JSONB)


class HistoryHorizon(SQLModel, table=True):
    """How far the change log was pruned: one row, written by the prune job."""

    __tablename__ = "history_horizon"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: int = Field(
        default=1, sa_type=SmallInteger, primary_key=True, sa_column_kwargs={"autoincrement": False}
    )
    # Changes applied before this instant are gone, except each key's newest one.
    pruned_before: datetime = Field(sa_type=DateTime(timezone=True))
    # The feed position (xid, seq) up to which changes may be missing.
    xid: int = Field(sa_type=BigInteger)
    seq: int = Field(sa_type=BigInteger)


class Webhook(SQLModel, table=True):
    """A subscriber to the change feed: its changes are POSTed to `url`, signed with
    `secret`, from where its cursor stands."""

    __tablename__ = "webhooks"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, sa_type=UUID(as_uuid=True), primary_key=True)
    url: str = Field(sa_type=Text, sa_column_kwargs={"nullable": False})
    secret: str = Field(sa_type=Text, sa_column_kwargs={"nullable": False})
    # Only changes of these entities, of these districts (None: all).
    entities: list[str] | None = Field(default=None, sa_type=ARRAY(Text))
    district_ids: list[str] | None = Field(default=None, sa_type=ARRAY(Text))
    created_at: datetime | None = _timestamp(required=True)
    created_by: str = Field(sa_type=Text, sa_column_kwargs={"nullable": False})
    deleted_at: datetime | None = _timestamp()
    # Set after too many failed attempts in a row; nothing is sent until resumed.
    paused_at: datetime | None = _timestamp()
    failures: int = Field(
        default=0,
        sa_type=Integer,
        sa_column_kwargs={"server_default": text("0"), "nullable": False},
    )
    # The feed position up to which its changes are batched into deliveries.
    cursor_xid: int = Field(sa_type=BigInteger, sa_column_kwargs={"nullable": False})
    cursor_seq: int = Field(sa_type=BigInteger, sa_column_kwargs={"nullable": False})


class WebhookDelivery(SQLModel, table=True):
    """One batch of changes for a webhook, sent until it succeeds or runs out of attempts."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index(None, "webhook_id", "created_at"),
        Index(None, "status", "next_attempt_at"),
        CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name="status"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, sa_type=UUID(as_uuid=True), primary_key=True)
    webhook_id: uuid.UUID = Field(
        sa_type=UUID(as_uuid=True),
        sa_column_args=[ForeignKey("webhooks.id")],
        sa_column_kwargs={"nullable": False},
    )
    created_at: datetime | None = _timestamp(required=True)
    from_cursor: str = Field(sa_type=Text, sa_column_kwargs={"nullable": False})
    to_cursor: str = Field(sa_type=Text, sa_column_kwargs={"nullable": False})
    changes: int = Field(sa_type=Integer, sa_column_kwargs={"nullable": False})
    # The JSON POSTed, the same on every attempt.
    body: dict[str, Any] = Field(sa_type=JSONB, sa_column_kwargs={"nullable": False})
    status: str = Field(sa_type=Text, sa_column_kwargs={"nullable": False})
    attempts: int = Field(
        default=0,
        sa_type=Integer,
        sa_column_kwargs={"server_default": text("0"), "nullable": False},
    )
    next_attempt_at: datetime | None = Field(
        default=None,
        sa_type=DateTime(timezone=True),
        sa_column_kwargs={"server_default": func.now()},
    )
    last_attempt_at: datetime | None = _timestamp()
    last_status_code: int | None = Field(default=None, sa_type=Integer)
    last_error: str | None = _text()
    delivered_at: datetime | None = _timestamp()

"""Response models of the roster API: the documented shape of every object it returns.

Read endpoints return JSON that Postgres builds from `app/mirror/queries/shapes.py`; these
models describe it (a test keeps both field lists equal) and are what OpenAPI publishes.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a list. Pass `next_cursor` back as `cursor` for the next page; null at
    the end."""

    data: list[T]
    next_cursor: str | None


class Source(BaseModel, Generic[T]):
    """Where a field's value comes from."""

    value: T | None = Field(description="The value shown in the record's own field.")
    clever_value: T | None = Field(description="The value Clever sent.")
    origin: Literal["clever", "override", "inferred"] = Field(
        description="`override`: set locally with `PUT .../overrides`; `inferred`: Clever "
        "sent none and the mirror derived one; `clever`: Clever's value."
    )
    updated_at: datetime | None = Field(description="When the override was set.")
    updated_by: str | None = Field(description="The name of the API key that set it.")


class Lifecycle(BaseModel):
    active: bool = Field(description="False once Clever stopped sharing the record.")
    updated_at: datetime = Field(description="When the mirror last changed the record.")
    deleted_at: datetime | None = Field(description="When the record became inactive.")


class District(Lifecycle):
    id: str
    name: str | None
    state: str | None
    sis_type: str | None
    nces_id: str | None
    mdr_number: str | None
    portal_url: str | None
    last_clever_sync: datetime | None
    pause_start: datetime | None = Field(description="Start of Clever's sync pause, if any.")
    pause_end: datetime | None = Field(description="End of Clever's sync pause (open if empty).")
    paused: bool = Field(
        description="Clever has the district's syncing paused now (`state` is `paused`, or now "
        "is between `pause_start` and `pause_end`): scheduled full syncs skip it and the "
        "mass-change guard does not hold its runs."
    )
    sensitive_fields_enabled: bool | None = Field(
        description="Whether the district's sensitive student fields are kept (set at its "
        "first sync from `SENSITIVE_FIELDS_ENABLED`, then by `PATCH /v1/districts/{id}`); "
        "null: not synced since, and `SENSITIVE_FIELDS_ENABLED` applies."
    )
    connection: Literal["connected", "disconnected"] = Field(
        description="`disconnected` while no Clever token serves the district: its data is "
        "kept, scheduled syncs skip it, and it reconnects by itself when a token serves it "
        "again."
    )


class Principal(BaseModel):
    name: str | None
    email: str | None


class Address(BaseModel):
    address: str | None
    city: str | None
    state: str | None
    zip: str | None


class School(Lifecycle):
    id: str
    district_id: str
    name: str | None
    school_number: str | None
    sis_id: str | None
    state_id: str | None
    nces_id: str | None
    mdr_number: str | None
    low_grade: str | None
    high_grade: str | None
    phone: str | None
    principal: Principal
    address: Address


class TermSources(BaseModel):
    name: Source[str]
    active: Source[bool]
    lineage_id: Source[str]


class Term(Lifecycle):
    id: str
    district_id: str
    name: str | None = Field(description="Clever's name, or the override's.")
    start_date: date | None
    end_date: date | None
    lineage_id: str = Field(
        description="The first term of the chain this one continues (a term Clever recreated"
        " with a new id, same name and overlapping dates); its own id when it continues none."
    )
    sources: TermSources = Field(
        description="`active` is true for a term Clever deleted when an override reactivated it."
    )


class Course(Lifecycle):
    id: str
    district_id: str
    name: str | None
    number: str | None
    lineage_id: str = Field(
        description="The first course of the chain this one continues (a course Clever"
        " recreated with a new id, same number or name); its own id when it continues none."
    )


class SectionSources(BaseModel):
    display_name: Source[str]


class Section(Lifecycle):
    id: str
    district_id: str
    name: str | None = Field(description="The name Clever sent, if any.")
    display_name: str | None = Field(
        description="The override's name if one is set; else `name`, or one made from course, "
        "period and teacher when Clever sent none."
    )
    period: str | None
    section_number: str | None
    sis_id: str | None
    subject: str | None
    grade: str | None
    school_id: str | None
    course_id: str | None
    term_id: str | None
    primary_teacher_id: str | None
    sources: SectionSources


class SectionInContext(Section):
    """A section with its school, course and term (null when Clever does not share them)."""

    school: School | None
    course: Course | None
    term: Term | None


class UserSection(SectionInContext):
    role: Literal["student", "teacher"] = Field(description="The user's role in the section.")


class TermBucket(BaseModel):
    term: Term | None = Field(description="Null for the bucket of sections without a term.")
    current: bool = Field(description="Today falls within the term's dates.")
    sections: list[UserSection]


class TermBuckets(BaseModel):
    data: list[TermBucket]


class Name(BaseModel):
    first: str | None
    middle: str | None
    last: str | None
    preferred_first: str | None


class SensitiveFields(BaseModel):
    """Sensitive student fields, shown only to keys with `roster:sensitive`."""

    iep_status: str | None = None
    ell_status: bool | None = None
    frl_status: str | None = None
    section_504_status: bool | None = None
    gifted_status: bool | None = None
    disability: dict[str, Any] | None = Field(
        default=None, description="Clever's disability object, as sent."
    )
    home_language: str | None = None
    home_language_code: str | None = None


class UserSources(BaseModel):
    preferred_name: Source[str]
    graduation_year: Source[int] = Field(
        description="`inferred` from the student's grade when Clever sent no year."
    )


UserRole = Literal["student", "teacher", "staff", "district_admin", "contact"]


class User(Lifecycle):
    id: str
    district_id: str
    roles: list[UserRole]
    person_id: uuid.UUID | None = Field(
        description="The person behind this teacher, staff or district-admin record "
        "(`GET /v1/people/{id}`); null for students and contacts."
    )
    name: Name
    preferred_name: str | None = Field(
        description="The override's preferred name if one is set, else Clever's "
        "(`name.preferred_first` shows the same value)."
    )
    email: str | None = Field(description="As Clever sent it, even when not a valid address.")
    email_valid: bool | None
    primary_school_id: str | None
    sis_id: str | None
    state_id: str | None
    student_number: str | None
    teacher_number: str | None
    staff_number: str | None
    title: str | None
    grade: str | None
    graduation_year: int | None = Field(
        description="The override's year, else Clever's, else one inferred from the grade."
    )
    dob: date | None
    gender: str | None
    phone: str | None
    sensitive: SensitiveFields | None = Field(
        default=None,
        description="Present only for keys with `roster:sensitive`; null when the district "
        "has sensitive data disabled or the user has none.",
    )
    sources: UserSources


class LinkedUser(User):
    section_ids: list[str] = Field(description="The sections that link this user to the caller's.")


class Contact(User):
    relationship: str | None
    type: str | None


class SectionTeacher(User):
    position: int = Field(description="0 for the primary teacher; co-teachers follow in order.")
    primary: bool


class SectionDetail(SectionInContext):
    teachers: list[SectionTeacher]
    students: list[User]


class SchoolUser(User):
    primary: bool = Field(
        description="The school is the user's primary school; false for users only enrolled "
        "in (or teaching) its sections."
    )


class GroupMember(BaseModel):
    user_id: str
    status: Literal["active", "inactive"] = Field(
        description="`inactive` while Clever no longer shares the student; `active` again "
        "once it does."
    )
    added_at: datetime


class Group(Lifecycle):
    """A custom group of one district's students, owned by one of its teachers. Syncs
    never change it."""

    id: uuid.UUID
    district_id: str
    name: str
    owner_id: str = Field(description="The teacher who owns the group.")
    source_section_id: str | None = Field(description="The section it was made from, if any.")
    created_at: datetime
    created_by: str = Field(description="The name of the API key that created it.")
    members: list[GroupMember] = Field(description="In the order they were added.")


class Groups(BaseModel):
    data: list[Group]


class GroupChange(BaseModel):
    at: datetime
    actor: str = Field(description="The name of the API key that made the change.")
    action: Literal["created", "renamed", "members_added", "member_removed", "deleted"]
    detail: dict[str, Any]


class GroupHistory(BaseModel):
    data: list[GroupChange] = Field(description="Oldest first.")


class PersonRecord(BaseModel):
    user_id: str
    roles: list[UserRole]
    active: bool
    pinned: bool = Field(
        description="Linked by an administrator (split or merge): syncs leave it as it is."
    )


class Person(BaseModel):
    """One human behind a district's teacher, staff and district-admin records that share a
    valid email. Students and contacts are never linked."""

    id: uuid.UUID = Field(description="Stable across syncs.")
    district_id: str
    email: str | None = Field(description="The normalized email its records share.")
    user_ids: list[str]
    roles: list[UserRole] = Field(description="Every role of its records.")
    records: list[PersonRecord]

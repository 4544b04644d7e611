"""Custom groups: made by hand, from a section, from a teacher's students, or by splitting a
section; renamed, changed member by member, soft-deleted, and every change kept.

Writes need `roster:write`, reads `roster:read`. A group of a district the key may not see
is answered 404, like an id that does not exist.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Body, Path
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from app.api.auth import AUTH_RESPONSES
from app.api.deps import (
    ID_PATTERN,
    IncludeInactive,
    Reader,
    ReaderDep,
    SectionId,
    UserId,
    WriterDep,
    not_found,
    scope_of,
)
from app.api.overrides import LocalText
from app.api.pagination import JSONText, PageDep, object_response, page_response
from app.api.problems import ProblemError, not_found_responses
from app.api.schemas import Group, GroupHistory, Groups, Page
from app.local import groups
from app.mirror.queries import shapes
from app.mirror.queries.collections import SECTIONS, USERS, Visibility, find_record
from app.mirror.queries.groups import get_group, group_history, groups_of

router = APIRouter(prefix="/v1", tags=["groups"], responses=AUTH_RESPONSES)
NOT_FOUND = not_found_responses("group")

GroupId = Annotated[uuid.UUID, Path(description="A group's id.")]
RecordId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
# More members than any section has; a bound, so one request cannot ask for millions.
MAX_MEMBERS = 5000


class NewGroup(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: LocalText
    owner_id: RecordId = Field(description="A teacher of the group's district.")
    district_id: RecordId | None = Field(
        default=None, description="Optional: the owner's district, checked when given."
    )
    member_ids: list[RecordId] | None = Field(
        default=None, max_length=MAX_MEMBERS, description="Students of the district."
    )
    from_section_id: RecordId | None = Field(
        default=None, description="Copy the section's current students into the group."
    )
    from_owner_students: bool = Field(
        default=False,
        description="Members come from the owner's current students: `member_ids` (a "
        "picked subset) must be among them; without `member_ids`, all of them.",
    )


class GroupRename(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: LocalText


class NewMembers(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_ids: list[RecordId] = Field(min_length=1, max_length=MAX_MEMBERS)


# What `lists` is when given (the field states its bounds and the ids' pattern).
_LISTS: dict[str, Any] = {"type": "array", "items": {"type": "array", "items": {"type": "string"}}}


class SectionSplit(BaseModel):
    """Exactly one of `count` and `lists`."""

    model_config = ConfigDict(
        extra="forbid",
        # With `count` (a number), `lists` must be absent or null; else `lists` is needed.
        json_schema_extra={
            "if": {"required": ["count"], "properties": {"count": {"type": "integer"}}},
            "then": {"properties": {"lists": {"type": "null"}}},
            "else": {"required": ["lists"], "properties": {"lists": _LISTS}},
        },
    )

    count: int | None = Field(
        default=None, ge=2, le=100, description="How many sub-groups (round-robin by name)."
    )
    owner_id: RecordId | None = Field(
        default=None,
        description="Owner of every sub-group; the section's primary teacher when left out.",
    )
    lists: list[list[RecordId]] | None = Field(
        default=None,
        min_length=2,
        max_length=100,
        description="The sub-groups' students, instead of round-robin: disjoint lists of the "
        "section's current students.",
    )
    name: LocalText | None = Field(
        default=None,
        description="Sub-groups are named `<name> 1`, `<name> 2`, ...; the "
        "section's display name when left out.",
    )

    @model_validator(mode="after")
    def _count_or_lists(self) -> SectionSplit:
        if (self.count is None) == (self.lists is None):
            raise ValueError(
                "give exactly one of `count` (round-robin) or `lists` (one per sub-group)"
            )
        return self


def _invalid(error: groups.GroupError | str) -> ProblemError:
    return ProblemError(422, str(error))


def _scope(reader: Reader, *, include_inactive: bool = False) -> Visibility:
    return scope_of(reader.principal, include_inactive=include_inactive)


async def _group_response(reader: Reader, group_id: uuid.UUID, *, status: int = 200) -> JSONText:
    body = await get_group(reader.connection, group_id, _scope(reader, include_inactive=True))
    assert body is not None
    response = object_response(body)
    response.status_code = status
    return response


async def _owner_district(connection: asyncpg.Connection, reader: Reader, owner_id: str) -> str:
    """The district of the owner, among those the key may see (else 404, as for an id that
    does not exist)."""
    found = await find_record(connection, USERS, owner_id, _scope(reader))
    if found is None:
        raise not_found("user (owner_id)", owner_id)
    return found[0]


@router.post(
    "/groups",
    name="groups-create",
    summary="Create a group",
    status_code=201,
    response_model=Group,
    responses=not_found_responses("owner (a user the key may see)"),
)
async def create_group(writer: WriterDep, body: Annotated[NewGroup, Body()]) -> JSONText:
    """Make a group of one district's students, owned by one of its teachers: from
    `member_ids`, a section's current students (`from_section_id`), the owner's students
    (`from_owner_students`), or several of these at once."""
    connection = writer.connection
    district_id = await _owner_district(connection, writer, body.owner_id)
    if body.district_id is not None and body.district_id != district_id:
        raise _invalid("owner_id is a teacher of another district than district_id")
    members = list(body.member_ids or [])
    async with connection.transaction():
        try:
            await groups.check_owner(connection, district_id, body.owner_id)
            if body.from_owner_students:
                theirs = await groups.teacher_students(connection, district_id, body.owner_id)
                if body.member_ids is None:
                    members = sorted(theirs)
                elif strangers := [m for m in members if m not in theirs]:
                    raise groups.GroupError(
                        f"not students of the owner: {', '.join(map(repr, strangers[:10]))}"
                    )
            if body.from_section_id is not None:
                section = await connection.fetchval(
                    "SELECT true FROM sections WHERE id = $1 AND district_id = $2",
                    body.from_section_id,
                    district_id,
                )
                if not section:
                    raise groups.GroupError(
                        f"from_section_id {body.from_section_id!r} is not a section of the "
                        "group's district"
                    )
                members += await groups.section_students(
                    connection, district_id, body.from_section_id
                )
            members = await groups.check_students(connection, district_id, members)
        except groups.GroupError as error:
            raise _invalid(error) from None
        group_id = await groups.create_group(
            connection,
            district_id=district_id,
            name=body.name,
            owner_id=body.owner_id,
            member_ids=members,
            source_section_id=body.from_section_id,
            actor=writer.principal.name,
        )
    return await _group_response(writer, group_id, status=201)


@router.get(
    "/groups/{group_id}",
    name="groups-get",
    summary="Get a group",
    response_model=Group,
    responses=NOT_FOUND,
)
async def read_group(
    group_id: GroupId, reader: ReaderDep, include_inactive: IncludeInactive = False
) -> JSONText:
    """One group and its members (with `include_inactive`, a deleted group too)."""
    body = await get_group(
        reader.connection, group_id, _scope(reader, include_inactive=include_inactive)
    )
    if body is None:
        raise not_found("group", str(group_id))
    return object_response(body)


async def _locked(writer: Reader, group_id: uuid.UUID) -> asyncpg.Record:
    row = await groups.lock_group(writer.connection, group_id, writer.principal.district_ids)
    if row is None:
        raise not_found("group", str(group_id))
    return row


@router.patch(
    "/groups/{group_id}",
    name="groups-rename",
    summary="Rename a group",
    response_model=Group,
    responses=NOT_FOUND,
)
async def rename_group(
    group_id: GroupId, writer: WriterDep, body: Annotated[GroupRename, Body()]
) -> JSONText:
    """Rename a group."""
    async with writer.connection.transaction():
        row = await _locked(writer, group_id)
        await groups.rename_group(
            writer.connection, group_id, row["name"], body.name, writer.principal.name
        )
    return await _group_response(writer, group_id)


@router.delete(
    "/groups/{group_id}",
    name="groups-delete",
    summary="Delete a group",
    response_model=Group,
    responses=NOT_FOUND,
)
async def delete_group(group_id: GroupId, writer: WriterDep) -> JSONText:
    """Delete a group (softly: it and its history stay readable with `include_inactive`)."""
    async with writer.connection.transaction():
        await _locked(writer, group_id)
        await groups.delete_group(writer.connection, group_id, writer.principal.name)
    return await _group_response(writer, group_id)


@router.post(
    "/groups/{group_id}/members",
    name="groups-add-members",
    summary="Add students to a group",
    response_model=Group,
    responses=NOT_FOUND,
)
async def add_members(
    group_id: GroupId, writer: WriterDep, body: Annotated[NewMembers, Body()]
) -> JSONText:
    """Add students of the group's district (those already in it stay as they are)."""
    connection = writer.connection
    async with connection.transaction():
        row = await _locked(writer, group_id)
        try:
            user_ids = await groups.check_students(connection, row["district_id"], body.user_ids)
        except groups.GroupError as error:
            raise _invalid(error) from None
        await groups.add_members(
            connection, group_id, row["district_id"], user_ids, writer.principal.name
        )
    return await _group_response(writer, group_id)


@router.delete(
    "/groups/{group_id}/members/{user_id}",
    name="groups-remove-member",
    summary="Remove a student from a group",
    response_model=Group,
    responses=not_found_responses("group or member"),
)
async def remove_member(group_id: GroupId, user_id: UserId, writer: WriterDep) -> JSONText:
    """Take one student out of the group."""
    async with writer.connection.transaction():
        await _locked(writer, group_id)
        if not await groups.remove_member(
            writer.connection, group_id, user_id, writer.principal.name
        ):
            raise not_found("member of the group", user_id)
    return await _group_response(writer, group_id)


@router.get(
    "/groups/{group_id}/history",
    name="groups-history",
    summary="Get a group's history",
    response_model=GroupHistory,
    responses=NOT_FOUND,
)
async def read_group_history(group_id: GroupId, reader: ReaderDep) -> JSONText:
    """Every change of the group, oldest first: who made it, when, and what it was."""
    body = await group_history(reader.connection, group_id, _scope(reader))
    if body is None:
        raise not_found("group", str(group_id))
    return object_response(body)


@router.post(
    "/sections/{section_id}/split",
    name="sections-split",
    summary="Split a section into groups",
    status_code=201,
    response_model=Groups,
    responses=not_found_responses("section"),
)
async def split_section(
    section_id: SectionId, writer: WriterDep, body: Annotated[SectionSplit, Body()]
) -> JSONText:
    """Split a section's current students into sub-groups: `count` groups dealt
    round-robin by name (every student lands in exactly one), or the given `lists` (disjoint
    lists of its current students)."""
    connection = writer.connection
    section = await connection.fetchrow(
        f"SELECT s.district_id, {shapes.section_fields('s')['display_name']} AS display_name,"
        f" s.primary_teacher_id FROM sections s {shapes.overrides_join('s', 'sections')}"
        " WHERE s.id = $1 AND s.deleted_at IS NULL"
        " AND ($2::text[] IS NULL OR s.district_id = ANY($2))",
        section_id,
        writer.principal.district_ids,
    )
    if section is None:
        raise not_found("section", section_id)
    district_id: str = section["district_id"]
    owner_id = body.owner_id or section["primary_teacher_id"]
    if owner_id is None:
        raise _invalid("the section has no primary teacher: give owner_id")
    name = body.name or section["display_name"] or section_id
    async with connection.transaction():
        students = await groups.section_students(connection, district_id, section_id)
        try:
            await groups.check_owner(connection, district_id, owner_id)
            if body.lists is not None:
                parts = [list(dict.fromkeys(part)) for part in body.lists]
                listed = [user_id for part in parts for user_id in part]
                if len(listed) != len(set(listed)):
                    raise groups.GroupError("a student is in more than one list")
                if strangers := sorted(set(listed) - set(students)):
                    raise groups.GroupError(
                        "not current students of the section: "
                        + ", ".join(map(repr, strangers[:10]))
                    )
            else:
                assert body.count is not None
                parts = groups.round_robin(students, body.count)
        except groups.GroupError as error:
            raise _invalid(error) from None
        created = [
            await groups.create_group(
                connection,
                district_id=district_id,
                name=f"{name} {number}",
                owner_id=owner_id,
                member_ids=part,
                source_section_id=section_id,
                actor=writer.principal.name,
            )
            for number, part in enumerate(parts, start=1)
        ]
    scope = _scope(writer)
    bodies = [await get_group(connection, group_id, scope) for group_id in created]
    response = object_response('{"data":[' + ",".join(b for b in bodies if b) + "]}")
    response.status_code = 201
    return response


@router.get(
    "/users/{user_id}/groups",
    name="users-list-groups",
    summary="List a user's groups",
    response_model=Page[Group],
    responses=not_found_responses("user"),
)
async def list_user_groups(user_id: UserId, reader: ReaderDep, page: PageDep) -> JSONText:
    """Groups the user owns or is a member of, in id order."""
    seen = _scope(reader, include_inactive=True)
    if await find_record(reader.connection, USERS, user_id, seen) is None:
        raise not_found("user", user_id)
    rows = await groups_of(
        reader.connection, _scope(reader), user_id=user_id, limit=page.limit, after=page.after
    )
    return page_response(rows, page.limit)


@router.get(
    "/sections/{section_id}/groups",
    name="sections-list-groups",
    summary="List a section's groups",
    response_model=Page[Group],
    responses=not_found_responses("section"),
)
async def list_section_groups(section_id: SectionId, reader: ReaderDep, page: PageDep) -> JSONText:
    """Groups made from the section (copied or split from it), in id order."""
    seen = _scope(reader, include_inactive=True)
    if await find_record(reader.connection, SECTIONS, section_id, seen) is None:
        raise not_found("section", section_id)
    rows = await groups_of(
        reader.connection, _scope(reader), section_id=section_id, limit=page.limit, after=page.after
    )
    return page_response(rows, page.limit)

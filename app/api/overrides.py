"""Local overrides of a user's, section's or term's Clever values.

`PUT` sets the fields it names (null removes that field's override), `DELETE` removes all of
the record's overrides; both answer with the record as `GET` shows it. Syncs never change
an override; when Clever's value moves under one, a data warning `override_shadowed` says so.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.api.auth import AUTH_RESPONSES
from app.api.deps import Reader, SectionId, TermId, UserId, WriterDep, not_found, scope_of
from app.api.pagination import JSONText, object_response
from app.api.problems import ProblemError, not_found_responses
from app.api.schemas import SectionDetail, Term, User
from app.local import overrides
from app.mirror import merge
from app.mirror.queries import roster
from app.mirror.queries.collections import TERMS, USERS, get_record

router = APIRouter(prefix="/v1", tags=["overrides"], responses=AUTH_RESPONSES)

LocalText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=255, pattern=r"^[^\x00]*$"),
]


class _Overrides(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    def changes(self) -> dict[str, Any]:
        """The fields the request named (null ones remove their override)."""
        named = {name: getattr(self, name) for name in self.model_fields_set}
        if not named:
            raise ProblemError(422, f"Name at least one of: {', '.join(type(self).model_fields)}.")
        return named


class UserOverrides(_Overrides):
    preferred_name: LocalText | None = Field(default=None, description="Shown as the name to use.")
    graduation_year: int | None = Field(
        default=None, ge=1900, le=2200, description="Students only."
    )


class SectionOverrides(_Overrides):
    display_name: LocalText | None = None


class TermOverrides(_Overrides):
    name: LocalText | None = None
    active: Literal[True] | None = Field(
        default=None, description="`true` keeps a term Clever deleted in use (active)."
    )
    lineage_id: None = Field(
        default=None,
        description="`null` cuts the term from the chain it was found to continue: it starts"
        " its own (`DELETE` of the overrides links it again).",
    )


async def _record(reader: Reader, entity: str, record_id: str, what: str) -> tuple[str, list[str]]:
    """The record's district and roles (users), or 404 when the key may not see it."""
    roles = "roles" if entity == "users" else "ARRAY[]::text[]"
    row = await reader.connection.fetchrow(
        f"SELECT district_id, {roles} AS roles FROM {entity}"
        " WHERE id = $1 AND ($2::text[] IS NULL OR district_id = ANY($2::text[]))",
        record_id,
        reader.principal.district_ids,
    )
    if row is None:
        raise not_found(what, record_id)
    return row["district_id"], list(row["roles"] or [])


async def _shown(reader: Reader, entity: str, record_id: str) -> JSONText:
    """The record as `GET` shows it (or with its history when it is inactive)."""
    for include_inactive in (False, True):
        scope = scope_of(reader.principal, include_inactive=include_inactive)
        if entity == "sections":
            body = await roster.section_detail(reader.connection, record_id, scope)
        else:
            kind = USERS if entity == "users" else TERMS
            body = await get_record(reader.connection, kind, record_id, scope)
        if body is not None:
            return object_response(body)
    raise AssertionError(f"{entity} {record_id} vanished while being edited")


async def _edit(
    writer: Reader, entity: str, record_id: str, what: str, changes: dict[str, Any] | None
) -> JSONText:
    """Apply `changes` (None: remove every override) and answer with the record."""
    district_id, roles = await _record(writer, entity, record_id, what)
    if changes and changes.get("graduation_year") is not None and "student" not in roles:
        raise ProblemError(422, "Only a student has a graduation year.")
    if changes and "lineage_id" in changes:
        # The one lineage an override sets: the term's own (a cut from its predecessor).
        changes = changes | {"lineage_id": record_id}
    connection = writer.connection
    async with connection.transaction():
        if changes is None:
            await overrides.clear_overrides(connection, entity, district_id, record_id)
        else:
            await overrides.set_overrides(
                connection, entity, district_id, record_id, changes, actor=writer.principal.name
            )
        await merge.resolve_override_warnings(connection, district_id, entity, record_id)
    return await _shown(writer, entity, record_id)


@router.put(
    "/users/{user_id}/overrides",
    name="users-put-overrides",
    summary="Set a user's overrides",
    response_model=User,
    responses=not_found_responses("user"),
)
async def put_user_overrides(
    user_id: UserId, writer: WriterDep, body: Annotated[UserOverrides, Body()]
) -> JSONText:
    """Set a user's `preferred_name` and a student's `graduation_year` locally (null removes
    that override). Needs `roster:write`."""
    return await _edit(writer, "users", user_id, "user", body.changes())


@router.delete(
    "/users/{user_id}/overrides",
    name="users-delete-overrides",
    summary="Remove a user's overrides",
    response_model=User,
    responses=not_found_responses("user"),
)
async def delete_user_overrides(user_id: UserId, writer: WriterDep) -> JSONText:
    """Remove every override of the user: Clever's values show again."""
    return await _edit(writer, "users", user_id, "user", None)


@router.put(
    "/sections/{section_id}/overrides",
    name="sections-put-overrides",
    summary="Set a section's overrides",
    response_model=SectionDetail,
    responses=not_found_responses("section"),
)
async def put_section_overrides(
    section_id: SectionId, writer: WriterDep, body: Annotated[SectionOverrides, Body()]
) -> JSONText:
    """Set a section's `display_name` locally (null removes the override)."""
    return await _edit(writer, "sections", section_id, "section", body.changes())


@router.delete(
    "/sections/{section_id}/overrides",
    name="sections-delete-overrides",
    summary="Remove a section's overrides",
    response_model=SectionDetail,
    responses=not_found_responses("section"),
)
async def delete_section_overrides(section_id: SectionId, writer: WriterDep) -> JSONText:
    """Remove the section's overrides."""
    return await _edit(writer, "sections", section_id, "section", None)


@router.put(
    "/terms/{term_id}/overrides",
    name="terms-put-overrides",
    summary="Set a term's overrides",
    response_model=Term,
    responses=not_found_responses("term"),
)
async def put_term_overrides(
    term_id: TermId, writer: WriterDep, body: Annotated[TermOverrides, Body()]
) -> JSONText:
    """Set a term's `name` locally, or keep a term Clever deleted active (`"active": true`);
    null removes that override."""
    return await _edit(writer, "terms", term_id, "term", body.changes())


@router.delete(
    "/terms/{term_id}/overrides",
    name="terms-delete-overrides",
    summary="Remove a term's overrides",
    response_model=Term,
    responses=not_found_responses("term"),
)
async def delete_term_overrides(term_id: TermId, writer: WriterDep) -> JSONText:
    """Remove the term's overrides."""
    return await _edit(writer, "terms", term_id, "term", None)

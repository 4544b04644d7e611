"""The change feed: what each sync changed, in order, from a cursor.

A consumer keeps the `next_cursor` of its last read and asks again later; `GET
/v1/changes/latest` gives the cursor to start from when only changes to come matter.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from app.api.auth import AUTH_RESPONSES
from app.api.deps import DistrictFilter, ReaderDep
from app.api.pagination import JSONText
from app.api.problems import Problem, ProblemError
from app.mirror.queries import changes
from app.mirror.queries.changes import Entity

router = APIRouter(prefix="/v1", tags=["changes"], responses=AUTH_RESPONSES)

CURSOR_PATTERN = r"^[0-9]{1,19}-[0-9]{1,19}$"


class Change(BaseModel):
    """One change a sync applied. A link's change (`user_schools`, `section_teachers`,
    `contact_relationships`, `enrollments`) names its records: `section_id` and `user_id`
    (the teacher or student) for sections, `user_id` and `school_id` (and `role`) for
    schools, `user_id` (the contact) and `student_id` for contacts; its `id` is the link's
    key as a JSON array."""

    model_config = ConfigDict(extra="allow")

    seq: int = Field(description="Unique and rising within a run; the cursor orders the feed.")
    entity: Entity
    id: str
    district_id: str
    op: Literal["created", "updated", "deactivated", "restored", "started", "ended"]
    fields: list[str] | None = Field(
        description="The changed columns (of an update, or beside a restore); null otherwise."
    )
    run_id: UUID | None
    applied_at: datetime
    section_id: str | None = None
    user_id: str | None = None
    school_id: str | None = None
    student_id: str | None = None
    role: str | None = None


class ChangePage(BaseModel):
    data: list[Change]
    next_cursor: str = Field(description="Where to read on from: pass it as `cursor` next time.")


class ChangeCursor(BaseModel):
    cursor: str


Cursor = Annotated[
    str | None,
    Query(
        pattern=CURSOR_PATTERN,
        description="A `next_cursor` (or `/v1/changes/latest`'s `cursor`); none: from the"
        " oldest change kept.",
    ),
]


def _position(cursor: str) -> changes.Position:
    if not re.fullmatch(CURSOR_PATTERN, cursor):
        raise ProblemError(422, "`cursor` is not a cursor this API returned.")
    xid, seq = (int(part) for part in cursor.split("-"))
    if max(xid, seq) >= 2**63:
        raise ProblemError(422, "`cursor` is not a cursor this API returned.")
    return changes.Position(xid, seq)


async def feed_position(
    connection: asyncpg.Connection, cursor: str | None
) -> changes.Position | None:
    """Where a cursor points (the oldest change kept for None); 410 when the changes after
    it are no longer all kept."""
    kept = await changes.horizon(connection)
    if cursor is None:
        return kept.position
    after = _position(cursor)
    if after < kept.position:
        raise ProblemError(
            410,
            "The changes after this cursor are no longer kept; read the records again and"
            " go on from `/v1/changes/latest`.",
            title="Cursor expired",
        )
    return after


@router.get(
    "/changes",
    name="changes-list",
    summary="List changes",
    response_model=ChangePage,
    responses={
        410: {"model": Problem, "description": "The cursor is older than the history kept."}
    },
)
async def list_changes(
    reader: ReaderDep,
    cursor: Cursor = None,
    district_id: DistrictFilter = None,
    entity: Annotated[Entity | None, Query(description="Only changes of this kind.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Changes per answer.")] = 100,
) -> JSONText:
    """Changes after `cursor`, oldest first, of the districts the key may see. `data` is
    empty when nothing changed since; keep `next_cursor` either way. A cursor older than
    the history kept (`HISTORY_RETENTION_DAYS`) is 410: start again from
    `/v1/changes/latest` after a full read."""
    after = await feed_position(reader.connection, cursor)
    assert after is not None
    entries, position = await changes.read(
        reader.connection,
        after,
        district_ids=reader.principal.district_ids,
        district_id=district_id,
        entities=[entity] if entity is not None else None,
        limit=limit,
    )
    body = ",".join(entries)
    return JSONText(f'{{"data":[{body}],"next_cursor":"{position}"}}'.encode())


@router.get(
    "/changes/latest",
    name="changes-latest",
    summary="Get the latest change cursor",
    response_model=ChangeCursor,
)
async def latest_cursor(reader: ReaderDep) -> ChangeCursor:
    """The cursor after every change made so far: read from it to get only what comes."""
    return ChangeCursor(cursor=str(await changes.latest(reader.connection)))

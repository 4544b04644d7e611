"""The audit trail of key use, for `admin` keys."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field

from app import audit
from app.api.auth import AUTH_RESPONSES, AdminAccess
from app.api.pagination import DEFAULT_LIMIT, IdCursor, Limit, in_utc, iso_datetime
from app.api.schemas import Page

router = APIRouter(prefix="/v1", tags=["audit"], responses=AUTH_RESPONSES)


class AuditEvent(BaseModel):
    id: int
    at: datetime
    key_id: uuid.UUID | None = Field(description="None: the authentication failed.")
    key_name: str | None
    method: str
    route: str = Field(description="The route's path template, such as `/v1/users/{user_id}`.")
    status: int
    client: str | None = Field(description="The client's address, for failed authentications.")


@router.get(
    "/audit", name="audit-list", summary="List audit events", response_model=Page[AuditEvent]
)
async def list_audit_events(
    principal: AdminAccess,
    request: Request,
    limit: Limit = DEFAULT_LIMIT,
    cursor: IdCursor = None,
    key_id: Annotated[uuid.UUID | None, Query(description="Only this key's requests.")] = None,
    status: Annotated[
        int | None, Query(ge=100, le=599, description="Only answers with this status.")
    ] = None,
    since: Annotated[
        datetime | None,
        BeforeValidator(iso_datetime),
        AfterValidator(in_utc),
        Query(description="Only requests at or after this time (ISO 8601)."),
    ] = None,
) -> Page[AuditEvent]:
    """Requests that presented an API key, or failed to, newest first: key, route template,
    status and time; for failed authentications the client's address. No query values,
    bodies or secrets are kept. Events reach the trail within a second or two, and are kept
    AUDIT_RETENTION_DAYS."""
    async with request.state.pool.acquire() as connection:
        rows = await audit.read(
            connection,
            district_ids=principal.district_ids,
            key_id=key_id,
            status=status,
            since=since,
            before_id=cursor,
            limit=limit + 1,
        )
    shown = [AuditEvent(**dict(row)) for row in rows[:limit]]
    more = len(rows) > limit
    return Page[AuditEvent](data=shown, next_cursor=str(shown[-1].id) if more else None)

"""Districts the key may see, and the one setting an administrator changes per district."""

from __future__ import annotations

from typing import Annotated

import asyncpg
from fastapi import APIRouter, Body, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from app.api.auth import AUTH_RESPONSES, AdminAccess
from app.api.deps import (
    DistrictId,
    IncludeInactive,
    ReaderDep,
    get_or_404,
    listing_of,
    not_found,
    scope_of,
)
from app.api.pagination import FiltersDep, JSONText, PageDep, object_response, page_response
from app.api.problems import not_found_responses
from app.api.schemas import District, Page
from app.local import sensitive
from app.mirror.queries.collections import DISTRICTS, get_record, list_records

router = APIRouter(prefix="/v1", tags=["districts"], responses=AUTH_RESPONSES)


@router.get(
    "/districts", name="districts-list", summary="List districts", response_model=Page[District]
)
async def list_districts(reader: ReaderDep, page: PageDep, filters: FiltersDep) -> JSONText:
    """Districts mirrored from Clever that the key may see, in id order."""
    rows = await list_records(
        reader.connection, DISTRICTS, listing_of(reader.principal, page, filters)
    )
    return page_response(rows, page.limit)


@router.get(
    "/districts/{district_id}",
    name="districts-get",
    summary="Get a district",
    response_model=District,
    responses=not_found_responses("district"),
)
async def get_district(
    district_id: DistrictId,
    reader: ReaderDep,
    include_inactive: IncludeInactive = False,
) -> JSONText:
    """One district."""
    return await get_or_404(
        reader, DISTRICTS, district_id, what="district", include_inactive=include_inactive
    )


class DistrictChanges(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    sensitive_fields_enabled: StrictBool = Field(
        description="Keep the district's sensitive student fields (from its next sync on). "
        "`false` erases every stored value at once, raw records included."
    )


@router.patch(
    "/districts/{district_id}",
    name="districts-patch",
    summary="Turn a district's sensitive fields on or off",
    response_model=District,
    responses=not_found_responses("district"),
)
async def patch_district(
    district_id: DistrictId,
    principal: AdminAccess,
    request: Request,
    changes: Annotated[DistrictChanges, Body()],
) -> JSONText:
    """Enable or disable the district's sensitive student fields. Needs `admin`."""
    if not principal.sees(district_id):
        raise not_found("district", district_id)
    pool: asyncpg.Pool = request.state.pool
    async with pool.acquire() as connection:
        if not await sensitive.set_enabled(
            connection, district_id, changes.sensitive_fields_enabled
        ):
            raise not_found("district", district_id)
        body = await get_record(
            connection, DISTRICTS, district_id, scope_of(principal, include_inactive=True)
        )
    assert body is not None
    return object_response(body)

"""Districts the key may see."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.auth import AUTH_RESPONSES
from app.api.deps import DistrictId, IncludeInactive, ReaderDep, listing_of, not_found, scope_of
from app.api.pagination import FiltersDep, JSONText, PageDep, object_response, page_response
from app.api.problems import not_found_responses
from app.api.schemas import District, Page
from app.mirror.queries.collections import DISTRICTS, get_record, list_records

router = APIRouter(prefix="/v1", tags=["districts"], responses=AUTH_RESPONSES)


@router.get("/districts", name="districts-list", response_model=Page[District])
async def list_districts(reader: ReaderDep, page: PageDep, filters: FiltersDep) -> JSONText:
    """Districts mirrored from Clever that the key may see, in id order."""
    rows = await list_records(
        reader.connection, DISTRICTS, listing_of(reader.principal, page, filters)
    )
    return page_response(rows, page.limit)


@router.get(
    "/districts/{district_id}",
    name="districts-get",
    response_model=District,
    responses=not_found_responses("district"),
)
async def get_district(
    district_id: DistrictId,
    reader: ReaderDep,
    include_inactive: IncludeInactive = False,
) -> JSONText:
    """One district."""
    scope = scope_of(reader.principal, include_inactive=include_inactive)
    body = await get_record(reader.connection, DISTRICTS, district_id, scope)
    if body is None:
        raise not_found("district", district_id)
    return object_response(body)

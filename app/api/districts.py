"""Districts the key may see."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.auth import AUTH_RESPONSES
from app.api.deps import (
    DistrictId,
    IncludeInactive,
    ReaderDep,
    get_or_404,
    listing_of,
)
from app.api.pagination import FiltersDep, JSONText, PageDep, page_response
from app.api.problems import not_found_responses
from app.api.schemas import District, Page
from app.mirror.queries.collections import DISTRICTS, list_records

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
    return await get_or_404(
        reader, DISTRICTS, district_id, what="district", include_inactive=include_inactive
    )

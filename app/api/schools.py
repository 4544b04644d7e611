"""Schools, and the sections and users of one school."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.auth import AUTH_RESPONSES
from app.api.deps import (
    ID_PATTERN,
    AsOf,
    DistrictFilter,
    IncludeInactive,
    ReaderDep,
    SchoolId,
    get_or_404,
    listing_of,
    not_found,
    scope_of,
)
from app.api.pagination import FiltersDep, JSONText, PageDep, page_response
from app.api.problems import not_found_responses
from app.api.schemas import Page, School, SchoolUser, Section, UserRole
from app.mirror.queries import roster
from app.mirror.queries.collections import (
    SCHOOLS,
    list_records,
    list_sections_of,
)

router = APIRouter(prefix="/v1", tags=["schools"], responses=AUTH_RESPONSES)
NOT_FOUND = not_found_responses("school")


@router.get("/schools", name="schools-list", summary="List schools", response_model=Page[School])
async def list_schools(
    reader: ReaderDep,
    page: PageDep,
    filters: FiltersDep,
    district_id: DistrictFilter = None,
) -> JSONText:
    """Schools the key may see, in id order."""
    listing = listing_of(reader.principal, page, filters, district_id=district_id)
    return page_response(await list_records(reader.connection, SCHOOLS, listing), page.limit)


@router.get(
    "/schools/{school_id}",
    name="schools-get",
    summary="Get a school",
    response_model=School,
    responses=NOT_FOUND,
)
async def get_school(
    school_id: SchoolId,
    reader: ReaderDep,
    include_inactive: IncludeInactive = False,
) -> JSONText:
    """One school."""
    return await get_or_404(
        reader, SCHOOLS, school_id, what="school", include_inactive=include_inactive
    )


@router.get(
    "/schools/{school_id}/sections",
    name="schools-list-sections",
    summary="List a school's sections",
    response_model=Page[Section],
    responses=NOT_FOUND,
)
async def list_school_sections(
    school_id: SchoolId,
    reader: ReaderDep,
    page: PageDep,
    filters: FiltersDep,
    term_id: Annotated[
        str | None, Query(pattern=ID_PATTERN, description="Only sections of this term.")
    ] = None,
) -> JSONText:
    """The school's sections, in id order."""
    listing = listing_of(reader.principal, page, filters)
    rows = await list_sections_of(reader.connection, SCHOOLS, school_id, listing, term_id=term_id)
    if rows is None:
        raise not_found("school", school_id)
    return page_response(rows, page.limit)


@router.get(
    "/schools/{school_id}/users",
    name="schools-list-users",
    summary="List a school's users",
    response_model=Page[SchoolUser],
    responses=NOT_FOUND,
)
async def list_school_users(
    school_id: SchoolId,
    reader: ReaderDep,
    page: PageDep,
    as_of: AsOf,
    role: Annotated[UserRole | None, Query(description="Only users with this role.")] = None,
    primary: Annotated[
        bool | None,
        Query(
            description="true: only users whose primary school this is; false: only users "
            "linked to it some other way (enrolled in or teaching its sections)."
        ),
    ] = None,
    include_inactive: IncludeInactive = False,
) -> JSONText:
    """Users of the school, in id order: those Clever links to it, and those in its sections
    whose primary school is elsewhere (`primary: false`)."""
    owned = await roster.school_users(
        reader.connection,
        school_id,
        scope_of(reader.principal, include_inactive=include_inactive, as_of=as_of),
        role=role,
        primary=primary,
        limit=page.limit,
        after=page.after,
    )
    if owned is None:
        raise not_found("school", school_id)
    return page_response(owned.rows, page.limit)

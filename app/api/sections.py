"""Sections, and one section with its teachers and students."""

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
    SectionId,
    listing_of,
    not_found,
    scope_of,
)
from app.api.pagination import FiltersDep, JSONText, PageDep, object_response, page_response
from app.api.problems import not_found_responses
from app.api.schemas import Page, Section, SectionDetail
from app.mirror.queries import roster
from app.mirror.queries.collections import SECTIONS, list_records

router = APIRouter(prefix="/v1", tags=["sections"], responses=AUTH_RESPONSES)


@router.get(
    "/sections", name="sections-list", summary="List sections", response_model=Page[Section]
)
async def list_sections(
    reader: ReaderDep,
    page: PageDep,
    filters: FiltersDep,
    district_id: DistrictFilter = None,
    school_id: Annotated[
        str | None, Query(pattern=ID_PATTERN, description="Only sections of this school.")
    ] = None,
    term_id: Annotated[
        str | None, Query(pattern=ID_PATTERN, description="Only sections of this term.")
    ] = None,
    course_id: Annotated[
        str | None, Query(pattern=ID_PATTERN, description="Only sections of this course.")
    ] = None,
) -> JSONText:
    """Sections the key may see, in id order."""
    listing = listing_of(reader.principal, page, filters, district_id=district_id)
    for column, value in (("school_id", school_id), ("term_id", term_id), ("course_id", course_id)):
        if value is not None:
            listing.conditions.append(f"s.{column} = {listing.params.add(value)}")
    return page_response(await list_records(reader.connection, SECTIONS, listing), page.limit)


@router.get(
    "/sections/{section_id}",
    name="sections-get",
    summary="Get a section",
    response_model=SectionDetail,
    responses=not_found_responses("section"),
)
async def get_section(
    section_id: SectionId,
    reader: ReaderDep,
    as_of: AsOf,
    include_inactive: IncludeInactive = False,
) -> JSONText:
    """One section with its school, course and term, its teachers (primary first, then
    co-teachers in Clever's order) and its students (by name). With `include_inactive`,
    former teachers and students are listed too."""
    scope = scope_of(reader.principal, include_inactive=include_inactive, as_of=as_of)
    body = await roster.section_detail(reader.connection, section_id, scope)
    if body is None:
        raise not_found("section", section_id)
    return object_response(body)

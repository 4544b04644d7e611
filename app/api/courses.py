"""Courses, and the sections of one course."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.auth import AUTH_RESPONSES
from app.api.deps import (
    CourseId,
    DistrictFilter,
    IncludeInactive,
    LineageFilter,
    ReaderDep,
    get_or_404,
    listing_of,
    not_found,
)
from app.api.pagination import FiltersDep, JSONText, PageDep, page_response
from app.api.problems import not_found_responses
from app.api.schemas import Course, Page, Section
from app.mirror.queries.collections import (
    COURSES,
    list_records,
    list_sections_of,
)

router = APIRouter(prefix="/v1", tags=["courses"], responses=AUTH_RESPONSES)
NOT_FOUND = not_found_responses("course")


@router.get("/courses", name="courses-list", summary="List courses", response_model=Page[Course])
async def list_courses(
    reader: ReaderDep,
    page: PageDep,
    filters: FiltersDep,
    district_id: DistrictFilter = None,
) -> JSONText:
    """Courses the key may see, in id order."""
    listing = listing_of(reader.principal, page, filters, district_id=district_id)
    return page_response(await list_records(reader.connection, COURSES, listing), page.limit)


@router.get(
    "/courses/{course_id}",
    name="courses-get",
    summary="Get a course",
    response_model=Course,
    responses=NOT_FOUND,
)
async def get_course(
    course_id: CourseId,
    reader: ReaderDep,
    include_inactive: IncludeInactive = False,
) -> JSONText:
    """One course."""
    return await get_or_404(
        reader, COURSES, course_id, what="course", include_inactive=include_inactive
    )


@router.get(
    "/courses/{course_id}/sections",
    name="courses-list-sections",
    summary="List a course's sections",
    response_model=Page[Section],
    responses=NOT_FOUND,
)
async def list_course_sections(
    course_id: CourseId,
    reader: ReaderDep,
    page: PageDep,
    filters: FiltersDep,
    lineage_id: LineageFilter = None,
) -> JSONText:
    """The course's sections, in id order (with `lineage_id`, those of every course in the
    lineage)."""
    listing = listing_of(reader.principal, page, filters)
    rows = await list_sections_of(
        reader.connection, COURSES, course_id, listing, lineage_id=lineage_id
    )
    if rows is None:
        raise not_found("course", course_id)
    return page_response(rows, page.limit)

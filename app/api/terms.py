"""Terms, and the sections of one term."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.auth import AUTH_RESPONSES
from app.api.deps import (
    DistrictFilter,
    IncludeInactive,
    LineageFilter,
    ReaderDep,
    TermId,
    get_or_404,
    listing_of,
    not_found,
)
from app.api.pagination import FiltersDep, JSONText, PageDep, page_response
from app.api.problems import not_found_responses
from app.api.schemas import Page, Section, Term
from app.mirror.queries.collections import (
    TERMS,
    list_records,
    list_sections_of,
)

router = APIRouter(prefix="/v1", tags=["terms"], responses=AUTH_RESPONSES)
NOT_FOUND = not_found_responses("term")


@router.get("/terms", name="terms-list", summary="List terms", response_model=Page[Term])
async def list_terms(
    reader: ReaderDep,
    page: PageDep,
    filters: FiltersDep,
    district_id: DistrictFilter = None,
) -> JSONText:
    """Terms the key may see, in id order."""
    listing = listing_of(reader.principal, page, filters, district_id=district_id)
    return page_response(await list_records(reader.connection, TERMS, listing), page.limit)


@router.get(
    "/terms/{term_id}",
    name="terms-get",
    summary="Get a term",
    response_model=Term,
    responses=NOT_FOUND,
)
async def get_term(
    term_id: TermId,
    reader: ReaderDep,
    include_inactive: IncludeInactive = False,
) -> JSONText:
    """One term."""
    return await get_or_404(reader, TERMS, term_id, what="term", include_inactive=include_inactive)


@router.get(
    "/terms/{term_id}/sections",
    name="terms-list-sections",
    summary="List a term's sections",
    response_model=Page[Section],
    responses=NOT_FOUND,
)
async def list_term_sections(
    term_id: TermId,
    reader: ReaderDep,
    page: PageDep,
    filters: FiltersDep,
    lineage_id: LineageFilter = None,
) -> JSONText:
    """The term's sections, in id order (with `lineage_id`, those of every term in the
    lineage). A deactivated term's sections stay active, so the term is found here even
    when it is inactive."""
    listing = listing_of(reader.principal, page, filters)
    rows = await list_sections_of(reader.connection, TERMS, term_id, listing, lineage_id=lineage_id)
    if rows is None:
        raise not_found("term", term_id)
    return page_response(rows, page.limit)

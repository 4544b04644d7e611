"""Users, and the school-agnostic views of one user: sections, students, teachers, contacts."""

from __future__ import annotations

import unicodedata
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from app.api.answers import NOT_MODIFIED, Answer, answer
from app.api.auth import AUTH_RESPONSES
from app.api.deps import (
    ID_PATTERN,
    AsOf,
    DistrictFilter,
    IncludeInactive,
    Reader,
    ReaderDep,
    UserId,
    get_or_404,
    listing_of,
    not_found,
    scope_of,
)
from app.api.pagination import (
    FiltersDep,
    JSONText,
    PageDep,
    page_body,
    page_response,
)
from app.api.problems import not_found_responses
from app.api.schemas import Contact, LinkedUser, Page, TermBuckets, User, UserRole, UserSection
from app.mirror.queries import roster
from app.mirror.queries.collections import USERS, list_records
from app.mirror.queries.sql import like_pattern

router = APIRouter(prefix="/v1", tags=["users"], responses=AUTH_RESPONSES)
NOT_FOUND = not_found_responses("user")

SectionRoleFilter = Annotated[
    roster.SectionRole | None, Query(description="Only sections where the user has this role.")
]


@router.get("/users", name="users-list", summary="List users", response_model=Page[User])
async def list_users(
    reader: ReaderDep,
    page: PageDep,
    filters: FiltersDep,
    district_id: DistrictFilter = None,
    role: Annotated[UserRole | None, Query(description="Only users with this role.")] = None,
    school_id: Annotated[
        str | None,
        Query(pattern=ID_PATTERN, description="Only users Clever links to this school."),
    ] = None,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            pattern=r"^[^\x00]*$",
            description="Case-insensitive text in the user's name or email.",
        ),
    ] = None,
) -> JSONText:
    """Users the key may see, in id order."""
    listing = listing_of(reader.principal, page, filters, district_id=district_id)
    params = listing.params
    if role is not None:
        listing.conditions.append(f"u.roles @> ARRAY[{params.add(role)}::text]")
    if school_id is not None:
        link_is_live = "" if filters.include_inactive else " AND us.deleted_at IS NULL"
        listing.conditions.append(
            "EXISTS (SELECT 1 FROM user_schools us WHERE us.user_id = u.id"
            f" AND us.district_id = u.district_id AND us.school_id = {params.add(school_id)}"
            f"{link_is_live})"
        )
    if q is not None:
        # Names and emails are stored NFC-normalized; a query typed in decomposed form
        # (as some keyboards and macOS file names produce) must find them too.
        q = unicodedata.normalize("NFC", q)
        listing.conditions.append(
            "concat_ws(' ', u.name_first, u.name_middle, u.name_last, u.preferred_first_name,"
            f" u.email) ILIKE {params.add(like_pattern(q))}"
        )
    return page_response(await list_records(reader.connection, USERS, listing), page.limit)


@router.get(
    "/users/{user_id}",
    name="users-get",
    summary="Get a user",
    response_model=User,
    responses=NOT_FOUND,
)
async def get_user(
    user_id: UserId,
    reader: ReaderDep,
    as_of: AsOf,
    include_inactive: IncludeInactive = False,
) -> JSONText:
    """One user of any role."""
    return await get_or_404(
        reader, USERS, user_id, what="user", include_inactive=include_inactive, as_of=as_of
    )


@router.get(
    "/users/{user_id}/sections",
    name="users-list-sections",
    summary="List a user's sections",
    response_model=Page[UserSection],
    responses=NOT_FOUND,
)
async def list_user_sections(
    user_id: UserId,
    reader: ReaderDep,
    page: PageDep,
    as_of: AsOf,
    role: SectionRoleFilter = None,
    term_id: Annotated[
        str | None, Query(pattern=ID_PATTERN, description="Only sections of this term.")
    ] = None,
    include_inactive: Annotated[
        bool,
        Query(description="Also sections the user has left and sections no longer shared."),
    ] = False,
) -> JSONText:
    """Every section the user studies or teaches in, in any school, with its school, course
    and term embedded and the user's role in it; in section id order."""
    owned = await roster.user_sections(
        reader.connection,
        user_id,
        scope_of(reader.principal, include_inactive=include_inactive, as_of=as_of),
        role=role,
        term_id=term_id,
        limit=page.limit,
        after=page.after,
    )
    if owned is None:
        raise not_found("student", user_id)
    return page_response(owned.rows, page.limit)


async def _user_answer(
    request: Request,
    reader: Reader,
    user_id: str,
    as_of: datetime | None,
    read: Callable[[], Awaitable[Answer | None]],
    *,
    kind: str = "user",
) -> Response:
    """A hot read about one user: kept unless it is as of a past instant; 404 if unseen."""
    found = await answer(request, reader.principal, read, keep=as_of is None)
    if found is None:
        raise not_found(kind, user_id)
    return found


@router.get(
    "/users/{user_id}/sections/by-term",
    name="users-list-sections-by-term",
    summary="List a user's sections by term",
    response_model=TermBuckets,
    responses=NOT_FOUND | NOT_MODIFIED,
)
async def list_user_sections_by_term(
    request: Request,
    user_id: UserId,
    reader: ReaderDep,
    as_of: AsOf,
    role: SectionRoleFilter = None,
    include_inactive: Annotated[
        bool,
        Query(description="Also sections the user has left and sections no longer shared."),
    ] = False,
) -> Response:
    """The user's sections grouped by term: buckets by term start date (terms without dates
    after dated ones), then one bucket with `"term": null` for sections without a (shared)
    term. The bucket whose dates contain today has `"current": true`. Not paginated.
    Answers carry an `ETag`: send it back as `If-None-Match` for a 304 while unchanged."""
    scope = scope_of(reader.principal, include_inactive=include_inactive, as_of=as_of)

    async def read() -> Answer | None:
        found = await roster.user_sections_by_term(reader.connection, user_id, scope, role=role)
        return None if found is None else Answer(found.district_id, found.body.encode())

    return await _user_answer(request, reader, user_id, as_of, read)


@router.get(
    "/teachers/{user_id}/students",
    name="teachers-list-students",
    summary="List a teacher's students",
    response_model=Page[LinkedUser],
    responses=NOT_FOUND | NOT_MODIFIED,
)
async def list_teacher_students(
    request: Request, user_id: UserId, reader: ReaderDep, page: PageDep, as_of: AsOf
) -> Response:
    """Distinct students of every active section the user teaches, as primary teacher or
    co-teacher, each with the ids of the sections that link them; in student id order.
    A teacher without sections gets an empty list; a user who is no teacher is 404, as an
    unknown id is. Answers carry an `ETag`: send it back as `If-None-Match` for a 304 while
    unchanged."""
    scope = scope_of(reader.principal, as_of=as_of)

    async def read() -> Answer | None:
        owned = await roster.teacher_students(
            reader.connection, user_id, scope, limit=page.limit, after=page.after
        )
        if owned is None:
            return None
        return Answer(owned.district_id, page_body(owned.rows, page.limit))

    return await _user_answer(request, reader, user_id, as_of, read, kind="teacher")


@router.get(
    "/students/{user_id}/teachers",
    name="students-list-teachers",
    summary="List a student's teachers",
    response_model=Page[LinkedUser],
    responses=NOT_FOUND,
)
async def list_student_teachers(
    user_id: UserId, reader: ReaderDep, page: PageDep, as_of: AsOf
) -> JSONText:
    """Distinct teachers (primary and co-teachers) of the student's active sections, each
    with the ids of the sections that link them; in teacher id order. A user who is no
    student is 404, as an unknown id is."""
    owned = await roster.student_teachers(
        reader.connection,
        user_id,
        scope_of(reader.principal, as_of=as_of),
        limit=page.limit,
        after=page.after,
    )
    if owned is None:
        raise not_found("student", user_id)
    return page_response(owned.rows, page.limit)


@router.get(
    "/students/{user_id}/contacts",
    name="students-list-contacts",
    summary="List a student's contacts",
    response_model=Page[Contact],
    responses=NOT_FOUND,
)
async def list_student_contacts(user_id: UserId, reader: ReaderDep, page: PageDep) -> JSONText:
    """The student's contacts (guardians, emergency contacts...) with their relationship to
    the student; in contact id order. A user who is no student is 404, as an unknown id is."""
    owned = await roster.student_contacts(
        reader.connection, user_id, scope_of(reader.principal), limit=page.limit, after=page.after
    )
    if owned is None:
        raise not_found("student", user_id)
    return page_response(owned.rows, page.limit)

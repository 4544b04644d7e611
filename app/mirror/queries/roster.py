"""School-agnostic reads across links (SPEC A1): a user's sections, a teacher's students, ...

Each query answers in one round trip, with the owner's district and state beside the page so
that an unknown id (404) and an owner without links (empty list) are told apart.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

import asyncpg

from app.mirror.queries import shapes
from app.mirror.queries.collections import Scope, visible
from app.mirror.queries.sql import Params, where

SectionRole = Literal["student", "teacher"]


@dataclass(frozen=True)
class Owned:
    """The answer about one record's links: None when the record may not be seen."""

    rows: list[tuple[str, str]]


def _owned(row: asyncpg.Record | None, scope: Scope) -> Owned | None:
    if row is None or not visible(scope, row["district_id"], active=bool(row["active"])):
        return None
    return Owned(list(zip(row["keys"] or [], row["bodies"] or [], strict=True)))


def _owned_page(owner_table: str, page_sql: str, owner_param: str) -> str:
    """Wrap a page query so one statement also returns the owner's district and state."""
    return f"""
        WITH page AS ({page_sql})
        SELECT o.district_id, o.deleted_at IS NULL AS active,
               ARRAY(SELECT key FROM page) AS keys, ARRAY(SELECT body FROM page) AS bodies
        FROM {owner_table} o WHERE o.id = {owner_param}
    """


def _memberships(user: str, scope: Scope, role: SectionRole | None) -> str:
    """The user's sections with the user's role in each (teacher wins if both)."""
    open_enrollment = "" if scope.include_inactive else "AND e.ended_at IS NULL"
    current_teacher = "" if scope.include_inactive else "AND st.deleted_at IS NULL"
    parts = []
    if role in (None, "student"):
        parts.append(
            f"SELECT e.section_id, 'student' AS role FROM enrollments e"
            f" WHERE e.student_id = {user} {open_enrollment}"
        )
    if role in (None, "teacher"):
        parts.append(
            f"SELECT st.section_id, 'teacher' AS role FROM section_teachers st"
            f" WHERE st.teacher_id = {user} {current_teacher}"
        )
    union = " UNION ALL ".join(parts)
    return (
        f"SELECT DISTINCT ON (section_id) section_id, role FROM ({union}) m"
        " ORDER BY section_id, role DESC"
    )


_SECTION_CONTEXT = """
    JOIN sections s ON s.id = m.section_id
    LEFT JOIN schools sc ON sc.id = s.school_id
    LEFT JOIN courses c ON c.id = s.course_id
    LEFT JOIN terms t ON t.id = s.term_id
"""


def _user_section_json() -> str:
    return shapes.json_object(shapes.user_section_fields("m.role"))


async def user_sections(
    connection: asyncpg.Connection,
    user_id: str,
    scope: Scope,
    *,
    role: SectionRole | None,
    term_id: str | None,
    limit: int,
    after: str | None,
) -> Owned | None:
    """Every section the user studies or teaches in, any school, in id order."""
    params = Params()
    user = params.add(user_id)
    conditions = [] if scope.include_inactive else ["s.deleted_at IS NULL"]
    if term_id is not None:
        conditions.append(f"s.term_id = {params.add(term_id)}")
    if after is not None:
        conditions.append(f"s.id > {params.add(after)}")
    page = f"""
        SELECT s.id AS key, {_user_section_json()} AS body
        FROM ({_memberships(user, scope, role)}) m {_SECTION_CONTEXT}
        {where(conditions)}
        ORDER BY s.id LIMIT {params.add(limit + 1)}
    """
    row = await connection.fetchrow(_owned_page("users", page, user), *params.values)
    return _owned(row, scope)


_TERM_BUCKET = shapes.json_object(
    shapes.term_bucket_fields(
        current="coalesce(current_date BETWEEN t.start_date AND t.end_date, false)",
        sections=f"json_agg({_user_section_json()} ORDER BY s.display_name, s.id)",
    )
)


def user_sections_by_term_sql(scope: Scope, *, role: SectionRole | None) -> str:
    """The by-term statement; parameters: $1 user id (the benchmark runs it too)."""
    return _by_term_sql(scope.include_inactive, scope.sensitive, role)


@functools.cache
def _by_term_sql(include_inactive: bool, sensitive: bool, role: SectionRole | None) -> str:
    # Built once per variant: assembling the text costs more than a cache lookup per request.
    scope = Scope(district_ids=None, include_inactive=include_inactive, sensitive=sensitive)
    active = "" if scope.include_inactive else "WHERE s.deleted_at IS NULL"
    return f"""
        WITH buckets AS (
            SELECT t.id AS term_key, t.start_date, t.name AS term_name,
                   {_TERM_BUCKET} AS bucket
            FROM ({_memberships("$1", scope, role)}) m {_SECTION_CONTEXT}
            {active}
            GROUP BY t.id
        )
        SELECT o.district_id, o.deleted_at IS NULL AS active,
               json_build_object('data', coalesce(
                   (SELECT json_agg(bucket ORDER BY term_key IS NULL, start_date NULLS LAST,
                                    term_name, term_key) FROM buckets),
                   '[]'::json)) AS body
        FROM users o WHERE o.id = $1
    """


async def user_sections_by_term(
    connection: asyncpg.Connection, user_id: str, scope: Scope, *, role: SectionRole | None
) -> str | None:
    """The user's sections bucketed by term: by start date, undated terms and no term last."""
    row = await connection.fetchrow(user_sections_by_term_sql(scope, role=role), user_id)
    if row is None or not visible(scope, row["district_id"], active=row["active"]):
        return None
    body: str = row["body"]
    return body


def _linked_user_json(scope: Scope) -> str:
    return shapes.json_object(
        shapes.linked_user_fields(sensitive=scope.sensitive, section_ids="l.section_ids")
    )


def teacher_students_sql(scope: Scope, *, paged: bool) -> str:
    """The teacher's-students statement; parameters: $1 teacher id, $2 page size + 1, and
    with `paged` $3 the last student id of the previous page."""
    return _teacher_students_sql(scope.include_inactive, scope.sensitive, paged)


@functools.cache
def _teacher_students_sql(include_inactive: bool, sensitive: bool, paged: bool) -> str:
    scope = Scope(district_ids=None, include_inactive=include_inactive, sensitive=sensitive)
    after = "AND e.student_id > $3" if paged else ""
    live = "" if scope.include_inactive else "AND u.deleted_at IS NULL"
    page = f"""
        SELECT u.id AS key, {_linked_user_json(scope)} AS body
        FROM (
            SELECT e.student_id, array_agg(e.section_id ORDER BY e.section_id) AS section_ids
            FROM section_teachers st
            JOIN sections s ON s.id = st.section_id AND s.deleted_at IS NULL
            JOIN enrollments e ON e.section_id = st.section_id AND e.ended_at IS NULL
            WHERE st.teacher_id = $1 AND st.deleted_at IS NULL {after}
            GROUP BY e.student_id
        ) l
        JOIN users u ON u.id = l.student_id {live}
        ORDER BY u.id LIMIT $2
    """
    return _owned_page("users", page, "$1")


async def teacher_students(
    connection: asyncpg.Connection, teacher_id: str, scope: Scope, *, limit: int, after: str | None
) -> Owned | None:
    """Distinct students of every active section the user teaches (primary or co-teacher)."""
    sql = teacher_students_sql(scope, paged=after is not None)
    args = (teacher_id, limit + 1) + ((after,) if after is not None else ())
    return _owned(await connection.fetchrow(sql, *args), scope)


async def student_teachers(
    connection: asyncpg.Connection, student_id: str, scope: Scope, *, limit: int, after: str | None
) -> Owned | None:
    """Distinct teachers of the student's active sections, each with the linking sections."""
    params = Params()
    student = params.add(student_id)
    after_condition = f"AND st.teacher_id > {params.add(after)}" if after is not None else ""
    live = "" if scope.include_inactive else "AND u.deleted_at IS NULL"
    page = f"""
        SELECT u.id AS key, {_linked_user_json(scope)} AS body
        FROM (
            SELECT st.teacher_id, array_agg(st.section_id ORDER BY st.section_id) AS section_ids
            FROM enrollments e
            JOIN sections s ON s.id = e.section_id AND s.deleted_at IS NULL
            JOIN section_teachers st ON st.section_id = e.section_id AND st.deleted_at IS NULL
            WHERE e.student_id = {student} AND e.ended_at IS NULL {after_condition}
            GROUP BY st.teacher_id
        ) l
        JOIN users u ON u.id = l.teacher_id {live}
        ORDER BY u.id LIMIT {params.add(limit + 1)}
    """
    row = await connection.fetchrow(_owned_page("users", page, student), *params.values)
    return _owned(row, scope)


async def student_contacts(
    connection: asyncpg.Connection, student_id: str, scope: Scope, *, limit: int, after: str | None
) -> Owned | None:
    """The student's contacts with their relationship to the student."""
    params = Params()
    student = params.add(student_id)
    conditions = [f"cr.student_id = {student}"]
    if not scope.include_inactive:
        conditions += ["cr.deleted_at IS NULL", "u.deleted_at IS NULL"]
    if after is not None:
        conditions.append(f"u.id > {params.add(after)}")
    body = shapes.json_object(shapes.contact_fields("cr", sensitive=scope.sensitive))
    page = f"""
        SELECT u.id AS key, {body} AS body
        FROM contact_relationships cr JOIN users u ON u.id = cr.contact_id
        {where(conditions)}
        ORDER BY u.id LIMIT {params.add(limit + 1)}
    """
    row = await connection.fetchrow(_owned_page("users", page, student), *params.values)
    return _owned(row, scope)


async def section_detail(
    connection: asyncpg.Connection, section_id: str, scope: Scope
) -> str | None:
    """A section in context with its teachers (in order, primary flagged) and students."""
    current = not scope.include_inactive
    teacher = shapes.json_object(shapes.section_teacher_fields("st", sensitive=scope.sensitive))
    teachers = f"""
        SELECT coalesce(json_agg({teacher} ORDER BY st.position, u.id), '[]'::json)
        FROM section_teachers st JOIN users u ON u.id = st.teacher_id
        WHERE st.section_id = s.id
        {"AND st.deleted_at IS NULL AND u.deleted_at IS NULL" if current else ""}
    """
    # With history included a student may have had several stays: each is shown once.
    students = f"""
        SELECT coalesce(json_agg({shapes.user_json("u", sensitive=scope.sensitive)}
                                 ORDER BY u.name_last, u.name_first, u.id), '[]'::json)
        FROM users u
        WHERE u.id IN (SELECT e.student_id FROM enrollments e WHERE e.section_id = s.id
                       {"AND e.ended_at IS NULL" if current else ""})
        {"AND u.deleted_at IS NULL" if current else ""}
    """
    body = shapes.json_object(
        shapes.section_detail_fields(teachers=f"({teachers})", students=f"({students})")
    )
    row = await connection.fetchrow(
        f"""
        SELECT s.district_id, s.deleted_at IS NULL AS active, {body} AS body
        FROM (SELECT $1::text AS section_id) m {_SECTION_CONTEXT}
        """,
        section_id,
    )
    if row is None or not visible(scope, row["district_id"], active=row["active"]):
        return None
    result: str = row["body"]
    return result


async def school_users(
    connection: asyncpg.Connection,
    school_id: str,
    scope: Scope,
    *,
    role: str | None,
    primary: bool | None,
    limit: int,
    after: str | None,
) -> Owned | None:
    """Users of the school: linked to it by Clever, or in one of its sections (SPEC A1).

    `primary` is true when the school is the user's primary school.
    """
    params = Params()
    school = params.add(school_id)
    role_param = params.add(role) if role is not None else None
    # The cursor goes into every part of the union, so a later page does not gather (and
    # sort) the members before it again.
    after_param = params.add(after) if after is not None else None

    def after_cursor(column: str) -> str:
        return f" AND {column} > {after_param}" if after_param else ""

    live_link = "" if scope.include_inactive else "AND deleted_at IS NULL"
    members = [
        f"SELECT user_id FROM user_schools WHERE school_id = {school} {live_link}"
        + (f" AND role = {role_param}" if role_param else "")
        + after_cursor("user_id")
    ]
    live_section = "" if scope.include_inactive else "AND s.deleted_at IS NULL"
    if role in (None, "student"):
        members.append(
            f"SELECT e.student_id FROM sections s JOIN enrollments e ON e.section_id = s.id"
            f" WHERE s.school_id = {school} {live_section}"
            + ("" if scope.include_inactive else " AND e.ended_at IS NULL")
            + after_cursor("e.student_id")
        )
    if role in (None, "teacher"):
        members.append(
            f"SELECT st.teacher_id FROM sections s JOIN section_teachers st ON st.section_id = s.id"
            f" WHERE s.school_id = {school} {live_section}"
            + ("" if scope.include_inactive else " AND st.deleted_at IS NULL")
            + after_cursor("st.teacher_id")
        )
    conditions = [] if scope.include_inactive else ["u.deleted_at IS NULL"]
    if role is not None:
        conditions.append(f"{role_param} = ANY(u.roles)")
    if primary is not None:
        is_primary = f"u.primary_school_id IS NOT DISTINCT FROM {school}"
        conditions.append(is_primary if primary else f"NOT ({is_primary})")
    body = shapes.json_object(shapes.school_user_fields(sensitive=scope.sensitive, school=school))
    page = f"""
        SELECT u.id AS key, {body} AS body
        FROM ({" UNION ".join(members)}) m(user_id) JOIN users u ON u.id = m.user_id
        {where(conditions)}
        ORDER BY u.id LIMIT {params.add(limit + 1)}
    """
    row = await connection.fetchrow(_owned_page("schools", page, school), *params.values)
    return _owned(row, scope)

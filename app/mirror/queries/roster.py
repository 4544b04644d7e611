"""School-agnostic reads across links: a user's sections, a teacher's students, ...

Each query answers in one round trip, with the owner's district and state beside the page so
that an unknown id (404) and an owner without links (empty list) are told apart.

Isolation: the owner is looked up only within the districts the key may see, so
an id of another district costs what an unknown id costs (no page is built for it), and
every join matches the owner's `district_id` as well as ids: even a link that joined two
districts could not bring another district's row into an answer.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import asyncpg

from app.mirror.queries import as_of, shapes
from app.mirror.queries.collections import Visibility, visible
from app.mirror.queries.sql import Params, where

SectionRole = Literal["student", "teacher"]


@dataclass(frozen=True)
class Owned:
    """The answer about one record's links (None when the record may not be seen): rows
    of (sort key, JSON), and the record's district."""

    rows: list[tuple[str, str]]
    district_id: str


@dataclass(frozen=True)
class OwnedObject:
    """A JSON object about one record, and the record's district."""

    body: str
    district_id: str


def _owned(row: asyncpg.Record | None, scope: Visibility) -> Owned | None:
    if row is None or not visible(scope, row["district_id"], active=bool(row["active"])):
        return None
    rows = list(zip(row["keys"] or [], row["bodies"] or [], strict=True))
    return Owned(rows, row["district_id"])


def _owner(
    owner_table: str,
    owner_param: str,
    districts_param: str | None,
    *,
    include_inactive: bool,
    role: SectionRole | None = None,
) -> str:
    """The owner row `o` (id, district_id, deleted_at) when the scope may see it, else none.

    `districts_param` is the placeholder of the visible districts' ids (None: every one);
    `role`: only a user with this role owns the answer (a student asked for as a teacher is
    as unknown as a missing id, so the caller notices the mistake).
    """
    conditions = [f"id = {owner_param}"]
    if role is not None:
        conditions.append(f"'{role}' = ANY(roles)")
    if districts_param is not None:
        conditions.append(f"district_id = ANY({districts_param}::text[])")
    if not include_inactive:
        conditions.append("deleted_at IS NULL")
    return f"SELECT id, district_id, deleted_at FROM {owner_table} {where(conditions)}"


def _owned_page(owner_sql: str, page_sql: str) -> str:
    """Wrap a page query (which joins the owner CTE `o`) so one statement also returns the
    owner's district and state."""
    return f"""
        WITH o AS MATERIALIZED ({owner_sql}), page AS ({page_sql})
        SELECT o.district_id, o.deleted_at IS NULL AS active,
               ARRAY(SELECT key FROM page) AS keys, ARRAY(SELECT body FROM page) AS bodies
        FROM o
    """


async def _fetch(
    connection: asyncpg.Connection,
    sql: str,
    args: Sequence[object],
    scope: Visibility,
    owner_table: str,
    owner_id: str,
) -> asyncpg.Record | None:
    """The statement's row, as of the scope's instant when it has one."""
    return await as_of.fetch_owned(
        connection,
        sql,
        args,
        instant=scope.as_of,
        owner_table=owner_table,
        owner_id=owner_id,
        district_ids=scope.district_ids,
    )


def _districts(params: Params, scope: Visibility) -> str | None:
    return params.add(scope.district_ids) if scope.district_ids is not None else None


def _memberships(scope: Visibility, role: SectionRole | None) -> str:
    """The owner's (`o`) sections with the owner's role in each (teacher wins if both)."""
    open_enrollment = "" if scope.include_inactive else "AND e.ended_at IS NULL"
    current_teacher = "" if scope.include_inactive else "AND st.deleted_at IS NULL"
    parts = []
    if role in (None, "student"):
        parts.append(
            f"SELECT e.section_id, e.district_id, 'student' AS role FROM o"
            f" JOIN enrollments e ON e.student_id = o.id AND e.district_id = o.district_id"
            f" {open_enrollment}"
        )
    if role in (None, "teacher"):
        parts.append(
            f"SELECT st.section_id, st.district_id, 'teacher' AS role FROM o"
            f" JOIN section_teachers st ON st.teacher_id = o.id"
            f" AND st.district_id = o.district_id {current_teacher}"
        )
    union = " UNION ALL ".join(parts)
    return (
        f"SELECT DISTINCT ON (section_id) section_id, district_id, role FROM ({union}) m"
        " ORDER BY section_id, role DESC"
    )


# A section `s` (of `m.section_id` in `m.district_id`) with its school, course and term.
_SECTION_CONTEXT = (
    """
    JOIN sections s ON s.id = m.section_id AND s.district_id = m.district_id
    LEFT JOIN schools sc ON sc.id = s.school_id AND sc.district_id = s.district_id
    LEFT JOIN courses c ON c.id = s.course_id AND c.district_id = s.district_id
    LEFT JOIN terms t ON t.id = s.term_id AND t.district_id = s.district_id
"""
    + shapes.overrides_join("s", "sections")
    + shapes.overrides_join("t", "terms")
)

USER_OVERRIDES = shapes.overrides_join("u", "users")


def _user_section_json() -> str:
    return shapes.json_object(shapes.user_section_fields("m.role"))


async def user_sections(
    connection: asyncpg.Connection,
    user_id: str,
    scope: Visibility,
    *,
    role: SectionRole | None,
    term_id: str | None,
    limit: int,
    after: str | None,
) -> Owned | None:
    """Every section the user studies or teaches in, any school, in id order."""
    params = Params()
    owner = _owner(
        "users",
        params.add(user_id),
        _districts(params, scope),
        include_inactive=scope.include_inactive,
    )
    conditions = [] if scope.include_inactive else ["s.deleted_at IS NULL"]
    if term_id is not None:
        conditions.append(f"s.term_id = {params.add(term_id)}")
    if after is not None:
        conditions.append(f"s.id > {params.add(after)}")
    page = f"""
        SELECT s.id AS key, {_user_section_json()} AS body
        FROM ({_memberships(scope, role)}) m {_SECTION_CONTEXT}
        {where(conditions)}
        ORDER BY s.id LIMIT {params.add(limit + 1)}
    """
    row = await _fetch(connection, _owned_page(owner, page), params.values, scope, "users", user_id)
    return _owned(row, scope)


# A bucket holds a lineage of terms (a term Clever recreated stays one bucket), shown as its
# newest term; sections without a term share the last bucket.
_BUCKET_KEY = f"CASE WHEN t.id IS NOT NULL THEN {shapes.term_lineage('t')} END"
_NEWEST_TERM = "ORDER BY t.start_date DESC NULLS LAST, t.id DESC"
_TERM_BUCKET = shapes.json_object(
    shapes.term_bucket_fields(
        term=f"(array_agg({shapes.or_null('t', shapes.term_json('t'))} {_NEWEST_TERM}))[1]",
        current="coalesce(bool_or(current_date BETWEEN t.start_date AND t.end_date), false)",
        sections=f"json_agg({_user_section_json()} ORDER BY s.display_name, s.id)",
    )
)


def user_sections_by_term_sql(scope: Visibility, *, role: SectionRole | None) -> str:
    """The by-term statement; parameters: $1 user id and, for a scope limited to some
    districts, $2 their ids (the benchmark runs it too)."""
    return _by_term_sql(
        scope.include_inactive, scope.sensitive, role, scope.district_ids is not None
    )


@functools.cache
def _by_term_sql(
    include_inactive: bool, sensitive: bool, role: SectionRole | None, scoped: bool
) -> str:
    # Built once per variant: assembling the text costs more than a cache lookup per request.
    scope = Visibility(district_ids=None, include_inactive=include_inactive, sensitive=sensitive)
    owner = _owner("users", "$1", "$2" if scoped else None, include_inactive=scope.include_inactive)
    active = "" if scope.include_inactive else "WHERE s.deleted_at IS NULL"
    return f"""
        WITH o AS MATERIALIZED ({owner}), buckets AS (
            SELECT {_BUCKET_KEY} AS term_key,
                   (array_agg(t.start_date {_NEWEST_TERM}))[1] AS start_date,
                   (array_agg(t.name {_NEWEST_TERM}))[1] AS term_name,
                   {_TERM_BUCKET} AS bucket
            FROM ({_memberships(scope, role)}) m {_SECTION_CONTEXT}
            {active}
            GROUP BY 1
        )
        SELECT o.district_id, o.deleted_at IS NULL AS active,
               json_build_object('data', coalesce(
                   (SELECT json_agg(bucket ORDER BY term_key IS NULL, start_date NULLS LAST,
                                    term_name, term_key) FROM buckets),
                   '[]'::json)) AS body
        FROM o
    """


async def user_sections_by_term(
    connection: asyncpg.Connection, user_id: str, scope: Visibility, *, role: SectionRole | None
) -> OwnedObject | None:
    """The user's sections bucketed by term: by start date, undated terms and no term last."""
    args = (user_id,) if scope.district_ids is None else (user_id, scope.district_ids)
    row = await _fetch(
        connection, user_sections_by_term_sql(scope, role=role), args, scope, "users", user_id
    )
    if row is None or not visible(scope, row["district_id"], active=row["active"]):
        return None
    return OwnedObject(row["body"], row["district_id"])


def _linked_user_json(scope: Visibility) -> str:
    return shapes.json_object(
        shapes.linked_user_fields(sensitive=scope.sensitive, section_ids="l.section_ids")
    )


def teacher_students_sql(scope: Visibility, *, paged: bool) -> str:
    """The teacher's-students statement; parameters: $1 teacher id, $2 page size + 1, with
    `paged` $3 the last student id of the previous page, and for a scope limited to some
    districts then their ids."""
    return _teacher_students_sql(
        scope.include_inactive, scope.sensitive, paged, scope.district_ids is not None
    )


@functools.cache
def _teacher_students_sql(
    include_inactive: bool, sensitive: bool, paged: bool, scoped: bool
) -> str:
    scope = Visibility(district_ids=None, include_inactive=include_inactive, sensitive=sensitive)
    after = "AND e.student_id > $3" if paged else ""
    districts = f"${4 if paged else 3}" if scoped else None
    live = "" if scope.include_inactive else "AND u.deleted_at IS NULL"
    page = f"""
        SELECT u.id AS key, {_linked_user_json(scope)} AS body
        FROM (
            SELECT e.student_id, array_agg(e.section_id ORDER BY e.section_id) AS section_ids
            FROM o
            JOIN section_teachers st ON st.teacher_id = o.id AND st.district_id = o.district_id
            JOIN sections s ON s.id = st.section_id AND s.district_id = st.district_id
                 AND s.deleted_at IS NULL
            JOIN enrollments e ON e.section_id = st.section_id
                 AND e.district_id = st.district_id AND e.ended_at IS NULL
            WHERE st.deleted_at IS NULL {after}
            GROUP BY e.student_id
        ) l
        JOIN users u ON u.id = l.student_id AND u.district_id = (SELECT district_id FROM o)
             {live}
             {USER_OVERRIDES}
        ORDER BY u.id LIMIT $2
    """
    owner = _owner("users", "$1", districts, include_inactive=False, role="teacher")
    return _owned_page(owner, page)


async def teacher_students(
    connection: asyncpg.Connection,
    teacher_id: str,
    scope: Visibility,
    *,
    limit: int,
    after: str | None,
) -> Owned | None:
    """Distinct students of every active section the user teaches (primary or co-teacher)."""
    sql = teacher_students_sql(scope, paged=after is not None)
    args: tuple[object, ...] = (teacher_id, limit + 1)
    if after is not None:
        args += (after,)
    if scope.district_ids is not None:
        args += (scope.district_ids,)
    return _owned(await _fetch(connection, sql, args, scope, "users", teacher_id), scope)


async def student_teachers(
    connection: asyncpg.Connection,
    student_id: str,
    scope: Visibility,
    *,
    limit: int,
    after: str | None,
) -> Owned | None:
    """Distinct teachers of the student's active sections, each with the linking sections."""
    params = Params()
    owner = _owner(
        "users",
        params.add(student_id),
        _districts(params, scope),
        include_inactive=False,
        role="student",
    )
    after_condition = f"AND st.teacher_id > {params.add(after)}" if after is not None else ""
    live = "" if scope.include_inactive else "AND u.deleted_at IS NULL"
    page = f"""
        SELECT u.id AS key, {_linked_user_json(scope)} AS body
        FROM (
            SELECT st.teacher_id, array_agg(st.section_id ORDER BY st.section_id) AS section_ids
            FROM o
            JOIN enrollments e ON e.student_id = o.id AND e.district_id = o.district_id
                 AND e.ended_at IS NULL
            JOIN sections s ON s.id = e.section_id AND s.district_id = e.district_id
                 AND s.deleted_at IS NULL
            JOIN section_teachers st ON st.section_id = e.section_id
                 AND st.district_id = e.district_id AND st.deleted_at IS NULL
            WHERE true {after_condition}
            GROUP BY st.teacher_id
        ) l
        JOIN users u ON u.id = l.teacher_id AND u.district_id = (SELECT district_id FROM o)
             {live}
             {USER_OVERRIDES}
        ORDER BY u.id LIMIT {params.add(limit + 1)}
    """
    row = await _fetch(
        connection, _owned_page(owner, page), params.values, scope, "users", student_id
    )
    return _owned(row, scope)


async def student_contacts(
    connection: asyncpg.Connection,
    student_id: str,
    scope: Visibility,
    *,
    limit: int,
    after: str | None,
) -> Owned | None:
    """The student's contacts with their relationship to the student."""
    params = Params()
    owner = _owner(
        "users",
        params.add(student_id),
        _districts(params, scope),
        include_inactive=False,
        role="student",
    )
    conditions = []
    if not scope.include_inactive:
        conditions += ["cr.deleted_at IS NULL", "u.deleted_at IS NULL"]
    if after is not None:
        conditions.append(f"u.id > {params.add(after)}")
    body = shapes.json_object(shapes.contact_fields("cr", sensitive=scope.sensitive))
    page = f"""
        SELECT u.id AS key, {body} AS body
        FROM o
        JOIN contact_relationships cr ON cr.student_id = o.id AND cr.district_id = o.district_id
        JOIN users u ON u.id = cr.contact_id AND u.district_id = cr.district_id
        {USER_OVERRIDES}
        {where(conditions)}
        ORDER BY u.id LIMIT {params.add(limit + 1)}
    """
    row = await _fetch(
        connection, _owned_page(owner, page), params.values, scope, "users", student_id
    )
    return _owned(row, scope)


async def section_detail(
    connection: asyncpg.Connection, section_id: str, scope: Visibility
) -> str | None:
    """A section in context with its teachers (in order, primary flagged) and students."""
    current = not scope.include_inactive
    teacher = shapes.json_object(shapes.section_teacher_fields("st", sensitive=scope.sensitive))
    teachers = f"""
        SELECT coalesce(json_agg({teacher} ORDER BY st.position, u.id), '[]'::json)
        FROM section_teachers st
        JOIN users u ON u.id = st.teacher_id AND u.district_id = st.district_id
        {USER_OVERRIDES}
        WHERE st.section_id = s.id AND st.district_id = s.district_id
        {"AND st.deleted_at IS NULL AND u.deleted_at IS NULL" if current else ""}
    """
    # With history included a student may have had several stays: each is shown once.
    students = f"""
        SELECT coalesce(json_agg({shapes.user_json("u", sensitive=scope.sensitive)}
                                 ORDER BY u.name_last, u.name_first, u.id), '[]'::json)
        FROM users u {USER_OVERRIDES}
        WHERE u.district_id = s.district_id
          AND u.id IN (SELECT e.student_id FROM enrollments e
                       WHERE e.section_id = s.id AND e.district_id = s.district_id
                       {"AND e.ended_at IS NULL" if current else ""})
        {"AND u.deleted_at IS NULL" if current else ""}
    """
    body = shapes.json_object(
        shapes.section_detail_fields(teachers=f"({teachers})", students=f"({students})")
    )
    params = Params()
    owner = _owner(
        "sections",
        params.add(section_id),
        _districts(params, scope),
        include_inactive=scope.include_inactive,
    )
    row = await _fetch(
        connection,
        f"""
        SELECT s.district_id, s.deleted_at IS NULL AS active, {body} AS body
        FROM ({owner}) m(section_id, district_id) {_SECTION_CONTEXT}
        """,
        params.values,
        scope,
        "sections",
        section_id,
    )
    if row is None or not visible(scope, row["district_id"], active=row["active"]):
        return None
    result: str = row["body"]
    return result


async def school_users(
    connection: asyncpg.Connection,
    school_id: str,
    scope: Visibility,
    *,
    role: str | None,
    primary: bool | None,
    limit: int,
    after: str | None,
) -> Owned | None:
    """Users of the school: linked to it by Clever, or in one of its sections.

    `primary` is true when the school is the user's primary school.
    """
    params = Params()
    school = params.add(school_id)
    owner = _owner(
        "schools", school, _districts(params, scope), include_inactive=scope.include_inactive
    )
    role_param = params.add(role) if role is not None else None
    # The cursor goes into every part of the union, so a later page does not gather (and
    # sort) the members before it again.
    after_param = params.add(after) if after is not None else None

    def after_cursor(column: str) -> str:
        return f" AND {column} > {after_param}" if after_param else ""

    district = "(SELECT district_id FROM o)"
    live_link = "" if scope.include_inactive else "AND deleted_at IS NULL"
    members = [
        f"SELECT user_id FROM user_schools WHERE school_id = {school}"
        f" AND district_id = {district} {live_link}"
        + (f" AND role = {role_param}" if role_param else "")
        + after_cursor("user_id")
    ]
    live_section = "" if scope.include_inactive else "AND s.deleted_at IS NULL"
    if role in (None, "student"):
        members.append(
            "SELECT e.student_id FROM sections s JOIN enrollments e"
            " ON e.section_id = s.id AND e.district_id = s.district_id"
            f" WHERE s.school_id = {school} AND s.district_id = {district} {live_section}"
            + ("" if scope.include_inactive else " AND e.ended_at IS NULL")
            + after_cursor("e.student_id")
        )
    if role in (None, "teacher"):
        members.append(
            "SELECT st.teacher_id FROM sections s JOIN section_teachers st"
            " ON st.section_id = s.id AND st.district_id = s.district_id"
            f" WHERE s.school_id = {school} AND s.district_id = {district} {live_section}"
            + ("" if scope.include_inactive else " AND st.deleted_at IS NULL")
            + after_cursor("st.teacher_id")
        )
    conditions = [f"u.district_id = {district}"]
    if not scope.include_inactive:
        conditions.append("u.deleted_at IS NULL")
    if role is not None:
        conditions.append(f"{role_param} = ANY(u.roles)")
    if primary is not None:
        is_primary = f"u.primary_school_id IS NOT DISTINCT FROM {school}"
        conditions.append(is_primary if primary else f"NOT ({is_primary})")
    body = shapes.json_object(shapes.school_user_fields(sensitive=scope.sensitive, school=school))
    page = f"""
        SELECT u.id AS key, {body} AS body
        FROM ({" UNION ".join(members)}) m(user_id) JOIN users u ON u.id = m.user_id
        {USER_OVERRIDES}
        {where(conditions)}
        ORDER BY u.id LIMIT {params.add(limit + 1)}
    """
    row = await _fetch(
        connection, _owned_page(owner, page), params.values, scope, "schools", school_id
    )
    return _owned(row, scope)

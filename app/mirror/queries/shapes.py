"""The JSON each API object is built from, one function per shape.

Only the fields listed here leave the database: `raw` and, unless asked for, `sensitive` never
do. The API's response models (`app/api/schemas.py`) describe the same fields; a unit test
keeps the two equal, which is why every shape is a public `*_fields` mapping (key to SQL
expression, or to the mapping of a nested object).

Users, sections and terms show local overrides beside Clever's values: a statement that
builds one of their shapes joins `overrides_join(alias, entity)` after the record's table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeAlias

Fields: TypeAlias = Mapping[str, "str | Fields"]


def json_object(fields: Fields) -> str:
    """`json_build_object('key', expression, ...)`; nested mappings become nested objects."""
    return (
        "json_build_object("
        + ", ".join(
            f"'{key}', {expr if isinstance(expr, str) else json_object(expr)}"
            for key, expr in fields.items()
        )
        + ")"
    )


def _lifecycle(
    alias: str, *, active: str | None = None, overridable: bool = False
) -> dict[str, str | Fields]:
    return {
        "active": active or f"{alias}.deleted_at IS NULL",
        "updated_at": updated_at(alias, overridable=overridable),
        "deleted_at": f"{alias}.deleted_at",
    }


def _columns(alias: str, *names: str) -> dict[str, str | Fields]:
    return {name: f"{alias}.{name}" for name in names}


# The month a school year starts in (the API sets it per connection from
# SCHOOL_YEAR_START_MONTH; July when unset).
SCHOOL_YEAR_START_MONTH = (
    "COALESCE(NULLIF(current_setting('roster.school_year_start_month', true), '')::int, 7)"
)


def inferred_graduation_year(
    grade_level: str, *, on: str = "current_date", start_month: str = SCHOOL_YEAR_START_MONTH
) -> str:
    """SQL: the year a student in `grade_level` (the `grade_level` column: 1-12, 0 for
    Kindergarten, -1 and -2 for Transitional and PreKindergarten) graduates, counted from
    the school year that `on` falls in; null for other grades.

    Grade 12 graduates at the end of the current school year, grade 11 a year later, and so
    on down to Kindergarten (12 years later) and PreKindergarten (13). A school year starts
    on the first day of `start_month` and ends in the calendar year of its last month.
    """
    started = (
        f"(extract(year FROM {on})::int"
        f" - CASE WHEN extract(month FROM {on}) < {start_month} THEN 1 ELSE 0 END)"
    )
    ends = f"({started} + CASE WHEN {start_month} = 1 THEN 0 ELSE 1 END)"
    return (
        f"(CASE WHEN {grade_level} BETWEEN 0 AND 12 THEN {ends} + 12 - {grade_level}"
        f" WHEN {grade_level} IN (-2, -1) THEN {ends} + 13 END)"
    )


# Record kinds with overridable fields: field -> (SQL cast of the override's JSON text).
OVERRIDABLE: dict[str, dict[str, str]] = {
    "users": {"preferred_name": "", "graduation_year": "::int"},
    "sections": {"display_name": ""},
    "terms": {"name": "", "active": "::boolean", "lineage_id": ""},
}


def overrides_join(alias: str, entity: str) -> str:
    """FROM-clause part: the record's overrides as `{alias}_ov.fields` (field -> value,
    updated_at, updated_by), null when it has none, and the newest one's time as
    `{alias}_ov.updated_at`."""
    return (
        " LEFT JOIN LATERAL (SELECT jsonb_object_agg(o.field, jsonb_build_object("
        "'value', o.value, 'updated_at', o.updated_at, 'updated_by', o.updated_by)) AS fields,"
        " max(o.updated_at) AS updated_at"
        f" FROM overrides o WHERE o.district_id = {alias}.district_id"
        f" AND o.entity = '{entity}' AND o.record_id = {alias}.id) {alias}_ov ON true"
    )


def updated_at(alias: str, *, overridable: bool) -> str:
    """SQL: when the record last changed as the API shows it: a newer override counts (so
    `updated_since` finds a record whose override changed)."""
    if not overridable:
        return f"{alias}.updated_at"
    return f"GREATEST({alias}.updated_at, {alias}_ov.updated_at)"


def _overridden(alias: str, entity: str, field: str) -> str:
    """SQL: the field's override value, or null."""
    cast = OVERRIDABLE[entity][field]
    return f"(({alias}_ov.fields -> '{field}' ->> 'value'){cast})"


def _effective(alias: str, entity: str, field: str, clever: str) -> str:
    return f"COALESCE({_overridden(alias, entity, field)}, {clever})"


def _source(
    alias: str, entity: str, field: str, clever: str, *, inferred: str | None = None
) -> Fields:
    """Where a field's value comes from: an override, Clever, or a rule (`inferred`)."""
    entry = f"({alias}_ov.fields -> '{field}')"
    shown = clever if inferred is None else f"COALESCE({clever}, {inferred})"
    from_rule = (
        ""
        if inferred is None
        else f" WHEN {clever} IS NULL AND {inferred} IS NOT NULL THEN 'inferred'"
    )
    return {
        "value": _effective(alias, entity, field, shown),
        "clever_value": clever,
        "origin": f"CASE WHEN {entry} IS NOT NULL THEN 'override'{from_rule} ELSE 'clever' END",
        "updated_at": f"({entry} ->> 'updated_at')::timestamptz",
        "updated_by": f"({entry} ->> 'updated_by')",
    }


def _lineage(alias: str) -> str:
    """SQL: the lineage the merge found for a term or course (its own id before a merge
    looked)."""
    return f"COALESCE({alias}.lineage_id, {alias}.id)"


def term_lineage(alias: str = "t") -> str:
    """SQL: a term's lineage: the merge's, unless an override cut it."""
    return _effective(alias, "terms", "lineage_id", _lineage(alias))


def course_lineage(alias: str = "c") -> str:
    return _lineage(alias)


def term_active(alias: str = "t") -> str:
    """SQL: the term is active: Clever shares it, or an override reactivated it."""
    return _effective(alias, "terms", "active", f"{alias}.deleted_at IS NULL")


def or_null(alias: str, shape: str) -> str:
    """A shape of an outer-joined row, or JSON null when the join found nothing."""
    return f"CASE WHEN {alias}.id IS NULL THEN NULL ELSE {shape} END"


def district_paused(alias: str = "d") -> str:
    """SQL: Clever has the district's syncing paused now (`state` paused, or inside the
    window from `pause_start` to `pause_end`, which may be open-ended)."""
    return (
        f"({alias}.state IS NOT DISTINCT FROM 'paused' OR COALESCE({alias}.pause_start <= now()"
        f" AND ({alias}.pause_end IS NULL OR now() < {alias}.pause_end), false))"
    )


def district_connection(alias: str = "d") -> str:
    """SQL: `connected`, or `disconnected` while no Clever token serves the district."""
    return (
        "COALESCE((SELECT dc.status FROM district_connections dc"
        f" WHERE dc.district_id = {alias}.id), 'connected')"
    )


def district_fields(alias: str = "d") -> dict[str, str | Fields]:
    return (
        _columns(alias, "id", "name", "state", "sis_type", "nces_id", "mdr_number", "portal_url")
        | _columns(alias, "last_clever_sync", "pause_start", "pause_end")
        | _columns(alias, "sensitive_fields_enabled")
        | {"paused": district_paused(alias), "connection": district_connection(alias)}
        | _lifecycle(alias)
    )


def district_json(alias: str = "d") -> str:
    return json_object(district_fields(alias))


def school_fields(alias: str = "sc") -> dict[str, str | Fields]:
    return (
        _columns(alias, "id", "district_id", "name", "school_number", "sis_id", "state_id")
        | _columns(alias, "nces_id", "mdr_number", "low_grade", "high_grade", "phone")
        | {
            "principal": {"name": f"{alias}.principal_name", "email": f"{alias}.principal_email"},
            "address": _columns(alias, "address", "city", "state", "zip"),
        }
        | _lifecycle(alias)
    )


def school_json(alias: str = "sc") -> str:
    return json_object(school_fields(alias))


def term_fields(alias: str = "t") -> dict[str, str | Fields]:
    name = f"{alias}.name"
    clever_active = f"{alias}.deleted_at IS NULL"
    return (
        _columns(alias, "id", "district_id")
        | {"name": _effective(alias, "terms", "name", name)}
        | _columns(alias, "start_date", "end_date")
        | {"lineage_id": term_lineage(alias)}
        | _lifecycle(alias, active=term_active(alias), overridable=True)
        | {
            "sources": {
                "name": _source(alias, "terms", "name", name),
                "active": _source(alias, "terms", "active", clever_active),
                "lineage_id": _source(alias, "terms", "lineage_id", _lineage(alias)),
            }
        }
    )


def term_json(alias: str = "t") -> str:
    return json_object(term_fields(alias))


def course_fields(alias: str = "c") -> dict[str, str | Fields]:
    return (
        _columns(alias, "id", "district_id", "name", "number")
        | {"lineage_id": course_lineage(alias)}
        | _lifecycle(alias)
    )


def course_json(alias: str = "c") -> str:
    return json_object(course_fields(alias))


def section_fields(alias: str = "s") -> dict[str, str | Fields]:
    display_name = f"{alias}.display_name"
    return (
        _columns(alias, "id", "district_id", "name")
        | {"display_name": _effective(alias, "sections", "display_name", display_name)}
        | _columns(alias, "period", "section_number")
        | _columns(alias, "sis_id", "subject", "grade", "school_id", "course_id", "term_id")
        | _columns(alias, "primary_teacher_id")
        | _lifecycle(alias, overridable=True)
        | {"sources": {"display_name": _source(alias, "sections", "display_name", display_name)}}
    )


def section_json(alias: str = "s") -> str:
    return json_object(section_fields(alias))


def section_in_context_fields(
    alias: str = "s", *, school: str = "sc", course: str = "c", term: str = "t"
) -> dict[str, str | Fields]:
    """A section with its school, course and term embedded (null when not shared)."""
    return section_fields(alias) | {
        "school": or_null(school, school_json(school)),
        "course": or_null(course, course_json(course)),
        "term": or_null(term, term_json(term)),
    }


def user_section_fields(role: str) -> dict[str, str | Fields]:
    """A section in context (aliases `s`, `sc`, `c`, `t`) with the user's `role` in it."""
    return section_in_context_fields() | {"role": role}


def term_bucket_fields(*, term: str, current: str, sections: str) -> dict[str, str | Fields]:
    """One term (null when none) and the user's sections in it."""
    return {"term": term, "current": current, "sections": sections}


def section_detail_fields(*, teachers: str, students: str) -> dict[str, str | Fields]:
    """A section in context with the JSON arrays of its teachers and students."""
    return section_in_context_fields() | {"teachers": teachers, "students": students}


def user_fields(alias: str = "u", *, sensitive: bool) -> dict[str, str | Fields]:
    """A user; `sensitive` decides whether the sensitive student fields are shown (without
    it the `sensitive` member is left out)."""
    preferred = f"{alias}.preferred_first_name"
    preferred_name = _effective(alias, "users", "preferred_name", preferred)
    year = f"{alias}.graduation_year"
    inferred = inferred_graduation_year(f"{alias}.grade_level")
    return (
        _columns(alias, "id", "district_id", "roles")
        | {
            "person_id": (
                f"(SELECT pl.person_id FROM person_links pl"
                f" WHERE pl.user_id = {alias}.id AND pl.district_id = {alias}.district_id)"
            ),
            "name": {
                "first": f"{alias}.name_first",
                "middle": f"{alias}.name_middle",
                "last": f"{alias}.name_last",
                "preferred_first": preferred_name,
            },
            "preferred_name": preferred_name,
        }
        | _columns(alias, "email", "email_valid", "primary_school_id", "sis_id", "state_id")
        | _columns(alias, "student_number", "teacher_number", "staff_number", "title", "grade")
        | {
            "graduation_year": _effective(
                alias, "users", "graduation_year", f"COALESCE({year}, {inferred})"
            )
        }
        | _columns(alias, "dob", "gender", "phone")
        | ({"sensitive": f"{alias}.sensitive"} if sensitive else {})
        | _lifecycle(alias, overridable=True)
        | {
            "sources": {
                "preferred_name": _source(alias, "users", "preferred_name", preferred),
                "graduation_year": _source(
                    alias, "users", "graduation_year", year, inferred=inferred
                ),
            }
        }
    )


def user_json(alias: str = "u", *, sensitive: bool) -> str:
    return json_object(user_fields(alias, sensitive=sensitive))


def linked_user_fields(*, sensitive: bool, section_ids: str) -> dict[str, str | Fields]:
    """A user (alias `u`) with the ids of the sections that link them to another user."""
    return user_fields("u", sensitive=sensitive) | {"section_ids": section_ids}


def contact_fields(relationship: str = "cr", *, sensitive: bool) -> dict[str, str | Fields]:
    """A contact (alias `u`) with their relationship to one student."""
    return user_fields("u", sensitive=sensitive) | {
        "relationship": f"{relationship}.relationship",
        "type": f"{relationship}.type",
    }


def section_teacher_fields(link: str = "st", *, sensitive: bool) -> dict[str, str | Fields]:
    """A teacher (alias `u`) of one section, with their place among its teachers."""
    return user_fields("u", sensitive=sensitive) | {
        "position": f"{link}.position",
        "primary": f"{link}.is_primary",
    }


def school_user_fields(*, sensitive: bool, school: str) -> dict[str, str | Fields]:
    """A user (alias `u`) of a school, flagged when it is their primary school."""
    return user_fields("u", sensitive=sensitive) | {
        "primary": f"u.primary_school_id IS NOT DISTINCT FROM {school}"
    }


def group_fields(alias: str = "g") -> dict[str, str | Fields]:
    """A custom group with its members, each `active` while their Clever record is."""
    member = json_object(
        {
            "user_id": "m.user_id",
            "status": "CASE WHEN u.deleted_at IS NULL AND u.id IS NOT NULL"
            " THEN 'active' ELSE 'inactive' END",
            "added_at": "m.added_at",
        }
    )
    members = (
        f"(SELECT coalesce(json_agg({member} ORDER BY m.added_at, m.user_id), '[]'::json)"
        " FROM group_members m"
        " LEFT JOIN users u ON u.id = m.user_id AND u.district_id = m.district_id"
        f" WHERE m.group_id = {alias}.id)"
    )
    return (
        _columns(alias, "id", "district_id", "name", "owner_id", "source_section_id")
        | _columns(alias, "created_at", "created_by")
        | {"members": members}
        | _lifecycle(alias)
    )


def group_json(alias: str = "g") -> str:
    return json_object(group_fields(alias))


def person_fields(alias: str = "p") -> dict[str, str | Fields]:
    """A person with their linked user records (alias `p` for `people`)."""
    linked = (
        "FROM person_links pl JOIN users u ON u.id = pl.user_id AND u.district_id = pl.district_id"
        f" WHERE pl.person_id = {alias}.id"
    )
    record = json_object(
        {
            "user_id": "u.id",
            "roles": "u.roles",
            "active": "u.deleted_at IS NULL",
            "pinned": "pl.pinned",
        }
    )
    return {
        "id": f"{alias}.id",
        "district_id": f"{alias}.district_id",
        "email": f"COALESCE({alias}.email, (SELECT min(u.email_normalized) {linked}"
        " AND u.email_valid))",
        "user_ids": f"(SELECT coalesce(json_agg(u.id ORDER BY u.id), '[]'::json) {linked})",
        "roles": (
            "(SELECT coalesce(json_agg(r.role ORDER BY array_position("
            "ARRAY['teacher', 'staff', 'district_admin'], r.role)), '[]'::json)"
            f" FROM (SELECT DISTINCT unnest(u.roles) AS role {linked}) r)"
        ),
        "records": f"(SELECT coalesce(json_agg({record} ORDER BY u.id), '[]'::json) {linked})",
    }

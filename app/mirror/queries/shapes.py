"""The JSON each API object is built from, one function per shape.

Only the fields listed here leave the database: `raw` and, unless asked for, `sensitive` never
do. The API's response models (`app/api/schemas.py`) describe the same fields; a unit test
keeps the two equal, which is why every shape is a public `*_fields` mapping (key to SQL
expression, or to the mapping of a nested object).
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


def _lifecycle(alias: str) -> dict[str, str | Fields]:
    return {
        "active": f"{alias}.deleted_at IS NULL",
        "updated_at": f"{alias}.updated_at",
        "deleted_at": f"{alias}.deleted_at",
    }


def _columns(alias: str, *names: str) -> dict[str, str | Fields]:
    return {name: f"{alias}.{name}" for name in names}


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
    columns = _columns(alias, "id", "district_id", "name", "start_date", "end_date")
    return columns | _lifecycle(alias)


def term_json(alias: str = "t") -> str:
    return json_object(term_fields(alias))


def course_fields(alias: str = "c") -> dict[str, str | Fields]:
    return _columns(alias, "id", "district_id", "name", "number") | _lifecycle(alias)


def course_json(alias: str = "c") -> str:
    return json_object(course_fields(alias))


def section_fields(alias: str = "s") -> dict[str, str | Fields]:
    return (
        _columns(alias, "id", "district_id", "name", "display_name", "period", "section_number")
        | _columns(alias, "sis_id", "subject", "grade", "school_id", "course_id", "term_id")
        | _columns(alias, "primary_teacher_id")
        | _lifecycle(alias)
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


def term_bucket_fields(*, current: str, sections: str) -> dict[str, str | Fields]:
    """One term (alias `t`, null when none) and the user's sections in it."""
    return {"term": or_null("t", term_json("t")), "current": current, "sections": sections}


def section_detail_fields(*, teachers: str, students: str) -> dict[str, str | Fields]:
    """A section in context with the JSON arrays of its teachers and students."""
    return section_in_context_fields() | {"teachers": teachers, "students": students}


def user_fields(alias: str = "u", *, sensitive: bool) -> dict[str, str | Fields]:
    """A user; `sensitive` decides whether the sensitive student fields are shown."""
    return (
        _columns(alias, "id", "district_id", "roles")
        | {
            "name": {
                "first": f"{alias}.name_first",
                "middle": f"{alias}.name_middle",
                "last": f"{alias}.name_last",
                "preferred_first": f"{alias}.preferred_first_name",
            }
        }
        | _columns(alias, "email", "email_valid", "primary_school_id", "sis_id", "state_id")
        | _columns(alias, "student_number", "teacher_number", "staff_number", "title", "grade")
        | _columns(alias, "graduation_year", "dob", "gender", "phone")
        | {"sensitive": f"{alias}.sensitive" if sensitive else "NULL::json"}
        | _lifecycle(alias)
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

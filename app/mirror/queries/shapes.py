"""The JSON each API object is built from, one function per shape.

Only the fields listed here leave the database: `raw` and, unless asked for, `sensitive` never
do. The API's response models (`app/api/schemas.py`) describe the same fields; a test keeps
the two equal.
"""

from __future__ import annotations

from collections.abc import Mapping


def json_object(fields: Mapping[str, str]) -> str:
    """`json_build_object('key', expression, ...)` for a mapping of key to SQL expression."""
    return (
        "json_build_object(" + ", ".join(f"'{key}', {expr}" for key, expr in fields.items()) + ")"
    )


def _lifecycle(alias: str) -> dict[str, str]:
    return {
        "active": f"{alias}.deleted_at IS NULL",
        "updated_at": f"{alias}.updated_at",
        "deleted_at": f"{alias}.deleted_at",
    }


def _columns(alias: str, *names: str) -> dict[str, str]:
    return {name: f"{alias}.{name}" for name in names}


def or_null(alias: str, shape: str) -> str:
    """A shape of an outer-joined row, or JSON null when the join found nothing."""
    return f"CASE WHEN {alias}.id IS NULL THEN NULL ELSE {shape} END"


def district_json(alias: str = "d") -> str:
    return json_object(
        _columns(alias, "id", "name", "state", "sis_type", "nces_id", "mdr_number", "portal_url")
        | {"last_clever_sync": f"{alias}.last_clever_sync"}
        | _lifecycle(alias)
    )


def school_json(alias: str = "sc") -> str:
    return json_object(
        _columns(alias, "id", "district_id", "name", "school_number", "sis_id", "state_id")
        | _columns(alias, "nces_id", "mdr_number", "low_grade", "high_grade", "phone")
        | {
            "principal": json_object(
                {"name": f"{alias}.principal_name", "email": f"{alias}.principal_email"}
            ),
            "address": json_object(_columns(alias, "address", "city", "state", "zip")),
        }
        | _lifecycle(alias)
    )


def term_json(alias: str = "t") -> str:
    return json_object(
        _columns(alias, "id", "district_id", "name", "start_date", "end_date") | _lifecycle(alias)
    )


def course_json(alias: str = "c") -> str:
    return json_object(_columns(alias, "id", "district_id", "name", "number") | _lifecycle(alias))


def section_fields(alias: str = "s") -> dict[str, str]:
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
) -> dict[str, str]:
    """A section with its school, course and term embedded (null when not shared)."""
    return section_fields(alias) | {
        "school": or_null(school, school_json(school)),
        "course": or_null(course, course_json(course)),
        "term": or_null(term, term_json(term)),
    }


def user_fields(alias: str = "u", *, sensitive: bool) -> dict[str, str]:
    """A user; `sensitive` decides whether the sensitive student fields are shown (SPEC E4)."""
    return (
        _columns(alias, "id", "district_id", "roles")
        | {
            "name": json_object(
                {
                    "first": f"{alias}.name_first",
                    "middle": f"{alias}.name_middle",
                    "last": f"{alias}.name_last",
                    "preferred_first": f"{alias}.preferred_first_name",
                }
            )
        }
        | _columns(alias, "email", "email_valid", "primary_school_id", "sis_id", "state_id")
        | _columns(alias, "student_number", "teacher_number", "staff_number", "title", "grade")
        | _columns(alias, "graduation_year", "dob", "gender", "phone")
        | {"sensitive": f"{alias}.sensitive" if sensitive else "NULL::json"}
        | _lifecycle(alias)
    )


def user_json(alias: str = "u", *, sensitive: bool) -> str:
    return json_object(user_fields(alias, sensitive=sensitive))

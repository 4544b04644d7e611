from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import orjson
import pytest

from app.mirror.columns import SECTION_COLUMNS, USER_COLUMNS
from app.sync import normalize
from app.sync.normalize import (
    Collector,
    clean_email,
    clean_grade,
    clean_text,
    parse_dob,
    parse_flag,
)


def _codes(item: normalize.Normalized) -> set[tuple[str | None, str]]:
    return {(issue.field, issue.code) for issue in item.warnings}


def _user_row(item: normalize.Normalized) -> dict[str, Any]:
    assert item.row is not None
    return dict(zip(USER_COLUMNS, item.row, strict=True))


def test_text_is_trimmed_and_nfc_normalized() -> None:
    c = Collector("users", "u1")
    decomposed = "  Jose\u0301  "
    assert clean_text(decomposed, c, "name.first") == "Jos\u00e9"
    assert clean_text("   ", c, "name.first") is None
    assert clean_text(42, c, "number") == "42"
    assert c.warnings == []


def test_long_text_is_kept_and_flagged() -> None:
    c = Collector("users", "u1")
    assert clean_text("x" * 300, c, "name.last") == "x" * 300
    assert [(w.field, w.code) for w in c.warnings] == [("name.last", "value_too_long")]


@pytest.mark.parametrize(
    ("raw", "normalized", "valid"),
    [
        ("Ana.Diaz@Example.org ", "ana.diaz@example.org", True),
        ("ana.diaz.example.org", "ana.diaz.example.org", False),
        ("ana@localhost", "ana@localhost", False),
    ],
)
def test_emails_are_kept_normalized_and_flagged(raw: str, normalized: str, valid: bool) -> None:
    c = Collector("users", "u1")
    email, email_normalized, email_valid = clean_email(raw, c)
    assert email == raw.strip()
    assert email_normalized == normalized
    assert email_valid is valid
    assert bool(c.warnings) is (not valid)


@pytest.mark.parametrize(
    ("raw", "grade", "level"),
    [
        ("Kindergarten", "Kindergarten", 0),
        ("K", "Kindergarten", 0),
        ("07", "7", 7),
        ("12", "12", 12),
        ("PreKindergarten", "PreKindergarten", -2),
        ("PostGraduate", "PostGraduate", 14),
        ("Ungraded", "Ungraded", None),
    ],
)
def test_grades_are_ordered(raw: str, grade: str, level: int | None) -> None:
    c = Collector("users", "u1")
    assert clean_grade(raw, c) == (grade, level)
    assert c.warnings == []


def test_unknown_grade_is_kept_with_a_warning() -> None:
    c = Collector("users", "u1")
    assert clean_grade("Senior", c) == ("Senior", None)
    assert c.warnings[0].code == "invalid_grade"


def test_dob_and_flags() -> None:
    c = Collector("users", "u1")
    assert parse_dob("3/7/2012", c) == date(2012, 3, 7)
    assert parse_dob("2012-03-07", c) == date(2012, 3, 7)
    assert parse_dob("13/45/2012", c) is None
    assert c.warnings[0].code == "invalid_date"
    assert [parse_flag(v) for v in ("Y", "N", "", None, "y")] == [True, False, None, None, True]


def _student(**overrides: Any) -> dict[str, Any]:
    student = {
        "school": "sch1",
        "schools": ["sch1", "sch2"],
        "grade": "5",
        "dob": "1/2/2014",
        "student_number": "123",
        "iep_status": "Y",
        "ell_status": "N",
    }
    return {
        "id": "stu1",
        "district": "d1",
        "email": "kid@school.org",
        "name": {"first": "Zoë", "last": "O'Brien-Núñez"},
        "last_modified": "2024-05-01T10:00:00.000Z",
        "roles": {"student": student | overrides},
        "unknown_extra": {"kept": True},
    }


def test_student_row_links_and_raw() -> None:
    item = normalize.normalize_user(_student(), sensitive_enabled=False)
    row = _user_row(item)
    assert row["roles"] == ["student"]
    assert row["name_first"] == "Zoë" and row["name_last"] == "O'Brien-Núñez"
    assert row["grade"] == "5" and row["grade_level"] == 5
    assert row["dob"] == date(2014, 1, 2)
    assert row["primary_school_id"] == "sch1"
    assert row["source_last_modified"] == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert row["sensitive"] is None
    raw = orjson.loads(row["raw"])
    assert "iep_status" not in raw["roles"]["student"]  # not stored unless enabled
    assert raw["unknown_extra"] == {"kept": True}
    assert item.user_schools == [
        ("stu1", "student", "sch1", True),
        ("stu1", "student", "sch2", False),
    ]
    assert item.warnings == []


def test_sensitive_fields_only_when_enabled() -> None:
    item = normalize.normalize_user(_student(), sensitive_enabled=True)
    row = _user_row(item)
    assert orjson.loads(row["sensitive"]) == {"iep_status": "Y", "ell_status": False}
    assert orjson.loads(row["raw"])["roles"]["student"]["iep_status"] == "Y"
    disabled = normalize.normalize_user(_student(), sensitive_enabled=False)
    assert disabled.row is not None and item.row is not None
    assert _user_row(disabled)["content_hash"] != row["content_hash"]


def test_content_hash_sees_every_change() -> None:
    a = normalize.normalize_user(_student(), sensitive_enabled=False)
    same = normalize.normalize_user(_student(), sensitive_enabled=False)
    c = normalize.normalize_user(_student(grade="6"), sensitive_enabled=False)
    assert _user_row(a)["content_hash"] == _user_row(same)["content_hash"]
    assert _user_row(a)["content_hash"] != _user_row(c)["content_hash"]


def test_bad_user_is_stored_with_warnings() -> None:
    raw = {
        "id": "t1",
        "email": "no-at-sign",
        "name": {"first": "   "},
        "roles": {"staff": {"schools": ["s1", "s2"]}},
    }
    item = normalize.normalize_user(raw, sensitive_enabled=False)
    row = _user_row(item)
    assert row["email_valid"] is False and row["email"] == "no-at-sign"
    assert row["primary_school_id"] is None
    assert item.user_schools == [("t1", "staff", "s1", False), ("t1", "staff", "s2", False)]
    assert {("email", "invalid_email"), ("name", "missing_name")} <= _codes(item)


@pytest.mark.parametrize("raw", [{"name": "no id"}, {"id": ""}, "not an object", None])
def test_record_without_id_is_skipped_with_a_warning(raw: Any) -> None:
    item = normalize.normalize_user(raw, sensitive_enabled=False)
    assert item.row is None
    assert [(w.record_id, w.code) for w in item.warnings] == [(None, "missing_id")]


def test_contact_relationships() -> None:
    raw = {
        "id": "c1",
        "roles": {
            "contact": {
                "student_relationships": [
                    {"student": "s1", "relationship": "Aunt/Uncle", "type": "Emergency"},
                    {"student": "s2", "relationship": "Space Cadet", "type": ""},
                    {"student": "s1", "relationship": "Parent"},
                    {"relationship": "Parent"},
                ]
            }
        },
    }
    item = normalize.normalize_user(raw, sensitive_enabled=False)
    assert item.contacts == [
        ("c1", "s1", "Aunt/Uncle", "Emergency"),
        ("c1", "s2", "Space Cadet", None),
    ]
    assert ("email", "missing_email") not in _codes(item)


def test_section_teachers_in_order_and_students() -> None:
    raw = {
        "id": "sec1",
        "school": "sch1",
        "teacher": "t2",
        "teachers": ["t1", "t2", "t3", "t1"],
        "students": ["s1", "s2", "s1", ""],
        "period": "3",
    }
    item = normalize.normalize_section(raw)
    assert item.row is not None
    row = dict(zip(SECTION_COLUMNS, item.row, strict=True))
    assert row["primary_teacher_id"] == "t2" and row["name"] is None
    assert item.section_teachers == [
        ("sec1", "t2", 0, True),
        ("sec1", "t1", 1, False),
        ("sec1", "t3", 2, False),
    ]
    assert item.enrollments == [("sec1", "s1"), ("sec1", "s2")]
    assert {
        ("name", "missing_name"),
        ("term_id", "missing_term"),
        ("course", "missing_course"),
    } <= _codes(item)


def test_section_with_too_many_teachers_keeps_them_all() -> None:
    raw = {"id": "sec1", "teachers": [f"t{n}" for n in range(12)], "students": ["s"]}
    item = normalize.normalize_section(raw)
    assert len(item.section_teachers) == 12
    assert not any(is_primary for *_, is_primary in item.section_teachers)
    assert ("teachers", "too_many_teachers") in _codes(item)


def test_term_dates() -> None:
    item = normalize.normalize_term(
        {"id": "term1", "name": "Fall", "start_date": "2024-08-20T00:00:00.000Z", "end_date": "bad"}
    )
    assert item.row is not None
    assert item.row[2] == date(2024, 8, 20) and item.row[3] is None
    assert ("end_date", "invalid_date") in _codes(item)

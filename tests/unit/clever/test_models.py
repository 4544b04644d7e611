"""The wire models accept whatever Clever sends and keep it."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from app.clever import RECORD_MODELS, Course, District, Event, School, Section, Term, User


def test_a_v31_student_parses_with_every_nested_object() -> None:
    raw: dict[str, Any] = {
        "id": "u1",
        "district": "d1",
        "email": "ada@example.org",
        "name": {"first": "Ada", "middle": "", "last": "Lovelace"},
        "lms_status": {"synced_in_lms": True},
        "roles": {
            "student": {
                "dob": "12/10/2012",
                "grade": "6",
                "frl_status": "Free",
                "iep_status": "Y",
                "gifted_status": "N",
                "section_504_status": "",
                "home_language": "English",
                "home_language_code": "eng",
                "disability": {"disability_status": "Y", "disability_code": "sld"},
                "preferred_name": {"first": "Addie"},
                "credentials": {"district_username": "alovelace"},
                "enrollments": [{"school": "s1", "start_date": "2023-08-20T00:00:00.000Z"}],
                "location": {"zip": "02139", "lat": "42.36"},
                "schools": ["s1", "s2"],
            }
        },
    }

    user = User.model_validate(raw)

    assert user.role_names == ["student"]
    assert user.roles is not None and user.roles.student is not None
    student = user.roles.student
    assert student.preferred_name is not None and student.preferred_name.first == "Addie"
    assert student.disability is not None and student.disability.disability_code == "sld"
    assert student.enrollments is not None and student.enrollments[0].school == "s1"
    assert user.lms_status is not None and user.lms_status.synced_in_lms is True
    assert user.raw is raw
    assert user.invalid_fields == ()


def test_users_of_every_role() -> None:
    raw: dict[str, Any] = {
        "id": "u9",
        "roles": {
            "teacher": {"teacher_number": "T1", "schools": ["s1"], "name": {"first": "T"}},
            "staff": {"department": "IT", "roles": ["IT Admin"], "staff_id": "S1"},
            "district_admin": {"title": "Superintendent"},
            "contact": {
                "phone": "555",
                "phone_type": "Cell",
                "student_relationships": [
                    {"student": "u1", "relationship": "Parent", "type": "Primary"}
                ],
            },
            "student": {},
        },
    }

    user = User.model_validate(raw)

    assert user.role_names == ["student", "teacher", "staff", "district_admin", "contact"]
    assert user.roles is not None and user.roles.contact is not None
    relationships = user.roles.contact.student_relationships
    assert relationships is not None and relationships[0].student == "u1"


def test_only_id_is_required() -> None:
    for model in RECORD_MODELS.values():
        assert model.model_validate({"id": "x"}).id == "x"
    for bad in ({}, {"id": None}, {"id": ""}, {"id": True}, {"id": {"$oid": "x"}}):
        with pytest.raises(ValidationError):
            User.model_validate(bad)


def test_numbers_become_text() -> None:
    section = Section.model_validate(
        {"id": 12345, "period": 3, "grade": 10, "students": [1, "u2"], "sis_id": 7.5}
    )

    assert (section.id, section.period, section.grade, section.sis_id) == (
        "12345",
        "3",
        "10",
        "7.5",
    )
    assert section.students == ["1", "u2"]
    assert section.invalid_fields == ()


def test_values_of_the_wrong_type_are_dropped_and_reported() -> None:
    raw: dict[str, Any] = {
        "id": "u1",
        "email": False,
        "name": "Ada Lovelace",
        "roles": {
            "student": {
                "grade": {"value": "6"},
                "schools": ["s1", None, ["s2"], "s3"],
                "enrollments": [{"school": "s1"}, "s2", {"school": [1]}],
                "ext": "not an object",
            }
        },
        "lms_status": {"synced_in_lms": "maybe"},
    }

    user = User.model_validate(raw)

    assert user.email is None and user.name is None and user.lms_status is not None
    student = user.roles.student if user.roles else None
    assert student is not None
    assert student.grade is None and student.ext is None
    assert student.schools == ["s1", "s3"]
    assert student.enrollments is not None
    assert [e.school for e in student.enrollments] == ["s1", None]
    assert set(user.invalid_fields) == {
        "email",
        "name",
        "roles.student.grade",
        "roles.student.schools[1]",
        "roles.student.schools[2]",
        "roles.student.enrollments[1]",
        "roles.student.enrollments[2].school",
        "roles.student.ext",
        "lms_status.synced_in_lms",
    }
    assert user.raw is raw
    assert raw["roles"]["student"]["schools"] == ["s1", None, ["s2"], "s3"]


def test_unknown_fields_and_enum_values_are_kept() -> None:
    raw: dict[str, Any] = {
        "id": "s1",
        "subject": "astrology",
        "lms_status": {"synced_in_lms": False, "provider": "canvas"},
        "brand_new": [1, {"a": None}],
    }

    section = Section.model_validate(raw)

    assert section.subject == "astrology"
    assert section.model_extra == {"brand_new": [1, {"a": None}]}
    assert section.lms_status is not None
    assert section.lms_status.model_extra == {"provider": "canvas"}
    assert section.model_dump(mode="json", exclude_unset=True) == raw


def test_validation_errors_do_not_echo_personal_data() -> None:
    with pytest.raises(ValidationError) as caught:
        User.model_validate({"name": {"first": "Secretname"}, "email": "kid@example.org"})

    assert "Secretname" not in str(caught.value)
    assert "kid@example.org" not in str(caught.value)


def test_every_collection_has_its_model() -> None:
    expected = {
        "districts": District,
        "schools": School,
        "users": User,
        "sections": Section,
        "terms": Term,
        "courses": Course,
    }
    assert expected == RECORD_MODELS


def test_event_helpers() -> None:
    event = Event.model_validate(
        {
            "id": "e1",
            "type": "courses.updated",
            "created": "2024-01-01T00:00:00Z",
            "data": {"object": {"id": "c1", "name": "Algebra"}, "previous_attributes": {"a": 1}},
            "previous_attributes": {"a": 0, "b": 2},
        }
    )

    course = event.record()
    assert isinstance(course, Course) and course.name == "Algebra"
    assert (event.record_type, event.action) == ("courses", "updated")
    assert event.previous_attributes_merged == {"a": 1, "b": 2}


@pytest.mark.parametrize(
    "raw",
    [
        {"id": "e1", "type": "resources.created", "data": {"object": {"id": "r1"}}},
        {"id": "e1", "type": "users.deleted"},
        {"id": "e1", "type": "weird", "data": {"object": {"id": "x"}}},
        {"id": "e1"},
    ],
)
def test_events_without_a_modelled_record(raw: dict[str, Any]) -> None:
    event = Event.model_validate(raw)

    assert event.record() is None
    assert event.previous_attributes_merged == {}


def test_an_event_object_without_id_raises_on_record() -> None:
    event = Event.model_validate({"id": "e1", "type": "users.created", "data": {"object": {}}})

    with pytest.raises(ValidationError):
        event.record()

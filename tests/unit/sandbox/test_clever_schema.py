"""The sandbox serves records Clever's own schema accepts, unless it is told to be messy.

The enums and the date-of-birth pattern are those of Clever's v3.0/v3.1 OpenAPI documents
for the fields the generator fills with odd values; `--messy` districts step outside them,
as real districts do.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.config import DistrictConfig
from sandbox.district import SandboxDistrict

DOB = re.compile(r"(?:[0-9]{1,2})/([0-9]{1,2})/([0-9]{4})")
STUDENT_ENUMS = {
    "gender": {"M", "F", "X", ""},
    "grade": {
        "InfantToddler", "Preschool", "PreKindergarten", "TransitionalKindergarten",
        "Kindergarten", *map(str, range(1, 14)), "PostGraduate", "Ungraded", "Other", "",
    },
    "race": {
        "Caucasian", "Asian", "Black or African American", "American Indian",
        "Hawaiian or Other Pacific Islander", "Two or More Races", "Unknown", "",
    },
    "hispanic_ethnicity": {"Y", "N", ""},
    "ell_status": {"Y", "N", ""},
    "frl_status": {"Free", "Reduced", "Paid", "Other", ""},
    "gifted_status": {"Y", "N", ""},
    "section_504_status": {"Y", "N", ""},
}  # fmt: skip
RELATIONSHIP = {"Parent", "Grandparent", "Self", "Aunt/Uncle", "Sibling", "Other", ""}
RELATIONSHIP_TYPE = {"Parent/Guardian", "Emergency", "Primary", "Secondary", "Family", "Other", ""}
PHONE_TYPE = {"Cell", "Home", "Work", "Other", ""}


def violations(district: SandboxDistrict) -> Iterator[tuple[str, Any]]:
    """(field, value) for every value outside Clever's schema."""
    for user in district.iter_records("users"):
        roles = user.get("roles") or {}
        student = roles.get("student") or {}
        for name, allowed in STUDENT_ENUMS.items():
            if student.get(name) is not None and student[name] not in allowed:
                yield name, student[name]
        dob = student.get("dob")
        if dob is not None and not DOB.search(dob):
            yield "dob", dob
        contact = roles.get("contact") or {}
        if contact.get("phone_type") not in (None, *PHONE_TYPE):
            yield "phone_type", contact["phone_type"]
        for item in contact.get("student_relationships") or []:
            if item.get("relationship") not in RELATIONSHIP:
                yield "relationship", item["relationship"]
            if item.get("type") not in RELATIONSHIP_TYPE:
                yield "type", item["type"]


@pytest.mark.parametrize(("size", "seed"), [("tiny", 3), ("tiny", 4), ("S", 1)])
def test_a_district_is_valid_under_clevers_schema_by_default(size: str, seed: int) -> None:
    assert list(violations(SandboxDistrict(DistrictConfig(size=size, seed=seed)))) == []


def test_a_messy_district_sends_what_clevers_schema_rejects() -> None:
    found = {
        name
        for name, _ in violations(SandboxDistrict(DistrictConfig(size="tiny", seed=3, messy=True)))
    }
    assert {"dob", "relationship", "type"} <= found

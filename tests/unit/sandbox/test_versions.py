"""v3.0 responses leave out the fields Clever added in v3.1."""

from __future__ import annotations

from sandbox.config import DistrictConfig
from sandbox.district import SandboxDistrict
from sandbox.generator import V31_RECORD_FIELDS, V31_STUDENT_FIELDS, strip_v31


def test_v30_hides_v31_fields_and_v31_shows_them() -> None:
    district = SandboxDistrict(DistrictConfig(size="tiny"))
    v31_keys: set[str] = set()
    for student in district.iter_records("users", "student", v31=True):
        v31_keys.update(student["roles"]["student"])
    assert v31_keys >= V31_STUDENT_FIELDS
    for student in district.iter_records("users", "student", v31=False):
        assert V31_STUDENT_FIELDS.isdisjoint(student["roles"]["student"])
        assert "ell_status" in student["roles"]["student"]
    for section in district.iter_records("sections", v31=False):
        assert V31_RECORD_FIELDS.isdisjoint(section)


def test_strip_v31_also_cleans_overlay_records() -> None:
    district = SandboxDistrict(DistrictConfig(size="tiny"))
    student_id = district.truth.ids("users", "student")[0]
    district.update(student_id, {"roles": {"student": {"iep_status": "Y", "grade": "3"}}})
    found = district.get(student_id, v31=False)
    assert found is not None
    role = found[1]["roles"]["student"]
    assert role["grade"] == "3"
    assert "iep_status" not in role
    record = {"id": "x", "lms_status": {"synced_in_lms": True}}
    assert strip_v31(record) == {"id": "x"}

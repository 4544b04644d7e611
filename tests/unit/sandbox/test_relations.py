"""The pieces the nested routes stand on: section links without rendering, merged indices."""

from __future__ import annotations

import pytest

from sandbox.config import DistrictConfig
from sandbox.district import SandboxDistrict
from sandbox.ids import Code
from sandbox.relations import _Merged


def _assert_links_match_records(district: SandboxDistrict) -> None:
    generator = district.generator
    values = {
        "school": generator.school_ids[:3],
        "term_id": district.truth.ids("terms"),
        "course": district.truth.ids("courses")[:5],
    }
    matchers = [
        (slot, value, district.section_matcher(field, value))
        for slot, field in enumerate(("school", "term_id", "course"))
        for value in values[field]
    ]
    for index in range(generator.counts[Code.SECTION]):
        record = district.current_generated(Code.SECTION, index, True)
        expected = (record.get("school"), record.get("term_id"), record.get("course"))
        assert district.section_links(index) == expected, index
        for slot, value, matches in matchers:
            assert matches(index) == (expected[slot] == value), (index, value)


@pytest.mark.parametrize("size", ["tiny", "S"])
def test_section_links_are_the_served_fields(size: str) -> None:
    district = SandboxDistrict(DistrictConfig(size=size, seed=3))
    _assert_links_match_records(district)
    sections = district.truth.ids("sections")
    district.update(sections[0], {"school": district.truth.ids("schools")[-1]})
    district.roll_over_terms()
    district.update(sections[1], {"term_id": None})
    district.roll_over_terms()
    _assert_links_match_records(district)


def test_merged_indices_ascend_without_repeats() -> None:
    merged = _Merged(range(10, 20), [3, 12, 25, 19, 30, 3])
    assert list(merged) == [3, *range(10, 20), 25, 30]
    assert len(_Merged(range(0), [])) == 0
    assert list(_Merged(range(0), [7, 2])) == [2, 7]

"""Changes on top of the generated district: paging stays right, truth follows, events record."""

from __future__ import annotations

import pytest

from sandbox.changes import apply_changes
from sandbox.config import DistrictConfig
from sandbox.district import ChangeError, SandboxDistrict


@pytest.fixture
def district() -> SandboxDistrict:
    return SandboxDistrict(DistrictConfig(size="tiny"))


def _events_after(district: SandboxDistrict, event_id: str | None) -> list[dict[str, object]]:
    records, _ = district.page_events(starting_after=event_id, limit=10_000)
    return records


def _walk(district: SandboxDistrict, collection: str) -> list[str]:
    """The ids of every page of a collection, following Clever-style cursors."""
    seen: list[str] = []
    cursor = None
    while True:
        records, full = district.page(collection, starting_after=cursor, limit=7)
        seen += [record["id"] for record in records]
        if not full:
            return seen
        cursor = records[-1]["id"]


def test_paging_walks_every_record_once_in_ascending_order(district: SandboxDistrict) -> None:
    expected = district.truth.ids("users")
    seen = _walk(district, "users")
    assert seen == expected == sorted(expected)
    assert len(seen) == district.truth.counts()["users"]
    before, _ = district.page("users", ending_before=expected[10], limit=4)
    assert [record["id"] for record in before] == expected[6:10]
    last, _ = district.page("users", ending_before="last", limit=2)
    assert [record["id"] for record in last] == expected[-2:]


def test_update_records_an_event_with_previous_attributes(district: SandboxDistrict) -> None:
    cursor = district.newest_event_id()
    student_id = district.truth.ids("users", "student")[4]
    old = district.truth.record(student_id)
    assert old is not None
    district.update(student_id, {"name": {"first": "Zoë"}, "email": "zoe@example.org"})
    record = district.truth.record(student_id)
    assert record is not None and record["name"]["first"] == "Zoë"
    assert record["name"]["last"] == old["name"]["last"]
    [event] = _events_after(district, cursor)
    assert event["type"] == "users.updated"
    data = event["data"]
    assert isinstance(data, dict)
    assert data["object"]["email"] == "zoe@example.org"
    assert data["previous_attributes"] == {"email": old.get("email"), "name": old["name"]}


def test_create_and_delete_change_counts_paging_and_truth(district: SandboxDistrict) -> None:
    counts = district.truth.counts()
    section_id = district.truth.ids("sections")[0]
    student_id = district.create(
        "users", {"name": {"first": "Ana", "last": "Peña"}}, role="student"
    )
    district.add_students(section_id, [student_id])
    assert district.truth.student_section_ids(student_id) == [section_id]
    assert district.truth.ids("users")[-1] == student_id
    assert district.truth.counts()["students"] == counts["students"] + 1
    teacher_id = district.truth.ids("users", "teacher")[3]
    district.delete(teacher_id)
    assert teacher_id not in district.truth.ids("users")
    assert district.get(teacher_id) is None
    assert district.truth.counts()["teachers"] == counts["teachers"] - 1
    types = [event["type"] for event in _events_after(district, None)]
    assert types[-3:] == ["users.created", "sections.updated", "users.deleted"]


def test_remove_students_and_move_student(district: SandboxDistrict) -> None:
    truth = district.truth
    section_id = next(s for s in truth.ids("sections") if len(truth.section_student_ids(s)) >= 2)
    leaving = truth.section_student_ids(section_id)[0]
    district.remove_students(section_id, [leaving])
    assert leaving not in truth.section_student_ids(section_id)
    assert section_id not in truth.student_section_ids(leaving)
    schools = truth.ids("schools")
    district.move_student(leaving, schools[-1])
    assert truth.user_school_ids(leaving) == [schools[-1]]


def test_term_roll_over_gives_new_ids_and_sections_follow(district: SandboxDistrict) -> None:
    cursor = district.newest_event_id()
    old_terms = district.truth.ids("terms")
    old_courses = set(district.truth.ids("courses"))
    mapping = district.roll_over_terms()
    new_terms = district.truth.ids("terms")
    assert set(new_terms).isdisjoint(old_terms)
    assert len(new_terms) == len(old_terms)
    first_term = district.truth.record(new_terms[0])
    year = district.generator.school_year + 1
    assert first_term is not None and first_term["name"] == f"{year}-{year + 1} School Year"
    assert first_term["start_date"] == f"{year}-08-18"
    for section in district.iter_records("sections"):
        assert section.get("term_id") is None or section["term_id"] in new_terms
        assert section.get("course") is None or section["course"] not in old_courses
    events = _events_after(district, cursor)
    types = [event["type"] for event in events]
    assert (
        types.index("terms.created")
        < types.index("sections.updated")
        < types.index("terms.deleted")
    )
    update = next(event for event in events if event["type"] == "sections.updated")
    data = update["data"]
    assert isinstance(data, dict)
    previous = data["previous_attributes"]
    assert set(previous) <= {"term_id", "course"}
    assert all(mapping[old] == data["object"][key] for key, old in previous.items())


def test_unshare_removes_a_share_and_records_deletions(district: SandboxDistrict) -> None:
    cursor = district.newest_event_id()
    before = district.truth.counts()["students"]
    gone = district.unshare("users", 0.5, role="student")
    assert 0.3 * before <= gone <= 0.7 * before
    assert district.truth.counts()["students"] == before - gone
    assert len(district.truth.ids("users", "student")) == before - gone
    deletions = _events_after(district, cursor)
    assert len(deletions) == gone
    assert {event["type"] for event in deletions} == {"users.deleted"}
    for event in deletions:
        data = event["data"]
        assert isinstance(data, dict)
        assert district.get(data["object"]["id"]) is None


def test_expired_events_are_not_served(district: SandboxDistrict) -> None:
    first = district.newest_event_id()
    assert first is not None
    district.update(district.truth.ids("courses")[0], {"name": "Álgebra"})
    district.expire_events(first)
    assert not district.event_is_retained(first)
    assert [event["type"] for event in _events_after(district, None)] == ["courses.updated"]


def test_change_sets_apply_in_order_and_report_events(district: SandboxDistrict) -> None:
    school = district.truth.ids("schools")[0]
    result = apply_changes(
        district,
        [
            {"op": "create", "collection": "users", "role": "teacher", "record": {}},
            {"op": "create", "collection": "sections", "record": {"school": school}},
        ],
    )
    teacher_id, section_id = result["results"]
    assert result["events"]["count"] == 2
    apply_changes(district, [{"op": "update", "id": section_id, "set": {"teacher": teacher_id}}])
    assert district.truth.teacher_section_ids(teacher_id) == [section_id]
    with pytest.raises(ChangeError):
        apply_changes(district, [{"op": "update", "id": "nope", "set": {}}])
    with pytest.raises(ChangeError):
        apply_changes(district, [{"op": "explode"}])


@pytest.mark.parametrize("other_seed", [2, 3])
def test_a_record_served_under_another_districts_id_pages_in_id_order(
    district: SandboxDistrict, other_seed: int
) -> None:
    other = SandboxDistrict(DistrictConfig(size="tiny", seed=other_seed))
    foreign_ids = [record["id"] for record in other.iter_records("users", "student")][:2]
    result = apply_changes(
        district,
        [
            {
                "op": "create_with_id",
                "collection": "users",
                "role": "student",
                "id": record_id,
                "record": {"name": {"first": "Copied"}},
            }
            for record_id in foreign_ids
        ],
    )
    assert result["results"] == foreign_ids
    seen = _walk(district, "users")
    assert seen == sorted(seen)
    assert set(foreign_ids) <= set(seen)
    found = district.get(foreign_ids[0])
    assert found is not None and found[1]["name"]["first"] == "Copied"
    assert found[1]["district"] == district.id
    district.delete(foreign_ids[0])
    assert district.get(foreign_ids[0]) is None
    with pytest.raises(ChangeError):
        district.create_with_id("users", foreign_ids[1], role="student")

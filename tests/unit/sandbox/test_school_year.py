"""The generated school year sits around "today", and courses and titles fit their schools."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from sandbox.config import DistrictConfig, EdgeRates
from sandbox.district import SandboxDistrict
from sandbox.generator import GRADES
from sandbox.ids import Code
from sandbox.layout import Layout
from sandbox.names import (
    ELEMENTARY_COURSES,
    HIGH_COURSES,
    MIDDLE_COURSES,
    UNASSIGNED_TEACHER_TITLES,
    Course,
)

CATALOGUE_BY_LOW_GRADE: dict[str, tuple[Course, ...]] = {
    "Kindergarten": ELEMENTARY_COURSES,
    "6": MIDDLE_COURSES,
    "9": HIGH_COURSES,
}


def _role(user: dict[str, Any]) -> dict[str, Any]:
    return dict(next(iter(user["roles"].values())))


def _terms(district: SandboxDistrict) -> list[dict[str, str]]:
    return list(district.iter_records("terms"))


def _contains(term: dict[str, str], day: date) -> bool:
    return date.fromisoformat(term["start_date"]) <= day <= date.fromisoformat(term["end_date"])


@pytest.mark.parametrize(
    ("today", "year"),
    [
        (date(2026, 12, 2), 2026),
        (date(2027, 3, 1), 2026),
        (date(2026, 6, 30), 2025),
        (date(2026, 7, 1), 2026),
        (date(2031, 9, 15), 2031),
        (date(2026, 12, 24), 2026),
    ],
)
def test_a_pinned_today_picks_the_school_year_around_it(today: date, year: int) -> None:
    district = SandboxDistrict(DistrictConfig(size="tiny", today=today))
    assert district.config.school_year == district.generator.school_year == year
    school_year, fall, spring = _terms(district)
    assert [school_year["name"], fall["name"], spring["name"]] == [
        f"{year}-{year + 1} School Year",
        f"Fall {year}",
        f"Spring {year + 1}",
    ]
    assert (school_year["start_date"], school_year["end_date"]) == (
        f"{year}-08-18",
        f"{year + 1}-06-12",
    )
    in_session = date(year, 8, 18) <= today <= date(year + 1, 6, 12)
    assert _contains(school_year, today) == in_session
    winter_break = (
        date.fromisoformat(fall["end_date"]) < today < date.fromisoformat(spring["start_date"])
    )
    assert (_contains(fall, today) or _contains(spring, today)) == (in_session and not winter_break)
    for student in district.iter_records("users", "student"):
        role = _role(student)
        grade = GRADES.index(role["grade"]) if role.get("grade") else None
        if grade is not None:
            assert role["graduation_year"] == str(year + 13 - grade)
        enrollment = role["enrollments"][0]
        assert (enrollment["start_date"], enrollment["end_date"]) == (
            school_year["start_date"],
            school_year["end_date"],
        )
    student = district.generator.student(0, True)
    role = _role(student)
    born = int(role["dob"].rsplit("/", 1)[1])
    assert year - 7 - GRADES.index(role["grade"]) <= born <= year - 5 - GRADES.index(role["grade"])


def test_without_a_pinned_today_the_terms_are_those_around_the_current_date() -> None:
    before = date.today()
    config = DistrictConfig(size="tiny")
    after = date.today()
    assert config.today in (before, after)
    today = config.today
    assert today is not None
    school_year = _terms(SandboxDistrict(config))[0]
    start = date.fromisoformat(school_year["start_date"])
    end = date.fromisoformat(school_year["end_date"])
    # Only the summer break lies outside every term: after the year ends in June, before
    # the next starts in August.
    assert (
        start <= today <= end
        or (end < today and today.month == 6)
        or (today < start and today.month in (7, 8))
    )
    # The date is resolved once: copies of the config keep it.
    assert SandboxDistrict(config).generator.school_year == config.school_year


def test_a_pinned_today_gives_the_same_records_and_another_year_moves_only_dates() -> None:
    pinned = date(2026, 12, 2)
    one = SandboxDistrict(DistrictConfig(size="S", seed=5, today=pinned))
    two = SandboxDistrict(DistrictConfig(size="S", seed=5, today=pinned))
    later = SandboxDistrict(DistrictConfig(size="S", seed=5, today=date(2029, 2, 1)))
    for code in (Code.STUDENT, Code.TEACHER, Code.SECTION, Code.TERM, Code.COURSE):
        for index in (0, 1, 2, 7, 19):
            if index >= one.generator.counts[code]:
                continue
            assert one.current_generated(code, index, True) == two.current_generated(
                code, index, True
            )
    assert one.token == later.token and one.id == later.id
    section, moved_section = one.generator.section(7, True), later.generator.section(7, True)
    stamps = ("created", "last_modified")
    assert {k: v for k, v in section.items() if k not in stamps} == {
        k: v for k, v in moved_section.items() if k not in stamps
    }
    for stamp in stamps:
        assert int(moved_section[stamp][:4]) - int(section[stamp][:4]) in (2, 3)
    student, moved = one.generator.student(3, True), later.generator.student(3, True)
    assert student["name"] == moved["name"]
    graduation = int(_role(student)["graduation_year"])
    assert int(_role(moved)["graduation_year"]) == graduation + 2
    assert _terms(later)[0]["name"] == "2028-2029 School Year"


@pytest.mark.parametrize("today", [date(2024, 3, 1), date(2026, 7, 1), date(2026, 12, 3)])
def test_every_record_and_the_district_are_dated_before_today(today: date) -> None:
    """Created, modified, launched and last synced before the pinned day: a newcomer pinning
    a day in the past sees no record from its future."""
    district = SandboxDistrict(DistrictConfig(size="tiny", today=today))
    dated = 0
    for kind in ("schools", "terms", "courses", "sections", "users"):
        for record in district.iter_records(kind):
            for stamp in ("created", "last_modified"):
                if stamp in record:
                    assert date.fromisoformat(record[stamp][:10]) < today, (kind, record["id"])
                    dated += 1
    assert dated > 400
    (record,) = district.iter_records("districts")
    for stamp in ("launch_date", "last_sync"):
        assert date.fromisoformat(record[stamp][:10]) < today
    assert date.fromisoformat(district.token_created[:10]) < today


@pytest.mark.parametrize(("size", "seed"), [("tiny", 1), ("tiny", 2), ("S", 1), ("S", 4)])
def test_sections_teach_courses_of_their_schools_level_in_the_courses_grades(
    size: str, seed: int
) -> None:
    district = SandboxDistrict(DistrictConfig(size=size, seed=seed))
    schools = {school["id"]: school for school in district.iter_records("schools")}
    courses = {course["id"]: course for course in district.iter_records("courses")}
    levels_taught = set()
    for section in district.iter_records("sections"):
        school = schools[section["school"]]
        catalogue = CATALOGUE_BY_LOW_GRADE[school["low_grade"]]
        levels_taught.add(school["low_grade"])
        if not section.get("course"):
            continue
        course = courses[section["course"]]
        fitting = [entry for entry in catalogue if entry[1] == course["name"]]
        assert len(fitting) == 1, f"{course['name']} at a school from {school['low_grade']}"
        [(subject, _, low, high, _)] = fitting
        if section.get("subject"):
            assert section["subject"] == subject
        if section.get("grade"):
            grade = GRADES.index(section["grade"])
            assert low <= grade <= high
            school_grades = GRADES.index(school["low_grade"]), GRADES.index(school["high_grade"])
            assert school_grades[0] <= grade <= school_grades[1]
    assert levels_taught == set(CATALOGUE_BY_LOW_GRADE)


@pytest.mark.parametrize("size", ["tiny", "S", "50k"])
def test_every_level_has_courses_and_the_course_count_still_follows_the_sections(
    size: str,
) -> None:
    district = SandboxDistrict(DistrictConfig(size=size))
    layout = district.layout
    spec = district.config.spec
    assert layout.n_courses == max(spec.min_courses, layout.n_sections // spec.sections_per_course)
    counts = [layout.course_start[k + 1] - layout.course_start[k] for k in range(3)]
    assert sum(counts) == layout.n_courses and min(counts) >= 2


@pytest.mark.parametrize(("size", "seed"), [("tiny", 1), ("tiny", 3), ("S", 2)])
def test_teacher_titles_fit_what_they_teach(size: str, seed: int) -> None:
    district = SandboxDistrict(DistrictConfig(size=size, seed=seed))
    truth = district.truth
    teachers = {teacher["id"]: teacher for teacher in district.iter_records("users", "teacher")}
    led: dict[str, list[dict[str, str]]] = {teacher_id: [] for teacher_id in teachers}
    for section in district.iter_records("sections"):
        led[section["teacher"]].append(section)
    titles = set()
    for teacher_id, teacher in teachers.items():
        title = _role(teacher)["title"]
        titles.add(title)
        assert "Co-Teacher" not in title
        if title.startswith("Teacher of "):
            continue
        if not led[teacher_id]:
            if not truth.teacher_section_ids(teacher_id):
                assert title in UNASSIGNED_TEACHER_TITLES
            continue
        assert title not in UNASSIGNED_TEACHER_TITLES
        if title.startswith(("Grade ", "Kindergarten ")):
            grade = title.removesuffix(" Teacher").removeprefix("Grade ")
            assert any(section.get("grade") == grade for section in led[teacher_id])
    assert "Co-Teacher" not in titles
    assert any(title.startswith("Teacher of ") and len(title) > 255 for title in titles)


def test_the_first_primary_section_is_one_the_teacher_leads() -> None:
    for size, rates in (("tiny", EdgeRates.dense()), ("S", EdgeRates())):
        layout = Layout(DistrictConfig(size=size).spec, rates, seed=3)
        for teacher in range(layout.n_teachers):
            led = layout.primary_sections(teacher)
            first = layout.first_primary_section(teacher)
            assert first in led if led else first == -1

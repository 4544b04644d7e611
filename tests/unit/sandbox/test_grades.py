"""Students come in grade bands: a section's home students are all of its grade, its course is
taught in that grade, and guests from other schools sit in their own grade where it is taught."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from sandbox.config import SIZES, EdgeRates, SizeSpec
from sandbox.generator import GRADES, Generator
from sandbox.ids import IdCodec
from sandbox.layout import KIND_GRADES, Layout

# Fewer students than grades in some schools, one course per level, short periods.
SMALL = SizeSpec(
    name="small",
    students=11,
    schools=4,
    section_size=2,
    periods=2,
    short_school_every=2,
    sections_per_teacher=1.5,
    min_courses=3,
)
TWO_SCHOOLS = SizeSpec(name="two", students=60, schools=2, section_size=4, periods=3)
# Four elementary schools (students visit their own level), two middle and one high (the
# next schools of the district, whatever their level).
MIXED = SizeSpec(name="mixed", students=400, schools=7, section_size=6, periods=3)
ONE_SCHOOL = SizeSpec(name="one", students=30, schools=1, section_size=5, periods=2)
SIZES_AND_RATES = [
    (SIZES["tiny"], EdgeRates.dense()),
    (SIZES["S"], EdgeRates()),
    (SIZES["S"], EdgeRates.dense()),
    (SIZES["50k"], EdgeRates()),
    (SMALL, EdgeRates.dense()),
    (TWO_SCHOOLS, EdgeRates.dense()),
    (MIXED, EdgeRates.dense()),
    (ONE_SCHOOL, EdgeRates.dense()),
]
IDS = ["tiny-dense", "S", "S-dense", "50k", "small", "two-schools", "mixed", "one-school"]
# Rendering every section of each student is slow at 50k; the layout tests cover it.
RENDERED = [case for case, name in zip(SIZES_AND_RATES, IDS, strict=True) if name != "50k"]
RENDERED_IDS = [name for name in IDS if name != "50k"]


@pytest.mark.parametrize(("spec", "rates"), SIZES_AND_RATES, ids=IDS)
@pytest.mark.parametrize("seed", [1, 7])
def test_each_school_is_cut_into_one_band_per_grade(
    spec: SizeSpec, rates: EdgeRates, seed: int
) -> None:
    layout = Layout(spec, rates, seed)
    for s in range(layout.n_schools):
        low, high = KIND_GRADES[layout.school_kind[s]]
        sizes = layout.band_students[s]
        n = layout.school_students[s]
        assert len(sizes) == high - low and sum(sizes) == n
        assert layout.band_start[s][0] == layout.student_start[s]
        if n >= len(sizes):
            assert min(sizes) >= 1
            assert max(sizes) <= 2 + 1.5 * min(sizes)
        else:
            assert sorted(set(sizes)) == [0, 1]
        for band, (start, size) in enumerate(zip(layout.band_start[s], sizes, strict=True)):
            for student in range(start, start + size):
                assert layout.student_band(student) == (s, band)
                assert layout.student_grade(student) == low + band
        assert layout.school_blocks[s] == sum(-(-size // layout.section_size) for size in sizes)


@pytest.mark.parametrize(("spec", "rates"), SIZES_AND_RATES, ids=IDS)
def test_sections_and_students_agree_and_home_students_share_the_sections_grade(
    spec: SizeSpec, rates: EdgeRates
) -> None:
    layout = Layout(spec, rates, seed=3)
    sections_of_student: dict[int, list[int]] = defaultdict(list)
    for section in range(layout.n_sections):
        s, p, band, block = layout.section_place(section)
        assert layout.section_period(section) == (
            s,
            p,
            layout.band_block_start[s][band] + block,
        )
        home = layout.section_home_students(section)
        assert len(home) <= layout.section_size
        grade = layout.section_grade(section)
        assert grade == layout.school_low_grade[s] + band
        for student in home:
            assert layout.student_band(student) == (s, band)
        students = layout.section_students(section)
        assert len(set(students)) == len(students)
        for student in students:
            sections_of_student[student].append(section)
    for student in range(layout.n_students):
        assert sorted(layout.student_sections(student)) == sorted(sections_of_student[student])


@pytest.mark.parametrize(("spec", "rates"), RENDERED, ids=RENDERED_IDS)
def test_a_students_sections_at_their_school_are_of_their_grade_with_a_course_of_it(
    spec: SizeSpec, rates: EdgeRates
) -> None:
    generator = Generator(spec, rates, 3, IdCodec(3))
    layout = generator.layout
    for student in range(layout.n_students):
        school, _ = layout.student_band(student)
        grade = layout.student_grade(student)
        record = generator.student(student, True)["roles"]["student"]
        if record.get("grade"):
            assert record["grade"] == GRADES[grade]
            assert record["graduation_year"] == str(generator.school_year + 13 - grade)
        home = [
            j for j in layout.student_sections(student) if layout.school_of_section(j) == school
        ]
        if not layout.is_unenrolled(student):
            assert len(home) == layout.school_periods[school]
        for section in home:
            course = generator._courses[generator.section_course(section)]
            assert course.low <= grade < course.high
            rendered = generator.section(section, True)
            if "grade" in rendered:
                assert rendered["grade"] == GRADES[grade]
            if "course" in rendered:
                assert rendered["course"] == generator.course_ids[generator.section_course(section)]


@pytest.mark.parametrize(("spec", "rates"), RENDERED, ids=RENDERED_IDS)
def test_every_grade_a_school_has_gets_sections_of_several_courses_where_there_are_some(
    spec: SizeSpec, rates: EdgeRates
) -> None:
    generator = Generator(spec, rates, 5, IdCodec(5))
    layout = generator.layout
    courses_of: dict[tuple[int, int], set[int]] = defaultdict(set)
    for section in range(layout.n_sections):
        kind = layout.school_kind[layout.school_of_section(section)]
        courses_of[kind, layout.section_grade(section)].add(generator.section_course(section))
    for s in range(layout.n_schools):
        kind = layout.school_kind[s]
        low = layout.school_low_grade[s]
        for band, size in enumerate(layout.band_students[s]):
            if size:
                assert courses_of[kind, low + band]
    if spec.name == "S":
        assert min(len(courses) for courses in courses_of.values()) >= 2


@pytest.mark.parametrize(("spec", "rates"), SIZES_AND_RATES, ids=IDS)
def test_guests_sit_in_their_grade_where_the_school_has_sections_of_it(
    spec: SizeSpec, rates: EdgeRates
) -> None:
    layout = Layout(spec, rates, seed=3)
    placed: Counter[str] = Counter()
    for section in range(layout.n_sections):
        s = layout.school_of_section(section)
        for guest in layout.section_guests(section):
            home = layout.school_of_student(guest)
            assert home != s
            kind = layout.school_kind[home]
            if len(layout.kind_schools[kind]) >= 3:
                assert layout.school_kind[s] == kind
                placed["own level"] += 1
            grade = layout.student_grade(guest)
            band = grade - layout.school_low_grade[s]
            blocks = layout.band_blocks[s]
            if 0 <= band < len(blocks) and blocks[band]:
                assert layout.section_grade(section) == grade
                placed["same grade"] += 1
            else:
                placed["grade not taught"] += 1
    if spec.name in ("S", "50k"):
        # Every level has three schools or more: every guest is in a section of their grade.
        assert placed["same grade"] == placed["own level"] > 0
        assert not placed["grade not taught"]
    if spec.name == "mixed":
        assert placed["own level"] and placed["grade not taught"]
    if spec.name in ("two", "tiny"):
        assert not placed["same grade"]


def test_records_of_a_section_and_its_home_students_agree_on_the_grade() -> None:
    generator = Generator(SIZES["tiny"], EdgeRates.dense(), 1, IdCodec(1))
    layout = generator.layout
    checked = 0
    for section in range(layout.n_sections):
        record = generator.section(section, True)
        if "grade" not in record:
            continue
        for student in layout.section_home_students(section):
            role = generator.student(student, True)["roles"]["student"]
            if role.get("grade"):
                assert role["grade"] == record["grade"]
                checked += 1
    assert checked > 20

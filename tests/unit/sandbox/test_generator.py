"""The generator: determinism, ids, relationships both ways, edge cases and their rates."""

from __future__ import annotations

import re
from collections import defaultdict

import pytest

from sandbox.config import SIZES, DistrictConfig, EdgeRates
from sandbox.district import SandboxDistrict
from sandbox.generator import Generator
from sandbox.ids import USER_CODES, Code, IdCodec
from sandbox.layout import Layout
from sandbox.truth import EDGE_CASES

ID = re.compile(r"[0-9a-f]{24}")


def test_same_seed_gives_same_records_and_other_seeds_differ() -> None:
    one = SandboxDistrict(DistrictConfig(size="S", seed=5))
    two = SandboxDistrict(DistrictConfig(size="S", seed=5))
    other = SandboxDistrict(DistrictConfig(size="S", seed=6))
    for code in (Code.STUDENT, Code.TEACHER, Code.CONTACT, Code.SECTION, Code.SCHOOL):
        for index in (0, 1, 7, 19):
            assert one.current_generated(code, index, True) == two.current_generated(
                code, index, True
            )
    assert one.token == two.token != other.token
    assert one.id != other.id
    assert one.generator.student(3, True)["name"] != other.generator.student(3, True)["name"]


def test_ids_are_hex_ascending_in_generation_order_and_decode_in_constant_time() -> None:
    codec = IdCodec(9)
    previous = ""
    for code in (Code.DISTRICT, Code.SCHOOL, *USER_CODES, Code.SECTION, Code.TERM, Code.COURSE):
        for index in (0, 1, 15, 16, 255, 10**6):
            record_id = codec.encode(code, index)
            assert ID.fullmatch(record_id)
            assert record_id > previous
            previous = record_id
            decoded = codec.decode(record_id)
            assert decoded is not None
            assert (decoded.code, decoded.index, decoded.generation) == (code, index, 0)
    created = codec.encode(Code.STUDENT, 0, generation=1)
    assert created > codec.encode(Code.COURSE, 10**9)
    assert codec.decode("0" * 24) is None
    assert codec.decode(codec.encode(Code.STUDENT, 5).upper()) is None


@pytest.mark.parametrize(
    ("size", "rates"), [("tiny", EdgeRates.dense()), ("S", EdgeRates()), ("S", EdgeRates.dense())]
)
def test_relationships_agree_in_both_directions(size: str, rates: EdgeRates) -> None:
    layout = Layout(SIZES[size], rates, seed=3)
    sections_of_student: dict[int, list[int]] = defaultdict(list)
    sections_of_teacher: dict[int, set[int]] = defaultdict(set)
    for section in range(layout.n_sections):
        students = layout.section_students(section)
        assert len(set(students)) == len(students)
        for student in students:
            sections_of_student[student].append(section)
        teachers = layout.section_teachers(section)
        assert len(set(teachers)) == len(teachers) <= 10
        for teacher in teachers:
            sections_of_teacher[teacher].add(section)
    for student in range(layout.n_students):
        assert sorted(layout.student_sections(student)) == sorted(sections_of_student[student])
    for teacher in range(layout.n_teachers):
        assert layout.teacher_sections(teacher) == sorted(sections_of_teacher[teacher])
    contacts_of_student: dict[int, list[int]] = defaultdict(list)
    for contact in range(layout.n_contacts):
        for student in layout.contact_students(contact):
            contacts_of_student[student].append(contact)
    for student in range(layout.n_students):
        assert layout.student_contacts(student) == contacts_of_student[student]


def test_truth_relationships_match_the_served_records() -> None:
    district = SandboxDistrict(DistrictConfig(size="tiny"))
    truth = district.truth
    enrolled: dict[str, set[str]] = defaultdict(set)
    for section in district.iter_records("sections"):
        for student_id in truth.section_student_ids(section["id"]):
            enrolled[student_id].add(section["id"])
        assert truth.section_teacher_ids(section["id"])[0] == section["teacher"]
    for student_id in truth.ids("users", "student"):
        assert set(truth.student_section_ids(student_id)) == enrolled[student_id]
    teacher_id = truth.ids("users", "teacher")[0]
    expected = set()
    for section_id in truth.teacher_section_ids(teacher_id):
        expected.update(truth.section_student_ids(section_id))
    assert truth.teacher_student_ids(teacher_id) == sorted(expected)


def test_sizes_have_the_documented_shape() -> None:
    xl = Layout(SIZES["XL"], EdgeRates(), seed=1)
    assert xl.n_students == 1_150_000
    assert xl.n_schools == 1_900
    assert 260_000 <= xl.n_sections <= 290_000
    assert 100_000 <= xl.n_teachers + xl.n_staff <= 115_000
    s = Layout(SIZES["S"], EdgeRates(), seed=1)
    assert (s.n_students, s.n_schools) == (10_000, 20)
    m = Layout(SIZES["M"], EdgeRates(), seed=1)
    assert (m.n_students, m.n_schools) == (330_000, 600)
    assert 250_000 <= m.n_teachers + m.n_staff + m.n_contacts + m.n_district_admins <= 330_000


def test_rendering_a_record_of_an_xl_district_needs_no_district_in_memory() -> None:
    generator = Generator(SIZES["XL"], EdgeRates(), 1, IdCodec(1))
    last = generator.counts[Code.STUDENT] - 1
    assert generator.student(last, True)["id"].endswith(f"{last:012x}")
    section = generator.section(generator.counts[Code.SECTION] - 1, True)
    assert 1 <= len(section["students"]) <= 40


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_tiny_has_every_edge_case(seed: int) -> None:
    district = SandboxDistrict(DistrictConfig(size="tiny", seed=seed))
    found = district.truth.edge_cases
    assert sorted(set(EDGE_CASES) - set(found)) == []
    for record_id in found.values():
        assert district.truth.is_shared(record_id)


def test_edge_case_examples_really_are_edge_cases() -> None:
    district = SandboxDistrict(DistrictConfig(size="tiny"))
    truth = district.truth
    cases = truth.edge_cases
    assert "@" not in truth.record(cases["email_without_at"])["email"]  # type: ignore[index]
    assert len(truth.student_school_ids(cases["student_in_three_schools"])) >= 3
    assert truth.student_section_ids(cases["student_no_sections"]) == []
    assert truth.teacher_section_ids(cases["teacher_no_sections"]) == []
    assert len(truth.section_teacher_ids(cases["section_ten_teachers"])) == 10
    admin = truth.record(cases["district_admin_same_email_as_teacher"])
    teacher = truth.record(cases["teacher_admin_same_email"])
    assert admin and teacher and admin["email"] == teacher["email"] and admin["id"] != teacher["id"]
    unshared = truth.section_student_ids(cases["section_unshared_student"], include_unshared=True)
    assert any(not truth.is_shared(student_id) for student_id in unshared)


def test_rates_are_honoured_roughly_in_s() -> None:
    rates = EdgeRates()
    district = SandboxDistrict(DistrictConfig(size="S", rates=rates))
    students = list(district.iter_records("users", "student"))
    no_at = sum(1 for s in students if s.get("email") and "@" not in s["email"])
    missing = sum(1 for s in students if not s.get("email"))
    no_grade = sum(1 for s in students if not s["roles"]["student"].get("grade"))
    n = len(students)
    assert 0.5 * rates.email_without_at * n <= no_at <= 2 * rates.email_without_at * n
    assert 0.5 * rates.missing_email * n <= missing <= 2 * rates.missing_email * n
    assert 0.4 * rates.missing_grade * n <= no_grade <= 2.5 * rates.missing_grade * n
    layout = district.layout
    unenrolled = sum(1 for i in range(n) if not layout.student_sections(i))
    assert 0.5 * rates.student_no_sections * n <= unenrolled <= 2 * rates.student_no_sections * n
    multi = sum(1 for i in range(n) if layout.is_multi_school(i))
    assert 0.7 * rates.multi_school_student * n <= multi <= 1.3 * rates.multi_school_student * n
    sections = list(district.iter_records("sections"))
    co = sum(1 for s in sections if len(s["teachers"]) >= 2)
    assert 0.5 * rates.co_teacher * len(sections) <= co <= 2 * rates.co_teacher * len(sections)


def test_zero_rates_give_clean_data() -> None:
    district = SandboxDistrict(DistrictConfig(size="tiny", rates=EdgeRates.none()))
    cases = district.truth.edge_cases
    for name in ("email_without_at", "missing_email", "invalid_dob", "section_no_name"):
        assert name not in cases
    assert all(district.layout.student_sections(i) for i in range(district.layout.n_students))


def test_names_include_non_ascii_and_punctuation() -> None:
    district = SandboxDistrict(DistrictConfig(size="S"))
    names = [
        f"{user['name'].get('first')} {user['name'].get('last')}"
        for user in district.iter_records("users", "teacher")
    ]
    assert any(not name.isascii() for name in names)
    assert any("'" in name for name in names)
    assert any("-" in name for name in names)


def test_terms_are_a_school_year_and_two_semesters() -> None:
    district = SandboxDistrict(DistrictConfig(size="tiny"))
    year = district.generator.school_year
    terms = list(district.iter_records("terms"))
    assert [term["name"] for term in terms] == [
        f"{year}-{year + 1} School Year",
        f"Fall {year}",
        f"Spring {year + 1}",
    ]
    assert all(term["start_date"] < term["end_date"] for term in terms)

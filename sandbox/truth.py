"""What a correct mirror of a sandbox district must contain.

Tests sync a district and compare against these answers. Relationships come from the
generator's formulas corrected by the overlay, so they stay right after changes. Links to
records the district does not share (unshared students in a section, deleted users) are left
out, as the mirror must skip them; pass `include_unshared=True` to see ids as served.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import date
from typing import TYPE_CHECKING, Any

from sandbox.ids import BASE_GENERATION, ROLE_OF_CODE, Code

if TYPE_CHECKING:
    from sandbox.district import SandboxDistrict

Record = dict[str, Any]

_DOB = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")
_RELATIONSHIPS = {"Parent", "Grandparent", "Self", "Aunt/Uncle", "Sibling", "Other", ""}
_RELATIONSHIP_TYPES = {
    "Parent/Guardian",
    "Emergency",
    "Primary",
    "Secondary",
    "Family",
    "Other",
    "",
}
_USER_KEYS = {"id", "district", "email", "name", "created", "last_modified", "roles", "lms_status"}
_SECTION_KEYS = {
    "id", "district", "school", "name", "period", "section_number", "sis_id", "subject",
    "grade", "course", "term_id", "teacher", "teachers", "students", "created",
    "last_modified", "ext", "lms_status",
}  # fmt: skip
_SCAN_LIMIT = 500_000

EDGE_CASES: tuple[str, ...] = (
    "email_without_at",
    "missing_email",
    "long_string",
    "long_section_name",
    "student_missing_name",
    "student_missing_grade",
    "invalid_dob",
    "student_no_sections",
    "teacher_no_sections",
    "student_in_two_schools",
    "student_in_three_schools",
    "section_teacher_other_school",
    "section_ten_teachers",
    "section_no_name",
    "section_no_subject",
    "section_no_grade",
    "section_no_term",
    "section_no_course",
    "section_unshared_student",
    "section_unshared_teacher",
    "duplicate_section_name",
    "staff_multi_school",
    "teacher_admin_same_email",
    "district_admin_same_email_as_teacher",
    "teacher_staff_same_email",
    "staff_same_email_as_teacher",
    "contact_several_students",
    "contact_odd_relationship",
    "student_sensitive_fields",
    "student_preferred_name",
    "unknown_fields_user",
    "unknown_fields_section",
)
"""Names of the edge cases `Truth.edge_cases` finds an example of."""


def _valid_dob(value: Any) -> bool:
    """A day of the calendar, as M/D/YYYY (Clever's form) or an ISO date."""
    if not isinstance(value, str):
        return False
    match = _DOB.fullmatch(value)
    try:
        if match:
            month, day, year = (int(part) for part in match.groups())
            date(year, month, day)
        else:
            date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _role(record: Record) -> Record:
    roles = record.get("roles") or {}
    return next(iter(roles.values()), {}) if roles else {}


class Truth:
    """Ground truth about one district, overlay included."""

    def __init__(self, district: SandboxDistrict) -> None:
        self._district = district
        self._edge_cases: dict[str, str] = {}
        self._edge_version = -1

    # -- records -----------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """How many records each collection serves (users also per role, plural keys)."""
        district = self._district
        roles = {
            f"{role}s" if role != "staff" else "staff": district.live_count(code)
            for code, role in ROLE_OF_CODE.items()
        }
        return {
            "districts": 1,
            "schools": district.live_count(Code.SCHOOL),
            "users": sum(roles.values()),
            **roles,
            "sections": district.live_count(Code.SECTION),
            "terms": district.live_count(Code.TERM),
            "courses": district.live_count(Code.COURSE),
        }

    def ids(self, collection: str, role: str | None = None) -> list[str]:
        """The ids a full read of a collection returns, in order."""
        return [record["id"] for record in self._district.iter_records(collection, role)]

    def record(self, record_id: str, *, v31: bool = True) -> Record | None:
        """A record as `/v3.x/{collection}/{id}` serves it, or None."""
        found = self._district.get(record_id, v31)
        return found[1] if found else None

    def is_shared(self, record_id: str) -> bool:
        """Whether the district serves this id."""
        return self._district.is_live(record_id)

    def _records_of(self, code: Code) -> Iterable[tuple[str, Record]]:
        """Overlay records (updated or created) of one code that are live."""
        district = self._district
        heads = (district.codec.head(code), district.codec.head(code, 1))
        for record_id in district.overlay_ids():
            if record_id.startswith(heads) and district.is_live(record_id):
                record = district.overlay_record(record_id)
                assert record is not None
                yield record_id, record

    def _generated_index(self, record_id: str, code: Code) -> int | None:
        decoded = self._district.codec.decode(record_id)
        if decoded and decoded.code == code and decoded.generation == BASE_GENERATION:
            return decoded.index
        return None

    # -- sections ----------------------------------------------------------------------------

    def section_student_ids(self, section_id: str, *, include_unshared: bool = False) -> list[str]:
        """A section's students in roster order."""
        section = self.record(section_id)
        if section is None:
            return []
        ids = list(section.get("students") or [])
        return ids if include_unshared else [sid for sid in ids if self.is_shared(sid)]

    def section_teacher_ids(self, section_id: str, *, include_unshared: bool = False) -> list[str]:
        """A section's teachers: primary first, then co-teachers in order."""
        section = self.record(section_id)
        if section is None:
            return []
        ids = list(section.get("teachers") or [])
        primary = section.get("teacher")
        if primary and primary not in ids:
            ids.insert(0, primary)
        return ids if include_unshared else [tid for tid in ids if self.is_shared(tid)]

    def _sections_listing(
        self, user_id: str, code: Code, formula: Callable[[int], list[int]], field: str
    ) -> list[str]:
        if not self.is_shared(user_id):
            return []
        district = self._district
        found: set[str] = set()
        index = self._generated_index(user_id, code)
        if index is not None:
            for section in formula(index):
                section_id = district.generator.id_of(Code.SECTION, section)
                if not district.is_live(section_id):
                    continue
                stored = district.overlay_record(section_id)
                if stored is None or user_id in (stored.get(field) or []):
                    found.add(section_id)
        for section_id, record in self._records_of(Code.SECTION):
            listed = record.get(field) or []
            if user_id in listed or (field == "teachers" and record.get("teacher") == user_id):
                found.add(section_id)
        return sorted(found)

    def student_section_ids(self, student_id: str) -> list[str]:
        """Every section a (shared) student is enrolled in, across schools."""
        layout = self._district.layout
        return self._sections_listing(student_id, Code.STUDENT, layout.student_sections, "students")

    def teacher_section_ids(self, teacher_id: str) -> list[str]:
        """Every section a (shared) teacher teaches, as primary or co-teacher."""
        layout = self._district.layout
        return self._sections_listing(teacher_id, Code.TEACHER, layout.teacher_sections, "teachers")

    def teacher_student_ids(self, teacher_id: str) -> list[str]:
        """Distinct shared students across every section the teacher teaches."""
        students: set[str] = set()
        for section_id in self.teacher_section_ids(teacher_id):
            students.update(self.section_student_ids(section_id))
        return sorted(students)

    def student_teacher_ids(self, student_id: str) -> list[str]:
        """Distinct shared teachers across every section of the student."""
        teachers: set[str] = set()
        for section_id in self.student_section_ids(student_id):
            teachers.update(self.section_teacher_ids(section_id))
        return sorted(teachers)

    def student_school_ids(self, student_id: str) -> list[str]:
        """The student's primary school plus every school where they take a section."""
        student = self.record(student_id)
        if student is None:
            return []
        schools = {_role(student).get("school")}
        for section_id in self.student_section_ids(student_id):
            section = self.record(section_id)
            if section is not None:
                schools.add(section.get("school"))
        return sorted(school for school in schools if school)

    def user_school_ids(self, user_id: str) -> list[str]:
        """Schools on the user record itself: `school` then `schools`, without repeats."""
        user = self.record(user_id)
        if user is None:
            return []
        role = _role(user)
        ordered = [role.get("school"), *(role.get("schools") or [])]
        return list(dict.fromkeys(school for school in ordered if school))

    def contact_student_ids(self, contact_id: str) -> list[str]:
        """The shared students a contact is related to, in relationship order."""
        contact = self.record(contact_id)
        if contact is None:
            return []
        relationships = _role(contact).get("student_relationships") or []
        ids = [item.get("student") for item in relationships]
        return [sid for sid in ids if sid and self.is_shared(sid)]

    def student_contact_ids(self, student_id: str) -> list[str]:
        """The shared contacts related to a student."""
        if not self.is_shared(student_id):
            return []
        district = self._district
        found: set[str] = set()
        index = self._generated_index(student_id, Code.STUDENT)
        if index is not None:
            for contact in district.layout.student_contacts(index):
                contact_id = district.generator.id_of(Code.CONTACT, contact)
                if district.is_live(contact_id) and (
                    district.overlay_record(contact_id) is None
                    or student_id in self.contact_student_ids(contact_id)
                ):
                    found.add(contact_id)
        for contact_id, _ in self._records_of(Code.CONTACT):
            if student_id in self.contact_student_ids(contact_id):
                found.add(contact_id)
        return sorted(found)

    def enrollment_count(self) -> int:
        """(section, shared student) links across the district: O(enrollments)."""
        total = 0
        is_shared = self.is_shared
        for section in self._district.iter_records("sections"):
            total += sum(1 for sid in section.get("students") or [] if is_shared(sid))
        return total

    def newest_event_id(self) -> str | None:
        """What `GET /events?ending_before=last&limit=1` returns, if anything."""
        return self._district.newest_event_id()

    # -- edge cases --------------------------------------------------------------------------

    @property
    def edge_cases(self) -> dict[str, str]:
        """An example record id for each edge case in `EDGE_CASES` that the district has.

        Found by scanning from the first record, so cheap for any size: generated districts
        plant an example of each near the start.
        """
        if self._edge_version != self._district.version:
            self._edge_cases = self._find_edge_cases()
            self._edge_version = self._district.version
        return dict(self._edge_cases)

    def _first(
        self, collection: str, role: str | None, predicate: Callable[[Record], bool]
    ) -> str | None:
        for count, record in enumerate(self._district.iter_records(collection, role)):
            if predicate(record):
                return str(record["id"])
            if count >= _SCAN_LIMIT:
                break
        return None

    def _find_edge_cases(self) -> dict[str, str]:
        found: dict[str, str | None] = {}
        student = "student"

        def name(record: Record) -> Record:
            return record.get("name") or {}

        found["email_without_at"] = self._first(
            "users", student, lambda r: bool(r.get("email")) and "@" not in r["email"]
        )
        found["missing_email"] = self._first("users", student, lambda r: not r.get("email"))
        found["long_string"] = self._first(
            "users", student, lambda r: len(name(r).get("last") or "") > 255
        )
        found["student_missing_name"] = self._first(
            "users", student, lambda r: not name(r).get("first") or not name(r).get("last")
        )
        found["student_missing_grade"] = self._first(
            "users", student, lambda r: not _role(r).get("grade")
        )
        found["invalid_dob"] = self._first(
            "users", student, lambda r: not _valid_dob(_role(r).get("dob"))
        )
        found["student_no_sections"] = self._first(
            "users", student, lambda r: not self.student_section_ids(r["id"])
        )
        found["teacher_no_sections"] = self._first(
            "users", "teacher", lambda r: not self.teacher_section_ids(r["id"])
        )
        found["student_in_two_schools"] = self._first(
            "users", student, lambda r: len(self.student_school_ids(r["id"])) == 2
        )
        found["student_in_three_schools"] = self._first(
            "users", student, lambda r: len(self.student_school_ids(r["id"])) >= 3
        )
        found["student_sensitive_fields"] = self._first(
            "users", student, lambda r: "disability" in _role(r)
        )
        found["student_preferred_name"] = self._first(
            "users", student, lambda r: "preferred_name" in _role(r)
        )
        found["unknown_fields_user"] = self._first(
            "users", student, lambda r: not _USER_KEYS.issuperset(r)
        )
        found.update(self._section_edge_cases())
        found.update(self._people_edge_cases())
        return {key: value for key, value in found.items() if value is not None}

    def _section_edge_cases(self) -> dict[str, str | None]:
        found: dict[str, str | None] = {}

        def teacher_elsewhere(section: Record) -> bool:
            teacher = self.record(section.get("teacher") or "")
            return teacher is not None and _role(teacher).get("school") != section.get("school")

        checks: dict[str, Callable[[Record], bool]] = {
            "long_section_name": lambda r: len(r.get("name") or "") > 255,
            "section_no_name": lambda r: not r.get("name"),
            "section_no_subject": lambda r: not r.get("subject"),
            "section_no_grade": lambda r: not r.get("grade"),
            "section_no_term": lambda r: not r.get("term_id"),
            "section_no_course": lambda r: not r.get("course"),
            "section_ten_teachers": lambda r: len(r.get("teachers") or []) >= 10,
            "section_teacher_other_school": teacher_elsewhere,
            "section_unshared_student": lambda r: any(
                not self.is_shared(sid) for sid in r.get("students") or []
            ),
            "section_unshared_teacher": lambda r: any(
                not self.is_shared(tid) for tid in r.get("teachers") or []
            ),
            "unknown_fields_section": lambda r: not _SECTION_KEYS.issuperset(r),
        }
        for key, check in checks.items():
            found[key] = self._first("sections", None, check)
        seen: set[tuple[Any, Any]] = set()

        def duplicate(section: Record) -> bool:
            key = (section.get("school"), section.get("name"))
            if not key[1]:
                return False
            if key in seen:
                return True
            seen.add(key)
            return False

        found["duplicate_section_name"] = self._first("sections", None, duplicate)
        return found

    def _people_edge_cases(self) -> dict[str, str | None]:
        found: dict[str, str | None] = {}
        found["staff_multi_school"] = self._first(
            "users", "staff", lambda r: len(_role(r).get("schools") or []) >= 2
        )
        found["contact_several_students"] = self._first(
            "users", "contact", lambda r: len(_role(r).get("student_relationships") or []) >= 2
        )
        found["contact_odd_relationship"] = self._first(
            "users",
            "contact",
            lambda r: any(
                item.get("relationship") not in _RELATIONSHIPS - {"Self", ""}
                or item.get("type") not in _RELATIONSHIP_TYPES
                for item in _role(r).get("student_relationships") or []
            ),
        )
        teachers_by_email: dict[str, str] = {}
        for teacher in self._district.iter_records("users", "teacher"):
            email = teacher.get("email")
            if email:
                teachers_by_email.setdefault(email.lower(), teacher["id"])
        for role, teacher_key, other_key in (
            ("district_admin", "teacher_admin_same_email", "district_admin_same_email_as_teacher"),
            ("staff", "teacher_staff_same_email", "staff_same_email_as_teacher"),
        ):
            for other in self._district.iter_records("users", role):
                email = (other.get("email") or "").lower()
                if email in teachers_by_email:
                    found[teacher_key] = teachers_by_email[email]
                    found[other_key] = other["id"]
                    break
        return found

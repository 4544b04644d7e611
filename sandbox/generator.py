"""Deterministic Clever records: record `i` of a collection is a pure function of (seed, i).

`Generator.render(code, index, v31=...)` builds one record as Clever would serve it. Nothing is
generated ahead of time except per-school and per-course tables, so serving a page costs only
the records on it, whatever the district's size.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from sandbox.config import EdgeRates, SizeSpec, school_year_of
from sandbox.hashing import fib32, mix64, stream_key, threshold16
from sandbox.ids import Code, IdCodec
from sandbox.layout import KIND_ELEMENTARY, KIND_GRADES, KIND_HIGH, KIND_MIDDLE, Layout
from sandbox.names import (
    ADMIN_TITLES,
    CITIES,
    ELEMENTARY_COURSES,
    FIRST_NAMES,
    FIRST_TOKENS,
    HIGH_COURSES,
    LAST_NAMES,
    LAST_TOKENS,
    MIDDLE_COURSES,
    MIDDLE_INITIALS,
    SCHOOL_NAME_ROOTS,
    STAFF_TITLES,
    STREETS,
    SUBJECT_CODES,
    SUBJECTS,
    UNASSIGNED_TEACHER_TITLES,
    Course,
)

Record = dict[str, Any]

GRADES: tuple[str, ...] = (
    "Kindergarten", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12",
)  # fmt: skip
_KIND_LABEL = {KIND_ELEMENTARY: "Elementary School", KIND_MIDDLE: "Middle School"}
_KIND_COURSES: dict[int, tuple[Course, ...]] = {
    KIND_ELEMENTARY: ELEMENTARY_COURSES,
    KIND_MIDDLE: MIDDLE_COURSES,
    KIND_HIGH: HIGH_COURSES,
}

# Records are created and modified on the 520 days from May 1st two years before the school
# year starts: all of them before July 1st of that year, the earliest day the year is current.
_STAMP_DAYS = 520
_CLOCK: tuple[str, ...] = tuple(
    f"T{(k * 7919) % 86400 // 3600:02d}:{(k * 7919) % 3600 // 60:02d}:{(k * 7919) % 60:02d}"
    f".{(k * 389) % 1000:03d}Z"
    for k in range(4096)
)

# Fields Clever serves only in v3.1; v3.0 responses leave them out.
V31_STUDENT_FIELDS: frozenset[str] = frozenset(
    {
        "frl_status",
        "iep_status",
        "gifted_status",
        "section_504_status",
        "disability",
        "home_language",
        "home_language_code",
        "preferred_name",
    }
)
V31_RECORD_FIELDS: frozenset[str] = frozenset({"lms_status"})

_RACES = (
    "Caucasian", "Asian", "Black or African American", "American Indian",
    "Hawaiian or Other Pacific Islander", "Two or More Races", "Unknown", "",
)  # fmt: skip
_GENDERS = ("F", "M", "F", "M", "X", "")
_YN = ("N", "N", "N", "Y", "")
_FRL = ("Free", "Reduced", "Paid", "Paid", "Other", "")
_LANGUAGES = (
    ("English", "eng"), ("English", "eng"), ("English", "eng"), ("Spanish", "spa"),
    ("Chinese", "zho"), ("Vietnamese", "vie"), ("Arabic", "ara"), ("Haitian Creole", "hat"),
    ("Somali", "som"), ("Tagalog", "tgl"), ("Russian", "rus"), ("Other", "other"),
)  # fmt: skip
_DISABILITIES = (
    ("sld", "Specific learning disability"), ("sli", "Speech or language impairment"),
    ("aut", "Autism"), ("ohi", "Other health impairment"), ("dd", "Developmental delay"),
)  # fmt: skip
# Dates of birth that are no date: of the pattern Clever documents (M/D/YYYY), and, for a
# messy district, of none.
_INVALID_DOBS = ("04/31/2013", "13/45/2012", "0/0/0000", "2/30/2014")
_MESSY_DOBS = (*_INVALID_DOBS, "2013-04-05", "5/6/13", "unknown")
_RELATIONSHIPS = (
    ("Parent", "Parent/Guardian"), ("Parent", "Primary"), ("Grandparent", "Emergency"),
    ("Aunt/Uncle", "Family"), ("Parent", "Secondary"), ("Other", "Other"), ("Sibling", ""),
)  # fmt: skip
# Odd but within Clever's enums; a messy district also sends values outside them.
_ODD_RELATIONSHIPS = (
    ("Self", "Primary"), ("", ""), ("Other", "Emergency"), ("Sibling", "Parent/Guardian"),
)  # fmt: skip
_MESSY_RELATIONSHIPS = (
    *_ODD_RELATIONSHIPS,
    ("Step-Parent", "Legal Guardian"), ("Foster Parent", "guardian"), ("", "emergency contact"),
    ("Neighbor", "Other"), ("parent", "PARENT/GUARDIAN"),
)  # fmt: skip
_PHONE_TYPES = ("Cell", "Home", "Work", "Other", "")
_LONG_LAST: tuple[str, ...] = tuple(
    "-".join(LAST_NAMES[k : k + 40])[:300] for k in range(0, len(LAST_NAMES) - 40, 17)
)
_TERM_SHAPES = (("{y}-{y1} School Year", 0, 1), ("Fall {y}", 0, 0), ("Spring {y1}", 1, 1))
# Month-day of the first and last days of the fall and spring terms.
_FALL, _SPRING = ("08-18", "12-19"), ("01-20", "06-12")


_N_FIRST, _N_LAST, _N_MIDDLE = len(FIRST_NAMES), len(LAST_NAMES), len(MIDDLE_INITIALS)
_N_LANGUAGES = len(_LANGUAGES)


def _location(k: int) -> dict[str, str]:
    h = mix64(0x10CA7 ^ k)
    city, state, zip3 = CITIES[(h >> 20) % len(CITIES)]
    return {
        "address": f"{h % 9000 + 10} {STREETS[(h >> 14) % len(STREETS)]}",
        "city": city,
        "state": state,
        "zip": f"{zip3}{(h >> 40) % 100:02d}",
    }


# A fixed table of home addresses keeps rendering a student cheap.
_N_LOCATIONS = 512
_LOCATIONS: tuple[dict[str, str], ...] = tuple(_location(k) for k in range(_N_LOCATIONS))


class FlagSampler:
    """Samples independent rare flags from one hash, cheaply when none fires.

    A 16-bit gate with the odds of any flag firing short-circuits the common case; behind it
    each flag is drawn with its conditional odds, so each still fires at its own rate.
    """

    def __init__(self, key: int, rates: Mapping[int, float]) -> None:
        self._key = key
        self._salt = key & 0xFFFFFFFF
        active = {bit: rate for bit, rate in rates.items() if rate > 0}
        total = min(1.0, sum(active.values()))
        self._gate = threshold16(total)
        self._bounds = [(bit, threshold16(rate / total)) for bit, rate in active.items()]

    def sample(self, index: int) -> int:
        """The flags of record `index` (a bitmask)."""
        if (fib32(index, self._salt) >> 16) >= self._gate:
            return 0
        bits = 0
        x = mix64(self._key ^ index)
        for position, (bit, bound) in enumerate(self._bounds):
            if position and position % 4 == 0:
                x = mix64(x)
            if ((x >> (16 * (position % 4))) & 0xFFFF) < bound:
                bits |= bit
        return bits


# Cosmetic edge-case flags (relationship edge cases live in Layout).
EMAIL_NO_AT = 1 << 0
EMAIL_MISSING = 1 << 1
LONG_STRING = 1 << 2
MISSING_NAME = 1 << 3
MISSING_GRADE = 1 << 4
INVALID_DOB = 1 << 5
UNKNOWN_FIELDS = 1 << 6
PREFERRED_NAME = 1 << 7
MULTI_SCHOOL = 1 << 8
ODD_RELATIONSHIP = 1 << 9
NO_NAME = 1 << 10
NO_SUBJECT = 1 << 11
NO_GRADE = 1 << 12
NO_TERM = 1 << 13
NO_COURSE = 1 << 14
DUPLICATE_NAME = 1 << 15
LMS_STATUS = 1 << 16

# One record per flag carries it (and nothing else), so each edge case exists at any size.
_PLANTED_STUDENTS = (
    EMAIL_NO_AT, EMAIL_MISSING, LONG_STRING, MISSING_NAME, MISSING_GRADE, INVALID_DOB,
    UNKNOWN_FIELDS, PREFERRED_NAME,
)  # fmt: skip
_PLANTED_SECTIONS = (
    NO_NAME, NO_SUBJECT, NO_GRADE, NO_TERM, NO_COURSE, DUPLICATE_NAME, LONG_STRING,
    UNKNOWN_FIELDS,
)  # fmt: skip
_SECTION_FLAG_RATES = (NO_NAME, NO_SUBJECT, NO_GRADE, NO_TERM, NO_COURSE)


class CourseShape(NamedTuple):
    """What a generated course is: its record's fields, the grades it is taught in
    (`low` to `high`, exclusive) and the title of a teacher who leads it."""

    name: str
    number: str
    subject: str
    low: int
    high: int
    teacher_title: str


class Generator:
    """Renders the records of one generated district."""

    def __init__(
        self,
        spec: SizeSpec,
        rates: EdgeRates,
        seed: int,
        codec: IdCodec,
        district_name: str | None = None,
        *,
        messy: bool = False,
        today: dt.date | None = None,
    ) -> None:
        self.spec = spec
        # The school year around `today` (the current date when None): terms, enrollments,
        # grades' graduation years and dates of birth all follow it.
        self.school_year = school_year_of(today or dt.date.today())
        year = self.school_year
        self._enrollment_dates = (f"{year}-{_FALL[0]}", f"{year + 1}-{_SPRING[1]}")
        epoch = dt.date(year - 2, 5, 1)
        self._days = tuple((epoch + dt.timedelta(days=d)).isoformat() for d in range(_STAMP_DAYS))
        # The district's own dates: the app launched two summers before, Clever last synced
        # the October before.
        self.launch_date = f"{year - 2}-07-15"
        self.last_sync = f"{year - 1}-10-01T06:00:00.000Z"
        self.rates = rates
        self._invalid_dobs = _MESSY_DOBS if messy else _INVALID_DOBS
        self._odd_relationships = _MESSY_RELATIONSHIPS if messy else _ODD_RELATIONSHIPS
        self.seed = seed
        self.codec = codec
        self.layout = layout = Layout(spec, rates, seed)
        self.district_id = codec.encode(Code.DISTRICT, 0)
        self.domain = f"d{codec.prefix[-5:]}.k12.example.org"
        self.district_name = district_name or self._district_name()

        self.counts: dict[Code, int] = {
            Code.DISTRICT: 1,
            Code.SCHOOL: layout.n_schools,
            Code.STUDENT: layout.n_students,
            Code.TEACHER: layout.n_teachers,
            Code.STAFF: layout.n_staff,
            Code.DISTRICT_ADMIN: layout.n_district_admins,
            Code.CONTACT: layout.n_contacts,
            Code.SECTION: layout.n_sections,
            Code.TERM: layout.n_terms,
            Code.COURSE: layout.n_courses,
        }
        self._heads: dict[int, str] = {code: codec.head(code) for code in Code}
        self.school_ids = [codec.encode(Code.SCHOOL, s) for s in range(layout.n_schools)]
        self.term_ids = [codec.encode(Code.TERM, t) for t in range(layout.n_terms)]
        self.course_ids = [codec.encode(Code.COURSE, c) for c in range(layout.n_courses)]
        self._school_grades = [KIND_GRADES[kind] for kind in layout.school_kind]
        self._school_names = [self._school_name(s) for s in range(layout.n_schools)]
        self._courses = self._course_shapes()
        self._grade_courses = self._courses_by_grade()

        self._student_key = stream_key(seed, "students")
        self._teacher_key = stream_key(seed, "teachers")
        self._staff_key = stream_key(seed, "staff")
        self._contact_key = stream_key(seed, "contacts")
        self._section_key = stream_key(seed, "sections")
        self._section_course_key = stream_key(seed, "section-course")
        self._student_flags = FlagSampler(
            stream_key(seed, "student-flags"),
            {
                EMAIL_NO_AT: rates.email_without_at,
                EMAIL_MISSING: rates.missing_email,
                LONG_STRING: rates.long_string,
                MISSING_NAME: rates.missing_name,
                MISSING_GRADE: rates.missing_grade,
                INVALID_DOB: rates.invalid_dob,
                UNKNOWN_FIELDS: rates.unknown_fields,
                PREFERRED_NAME: rates.preferred_name,
            },
        )
        self._teacher_flags = FlagSampler(
            stream_key(seed, "teacher-flags"),
            {
                EMAIL_NO_AT: rates.email_without_at,
                EMAIL_MISSING: rates.missing_email,
                LONG_STRING: rates.long_string,
                UNKNOWN_FIELDS: rates.unknown_fields,
            },
        )
        self._staff_flags = FlagSampler(
            stream_key(seed, "staff-flags"),
            {
                EMAIL_NO_AT: rates.email_without_at,
                EMAIL_MISSING: rates.missing_email,
                MULTI_SCHOOL: rates.staff_multi_school,
            },
        )
        self._contact_flags = FlagSampler(
            stream_key(seed, "contact-flags"),
            {
                EMAIL_NO_AT: rates.email_without_at,
                EMAIL_MISSING: rates.missing_email,
                MISSING_NAME: rates.missing_name,
                ODD_RELATIONSHIP: rates.contact_odd_relationship,
            },
        )
        self._section_flags = FlagSampler(
            stream_key(seed, "section-flags"),
            {
                **{bit: rates.section_missing_field for bit in _SECTION_FLAG_RATES},
                DUPLICATE_NAME: rates.duplicate_section_name,
                LONG_STRING: rates.long_string,
                UNKNOWN_FIELDS: rates.unknown_fields,
                LMS_STATUS: 0.1,
            },
        )
        rate_of = {
            EMAIL_NO_AT: rates.email_without_at,
            EMAIL_MISSING: rates.missing_email,
            LONG_STRING: rates.long_string,
            MISSING_NAME: rates.missing_name,
            MISSING_GRADE: rates.missing_grade,
            INVALID_DOB: rates.invalid_dob,
            UNKNOWN_FIELDS: rates.unknown_fields,
            PREFERRED_NAME: rates.preferred_name,
            NO_NAME: rates.section_missing_field,
            NO_SUBJECT: rates.section_missing_field,
            NO_GRADE: rates.section_missing_field,
            NO_TERM: rates.section_missing_field,
            NO_COURSE: rates.section_missing_field,
            DUPLICATE_NAME: rates.duplicate_section_name,
        }
        # Students 0-2 stay clean: they anchor the email and history-event examples.
        self.planted_students: dict[int, int] = self._plant(
            _PLANTED_STUDENTS, rate_of, 3, layout.n_students, {layout.forced_unenrolled}
        )
        # Sections 1-3 carry the co-teacher and unshared-user examples of Layout.
        # Sections below 4 carry Layout's co-teacher and unshared-user examples; a planted
        # duplicate name needs a clean predecessor in the same school.
        first_sections = set(range(4)) | {start for start in layout.section_start if start >= 4}
        self.planted_sections: dict[int, int] = self._plant(
            _PLANTED_SECTIONS, rate_of, 4, layout.n_sections, first_sections
        )
        for index in (*range(4), *(j - 1 for j in self.planted_sections)):
            self.planted_sections.setdefault(index, 0)
        self.planted_teachers: dict[int, int] = {0: 0, 1: 0}
        if rates.long_string > 0 and layout.n_teachers > 2:
            self.planted_teachers[2] = LONG_STRING
        self.planted_staff: dict[int, int] = {0: 0}
        if rates.staff_multi_school > 0 and layout.n_staff > 1:
            self.planted_staff[1] = MULTI_SCHOOL
        self.planted_contacts: dict[int, int] = {0: 0}
        if rates.contact_odd_relationship > 0 and layout.n_contacts > 2:
            self.planted_contacts[2] = ODD_RELATIONSHIP

        self._renderers: dict[Code, Callable[[int, bool], Record]] = {
            Code.DISTRICT: lambda _index, v31: self.district(),
            Code.SCHOOL: lambda index, v31: self.school(index),
            Code.STUDENT: self.student,
            Code.TEACHER: lambda index, v31: self.teacher(index),
            Code.STAFF: lambda index, v31: self.staff(index),
            Code.DISTRICT_ADMIN: lambda index, v31: self.district_admin(index),
            Code.CONTACT: lambda index, v31: self.contact(index),
            Code.SECTION: lambda index, v31: self.section(index, v31),
            Code.TERM: lambda index, v31: self.term(index),
            Code.COURSE: lambda index, v31: self.course(index),
        }

    @staticmethod
    def _plant(
        flags: tuple[int, ...],
        rate_of: Mapping[int, float],
        first: int,
        count: int,
        avoid: set[int],
    ) -> dict[int, int]:
        planted: dict[int, int] = {}
        index = first
        for flag in flags:
            if rate_of.get(flag, 1.0) <= 0:
                continue
            while index in avoid:
                index += 1
            if index >= count:
                break
            planted[index] = flag
            index += 2
        return planted

    # -- shared pieces ----------------------------------------------------------------------

    def id_of(self, code: int, index: int) -> str:
        """The id of generated record `index` of collection `code`."""
        return f"{self._heads[code]}{index:012x}"

    def render(self, code: int, index: int, v31: bool) -> Record:
        """Render generated record `index` of collection `code` (no overlay applied)."""
        return self._renderers[Code(code)](index, v31)

    def _district_name(self) -> str:
        h = stream_key(self.seed, "district-name")
        root = SCHOOL_NAME_ROOTS[h % len(SCHOOL_NAME_ROOTS)]
        return f"{root} Unified School District"

    def _school_name(self, s: int) -> str:
        h = mix64(stream_key(self.seed, "school-names") ^ s)
        root = SCHOOL_NAME_ROOTS[h % len(SCHOOL_NAME_ROOTS)]
        kind = self.layout.school_kind[s]
        label = _KIND_LABEL.get(kind, "High School")
        if (h >> 20) % 3 == 0:
            root = f"{FIRST_NAMES[(h >> 24) % len(FIRST_NAMES)]} {LAST_NAMES[(h >> 32) % 97]}"
        return f"{root} {label}" if s < len(SCHOOL_NAME_ROOTS) else f"{root} {label} #{s}"

    def _stamp(self, bits: int, day: int) -> str:
        """An ISO timestamp in Clever's format on the `day`-th day of the records' dates,
        time of day from `bits`."""
        return self._days[day] + _CLOCK[bits & 4095]

    def _course_shapes(self) -> list[CourseShape]:
        """Every course, kind by kind: each kind's catalogue in a shuffled order, repeated
        (under new numbers) when the district has more courses than the catalogue. The order
        starts with a course taught in all of the kind's grades, so that however few courses a
        kind gets, each of its grades has one."""
        key = stream_key(self.seed, "courses")
        starts = self.layout.course_start
        shapes = []
        for kind, catalogue in sorted(_KIND_COURSES.items()):
            order = sorted(range(len(catalogue)), key=lambda k: mix64(key ^ (kind << 16) ^ k))
            low, high = KIND_GRADES[kind]
            whole = [k for k in order if catalogue[k][2] <= low and catalogue[k][3] >= high - 1]
            if whole:
                order.remove(whole[0])
                order.insert(0, whole[0])
            for c in range(starts[kind], starts[kind + 1]):
                subject, name, low, high, teaches = catalogue[
                    order[(c - starts[kind]) % len(order)]
                ]
                if teaches:
                    title = f"{teaches} Teacher"
                else:
                    title = f"{GRADES[low] if low == 0 else f'Grade {low}'} Teacher"
                shapes.append(
                    CourseShape(
                        name, f"{SUBJECT_CODES[subject]}{c:05d}", subject, low, high + 1, title
                    )
                )
        return shapes

    def _courses_by_grade(self) -> list[list[tuple[int, ...]]]:
        """Per school kind and grade band, the kind's courses taught in that grade. Should a
        kind have no course of a grade (not so with these catalogues, see `_course_shapes`),
        its courses nearest to that grade stand in, and such a section's `grade` is still
        that of its students."""
        table = []
        starts = self.layout.course_start
        for kind, (low, high) in enumerate(KIND_GRADES):
            courses = range(starts[kind], starts[kind + 1])
            rows = []
            for grade in range(low, high):
                distance = {
                    c: max(self._courses[c].low - grade, grade + 1 - self._courses[c].high, 0)
                    for c in courses
                }
                nearest = min(distance.values())
                rows.append(tuple(c for c in courses if distance[c] == nearest))
            table.append(rows)
        return table

    def _email(self, first: int, last: int, number: int, flags: int, h: int, personal: bool) -> Any:
        """An email for a person, or one of the broken shapes Clever passes through.

        `...` stands for "no email key at all", as opposed to null or "".
        """
        if flags & EMAIL_MISSING:
            return (None, "", ...)[h % 3]
        local = f"{FIRST_TOKENS[first]}.{LAST_TOKENS[last]}{number}"
        domain = "example.com" if personal else self.domain
        if flags & EMAIL_NO_AT:
            return f"{local}.{domain}" if h & 8 else f"{local} at {domain}"
        return f"{local}@{domain}"

    @staticmethod
    def _put_email(record: Record, email: Any) -> None:
        if email is not ...:
            record["email"] = email

    # -- collections ------------------------------------------------------------------------

    def district(self) -> Record:
        """The district record."""
        return {
            "id": self.district_id,
            "name": self.district_name,
            "district_contact": {
                "district": self.district_id,
                "email": f"sis.admin@{self.domain}",
                "id": self.codec.encode(Code.DISTRICT_ADMIN, 0),
                "name": {"first": "Dana", "last": "Núñez"},
                "title": "SIS Administrator",
            },
            "last_sync": self.last_sync,
            "launch_date": self.launch_date,
            "login_methods": ["clever", "google"],
            "mdr_number": f"{stream_key(self.seed, 'mdr') % 10_000_000:08d}",
            "nces_id": f"{stream_key(self.seed, 'nces') % 10_000_000:07d}",
            "portal_url": f"https://clever.com/in/{self.codec.prefix}",
            "sis_type": "sftp",
            "state": "success",
        }

    def school(self, s: int) -> Record:
        """School `s`."""
        low, high = self._school_grades[s]
        h = mix64(stream_key(self.seed, "school-fields") ^ s)
        city, state, zip3 = CITIES[self.seed % len(CITIES)]
        first, last = h % len(FIRST_NAMES), (h >> 8) % len(LAST_NAMES)
        return {
            "id": self.school_ids[s],
            "district": self.district_id,
            "name": self._school_names[s],
            "school_number": f"{100 + s}",
            "sis_id": f"SCH{100 + s}",
            "state_id": f"{state}-{s:05d}",
            "nces_id": f"{(h >> 16) % 10**12:012d}",
            "mdr_number": f"{(h >> 24) % 10**8:08d}",
            "phone": f"(555) {(h >> 32) % 900 + 100}-{(h >> 42) % 9000 + 1000}",
            "low_grade": GRADES[low],
            "high_grade": GRADES[high - 1],
            "principal": {
                "name": f"{FIRST_NAMES[first]} {LAST_NAMES[last]}",
                "email": f"{FIRST_TOKENS[first][0]}{LAST_TOKENS[last]}{s}@{self.domain}",
            },
            "location": {
                "address": f"{(h >> 50) % 9000 + 100} {STREETS[s % len(STREETS)]}",
                "city": city,
                "state": state,
                "zip": f"{zip3}{s % 100:02d}",
            },
            "created": self._stamp(h, h % 60),
            "last_modified": self._stamp(h >> 7, 60 + (h >> 13) % 300),
        }

    def _student_values(self, i: int) -> tuple[Any, ...]:
        """Everything random about student `i`."""
        s, band = self.layout.student_band(i)
        h = mix64(self._student_key ^ i)
        # A second, cheaper 64 bits: one LCG step is plenty for cosmetic choices.
        g = (h * 0x5851F42D4C957F2D + 0x14057B7EF767814F) & 0xFFFFFFFFFFFFFFFF
        lo, hi, glo, ghi = h & 0xFFFFFFFF, h >> 32, g & 0xFFFFFFFF, g >> 32
        grade = self._school_grades[s][0] + band
        created_day = hi % 120
        language, language_code = _LANGUAGES[ghi % _N_LANGUAGES]
        iep = _YN[(ghi >> 5) % 5]
        return (
            s,
            h,
            lo % _N_FIRST,
            (lo >> 8) % _N_LAST,
            MIDDLE_INITIALS[(hi >> 8) % _N_MIDDLE],
            grade,
            f"{glo % 12 + 1}/{(glo >> 4) % 28 + 1}/{self.school_year - 6 - grade + (glo >> 9) % 2}",
            _GENDERS[(hi >> 12) % 6],
            _RACES[(hi >> 15) % 8],
            _YN[(hi >> 18) % 4],
            _YN[(hi >> 20) % 5],
            (glo >> 10) % _N_LOCATIONS,
            self._stamp(lo, created_day),
            self._stamp(glo, created_day + 200 + (glo >> 20) % 200),
            language,
            language_code,
            _FRL[(ghi >> 8) % 6],
            iep,
            _YN[(ghi >> 11) % 5],
            _YN[(ghi >> 14) % 5],
            _DISABILITIES[(ghi >> 17) % 5] if iep == "Y" else None,
        )

    def student(self, i: int, v31: bool) -> Record:
        """Student `i`."""
        (
            s, h, first, last, middle, grade, dob, gender, race, hispanic, ell, location,
            created, modified, language, language_code, frl, iep, s504, gifted, disability,
        ) = self._student_values(i)  # fmt: skip
        flags = self.planted_students.get(i)
        if flags is None:
            flags = self._student_flags.sample(i)
        school_id = self.school_ids[s]
        sis_id = str(200000 + i)
        role: Record = {
            "school": school_id,
            "schools": [school_id],
            "sis_id": sis_id,
            "student_number": sis_id,
            "state_id": str(9000000000 + i),
            "legacy_id": sis_id,
            "grade": GRADES[grade],
            "graduation_year": str(self.school_year + 13 - grade),
            "dob": dob,
            "gender": gender,
            "race": race,
            "hispanic_ethnicity": hispanic,
            "ell_status": ell,
            "credentials": {"district_username": f"{FIRST_TOKENS[first]}{i}"},
            "enrollments": [
                {
                    "school": school_id,
                    "start_date": self._enrollment_dates[0],
                    "end_date": self._enrollment_dates[1],
                }
            ],
            "location": dict(_LOCATIONS[location]),
            "created": created,
            "last_modified": modified,
            "ext": {},
        }
        if v31:
            role["home_language"] = language
            role["home_language_code"] = language_code
            role["frl_status"] = frl
            role["iep_status"] = iep
            role["section_504_status"] = s504
            role["gifted_status"] = gifted
            if disability is not None:
                role["disability"] = {
                    "disability_code": disability[0],
                    "disability_status": "Y",
                    "disability_type": disability[1],
                }
        record: Record = {
            "id": f"{self._heads[Code.STUDENT]}{i:012x}",
            "district": self.district_id,
            "name": {"first": FIRST_NAMES[first], "middle": middle, "last": LAST_NAMES[last]},
            "created": created,
            "last_modified": modified,
            "roles": {"student": role},
        }
        self._put_email(record, self._email(first, last, i, flags, h >> 44, personal=False))
        if flags:
            self._student_edges(record, role, flags, h, v31)
        return record

    def _student_edges(self, record: Record, role: Record, flags: int, h: int, v31: bool) -> None:
        name = record["name"]
        if flags & LONG_STRING:
            name["last"] = _LONG_LAST[(h >> 50) % len(_LONG_LAST)]
        if flags & MISSING_NAME:
            record["name"] = {} if h & 1 else {"first": name["first"], "last": None}
        if flags & MISSING_GRADE:
            if h & 2:
                del role["grade"]
            else:
                role["grade"] = ""
        if flags & INVALID_DOB:
            role["dob"] = self._invalid_dobs[(h >> 52) % len(self._invalid_dobs)]
        if flags & UNKNOWN_FIELDS:
            record["sis_custom"] = {"homeroom": "B12", "bus_route": (h >> 20) % 40}
            role["x_local_id"] = f"L{(h >> 24) % 100000:05d}"
        if flags & PREFERRED_NAME and v31:
            role["preferred_name"] = {
                "first": FIRST_NAMES[(h >> 54) % len(FIRST_NAMES)],
                "middle": "",
                "last": name.get("last") or "",
            }

    def teacher(self, t: int) -> Record:
        """Teacher `t`."""
        s = self.layout.school_of_teacher(t)
        h = mix64(self._teacher_key ^ t)
        flags = self.planted_teachers.get(t)
        if flags is None:
            flags = self._teacher_flags.sample(t)
        first, last = h % len(FIRST_NAMES), (h >> 8) % len(LAST_NAMES)
        school_id = self.school_ids[s]
        created = self._stamp(h, (h >> 16) % 100)
        modified = self._stamp(h >> 3, 150 + (h >> 24) % 250)
        number = f"T{10000 + t}"
        role: Record = {
            "district": self.district_id,
            "school": school_id,
            "schools": [school_id],
            "sis_id": number,
            "teacher_number": number,
            "state_id": f"E{7000000 + t}",
            "legacy_id": number,
            "title": self._teacher_title(t, h >> 32),
            "credentials": {"district_username": f"{FIRST_TOKENS[first][0]}{LAST_TOKENS[last]}"},
            "created": created,
            "last_modified": modified,
            "ext": {},
        }
        record: Record = {
            "id": f"{self._heads[Code.TEACHER]}{t:012x}",
            "district": self.district_id,
            "name": {
                "first": FIRST_NAMES[first],
                "middle": MIDDLE_INITIALS[(h >> 40) % len(MIDDLE_INITIALS)],
                "last": LAST_NAMES[last],
            },
            "created": created,
            "last_modified": modified,
            "roles": {"teacher": role},
        }
        self._put_email(record, self.staff_email(self._teacher_key, t, flags))
        if flags & LONG_STRING:
            role["title"] = "Teacher of " + ", ".join(SUBJECTS) * 3
        if flags & UNKNOWN_FIELDS:
            record["sis_custom"] = {"certification": "K-6 General"}
            role["x_badge"] = f"B{t}"
        return record

    def _teacher_title(self, t: int, bits: int) -> str:
        """A title that fits what teacher `t` teaches: that of the course of a section they
        lead, now and then a generic one; a teacher who leads no section has no subject."""
        section = self.layout.first_primary_section(t)
        if section < 0:
            return UNASSIGNED_TEACHER_TITLES[bits % len(UNASSIGNED_TEACHER_TITLES)]
        pick = bits & 15
        if pick == 0:
            return "Lead Teacher"
        if pick == 1:
            return "Specialist"
        if pick == 2:
            return ""
        course = self._courses[self._course_of(*self.layout.section_place(section))]
        if pick == 3 and course.teacher_title.startswith(("Grade", "Kindergarten")):
            return "Classroom Teacher"
        return course.teacher_title

    def staff_email(self, key: int, number: int, flags: int) -> Any:
        """Work email of a teacher, staff member or admin; unique across those roles."""
        h = mix64(key ^ number)
        first, last = h % len(FIRST_NAMES), (h >> 8) % len(LAST_NAMES)
        if key == self._staff_key:
            number += self.layout.n_teachers
        if flags & EMAIL_MISSING:
            return (None, "", ...)[(h >> 44) % 3]
        local = f"{FIRST_TOKENS[first][0]}{LAST_TOKENS[last]}{number}"
        if flags & EMAIL_NO_AT:
            return f"{local}.{self.domain}"
        return f"{local}@{self.domain}"

    def staff(self, k: int) -> Record:
        """Staff member `k`: no primary school, one or several `schools`."""
        h = mix64(self._staff_key ^ k)
        flags = self.planted_staff.get(k)
        if flags is None:
            flags = self._staff_flags.sample(k)
        first, last = h % len(FIRST_NAMES), (h >> 8) % len(LAST_NAMES)
        n_schools = self.layout.n_schools
        home = k % n_schools
        schools = [self.school_ids[home]]
        if flags & MULTI_SCHOOL and n_schools > 1:
            extra = 1 + (h >> 16) % 2 if n_schools > 2 else 1
            schools += [self.school_ids[(home + d) % n_schools] for d in range(1, extra + 1)]
        title, department = STAFF_TITLES[(h >> 20) % len(STAFF_TITLES)]
        created = self._stamp(h, (h >> 24) % 100)
        modified = self._stamp(h >> 5, 150 + (h >> 32) % 250)
        record: Record = {
            "id": f"{self._heads[Code.STAFF]}{k:012x}",
            "district": self.district_id,
            "name": {"first": FIRST_NAMES[first], "last": LAST_NAMES[last]},
            "created": created,
            "last_modified": modified,
            "roles": {
                "staff": {
                    "schools": schools,
                    "staff_id": f"S{30000 + k}",
                    "legacy_id": f"S{30000 + k}",
                    "title": title,
                    "department": department,
                    "credentials": {
                        "district_username": f"{FIRST_TOKENS[first][0]}{LAST_TOKENS[last]}{k}"
                    },
                    "ext": {},
                }
            },
        }
        email = self.staff_email(self._staff_key, k, flags)
        if k == 0:
            email = self.staff_email(self._teacher_key, 1, 0)
        self._put_email(record, email)
        return record

    def district_admin(self, k: int) -> Record:
        """District admin `k`; admin 0 shares teacher 0's email (a second Clever id)."""
        h = mix64(stream_key(self.seed, "admins") ^ k)
        if k == 0:
            t = mix64(self._teacher_key ^ 0)
            first, last = t % len(FIRST_NAMES), (t >> 8) % len(LAST_NAMES)
            email = self.staff_email(self._teacher_key, 0, 0)
        else:
            first, last = h % len(FIRST_NAMES), (h >> 8) % len(LAST_NAMES)
            email = f"{FIRST_TOKENS[first][0]}{LAST_TOKENS[last]}.admin{k}@{self.domain}"
        return {
            "id": f"{self._heads[Code.DISTRICT_ADMIN]}{k:012x}",
            "district": self.district_id,
            "email": email,
            "name": {"first": FIRST_NAMES[first], "last": LAST_NAMES[last]},
            "created": self._stamp(h, (h >> 16) % 30),
            "last_modified": self._stamp(h >> 4, 100 + (h >> 24) % 100),
            "roles": {
                "district_admin": {
                    "title": ADMIN_TITLES[k % len(ADMIN_TITLES)],
                    "legacy_id": f"A{k}",
                }
            },
        }

    def contact(self, k: int) -> Record:
        """Contact `k` with its student relationships."""
        h = mix64(self._contact_key ^ k)
        flags = self.planted_contacts.get(k)
        if flags is None:
            flags = self._contact_flags.sample(k)
        students = self.layout.contact_students(k)
        student_h = mix64(self._student_key ^ students[0])
        last = (student_h >> 8) % len(LAST_NAMES) if h & 3 else (h >> 8) % len(LAST_NAMES)
        first = h % len(FIRST_NAMES)
        shapes = self._odd_relationships if flags & ODD_RELATIONSHIP else _RELATIONSHIPS
        relationships = []
        for position, student in enumerate(students):
            relationship, kind = shapes[((h >> 16) + position) % len(shapes)]
            relationships.append(
                {
                    "student": f"{self._heads[Code.STUDENT]}{student:012x}",
                    "relationship": relationship,
                    "type": kind,
                }
            )
        created = self._stamp(h, (h >> 20) % 120)
        record: Record = {
            "id": f"{self._heads[Code.CONTACT]}{k:012x}",
            "district": self.district_id,
            "name": {"first": FIRST_NAMES[first], "last": LAST_NAMES[last]},
            "created": created,
            "last_modified": self._stamp(h >> 9, 200 + (h >> 28) % 200),
            "roles": {
                "contact": {
                    "sis_id": f"C{500000 + k}",
                    "legacy_id": f"C{500000 + k}",
                    "phone": f"(555) {(h >> 32) % 900 + 100}-{(h >> 42) % 9000 + 1000}",
                    "phone_type": _PHONE_TYPES[(h >> 52) % len(_PHONE_TYPES)],
                    "student_relationships": relationships,
                }
            },
        }
        if flags & MISSING_NAME:
            record["name"] = {"first": None, "last": ""}
        self._put_email(record, self._email(first, last, k, flags, h >> 56, personal=True))
        return record

    # -- sections, terms, courses -----------------------------------------------------------

    def section_course(self, section: int) -> int:
        """The course of a generated section: the same for a few blocks of one grade in one
        period."""
        return self._course_of(*self.layout.section_place(section))

    def _course_of(self, s: int, p: int, band: int, block: int) -> int:
        """One of the courses of the school's kind taught in the band's grade."""
        courses = self._grade_courses[self.layout.school_kind[s]][band]
        h = mix64(self._section_course_key ^ (s << 12) ^ (band << 8) ^ p)
        return courses[(h + block // 3) % len(courses)]

    def section_term(self, section: int) -> int:
        """The term of a generated section: the school year, or fall or spring."""
        _, p, block = self.layout.section_period(section)
        return self._term_of(p, block)

    @staticmethod
    def _term_of(p: int, block: int) -> int:
        return 0 if p % 3 == 0 else 1 + (block + p) % 2

    def _section_name(self, section: int) -> str:
        _, p, block = self.layout.section_period(section)
        course = self._courses[self.section_course(section)]
        return f"{course.name} - {p + 1}{block + 1:02d}"

    def section_flags(self, j: int) -> int:
        """The cosmetic edge-case flags of section `j`."""
        flags = self.planted_sections.get(j)
        if flags is None:
            flags = self._section_flags.sample(j)
            if flags & DUPLICATE_NAME:
                s = self.layout.school_of_section(j)
                previous = j - 1
                if (
                    previous < self.layout.section_start[s]
                    or previous in self.planted_sections
                    or self._section_flags.sample(previous) & (DUPLICATE_NAME | NO_NAME)
                ):
                    flags &= ~DUPLICATE_NAME
        return flags

    def section(
        self,
        j: int,
        v31: bool,
        term_map: Mapping[str, str] | None = None,
        course_map: Mapping[str, str] | None = None,
    ) -> Record:
        """Section `j`; `term_map`/`course_map` rename terms and courses after a roll-over."""
        layout = self.layout
        s, p, band, band_block = layout.section_place(j)
        block = layout.band_block_start[s][band] + band_block
        h = mix64(self._section_key ^ j)
        flags = self.section_flags(j)
        bits = layout.section_bits(j)
        student_head = self._heads[Code.STUDENT]
        teacher_head = self._heads[Code.TEACHER]
        students = [f"{student_head}{i:012x}" for i in layout.section_students(j)]
        if layout.has_unshared_student(j, bits):
            students.append(self.codec.encode(Code.UNSHARED_STUDENT, j))
        teachers = [f"{teacher_head}{t:012x}" for t in layout.section_teachers(j, bits)]
        if layout.has_unshared_teacher(j, bits):
            teachers.append(self.codec.encode(Code.UNSHARED_TEACHER, j))
        course_index = self._course_of(s, p, band, band_block)
        course = self._courses[course_index]
        number = f"{p + 1}{block + 1:02d}"
        course_id = self.course_ids[course_index]
        term_id = self.term_ids[self._term_of(p, block)]
        if course_map:
            course_id = course_map.get(course_id, course_id)
        if term_map:
            term_id = term_map.get(term_id, term_id)
        created_day = (h >> 16) % 100
        record: Record = {
            "id": f"{self._heads[Code.SECTION]}{j:012x}",
            "district": self.district_id,
            "school": self.school_ids[s],
            "name": f"{course.name} - {number}",
            "period": str(p + 1),
            "section_number": number,
            "sis_id": f"{100 + s}-{number}",
            "subject": course.subject,
            "grade": GRADES[layout.school_low_grade[s] + band],
            "course": course_id,
            "term_id": term_id,
            "teacher": teachers[0],
            "teachers": teachers,
            "students": students,
            "created": self._stamp(h, created_day),
            "last_modified": self._stamp(h >> 11, created_day + 110 + (h >> 24) % 200),
        }
        if flags:
            self._section_edges(record, j, flags, h, v31)
        return record

    def _section_edges(self, record: Record, j: int, flags: int, h: int, v31: bool) -> None:
        if flags & DUPLICATE_NAME:
            record["name"] = self._section_name(j - 1)
        if flags & LONG_STRING:
            record["name"] = f"{record['name']} " + "(combined roster) " * 16
        if flags & NO_NAME:
            del record["name"]
        if flags & NO_SUBJECT:
            record["subject"] = "" if h & 1 else None
        if flags & NO_GRADE:
            del record["grade"]
        if flags & NO_TERM:
            del record["term_id"]
        if flags & NO_COURSE:
            del record["course"]
        if flags & UNKNOWN_FIELDS:
            record["sis_custom"] = {"room": f"R{(h >> 30) % 400}", "block": "A"}
        if flags & LMS_STATUS and v31:
            record["lms_status"] = {"synced_in_lms": bool(h & 4)}

    def term(self, t: int, year_offset: int = 0, term_id: str | None = None) -> Record:
        """Term `t` of the school year starting in `school_year + year_offset` (0: year,
        1: fall, 2: spring)."""
        year = self.school_year + year_offset
        template, start_shift, end_shift = _TERM_SHAPES[t]
        starts = (f"{year}-{_FALL[0]}", f"{year + 1}-{_SPRING[0]}")
        ends = (f"{year}-{_FALL[1]}", f"{year + 1}-{_SPRING[1]}")
        return {
            "id": term_id or self.term_ids[t],
            "district": self.district_id,
            "name": template.format(y=year, y1=year + 1),
            "start_date": starts[start_shift],
            "end_date": ends[end_shift],
        }

    def course(self, c: int, course_id: str | None = None) -> Record:
        """Course `c` (courses belong to the district, each offered at one kind of school)."""
        name, number = self._courses[c][:2]
        return {
            "id": course_id or self.course_ids[c],
            "district": self.district_id,
            "name": name,
            "number": number,
        }


def strip_v31(record: Record) -> Record:
    """A v3.0 view of a record rendered for v3.1 (shallow copies, only where needed)."""
    if not V31_RECORD_FIELDS.isdisjoint(record):
        record = {key: value for key, value in record.items() if key not in V31_RECORD_FIELDS}
    roles = record.get("roles")
    if isinstance(roles, dict):
        student = roles.get("student")
        if isinstance(student, dict) and not V31_STUDENT_FIELDS.isdisjoint(student):
            trimmed = {k: v for k, v in student.items() if k not in V31_STUDENT_FIELDS}
            record = {**record, "roles": {**roles, "student": trimmed}}
    return record

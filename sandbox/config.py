"""What a generated district looks like: its size, its school year and how often each data
edge case occurs."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields, replace

# A US school year starts in August; from July on, the coming one is the current one (as for
# the mirror's SCHOOL_YEAR_START_MONTH default).
SCHOOL_YEAR_START_MONTH = 7


def school_year_of(day: dt.date) -> int:
    """The calendar year in which the school year around `day` starts."""
    return day.year if day.month >= SCHOOL_YEAR_START_MONTH else day.year - 1


@dataclass(frozen=True, slots=True)
class SizeSpec:
    """The shape of a district; every count the generator uses derives from these."""

    name: str
    students: int
    schools: int
    section_size: int = 22
    # Students take `periods` sections, except in every `short_school_every`-th school where
    # they take one fewer; this lands on the ~4.8 enrollments per student of real districts.
    periods: int = 5
    short_school_every: int = 5
    sections_per_teacher: float = 3.4
    staff_per_student: float = 25 / 1150
    district_admins: int = 3
    contacts_per_student: float = 0.8
    sections_per_course: int = 40
    min_courses: int = 12
    history_events: int = 3


SIZES: dict[str, SizeSpec] = {
    # Enough students that an elementary school's grades (six of them) make sections of a few
    # students each, not of one.
    "tiny": SizeSpec(
        name="tiny",
        students=144,
        schools=3,
        section_size=8,
        periods=3,
        short_school_every=0,
        sections_per_teacher=1.5,
        staff_per_student=0.125,
        district_admins=3,
        contacts_per_student=0.5,
        min_courses=8,
    ),
    "S": SizeSpec(name="S", students=10_000, schools=20),
    # Clever's own load-test district: 50,000 students and few contacts, about 65,000
    # records and 225,000 enrollments.
    "50k": SizeSpec(name="50k", students=50_000, schools=90, contacts_per_student=0.05),
    "M": SizeSpec(name="M", students=330_000, schools=600, district_admins=14),
    "L": SizeSpec(name="L", students=560_000, schools=1_300, district_admins=20),
    "XL": SizeSpec(name="XL", students=1_150_000, schools=1_900, district_admins=30),
}


def size_spec(size: str | SizeSpec) -> SizeSpec:
    """Resolve a size name (`tiny`, `S`, `50k`, `M`, `L`, `XL`, case-insensitive) to its
    spec."""
    if isinstance(size, SizeSpec):
        return size
    for name, spec in SIZES.items():
        if name.lower() == size.lower():
            return spec
    raise ValueError(f"unknown sandbox size {size!r}; expected one of {', '.join(SIZES)}")


@dataclass(frozen=True, slots=True)
class EdgeRates:
    """How often each data edge case occurs, as a share of the records it can apply to.

    A rate of 0 disables that edge case. With any positive rate the generator also plants one
    example at a fixed record, so every edge case exists even when the rate rounds to zero
    records; `truth.edge_cases` names those examples.
    """

    email_without_at: float = 0.005
    missing_email: float = 0.005
    long_string: float = 0.001
    missing_name: float = 0.001
    missing_grade: float = 0.003
    invalid_dob: float = 0.003
    unknown_fields: float = 0.005
    preferred_name: float = 0.05
    student_no_sections: float = 0.01
    teacher_no_sections: float = 0.03
    multi_school_student: float = 0.02
    foreign_teacher_section: float = 0.01
    co_teacher: float = 0.1
    max_co_teachers: float = 0.002
    section_missing_field: float = 0.003
    unshared_student_in_section: float = 0.005
    unshared_teacher_in_section: float = 0.001
    duplicate_section_name: float = 0.01
    staff_multi_school: float = 0.1
    contact_several_students: float = 0.1
    contact_odd_relationship: float = 0.05

    @classmethod
    def dense(cls) -> EdgeRates:
        """Rates high enough that a tiny district shows every edge case several times."""
        return cls(
            email_without_at=0.08,
            missing_email=0.08,
            long_string=0.05,
            missing_name=0.05,
            missing_grade=0.06,
            invalid_dob=0.08,
            unknown_fields=0.1,
            preferred_name=0.2,
            student_no_sections=0.06,
            teacher_no_sections=0.1,
            multi_school_student=0.2,
            foreign_teacher_section=0.15,
            co_teacher=0.25,
            max_co_teachers=0.06,
            section_missing_field=0.06,
            unshared_student_in_section=0.1,
            unshared_teacher_in_section=0.06,
            duplicate_section_name=0.1,
            staff_multi_school=0.3,
            contact_several_students=0.25,
            contact_odd_relationship=0.2,
        )

    @classmethod
    def none(cls) -> EdgeRates:
        """No edge cases at all: clean data, for tests that want only the happy path."""
        return cls(**{item.name: 0.0 for item in fields(cls)})

    def with_overrides(self, **rates: float) -> EdgeRates:
        """Return a copy with some rates changed."""
        return replace(self, **rates)


@dataclass(frozen=True, slots=True)
class DistrictConfig:
    """One district of the sandbox. Same config, same records (ids, tokens and all)."""

    size: str | SizeSpec = "S"
    seed: int = 1
    rates: EdgeRates | None = None
    events_enabled: bool = True
    name: str | None = None
    # Also values Clever's own schema rejects (`dob: "unknown"`, relationships outside its
    # enums): what real districts send all the same. Off, every record is valid under
    # Clever's OpenAPI schema, though still full of edge cases.
    messy: bool = False
    # The date the school year is generated around; None means the day the config is made, so
    # a running sandbox keeps one school year and a test can pin another.
    today: dt.date | None = None

    def __post_init__(self) -> None:
        if self.today is None:
            object.__setattr__(self, "today", dt.date.today())

    @property
    def school_year(self) -> int:
        """The calendar year in which the district's school year starts."""
        assert self.today is not None
        return school_year_of(self.today)

    @property
    def spec(self) -> SizeSpec:
        """The resolved size."""
        return size_spec(self.size)

    @property
    def effective_rates(self) -> EdgeRates:
        """The configured rates, or the defaults for the size (dense for `tiny`)."""
        if self.rates is not None:
            return self.rates
        return EdgeRates.dense() if self.spec.name == "tiny" else EdgeRates()

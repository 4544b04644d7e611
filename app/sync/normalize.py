"""Turn raw Clever records into mirror rows, links and data warnings.

Functions here are pure: a raw record in, plain tuples out, no I/O. They never raise on bad
data: whatever Clever sends is stored as well as it can be and every problem becomes a
`DataWarning`. They work on the raw JSON dicts rather than on wire models because a record of
any shape must be accepted, and because a district is millions of records.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, NamedTuple, TypeGuard

import orjson

from app.mirror.columns import (
    COURSE_COLUMNS,
    DISTRICT_COLUMNS,
    SCHOOL_COLUMNS,
    SECTION_COLUMNS,
    TERM_COLUMNS,
    USER_COLUMNS,
)

# Bump when normalization changes, so the next sync rewrites every row once.
NORMALIZATION_VERSION = b"1"

# Clever's advice: 255 characters is a safe limit; longer values are stored and flagged.
LONG_STRING = 255
# Ids are keys of Postgres indexes, which hold entries of about 2.7 KB at most: a longer id
# (Clever's are 24 characters) is no id the mirror can keep.
MAX_ID_LENGTH = 255
# Emails longer than any address may be (RFC 5321: 254) are kept as given but not indexed.
MAX_EMAIL_LENGTH = 320
# JSON nested deeper than this is cut from `raw` (orjson writes at most 254 levels).
MAX_RAW_DEPTH = 128

SENSITIVE_STUDENT_FIELDS = (
    "iep_status",
    "ell_status",
    "frl_status",
    "section_504_status",
    "gifted_status",
    "disability",
    "home_language",
    "home_language_code",
)

# Clever's grade values in order; the position is the `grade_level` column.
GRADE_LEVELS: dict[str, int] = {
    "InfantToddler": -4,
    "Preschool": -3,
    "PreKindergarten": -2,
    "TransitionalKindergarten": -1,
    "Kindergarten": 0,
    **{str(n): n for n in range(1, 14)},
    "PostGraduate": 14,
}
UNORDERED_GRADES = frozenset({"Ungraded", "Other"})
_GRADE_ALIASES = {
    "k": "Kindergarten",
    "kg": "Kindergarten",
    "pk": "PreKindergarten",
    "prek": "PreKindergarten",
    "tk": "TransitionalKindergarten",
    "ps": "Preschool",
    "it": "InfantToddler",
    "pg": "PostGraduate",
}

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_DOB = re.compile(r"^\s*(\d{1,2})/(\d{1,2})/(\d{4})\s*$")


class DataWarning(NamedTuple):
    """One data warning: what is wrong with which field of which record."""

    entity: str
    record_id: str | None
    field: str | None
    code: str
    detail: str | None


@dataclass
class Collector:
    """Accumulates the warnings found while normalizing one record."""

    entity: str
    record_id: str | None
    warnings: list[DataWarning] = field(default_factory=list)

    def warn(self, field_name: str | None, code: str, detail: str | None = None) -> None:
        self.warnings.append(DataWarning(self.entity, self.record_id, field_name, code, detail))


# --- scalar cleaning -------------------------------------------------------------------


def clean_text(value: Any, collector: Collector, field_name: str) -> str | None:
    """Trim and NFC-normalize a string; blank becomes None; other types become their text.
    NUL characters, which Postgres text cannot hold, are removed (with a warning)."""
    if value is None:
        return None
    if not isinstance(value, str):
        if isinstance(value, dict | list):
            collector.warn(field_name, "invalid_type", f"expected text, got {type(value).__name__}")
            return None
        value = str(value)
    if "\x00" in value:
        collector.warn(field_name, "invalid_character", "NUL characters removed")
        value = value.replace("\x00", "")
    text: str = value.strip()
    if not text.isascii():  # ASCII is already NFC; most values are, and the check is cheap
        text = unicodedata.normalize("NFC", text)
    if not text:
        return None
    if len(text) > LONG_STRING:
        collector.warn(field_name, "value_too_long", f"{len(text)} characters")
    return text


def clean_email(value: Any, collector: Collector) -> tuple[str | None, str | None, bool | None]:
    """The email as given, its normalized form, and whether it looks like an address."""
    email = clean_text(value, collector, "email")
    if email is None:
        return None, None, None
    if len(email) > MAX_EMAIL_LENGTH:
        collector.warn("email", "invalid_email", f"{len(email)} characters: no email address")
        return email, None, False
    normalized = email.lower()
    valid = _EMAIL.match(normalized) is not None
    if not valid:
        collector.warn("email", "invalid_email", "not an email address")
    return email, normalized, valid


def clean_grade(
    value: Any, collector: Collector, field_name: str = "grade"
) -> tuple[str | None, int | None]:
    """Clever's grade string (aliases like `K` mapped) and its order, or None."""
    grade = clean_text(value, collector, field_name)
    if grade is None:
        return None, None
    if grade in GRADE_LEVELS:
        return grade, GRADE_LEVELS[grade]
    if grade in UNORDERED_GRADES:
        return grade, None
    alias = _GRADE_ALIASES.get(grade.lower().replace("-", "").replace(" ", ""))
    if alias is not None:
        return alias, GRADE_LEVELS[alias]
    if grade.isdigit() and str(int(grade)) in GRADE_LEVELS:
        canonical = str(int(grade))
        return canonical, GRADE_LEVELS[canonical]
    collector.warn(field_name, "invalid_grade", "not one of Clever's grades")
    return grade, None


def parse_dob(value: Any, collector: Collector) -> date | None:
    """Clever's `M/D/YYYY` birth date (ISO dates accepted too)."""
    text = clean_text(value, collector, "dob")
    if text is None:
        return None
    match = _DOB.match(text)
    try:
        if match:
            month, day, year = (int(part) for part in match.groups())
            return date(year, month, day)
        return date.fromisoformat(text[:10])
    except ValueError:
        collector.warn("dob", "invalid_date", "not a M/D/YYYY date")
        return None


def parse_date(value: Any, collector: Collector, field_name: str) -> date | None:
    """The date part of an ISO date or datetime (`2024-08-21T00:00:00.000Z`)."""
    text = clean_text(value, collector, field_name)
    if text is None:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        collector.warn(field_name, "invalid_date", "not an ISO date")
        return None


def parse_timestamp(value: Any) -> datetime | None:
    """An ISO timestamp such as Clever's `last_modified`; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_flag(value: Any) -> bool | None:
    """Clever's `"Y"`/`"N"`/`""` as true/false/null."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().upper()
        if text in {"Y", "YES", "TRUE"}:
            return True
        if text in {"N", "NO", "FALSE"}:
            return False
    return None


def as_id(value: Any) -> str | None:
    """A Clever id reference: a non-blank string (numbers accepted) of at most
    MAX_ID_LENGTH characters and without NUL, else None."""
    if isinstance(value, str):
        value = value.strip()
        if len(value) > MAX_ID_LENGTH or "\x00" in value:
            return None
        return value or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def is_record_id(value: Any) -> TypeGuard[str]:
    """Whether `value` can be a record's id (`as_id` then gives it, trimmed)."""
    return isinstance(value, str) and as_id(value) is not None


def id_list(value: Any) -> list[str]:
    """A list of id references, blanks dropped, order and duplicates removed-first-kept."""
    if not isinstance(value, list):
        return []
    seen: dict[str, None] = {}
    for item in value:
        ref = as_id(item)
        if ref is not None:
            seen.setdefault(ref, None)
    return list(seen)


def content_hash(encoded: bytes, *flags: bool) -> bytes:
    """A digest of the record's JSON as Clever sent it, for finding changed rows set-wise.

    Clever's key order is stable, so the bytes themselves are hashed; a reordering would only
    cost one rewrite of the row.
    """
    digest = hashlib.blake2b(NORMALIZATION_VERSION, digest_size=16)
    digest.update(bytes(int(flag) for flag in flags))
    digest.update(encoded)
    return digest.digest()


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


# --- records -------------------------------------------------------------------------


@dataclass(frozen=True)
class Normalized:
    """One record ready to stage: its row, the links it declares, and its warnings."""

    row: tuple[Any, ...] | None
    warnings: list[DataWarning]
    user_schools: list[tuple[str, str, str, bool]] = field(default_factory=list)
    contacts: list[tuple[str, str, str | None, str | None]] = field(default_factory=list)
    section_teachers: list[tuple[str, str, int, bool]] = field(default_factory=list)
    enrollments: list[tuple[str, str]] = field(default_factory=list)


def _skip(entity: str, raw: Any) -> Normalized:
    if not isinstance(raw, dict):
        return invalid_record(entity, "record is not an object")
    given = raw.get("id")
    if isinstance(given, str) and given.strip():
        reason = (
            f"id of {len(given)} characters (at most {MAX_ID_LENGTH})"
            if len(given.strip()) > MAX_ID_LENGTH
            else "id contains a NUL character"
        )
        return Normalized(None, [DataWarning(entity, None, "id", "invalid_id", reason)])
    return invalid_record(entity, "record has no id")


def invalid_record(entity: str, reason: str) -> Normalized:
    """A record that cannot be stored at all (no usable id): skipped with a warning."""
    return Normalized(None, [DataWarning(entity, None, "id", "missing_id", reason)])


def encode_raw(raw: Any) -> tuple[bytes, bool]:
    """The JSON stored as `raw`, and whether the record had to be changed to be stored.

    Postgres jsonb holds no NUL character and JSON can hold no lone surrogate; orjson writes
    neither integers beyond 64 bits nor more than 254 levels of nesting. Such records are
    kept with NUL removed, lone surrogates and huge integers as text, and nesting deeper
    than MAX_RAW_DEPTH replaced by a marker.
    """
    try:
        encoded = orjson.dumps(raw)
    except orjson.JSONEncodeError:
        return orjson.dumps(_storable(raw, 0)), True
    if b"\\u0000" in encoded:
        storable = _storable(raw, 0)
        return orjson.dumps(storable), storable != raw
    return encoded, False


_TOO_DEEP = "[nested too deep to store]"


def _storable(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return _storable_text(value)
    if isinstance(value, bool | float) or value is None:
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else str(value)
    if depth >= MAX_RAW_DEPTH:
        return _TOO_DEEP
    if isinstance(value, dict):
        return {_storable_text(str(k)): _storable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(item, depth + 1) for item in value]
    return str(value)


def _storable_text(text: str) -> str:
    text = text.replace("\x00", "")
    try:
        text.encode()
    except UnicodeEncodeError:  # lone surrogates
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _common(
    raw: dict[str, Any], collector: Collector, *flags: bool
) -> tuple[datetime | None, bytes, bytes]:
    """`source_last_modified`, `content_hash` and the raw JSON, shared by every entity."""
    encoded, changed = encode_raw(raw)
    if changed:
        collector.warn(
            "raw",
            "unstorable_value",
            "NUL characters, lone surrogates, huge numbers or deep"
            " nesting were changed to store the record",
        )
    return parse_timestamp(raw.get("last_modified")), content_hash(encoded, *flags), encoded


def normalize_district(raw: Any) -> Normalized:
    record_id = as_id(raw.get("id")) if isinstance(raw, dict) else None
    if record_id is None:
        return _skip("districts", raw)
    c = Collector("districts", record_id)
    modified, digest, encoded = _common(raw, c)
    row = (
        record_id,
        clean_text(raw.get("name"), c, "name"),
        clean_text(raw.get("state"), c, "state"),
        clean_text(raw.get("sis_type"), c, "sis_type"),
        clean_text(raw.get("nces_id"), c, "nces_id"),
        clean_text(raw.get("mdr_number"), c, "mdr_number"),
        clean_text(raw.get("portal_url"), c, "portal_url"),
        parse_timestamp(raw.get("last_sync")),
        parse_timestamp(raw.get("pause_start")),
        parse_timestamp(raw.get("pause_end")),
        modified,
        digest,
        encoded,
    )
    if row[1] is None:
        c.warn("name", "missing_name")
    return Normalized(row, c.warnings)


def normalize_school(raw: Any) -> Normalized:
    record_id = as_id(raw.get("id")) if isinstance(raw, dict) else None
    if record_id is None:
        return _skip("schools", raw)
    c = Collector("schools", record_id)
    principal = _mapping(raw.get("principal"))
    location = _mapping(raw.get("location"))
    modified, digest, encoded = _common(raw, c)
    name = clean_text(raw.get("name"), c, "name")
    if name is None:
        c.warn("name", "missing_name")
    row = (
        record_id,
        name,
        clean_text(raw.get("school_number"), c, "school_number"),
        clean_text(raw.get("sis_id"), c, "sis_id"),
        clean_text(raw.get("state_id"), c, "state_id"),
        clean_text(raw.get("nces_id"), c, "nces_id"),
        clean_text(raw.get("mdr_number"), c, "mdr_number"),
        clean_grade(raw.get("low_grade"), c, "low_grade")[0],
        clean_grade(raw.get("high_grade"), c, "high_grade")[0],
        clean_text(raw.get("phone"), c, "phone"),
        clean_text(principal.get("name"), c, "principal.name"),
        clean_text(principal.get("email"), c, "principal.email"),
        clean_text(location.get("address"), c, "location.address"),
        clean_text(location.get("city"), c, "location.city"),
        clean_text(location.get("state"), c, "location.state"),
        clean_text(location.get("zip"), c, "location.zip"),
        modified,
        digest,
        encoded,
    )
    return Normalized(row, c.warnings)


def normalize_term(raw: Any) -> Normalized:
    record_id = as_id(raw.get("id")) if isinstance(raw, dict) else None
    if record_id is None:
        return _skip("terms", raw)
    c = Collector("terms", record_id)
    modified, digest, encoded = _common(raw, c)
    start = parse_date(raw.get("start_date"), c, "start_date")
    end = parse_date(raw.get("end_date"), c, "end_date")
    if start and end and end < start:
        c.warn("end_date", "invalid_date", "ends before it starts")
    row = (record_id, clean_text(raw.get("name"), c, "name"), start, end, modified, digest, encoded)
    return Normalized(row, c.warnings)


def normalize_course(raw: Any) -> Normalized:
    record_id = as_id(raw.get("id")) if isinstance(raw, dict) else None
    if record_id is None:
        return _skip("courses", raw)
    c = Collector("courses", record_id)
    modified, digest, encoded = _common(raw, c)
    name = clean_text(raw.get("name"), c, "name")
    if name is None:
        c.warn("name", "missing_name")
    row = (record_id, name, clean_text(raw.get("number"), c, "number"), modified, digest, encoded)
    return Normalized(row, c.warnings)


USER_ROLES = ("student", "teacher", "staff", "district_admin", "contact")


def _strip_sensitive(raw: dict[str, Any]) -> dict[str, Any]:
    """`raw` without the sensitive student fields (for districts that did not enable them)."""
    roles = _mapping(raw.get("roles"))
    student = _mapping(roles.get("student"))
    if not any(name in student for name in SENSITIVE_STUDENT_FIELDS):
        return raw
    cleaned_student = {k: v for k, v in student.items() if k not in SENSITIVE_STUDENT_FIELDS}
    return {**raw, "roles": {**roles, "student": cleaned_student}}


def _sensitive(student: dict[str, Any]) -> dict[str, Any] | None:
    values: dict[str, Any] = {}
    for name in SENSITIVE_STUDENT_FIELDS:
        value = student.get(name)
        if value is None or value == "":
            continue
        if name in {"ell_status", "section_504_status", "gifted_status"}:
            values[name] = parse_flag(value)
        else:
            values[name] = value
    return values or None


def normalize_user(raw: Any, *, sensitive_enabled: bool) -> Normalized:
    """A user of any role(s); its school links and contact relationships come with it."""
    record_id = as_id(raw.get("id")) if isinstance(raw, dict) else None
    if record_id is None:
        return _skip("users", raw)
    c = Collector("users", record_id)
    kept = raw if sensitive_enabled else _strip_sensitive(raw)
    modified, digest, encoded = _common(kept, c, sensitive_enabled)
    roles_obj = _mapping(raw.get("roles"))
    roles = [role for role in USER_ROLES if isinstance(roles_obj.get(role), dict)]
    if not roles:
        c.warn("roles", "missing_role", "user has no known role")
    student = _mapping(roles_obj.get("student"))
    teacher = _mapping(roles_obj.get("teacher"))
    staff = _mapping(roles_obj.get("staff"))
    admin = _mapping(roles_obj.get("district_admin"))
    contact = _mapping(roles_obj.get("contact"))

    name = _mapping(raw.get("name"))
    first = clean_text(name.get("first"), c, "name.first")
    last = clean_text(name.get("last"), c, "name.last")
    if first is None or last is None:
        c.warn("name", "missing_name", "first or last name missing")
    preferred = _mapping(student.get("preferred_name") or raw.get("preferred_name"))
    email, email_normalized, email_valid = clean_email(raw.get("email"), c)
    if email is None and roles and roles != ["contact"]:
        c.warn("email", "missing_email")

    grade, grade_level = (None, None)
    graduation_year: int | None = None
    if "student" in roles:
        grade, grade_level = clean_grade(student.get("grade"), c)
        if grade is None:
            c.warn("grade", "missing_grade")
        graduation_year = _year(student.get("graduation_year"), c)

    primary_school = None
    user_schools: list[tuple[str, str, str, bool]] = []
    for role, details in (("student", student), ("teacher", teacher), ("staff", staff)):
        if role not in roles:
            continue
        primary = as_id(details.get("school"))
        if primary is not None and primary_school is None:
            primary_school = primary
        schools = id_list(details.get("schools"))
        if primary is not None and primary not in schools:
            schools.insert(0, primary)
        user_schools.extend((record_id, role, school, school == primary) for school in schools)

    contacts: list[tuple[str, str, str | None, str | None]] = []
    seen_students: set[str] = set()
    for relationship in contact.get("student_relationships") or ():
        relationship = _mapping(relationship)
        student_id = as_id(relationship.get("student"))
        if student_id is None or student_id in seen_students:
            continue
        seen_students.add(student_id)
        contacts.append(
            (
                record_id,
                student_id,
                clean_text(relationship.get("relationship"), c, "relationship"),
                clean_text(relationship.get("type"), c, "relationship_type"),
            )
        )

    row = (
        record_id,
        roles,
        first,
        clean_text(name.get("middle"), c, "name.middle"),
        last,
        clean_text(preferred.get("first"), c, "preferred_name.first"),
        email,
        email_normalized,
        email_valid,
        primary_school,
        clean_text(_first_of(student, teacher, staff, key="sis_id"), c, "sis_id"),
        clean_text(_first_of(student, teacher, key="state_id"), c, "state_id"),
        clean_text(student.get("student_number"), c, "student_number"),
        clean_text(teacher.get("teacher_number"), c, "teacher_number"),
        clean_text(staff.get("staff_id"), c, "staff_id"),
        clean_text(_first_of(teacher, staff, admin, key="title"), c, "title"),
        grade,
        grade_level,
        graduation_year,
        parse_dob(student.get("dob"), c) if "student" in roles else None,
        clean_text(student.get("gender"), c, "gender"),
        clean_text(contact.get("phone"), c, "phone"),
        encode_raw(_sensitive(student))[0] if sensitive_enabled and student else None,
        modified,
        digest,
        encoded,
    )
    return Normalized(row, c.warnings, user_schools=user_schools, contacts=contacts)


def _first_of(*objects: dict[str, Any], key: str) -> Any:
    for obj in objects:
        value = obj.get(key)
        if value not in (None, ""):
            return value
    return None


def _year(value: Any, collector: Collector) -> int | None:
    if value in (None, ""):
        return None
    try:
        year = int(str(value).strip())
    except ValueError:
        collector.warn("graduation_year", "invalid_value", "not a year")
        return None
    if not 1900 <= year <= 2200:
        collector.warn("graduation_year", "invalid_value", "not a plausible year")
        return None
    return year


# Primary teacher plus up to nine co-teachers is what Clever supports.
MAX_SECTION_TEACHERS = 10


def normalize_section(raw: Any) -> Normalized:
    """A section; its teachers (primary first, co-teachers in order) and students come with it.

    The display name of an unnamed section is made later, in SQL, where its course and
    teacher are at hand.
    """
    record_id = as_id(raw.get("id")) if isinstance(raw, dict) else None
    if record_id is None:
        return _skip("sections", raw)
    c = Collector("sections", record_id)
    modified, digest, encoded = _common(raw, c)
    name = clean_text(raw.get("name"), c, "name")
    if name is None:
        c.warn("name", "missing_name", "a display name is generated")
    grade, grade_level = clean_grade(raw.get("grade"), c)
    primary = as_id(raw.get("teacher"))
    teachers = id_list(raw.get("teachers"))
    if primary is not None:
        teachers = [primary, *(t for t in teachers if t != primary)]
    if len(teachers) > MAX_SECTION_TEACHERS:
        c.warn("teachers", "too_many_teachers", f"{len(teachers)} teachers")
    if not teachers:
        c.warn("teachers", "no_teachers")
    students = id_list(raw.get("students"))
    if not students:
        c.warn("students", "no_students")
    for field_name in ("school", "term_id", "course"):
        if as_id(raw.get(field_name)) is None:
            c.warn(field_name, f"missing_{field_name.removesuffix('_id')}")
    row = (
        record_id,
        as_id(raw.get("school")),
        as_id(raw.get("course")),
        as_id(raw.get("term_id")),
        name,
        clean_text(raw.get("period"), c, "period"),
        clean_text(raw.get("section_number"), c, "section_number"),
        clean_text(raw.get("sis_id"), c, "sis_id"),
        clean_text(raw.get("subject"), c, "subject"),
        grade,
        grade_level,
        primary,
        modified,
        digest,
        encoded,
    )
    return Normalized(
        row,
        c.warnings,
        section_teachers=[
            (record_id, teacher, position, position == 0 and primary is not None)
            for position, teacher in enumerate(teachers)
        ],
        enrollments=[(record_id, student) for student in students],
    )


def all_warnings(items: Iterable[Normalized]) -> list[DataWarning]:
    return [warning for item in items for warning in item.warnings]


COLUMNS: dict[str, tuple[str, ...]] = {
    "districts": DISTRICT_COLUMNS,
    "schools": SCHOOL_COLUMNS,
    "terms": TERM_COLUMNS,
    "courses": COURSE_COLUMNS,
    "users": USER_COLUMNS,
    "sections": SECTION_COLUMNS,
}


def digest_of(entity: str, raw: dict[str, Any], *, sensitive_enabled: bool) -> bytes:
    """The `content_hash` the entity's normalizer would give `raw`, at a fraction of the cost.

    Lets a sync recognise a record the mirror already holds as it is, and skip normalizing it.
    """
    if entity == "users":
        kept = raw if sensitive_enabled else _strip_sensitive(raw)
        return content_hash(encode_raw(kept)[0], sensitive_enabled)
    return content_hash(encode_raw(raw)[0])


def unchanged_row(entity: str, record_id: str, digest: bytes) -> tuple[Any, ...]:
    """A staged row that only says "this record is still shared, as it was".

    It carries the id and hash; every other column, `raw` included, is NULL, which is how
    the merge tells such rows from complete ones.
    """
    columns = COLUMNS[entity]
    row: list[Any] = [None] * len(columns)
    row[columns.index("id")] = record_id
    row[columns.index("content_hash")] = digest
    return tuple(row)

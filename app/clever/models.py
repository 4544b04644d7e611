"""Wire models of the Clever Data API v3.0 and v3.1 records.

One set of models serves both versions: v3.1 only adds optional fields. The models are
deliberately permissive, because a district's data must never be rejected by us:

* every field is optional except a record's `id`;
* unknown fields are kept (`model_extra`), enum-like fields are plain `str`;
* numbers where text is expected become text (`2024` -> `"2024"`);
* a value of the wrong type in an optional field (an object where text is expected, a
  list element that is not text...) is dropped to None, or removed from its list, and its
  path is listed in `invalid_fields` so the sync can report it;
* the dict Clever sent is kept untouched as `raw`, which is what the mirror stores.

Dates stay strings as sent (`created`, `dob`, `start_date`...): parsing them is
normalization, done by the sync.
"""

from __future__ import annotations

import copy
from typing import Annotated, Any, ClassVar, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    ModelWrapValidatorHandler,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails

ROLE_NAMES = ("student", "teacher", "staff", "district_admin", "contact")
"""The user roles Clever knows; each is also a value of the `/users?role=` filter."""

# Each repair pass fixes every error pydantic reported; a second pass only happens if a
# repair uncovered a new error, so a couple of passes always suffice.
_MAX_REPAIR_PASSES = 3


class CleverObject(BaseModel):
    """Base of every wire object: unknown fields kept, numbers accepted as text.

    Validation errors never echo input values (`hide_input_in_errors`), since the input
    is students' personal data.
    """

    model_config = ConfigDict(
        extra="allow",
        coerce_numbers_to_str=True,
        hide_input_in_errors=True,
    )


class Name(CleverObject):
    """A person's name."""

    first: str | None = None
    middle: str | None = None
    last: str | None = None


class PreferredName(Name):
    """A student's preferred name (v3.1)."""


class Credentials(CleverObject):
    """Login credentials Clever shares for a user."""

    district_username: str | None = None


class Location(CleverObject):
    """A postal address with optional coordinates (as text, like Clever sends them)."""

    address: str | None = None
    city: str | None = None
    state: str | None = None
    zip: str | None = None
    lat: str | None = None
    lon: str | None = None


class SchoolEnrollment(CleverObject):
    """A student's enrollment in a school, with optional dates."""

    school: str | None = None
    start_date: str | None = None
    end_date: str | None = None


class Disability(CleverObject):
    """A student's disability information (v3.1, sensitive)."""

    disability_code: str | None = None
    disability_status: str | None = None
    disability_type: str | None = None


class StudentRelationship(CleverObject):
    """A contact's relationship to one student."""

    student: str | None = None
    relationship: str | None = None
    type: str | None = None


class LmsStatus(CleverObject):
    """Whether a section or user is synced to the district's LMS (v3.1)."""

    synced_in_lms: bool | None = None


class Principal(CleverObject):
    """A school's principal."""

    name: str | None = None
    email: str | None = None


class DistrictContact(CleverObject):
    """The district's main contact person."""

    id: str | None = None
    district: str | None = None
    email: str | None = None
    name: Name | None = None
    title: str | None = None


class StudentRole(CleverObject):
    """The `roles.student` object of a user."""

    created: str | None = None
    last_modified: str | None = None
    credentials: Credentials | None = None
    dob: str | None = None
    ell_status: str | None = None
    enrollments: list[SchoolEnrollment] | None = None
    ext: dict[str, Any] | None = None
    gender: str | None = None
    grade: str | None = None
    graduation_year: str | None = None
    hispanic_ethnicity: str | None = None
    legacy_id: str | None = None
    location: Location | None = None
    race: str | None = None
    school: str | None = None
    schools: list[str] | None = None
    sis_id: str | None = None
    state_id: str | None = None
    student_number: str | None = None
    # v3.1
    disability: Disability | None = None
    frl_status: str | None = None
    gifted_status: str | None = None
    home_language: str | None = None
    home_language_code: str | None = None
    iep_status: str | None = None
    preferred_name: PreferredName | None = None
    section_504_status: str | None = None


class TeacherRole(CleverObject):
    """The `roles.teacher` object of a user."""

    created: str | None = None
    last_modified: str | None = None
    credentials: Credentials | None = None
    district: str | None = None
    ext: dict[str, Any] | None = None
    legacy_id: str | None = None
    name: Name | None = None
    school: str | None = None
    schools: list[str] | None = None
    sis_id: str | None = None
    state_id: str | None = None
    teacher_number: str | None = None
    title: str | None = None


class StaffRole(CleverObject):
    """The `roles.staff` object of a user."""

    credentials: Credentials | None = None
    department: str | None = None
    ext: dict[str, Any] | None = None
    legacy_id: str | None = None
    roles: list[str] | None = None
    schools: list[str] | None = None
    staff_id: str | None = None
    title: str | None = None


class DistrictAdminRole(CleverObject):
    """The `roles.district_admin` object of a user."""

    legacy_id: str | None = None
    title: str | None = None


class ContactRole(CleverObject):
    """The `roles.contact` object of a user."""

    legacy_id: str | None = None
    phone: str | None = None
    phone_type: str | None = None
    sis_id: str | None = None
    student_relationships: list[StudentRelationship] | None = None


class Roles(CleverObject):
    """The roles a user holds; usually exactly one is present."""

    student: StudentRole | None = None
    teacher: TeacherRole | None = None
    staff: StaffRole | None = None
    district_admin: DistrictAdminRole | None = None
    contact: ContactRole | None = None


class CleverRecord(CleverObject):
    """A top-level Clever record: the only required field is a non-empty `id`.

    `raw` is the dict Clever sent, unchanged; `invalid_fields` lists the paths of values
    that had the wrong type and were dropped from the model (they remain in `raw`).
    """

    collection: ClassVar[str] = ""

    id: Annotated[str, StringConstraints(min_length=1)]

    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)
    _invalid_fields: tuple[str, ...] = PrivateAttr(default=())

    @property
    def raw(self) -> dict[str, Any]:
        """The record exactly as Clever sent it."""
        return self._raw

    @property
    def invalid_fields(self) -> tuple[str, ...]:
        """Paths (`roles.student.grade`, `students[3]`) of values dropped for their type."""
        return self._invalid_fields

    @model_validator(mode="wrap")
    @classmethod
    def _validate_leniently(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        if not isinstance(data, dict):
            return handler(data)
        candidate: dict[str, Any] = data
        dropped: list[str] = []
        for _ in range(_MAX_REPAIR_PASSES):
            try:
                record = handler(candidate)
                break
            except ValidationError as exc:
                repaired = _drop_invalid_values(candidate, exc.errors(include_input=False))
                if repaired is None:
                    raise
                candidate, paths = repaired
                dropped.extend(paths)
        else:
            record = handler(candidate)
        record._raw = data
        record._invalid_fields = tuple(dropped)
        return record


def _drop_invalid_values(
    data: dict[str, Any], errors: list[ErrorDetails]
) -> tuple[dict[str, Any], list[str]] | None:
    """A deep copy of `data` without the values `errors` point at, and their paths.

    The offending value is set to None when it sits under an object key and removed when
    it is a list element. Returns None when an error cannot be repaired that way (a bad
    or missing top-level `id`, an error about the record as a whole).
    """
    fixed = copy.deepcopy(data)
    removals: dict[int, tuple[list[Any], set[int]]] = {}
    paths: list[str] = []
    for error in errors:
        loc = error["loc"]
        key_at = max((i for i, part in enumerate(loc) if isinstance(part, str)), default=-1)
        if key_at < 0 or loc[: key_at + 1] == ("id",):
            return None
        trailing_index = key_at + 1 < len(loc)
        end = key_at + 2 if trailing_index else key_at + 1
        container = _walk(fixed, loc[: end - 1])
        target = loc[end - 1]
        if isinstance(container, dict) and isinstance(target, str) and target in container:
            container[target] = None
        elif isinstance(container, list) and isinstance(target, int) and target < len(container):
            removals.setdefault(id(container), (container, set()))[1].add(target)
        else:
            return None
        paths.append(_format_path(loc[:end]))
    for items, indexes in removals.values():
        for index in sorted(indexes, reverse=True):
            del items[index]
    return fixed, paths


def _walk(data: Any, loc: tuple[int | str, ...]) -> Any:
    node = data
    for part in loc:
        if isinstance(node, dict) and isinstance(part, str):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return None
    return node


def _format_path(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


class District(CleverRecord):
    """A district (`/districts`)."""

    collection: ClassVar[str] = "districts"

    name: str | None = None
    district_contact: DistrictContact | None = None
    error: str | None = None
    last_sync: str | None = None
    launch_date: str | None = None
    login_methods: list[str] | None = None
    mdr_number: str | None = None
    nces_id: str | None = None
    pause_start: str | None = None
    pause_end: str | None = None
    portal_url: str | None = None
    sis_type: str | None = None
    state: str | None = None
    # v3.1
    last_attendance_sync: str | None = None
    lms_state: str | None = None
    lms_type: str | None = None


class School(CleverRecord):
    """A school (`/schools`)."""

    collection: ClassVar[str] = "schools"

    district: str | None = None
    name: str | None = None
    created: str | None = None
    last_modified: str | None = None
    ext: dict[str, Any] | None = None
    high_grade: str | None = None
    low_grade: str | None = None
    location: Location | None = None
    mdr_number: str | None = None
    nces_id: str | None = None
    phone: str | None = None
    principal: Principal | None = None
    school_number: str | None = None
    sis_id: str | None = None
    state_id: str | None = None


class User(CleverRecord):
    """A user of any role (`/users`); the role details live under `roles`."""

    collection: ClassVar[str] = "users"

    district: str | None = None
    email: str | None = None
    name: Name | None = None
    roles: Roles | None = None
    created: str | None = None
    last_modified: str | None = None
    # v3.1
    lms_status: LmsStatus | None = None

    @property
    def role_names(self) -> list[str]:
        """The roles present on this user, e.g. `["teacher"]`."""
        if self.roles is None:
            return []
        return [role for role in ROLE_NAMES if getattr(self.roles, role) is not None]


class Section(CleverRecord):
    """A section, i.e. a class (`/sections`)."""

    collection: ClassVar[str] = "sections"

    district: str | None = None
    school: str | None = None
    name: str | None = None
    course: str | None = None
    term_id: str | None = None
    teacher: str | None = None
    teachers: list[str] | None = None
    students: list[str] | None = None
    created: str | None = None
    last_modified: str | None = None
    ext: dict[str, Any] | None = None
    grade: str | None = None
    period: str | None = None
    section_number: str | None = None
    sis_id: str | None = None
    subject: str | None = None
    # v3.1
    lms_status: LmsStatus | None = None


class Term(CleverRecord):
    """A term (`/terms`)."""

    collection: ClassVar[str] = "terms"

    district: str | None = None
    name: str | None = None
    start_date: str | None = None
    end_date: str | None = None


class Course(CleverRecord):
    """A course (`/courses`)."""

    collection: ClassVar[str] = "courses"

    district: str | None = None
    name: str | None = None
    number: str | None = None


RECORD_MODELS: dict[str, type[CleverRecord]] = {
    model.collection: model for model in (District, School, User, Section, Term, Course)
}
"""The record model of each district-level collection, by collection name."""


class EventData(CleverObject):
    """The `data` of an event: the record after the change and what it changed from."""

    object: dict[str, Any] | None = None
    previous_attributes: dict[str, Any] | None = None


class Event(CleverRecord):
    """An event (`/events`): `type` is `<collection>.<created|updated|deleted>`.

    The changed record is kept as a dict (`data.object`); `record()` parses it with the
    model of its collection. `previous_attributes` is accepted both inside `data` and at
    the top level of the event; `previous_attributes_merged` combines the two.
    """

    collection: ClassVar[str] = "events"

    type: str | None = None
    created: str | None = None
    data: EventData | None = None
    previous_attributes: dict[str, Any] | None = None

    @property
    def record_type(self) -> str | None:
        """The collection the event is about (`users` for `users.updated`)."""
        if not self.type or "." not in self.type:
            return None
        return self.type.rsplit(".", 1)[0]

    @property
    def action(self) -> str | None:
        """`created`, `updated` or `deleted` (or whatever Clever sends after the dot)."""
        if not self.type or "." not in self.type:
            return None
        return self.type.rsplit(".", 1)[1]

    @property
    def record_raw(self) -> dict[str, Any] | None:
        """The changed record as Clever sent it."""
        return self.data.object if self.data is not None else None

    @property
    def previous_attributes_merged(self) -> dict[str, Any]:
        """The previous values of changed fields, from either place Clever puts them."""
        merged = dict(self.previous_attributes or {})
        if self.data is not None and self.data.previous_attributes:
            merged.update(self.data.previous_attributes)
        return merged

    def record(self) -> CleverRecord | None:
        """The changed record parsed with its collection's model.

        Returns None when the event has no object or is about a collection this client
        does not model (e.g. `resources`). Raises `pydantic.ValidationError` when the
        object has no usable `id`.
        """
        model = RECORD_MODELS.get(self.record_type or "")
        raw = self.record_raw
        if model is None or raw is None:
            return None
        return model.model_validate(raw)

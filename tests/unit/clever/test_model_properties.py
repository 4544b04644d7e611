"""Property tests: any record Clever may send parses, keeps its id, its unknown fields
and its raw JSON.

The strategies follow the field lists of Clever's v3.0/v3.1 definitions, written out by
hand. `x-nullable` fields may be null; every field may be absent; unknown keys with any
JSON value are mixed in at every level. The "wild" variants also put any JSON value in
any known field, which must not reject the record either.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.clever import RECORD_MODELS, ROLE_NAMES, CleverRecord, Event, User

Strategy = st.SearchStrategy[Any]

GRADES = [
    "InfantToddler", "Preschool", "PreKindergarten", "TransitionalKindergarten", "Kindergarten",
    *(str(n) for n in range(1, 14)), "PostGraduate", "Ungraded", "Other", "",
]  # fmt: skip
YES_NO = ["Y", "N", ""]
SUBJECTS = [
    "english/language arts", "math", "science", "social studies", "language",
    "homeroom/advisory", "interventions/online learning", "technology and engineering",
    "PE and health", "arts and music", "other", "",
]  # fmt: skip
ACTIONS = ["created", "updated", "deleted"]

JSON_SCALARS: Strategy = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
JSON_VALUES: Strategy = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
TEXT: Strategy = st.text(max_size=40)
IDS: Strategy = st.from_regex(r"[0-9a-f]{24}", fullmatch=True) | st.text(min_size=1, max_size=30)
DATES: Strategy = st.sampled_from(["2024-08-20T00:00:00.000Z", "2024-08-20", "8/20/2024"]) | TEXT
# Records are big (a user nests up to five roles), so generation is slow by Hypothesis'
# standards; that is the point of the test, not a problem with it.
SETTINGS = settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def nullable(strategy: Strategy) -> Strategy:
    return st.none() | strategy


def choice(values: list[str]) -> Strategy:
    """An enum-like field: Clever's values, or any other text (kept, never rejected)."""
    return st.sampled_from(values) | TEXT


class Shapes:
    """Strategies for every Clever object; `wild` lets any JSON value fill any field."""

    def __init__(self, *, wild: bool) -> None:
        self.wild = wild

    def obj(self, fields: Mapping[str, Strategy], *, with_id: bool = False) -> Strategy:
        optional = {name: (s | JSON_VALUES) if self.wild else s for name, s in fields.items()}
        known = st.fixed_dictionaries({"id": IDS} if with_id else {}, optional=optional)
        reserved = set(fields) | {"id"}
        extras = st.dictionaries(
            st.text(max_size=12).filter(lambda key: key not in reserved), JSON_VALUES, max_size=3
        )
        return st.builds(lambda k, e: {**e, **k}, known, extras)

    def name(self) -> Strategy:
        return self.obj({"first": nullable(TEXT), "middle": nullable(TEXT), "last": nullable(TEXT)})

    def credentials(self) -> Strategy:
        return self.obj({"district_username": TEXT})

    def location(self) -> Strategy:
        return self.obj(
            {key: nullable(TEXT) for key in ("address", "city", "state", "zip", "lat", "lon")}
        )

    def lms_status(self) -> Strategy:
        return self.obj({"synced_in_lms": st.booleans()})

    def student(self) -> Strategy:
        return self.obj(
            {
                "created": DATES,
                "last_modified": DATES,
                "credentials": self.credentials(),
                "dob": nullable(st.sampled_from(["1/2/2010", "12/31/2009"]) | TEXT),
                "ell_status": nullable(choice(YES_NO)),
                "enrollments": st.lists(
                    self.obj({"school": IDS, "start_date": DATES, "end_date": DATES}), max_size=3
                ),
                "ext": st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=3),
                "gender": nullable(choice(["M", "F", "X", ""])),
                "grade": nullable(choice(GRADES)),
                "graduation_year": nullable(TEXT),
                "hispanic_ethnicity": nullable(choice(YES_NO)),
                "legacy_id": TEXT,
                "location": nullable(self.location()),
                "race": nullable(choice(["Caucasian", "Asian", "Unknown", ""])),
                "school": IDS,
                "schools": st.lists(IDS, max_size=3),
                "sis_id": TEXT,
                "state_id": nullable(TEXT),
                "student_number": nullable(TEXT),
                "disability": self.obj(
                    {
                        "disability_code": nullable(choice(["aut", "sld", "ohi"])),
                        "disability_status": nullable(choice(YES_NO)),
                        "disability_type": nullable(choice(["Autism", "Other"])),
                    }
                ),
                "frl_status": nullable(choice(["Free", "Reduced", "Paid", "Other", ""])),
                "gifted_status": nullable(choice(YES_NO)),
                "home_language": nullable(choice(["English", "Spanish", "Kannada"])),
                "home_language_code": nullable(choice(["eng", "spa"])),
                "iep_status": nullable(TEXT),
                "preferred_name": self.name(),
                "section_504_status": nullable(choice(YES_NO)),
            }
        )

    def teacher(self) -> Strategy:
        return self.obj(
            {
                "created": DATES,
                "last_modified": DATES,
                "credentials": nullable(self.credentials()),
                "district": IDS,
                "ext": st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=3),
                "legacy_id": TEXT,
                "name": self.name(),
                "school": IDS,
                "schools": st.lists(IDS, max_size=3),
                "sis_id": TEXT,
                "state_id": nullable(TEXT),
                "teacher_number": nullable(TEXT),
                "title": nullable(TEXT),
            }
        )

    def staff(self) -> Strategy:
        return self.obj(
            {
                "credentials": self.credentials(),
                "department": nullable(TEXT),
                "ext": st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=3),
                "legacy_id": TEXT,
                "roles": st.lists(TEXT, max_size=3),
                "schools": st.lists(IDS, max_size=3),
                "staff_id": TEXT,
                "title": nullable(TEXT),
            }
        )

    def contact(self) -> Strategy:
        relationship = self.obj(
            {
                "student": IDS,
                "relationship": nullable(choice(["Parent", "Grandparent", "Self", "Other", ""])),
                "type": nullable(choice(["Parent/Guardian", "Emergency", "Primary", ""])),
            }
        )
        return self.obj(
            {
                "legacy_id": TEXT,
                "phone": nullable(TEXT),
                "phone_type": nullable(choice(["Cell", "Home", "Work", "Other", ""])),
                "sis_id": nullable(TEXT),
                "student_relationships": st.lists(relationship, max_size=3),
            }
        )

    def user(self) -> Strategy:
        roles = self.obj(
            {
                "student": nullable(self.student()),
                "teacher": nullable(self.teacher()),
                "staff": nullable(self.staff()),
                "district_admin": nullable(self.obj({"legacy_id": TEXT, "title": nullable(TEXT)})),
                "contact": nullable(self.contact()),
            }
        )
        return self.obj(
            {
                "created": DATES,
                "district": IDS,
                "email": nullable(TEXT),
                "last_modified": DATES,
                "name": self.name(),
                "roles": roles,
                "lms_status": nullable(self.lms_status()),
            },
            with_id=True,
        )

    def section(self) -> Strategy:
        return self.obj(
            {
                "course": nullable(IDS),
                "created": DATES,
                "district": IDS,
                "ext": st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=3),
                "grade": nullable(choice(GRADES)),
                "last_modified": DATES,
                "lms_status": nullable(self.lms_status()),
                "name": TEXT,
                "period": nullable(TEXT),
                "school": IDS,
                "section_number": nullable(TEXT),
                "sis_id": TEXT,
                "students": st.lists(IDS, max_size=5),
                "subject": nullable(choice(SUBJECTS)),
                "teacher": nullable(IDS),
                "teachers": st.lists(IDS, max_size=3),
                "term_id": nullable(IDS),
            },
            with_id=True,
        )

    def school(self) -> Strategy:
        return self.obj(
            {
                "created": DATES,
                "district": IDS,
                "ext": st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=3),
                "high_grade": nullable(choice(GRADES)),
                "low_grade": nullable(choice(GRADES)),
                "last_modified": DATES,
                "location": nullable(self.location()),
                "mdr_number": nullable(TEXT),
                "name": TEXT,
                "nces_id": nullable(TEXT),
                "phone": nullable(TEXT),
                "principal": self.obj({"email": nullable(TEXT), "name": nullable(TEXT)}),
                "school_number": TEXT,
                "sis_id": TEXT,
                "state_id": nullable(TEXT),
            },
            with_id=True,
        )

    def district(self) -> Strategy:
        contact = self.obj(
            {
                "district": IDS,
                "email": nullable(TEXT),
                "id": IDS,
                "name": self.name(),
                "title": TEXT,
            }
        )
        return self.obj(
            {
                "district_contact": contact,
                "error": TEXT,
                "last_sync": nullable(DATES),
                "launch_date": DATES,
                "login_methods": st.lists(TEXT, max_size=3),
                "mdr_number": nullable(TEXT),
                "name": TEXT,
                "nces_id": nullable(TEXT),
                "pause_end": nullable(DATES),
                "pause_start": nullable(DATES),
                "portal_url": TEXT,
                "sis_type": TEXT,
                "state": nullable(choice(["running", "pending", "error", "paused", "success", ""])),
                "last_attendance_sync": nullable(DATES),
                "lms_state": nullable(choice(["success", "error", "disconnected", ""])),
                "lms_type": nullable(choice(["canvas", "schoology", "google_classroom", ""])),
            },
            with_id=True,
        )

    def term(self) -> Strategy:
        return self.obj(
            {
                "district": IDS,
                "name": nullable(TEXT),
                "start_date": nullable(DATES),
                "end_date": nullable(DATES),
            },
            with_id=True,
        )

    def course(self) -> Strategy:
        return self.obj(
            {"district": IDS, "name": nullable(TEXT), "number": nullable(TEXT)}, with_id=True
        )

    def record(self, collection: str) -> Strategy:
        builders = {
            "districts": self.district,
            "schools": self.school,
            "users": self.user,
            "sections": self.section,
            "terms": self.term,
            "courses": self.course,
        }
        return builders[collection]()

    def event(self) -> Strategy:
        def for_collection(collection: str) -> Strategy:
            previous = st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=3)
            data = self.obj({"object": self.record(collection), "previous_attributes": previous})
            return self.obj(
                {
                    "type": st.sampled_from([f"{collection}.{action}" for action in ACTIONS]),
                    "created": DATES,
                    "data": data,
                    "previous_attributes": previous,
                },
                with_id=True,
            )

        return st.sampled_from(sorted(RECORD_MODELS)).flatmap(for_collection)


VALID = Shapes(wild=False)
WILD = Shapes(wild=True)
COLLECTIONS = st.sampled_from(sorted(RECORD_MODELS))


def extras_of(model: type[CleverRecord], raw: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in raw.items() if key not in model.model_fields}


def assert_faithful(model: type[CleverRecord], raw: dict[str, Any]) -> CleverRecord:
    record = model.model_validate(raw)

    assert record.id == raw["id"]
    assert record.raw is raw
    assert orjson.loads(orjson.dumps(record.raw)) == raw
    assert record.model_extra == extras_of(model, raw)
    assert record.model_dump(mode="json", exclude_unset=True) == raw
    assert record.invalid_fields == ()
    return record


@SETTINGS
@given(data=st.data(), collection=COLLECTIONS)
def test_any_valid_record_parses_and_round_trips(data: st.DataObject, collection: str) -> None:
    raw = data.draw(VALID.record(collection))

    assert_faithful(RECORD_MODELS[collection], raw)


@SETTINGS
@given(raw=VALID.user())
def test_any_valid_user_of_any_roles_parses(raw: dict[str, Any]) -> None:
    user = assert_faithful(User, raw)

    roles = raw.get("roles") or {}
    present = [name for name in ROLE_NAMES if roles.get(name) is not None]
    assert isinstance(user, User)
    assert user.role_names == present


@SETTINGS
@given(raw=VALID.event())
def test_any_valid_event_parses_with_its_record(raw: dict[str, Any]) -> None:
    event = assert_faithful(Event, raw)

    assert isinstance(event, Event)
    obj = (raw.get("data") or {}).get("object")
    record = event.record()
    if obj is None or "type" not in raw:
        assert record is None
    else:
        assert record is not None
        assert record.id == obj["id"]
        assert record.raw == obj
    expected_previous = dict(raw.get("previous_attributes") or {})
    expected_previous.update((raw.get("data") or {}).get("previous_attributes") or {})
    assert event.previous_attributes_merged == expected_previous


@SETTINGS
@given(data=st.data(), collection=COLLECTIONS)
def test_values_of_any_type_never_reject_a_record(data: st.DataObject, collection: str) -> None:
    raw = data.draw(WILD.record(collection))
    model = RECORD_MODELS[collection]

    record = model.model_validate(raw)

    assert record.id == raw["id"]
    assert record.raw is raw
    assert record.model_extra == extras_of(model, raw)


@SETTINGS
@given(raw=WILD.event())
def test_events_with_values_of_any_type_parse(raw: dict[str, Any]) -> None:
    event = Event.model_validate(raw)

    assert event.id == raw["id"]
    assert event.raw is raw

"""Helpers for the read tests: calling the API, walking pages, and what the truth says an
object must look like.

The expected objects are built from the sandbox's records as Clever serves them, never from
app code, so a difference points at the sync or the read endpoints.
"""

from __future__ import annotations

import types
import unicodedata
from collections.abc import Mapping
from datetime import date
from typing import Any, Union, get_args, get_origin

import httpx
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel

from app.api.problems import PROBLEM_CONTENT_TYPE
from app.main import create_app
from app.settings import Settings
from sandbox.district import SandboxDistrict

Json = dict[str, Any]

# Pages a walk may take before it is taken for a loop that never ends.
MAX_PAGES = 500
LIFECYCLE_KEYS = ("active", "updated_at", "deleted_at")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def get_json(api: httpx.AsyncClient, path: str, key: str, **params: Any) -> Any:
    """The body of a 200 answer to `GET path`."""
    response = await api.get(path, params=_query(params), headers=bearer(key))
    assert response.status_code == 200, (path, params, response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


async def get_problem(
    api: httpx.AsyncClient, path: str, key: str | None, status: int, **params: Any
) -> Json:
    """The problem document of an error answer that must have `status`."""
    headers = bearer(key) if key is not None else {}
    response = await api.get(path, params=_query(params), headers=headers)
    return assert_problem(response, status)


def assert_problem(response: httpx.Response, status: int) -> Json:
    """`response` is an RFC 9457 problem with `status`; returns its body."""
    assert response.status_code == status, (response.request.url, response.text)
    assert response.headers["content-type"].startswith(PROBLEM_CONTENT_TYPE)
    body: Json = response.json()
    assert body["status"] == status
    assert body["title"]
    return body


async def walk(
    api: httpx.AsyncClient, path: str, key: str, *, limit: int, **params: Any
) -> list[Json]:
    """Every row of a list, following `next_cursor` page by page.

    Each page but the last is full, and the last one says so with a null cursor.
    """
    rows: list[Json] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        query = {**params, "limit": limit} | ({"cursor": cursor} if cursor else {})
        page = await get_json(api, path, key, **query)
        assert set(page) == {"data", "next_cursor"}
        rows += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            assert len(page["data"]) <= limit
            return rows
        assert len(page["data"]) == limit, "a page before the last one is short"
    raise AssertionError(f"{path} did not end within {MAX_PAGES} pages")


def ids(rows: list[Json]) -> list[str]:
    return [row["id"] for row in rows]


def _query(params: Mapping[str, Any]) -> dict[str, Any]:
    """httpx sends True as `true`, which is what FastAPI reads; None means "leave out"."""
    return {
        name: ("true" if value is True else "false" if value is False else value)
        for name, value in params.items()
        if value is not None
    }


def api_routes(*, pages: bool = False) -> list[APIRoute]:
    """Every route of the API (those its OpenAPI document lists), included routers
    flattened; with `pages`, the HTML pages too (the console and the API's docs), which a
    browser uses with a session rather than a key."""
    app = create_app(Settings(_env_file=None))
    found = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and (pages or route.include_in_schema):
            found.append(route)
    return found


# --- shapes -------------------------------------------------------------------------------


def assert_shape(model: type[BaseModel], data: Any, where: str = "") -> None:
    """`data` validates as `model` and has exactly its keys at every level of nesting: no
    key the model does not list, none of its required ones missing."""
    model.model_validate(data)
    _exact_keys(model, data, where or model.__name__)


def _exact_keys(model: type[BaseModel], data: Any, where: str) -> None:
    assert isinstance(data, dict), f"{where}: expected an object, got {data!r}"
    fields = model.model_fields
    unlisted = set(data) - set(fields)
    assert not unlisted, f"{where}: keys {sorted(unlisted)} are not in {model.__name__}"
    missing = {name for name, field in fields.items() if field.is_required()} - set(data)
    assert not missing, f"{where}: {model.__name__} keys {sorted(missing)} are missing"
    for name, value in data.items():
        _nested(fields[name].annotation, value, f"{where}.{name}")


def _nested(annotation: Any, value: Any, where: str) -> None:
    if value is None:
        return
    origin = get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        for option in get_args(annotation):
            if option is not type(None):
                _nested(option, value, where)
    elif origin is list:
        (item,) = get_args(annotation)
        for index, element in enumerate(value):
            _nested(item, element, f"{where}[{index}]")
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        _exact_keys(annotation, value, where)


# --- what the truth says ------------------------------------------------------------------


def clean(value: Any) -> str | None:
    """A text value as the mirror keeps it: trimmed, NFC, blank as null."""
    if value is None:
        return None
    text = unicodedata.normalize("NFC", str(value).strip())
    return text or None


def iso_date(value: Any) -> str | None:
    """The date part of Clever's date or datetime text, as the API writes dates."""
    text = clean(value)
    return date.fromisoformat(text[:10]).isoformat() if text else None


def without_lifecycle(obj: Json) -> Json:
    """The record's own fields: without lifecycle keys and the `sources` of its values."""
    return {key: value for key, value in obj.items() if key not in (*LIFECYCLE_KEYS, "sources")}


def expected_school(record: Json) -> Json:
    principal = record.get("principal") or {}
    location = record.get("location") or {}
    fields = (
        "name", "school_number", "sis_id", "state_id", "nces_id", "mdr_number",
        "low_grade", "high_grade", "phone",
    )  # fmt: skip
    return {
        "id": record["id"],
        "district_id": record["district"],
        **{name: clean(record.get(name)) for name in fields},
        "principal": {"name": clean(principal.get("name")), "email": clean(principal.get("email"))},
        "address": {
            name: clean(location.get(name)) for name in ("address", "city", "state", "zip")
        },
    }


def expected_term(record: Json) -> Json:
    return {
        "id": record["id"],
        "district_id": record["district"],
        "name": clean(record.get("name")),
        "start_date": iso_date(record.get("start_date")),
        "end_date": iso_date(record.get("end_date")),
        "lineage_id": record["id"],
    }


def expected_course(record: Json) -> Json:
    return {
        "id": record["id"],
        "district_id": record["district"],
        "name": clean(record.get("name")),
        "number": clean(record.get("number")),
        "lineage_id": record["id"],
    }


def expected_section(record: Json) -> Json:
    """The section's own fields; `display_name` is checked by `assert_section_is`."""
    fields = ("name", "period", "section_number", "sis_id", "subject", "grade")
    return {
        "id": record["id"],
        "district_id": record["district"],
        **{name: clean(record.get(name)) for name in fields},
        "school_id": record.get("school") or None,
        "course_id": record.get("course") or None,
        "term_id": record.get("term_id") or None,
        "primary_teacher_id": record.get("teacher") or None,
    }


def assert_active(obj: Json) -> None:
    assert obj["active"] is True and obj["deleted_at"] is None, obj["id"]
    assert obj["updated_at"]


def assert_section_is(section: Json, record: Json) -> None:
    """An API section (plain or in context) shows the truth's section, active."""
    own = {key: section[key] for key in expected_section(record)}
    assert own == expected_section(record)
    name = clean(record.get("name"))
    assert section["display_name"] == name if name else section["display_name"]
    assert_active(section)


USER_ROLES = ("student", "teacher", "staff", "district_admin", "contact")


def role_details(record: Json) -> Json:
    roles: Json = record.get("roles") or {}
    return next(iter(roles.values()), {})


def expected_user(record: Json) -> Json:
    """The user fields the truth decides plainly: identity, name, email, school, grade."""
    roles = record.get("roles") or {}
    details = role_details(record)
    name = record.get("name") or {}
    return {
        "id": record["id"],
        "district_id": record["district"],
        "roles": [role for role in USER_ROLES if role in roles],
        "name": {
            "first": clean(name.get("first")),
            "middle": clean(name.get("middle")),
            "last": clean(name.get("last")),
            "preferred_first": clean((details.get("preferred_name") or {}).get("first")),
        },
        "email": clean(record.get("email")),
        "primary_school_id": details.get("school") or None,
        "grade": clean(details.get("grade")) if "student" in roles else None,
    }


def assert_user_is(user: Json, record: Json) -> None:
    expected = expected_user(record)
    assert {key: user[key] for key in expected} == expected
    assert_active(user)


# --- the truth, indexed -------------------------------------------------------------------


class TruthIndex:
    """Every record a sandbox district serves, by id, with the lookups the tests need."""

    def __init__(self, district: SandboxDistrict) -> None:
        self.district_id = district.id
        self.truth = district.truth
        self.records: dict[str, Json] = {}
        self.by_collection: dict[str, list[Json]] = {}
        for collection in ("districts", "schools", "terms", "courses", "sections", "users"):
            records = list(district.iter_records(collection))
            self.by_collection[collection] = records
            self.records |= {record["id"]: record for record in records}

    def record(self, record_id: str) -> Json:
        return self.records[record_id]

    def section_ids(self, field: str, value: str) -> list[str]:
        """Sections whose `field` (`school`, `term_id`, `course`) is `value`, in id order."""
        return sorted(s["id"] for s in self.by_collection["sections"] if s.get(field) == value)

    def users_with_role(self, role: str) -> list[Json]:
        return [u for u in self.by_collection["users"] if role in (u.get("roles") or {})]

    def school_users(self, school_id: str) -> dict[str, bool]:
        """Users of a school -> whether it is their primary school: users Clever
        links to it, and the students and teachers of its sections."""
        truth = self.truth
        members = {
            user["id"]
            for user in self.by_collection["users"]
            if school_id in truth.user_school_ids(user["id"])
        }
        for section_id in self.section_ids("school", school_id):
            members.update(truth.section_student_ids(section_id))
            members.update(truth.section_teacher_ids(section_id))
        return {
            user_id: role_details(self.record(user_id)).get("school") == school_id
            for user_id in members
        }

    def term_of(self, section_id: str) -> Json | None:
        """The section's term, when it has one the district shares."""
        term_id = self.record(section_id).get("term_id")
        return self.records.get(term_id) if term_id else None


Bucket = tuple[str | None, frozenset[str], bool]


def _bucket_order(term: Json | None) -> tuple[Any, ...]:
    """Dated terms by start date (then name, id), undated terms after them, no term last."""
    if term is None:
        return (True, True, "", "", "")
    start = term["start_date"]
    return (False, start is None, start or "", term["name"] or "", term["id"])


def expected_buckets(index: TruthIndex, section_ids: list[str], today: date) -> list[Bucket]:
    """`/sections/by-term` for these sections: (term id or None, section ids, current)."""
    grouped: dict[str | None, set[str]] = {}
    terms: dict[str | None, Json | None] = {None: None}
    for section_id in section_ids:
        record = index.term_of(section_id)
        term = expected_term(record) if record else None
        term_id = term["id"] if term else None
        grouped.setdefault(term_id, set()).add(section_id)
        terms[term_id] = term
    buckets: list[Bucket] = []
    for term_id in sorted(grouped, key=lambda t: _bucket_order(terms[t])):
        term = terms[term_id]
        current = (
            term is not None
            and term["start_date"] is not None
            and term["end_date"] is not None
            and date.fromisoformat(term["start_date"])
            <= today
            <= date.fromisoformat(term["end_date"])
        )
        buckets.append((term_id, frozenset(grouped[term_id]), current))
    return buckets


def buckets_of(body: Json) -> list[Bucket]:
    """The (term id or None, section ids, current) of a `/sections/by-term` answer."""
    return [
        (
            bucket["term"]["id"] if bucket["term"] else None,
            frozenset(section["id"] for section in bucket["sections"]),
            bucket["current"],
        )
        for bucket in body["data"]
    ]

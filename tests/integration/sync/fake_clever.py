"""A small in-memory Clever for sync tests, served through respx at the HTTP boundary.

Records are plain dicts the test edits between syncs; paging follows Clever (ascending ids,
`limit`, `starting_after`, a `next` link while more may follow).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import httpx
import respx

BASE_URL = "https://clever.fake"
TOKEN = "fake-district-token-0123456789"
DISTRICT_ID = "d0000000000000000000000a"
COLLECTIONS = ("districts", "schools", "terms", "courses", "users", "sections")


class FakeClever:
    def __init__(self, router: respx.MockRouter, *, version: str = "v3.0") -> None:
        self.version = version
        self.records: dict[str, dict[str, dict[str, Any]]] = {c: {} for c in COLLECTIONS}
        self.requests = 0
        # The event feed, oldest first; None: events are not enabled for the district.
        self.events: list[dict[str, Any]] | None = None
        # Called before each answer; raise from it to inject a fault.
        self.before_answer: Callable[[httpx.Request], None] | None = None
        # Rewrites a page of a collection (its path and JSON body) before it is sent; bytes
        # are sent as the body as they are.
        self.rewrite_page: Callable[[str, dict[str, Any]], dict[str, Any] | bytes] | None = None
        self.put("districts", {"id": DISTRICT_ID, "name": "Fake Unified"})
        router.get(url__startswith=f"{BASE_URL}/{version}/").mock(side_effect=self._answer)

    def put(self, collection: str, record: dict[str, Any]) -> dict[str, Any]:
        record.setdefault("district", DISTRICT_ID)
        self.records[collection][record["id"]] = record
        return record

    def delete(self, collection: str, record_id: str) -> None:
        del self.records[collection][record_id]

    def add_event(self, event_type: str, record: dict[str, Any]) -> str:
        """Append an event (`users.updated`, ...) about `record` to the feed; its id."""
        if self.events is None:
            self.events = []
        event_id = f"e{len(self.events):023d}"
        record.setdefault("district", DISTRICT_ID)
        self.events.append({"id": event_id, "type": event_type, "data": {"object": record}})
        return event_id

    def _events(self, params: httpx.QueryParams) -> httpx.Response:
        if self.events is None:
            return httpx.Response(403, json={"message": "events are not enabled"})
        limit = int(params.get("limit", "100"))
        if params.get("ending_before") == "last":
            chosen = self.events[-limit:]
        else:
            ids = [event["id"] for event in self.events]
            after = params.get("starting_after")
            if after is not None and after not in ids:
                return httpx.Response(404, json={"message": f"unknown event {after}"})
            start = ids.index(after) + 1 if after is not None else 0
            chosen = self.events[start : start + limit]
        return httpx.Response(200, json={"data": [{"data": e} for e in chosen], "links": []})

    def _answer(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return httpx.Response(401, json={"message": "invalid token"})
        if self.before_answer is not None:
            self.before_answer(request)
        path = request.url.path.removeprefix(f"/{self.version}/").strip("/")
        params = request.url.params
        if path == "events":
            return self._events(params)
        if "/" in path:
            collection, record_id = path.split("/", 1)
            record = self.records.get(collection, {}).get(record_id)
            if record is None:
                return httpx.Response(404, json={"message": "not found"})
            return httpx.Response(200, json={"data": record})
        records = self.records.get(path)
        if records is None:
            return httpx.Response(404, json={"message": "unknown collection"})
        role = params.get("role")
        limit = int(params.get("limit", "100"))
        after = params.get("starting_after")
        ids = sorted(
            record_id
            for record_id, record in records.items()
            if role is None or role in record.get("roles", {})
        )
        if after is not None:
            ids = [record_id for record_id in ids if record_id > after]
        chosen = ids[:limit]
        links = [{"rel": "self", "uri": str(request.url.raw_path.decode())}]
        if len(ids) > limit:
            query = {k: v for k, v in params.items() if k != "starting_after"}
            query["starting_after"] = chosen[-1]
            links.append({"rel": "next", "uri": f"/{self.version}/{path}?{urlencode(query)}"})
        body = {
            "data": [{"data": records[i], "uri": f"/{self.version}/{path}/{i}"} for i in chosen],
            "links": links,
        }
        if self.rewrite_page is not None:
            rewritten = self.rewrite_page(path, body)
            if isinstance(rewritten, bytes):
                return httpx.Response(
                    200, content=rewritten, headers={"content-type": "application/json"}
                )
            body = rewritten
        return httpx.Response(200, json=body)


def user(
    user_id: str,
    role: str,
    *,
    first: str = "Ada",
    last: str = "Lovelace",
    email: str | None = None,
    school: str | None = None,
    schools: list[str] | None = None,
    last_modified: str = "2024-01-01T00:00:00.000Z",
    **role_fields: Any,
) -> dict[str, Any]:
    details: dict[str, Any] = dict(role_fields)
    if school is not None:
        details["school"] = school
    if schools is not None:
        details["schools"] = schools
    record: dict[str, Any] = {
        "id": user_id,
        "name": {"first": first, "last": last},
        "roles": {role: details},
        "last_modified": last_modified,
    }
    if email is not None:
        record["email"] = email
    return record


def section(
    section_id: str,
    *,
    school: str,
    teachers: list[str],
    students: list[str],
    name: str | None = None,
    term: str | None = None,
    course: str | None = None,
    period: str | None = None,
    last_modified: str = "2024-01-01T00:00:00.000Z",
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": section_id,
        "school": school,
        "teacher": teachers[0] if teachers else None,
        "teachers": teachers,
        "students": students,
        "last_modified": last_modified,
    }
    for key, value in (("name", name), ("term_id", term), ("course", course), ("period", period)):
        if value is not None:
            record[key] = value
    return record

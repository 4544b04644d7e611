"""Change sets as JSON: what `POST /sandbox/districts/{id}/changes` accepts.

A change set is `{"changes": [change, ...]}`, applied in order; each change is one of

    {"op": "create", "collection": "users", "role": "student", "record": {...}}
    {"op": "create_with_id", "collection": "users", "role": "student", "id": ID,
     "record": {...}}                                   an id the district did not mint
    {"op": "update", "id": ID, "set": {...}}            nested objects merge
    {"op": "delete", "id": ID}
    {"op": "restore", "id": ID}                         share a deleted record again
    {"op": "move_student", "student": ID, "school": ID}
    {"op": "remove_students", "section": ID, "students": [ID, ...]}
    {"op": "add_students", "section": ID, "students": [ID, ...]}
    {"op": "roll_over_terms"}
    {"op": "unshare", "collection": "users", "role": "student", "fraction": 0.3}
    {"op": "expire_events", "through": EVENT_ID}         omit `through` to expire all
    {"op": "set_events_enabled", "enabled": false}
    {"op": "rotate_token"}                               a new token; the old one is rejected
    {"op": "revoke_token"}                               the district revokes the app
    {"op": "pause", "start": TIME, "end": TIME}          both optional: from now, open-ended
    {"op": "resume"}

Changes before a failing one stay applied, as they would in a SIS.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sandbox.district import ChangeError, SandboxDistrict


def _text(change: Mapping[str, Any], key: str) -> str:
    value = change.get(key)
    if not isinstance(value, str) or not value:
        raise ChangeError(f"{change.get('op')}: {key!r} must be a non-empty string")
    return value


def _texts(change: Mapping[str, Any], key: str) -> list[str]:
    value = change.get(key)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ChangeError(f"{change.get('op')}: {key!r} must be a list of ids")
    return value


def _mapping(change: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = change.get(key) or {}
    if not isinstance(value, Mapping):
        raise ChangeError(f"{change.get('op')}: {key!r} must be an object")
    return value


def apply_change(district: SandboxDistrict, change: Mapping[str, Any]) -> Any:
    """Apply one change; returns what it produced (an id, a record, a count, ...)."""
    op = change.get("op")
    if op == "create":
        role = change.get("role")
        return district.create(
            _text(change, "collection"),
            _mapping(change, "record"),
            role=role if isinstance(role, str) else None,
        )
    if op == "create_with_id":
        role = change.get("role")
        return district.create_with_id(
            _text(change, "collection"),
            _text(change, "id"),
            _mapping(change, "record"),
            role=role if isinstance(role, str) else None,
        )
    if op == "update":
        return district.update(_text(change, "id"), _mapping(change, "set"))
    if op == "delete":
        district.delete(_text(change, "id"))
        return None
    if op == "restore":
        return district.restore(_text(change, "id"))
    if op == "move_student":
        return district.move_student(_text(change, "student"), _text(change, "school"))
    if op == "remove_students":
        return district.remove_students(_text(change, "section"), _texts(change, "students"))
    if op == "add_students":
        return district.add_students(_text(change, "section"), _texts(change, "students"))
    if op == "roll_over_terms":
        return district.roll_over_terms()
    if op == "unshare":
        fraction = change.get("fraction")
        if not isinstance(fraction, int | float):
            raise ChangeError("unshare: 'fraction' must be a number")
        role = change.get("role")
        return district.unshare(
            _text(change, "collection"),
            float(fraction),
            role=role if isinstance(role, str) else None,
        )
    if op == "expire_events":
        through = change.get("through")
        return district.expire_events(through if isinstance(through, str) else None)
    if op == "set_events_enabled":
        district.events_enabled = bool(change.get("enabled"))
        return district.events_enabled
    if op == "rotate_token":
        return district.rotate_token()
    if op == "revoke_token":
        district.revoke_token()
        return None
    if op == "pause":
        start, end = change.get("start"), change.get("end")
        return district.pause(
            start if isinstance(start, str) else None, end if isinstance(end, str) else None
        )
    if op == "resume":
        return district.resume()
    raise ChangeError(f"unknown op {op!r}")


def apply_changes(
    district: SandboxDistrict, changes: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """Apply a change set; returns each change's result and the ids of the events recorded."""
    first_event = district.events.total
    results = [apply_change(district, change) for change in changes]
    last_event = district.events.total
    return {
        "results": results,
        "events": {
            "count": last_event - first_event,
            "first": district.event_id(first_event) if last_event > first_event else None,
            "last": district.event_id(last_event - 1) if last_event > first_event else None,
        },
        "newest_event": district.newest_event_id(),
    }

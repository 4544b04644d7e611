"""OpenAPI links: which answer gives the id another operation takes.

A client (or a test tool following links) reads the id of a group it just made, of the first
user of a page, or of the run a sync request queued, and passes it on. The links are
declared here in one table, not on each route, so the whole map of the API reads in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Link:
    """The `status` answer of `source` gives `parameters` (runtime expressions) to each of
    `targets`."""

    source: str
    status: int
    targets: tuple[str, ...]
    parameters: dict[str, str]


def _body(pointer: str) -> str:
    return f"$response.body#/{pointer}"


FIRST = _body("data/0/id")
OWN = _body("id")

LINKS: tuple[Link, ...] = (
    # From a page to its first record.
    Link("districts-list", 200, ("districts-get", "districts-patch"), {"district_id": FIRST}),
    Link(
        "schools-list",
        200,
        ("schools-get", "schools-list-sections", "schools-list-users"),
        {"school_id": FIRST},
    ),
    Link("terms-list", 200, ("terms-get", "terms-list-sections"), {"term_id": FIRST}),
    Link("courses-list", 200, ("courses-get", "courses-list-sections"), {"course_id": FIRST}),
    Link(
        "sections-list",
        200,
        ("sections-get", "sections-list-groups", "sections-split"),
        {"section_id": FIRST},
    ),
    Link(
        "users-list",
        200,
        ("users-get", "users-list-sections", "users-list-sections-by-term", "users-list-groups"),
        {"user_id": FIRST},
    ),
    Link("sync-runs-list", 200, ("sync-runs-get",), {"run_id": FIRST}),
    Link("webhooks-list", 200, ("webhooks-get",), {"webhook_id": FIRST}),
    # From a record to what hangs off it.
    Link(
        "users-get",
        200,
        (
            "users-list-sections",
            "users-list-sections-by-term",
            "users-list-groups",
            "users-put-overrides",
            "users-delete-overrides",
        ),
        {"user_id": OWN},
    ),
    Link("users-get", 200, ("people-get",), {"person_id": _body("person_id")}),
    Link("users-get", 200, ("schools-get",), {"school_id": _body("primary_school_id")}),
    Link(
        "sections-get",
        200,
        (
            "sections-list-groups",
            "sections-split",
            "sections-put-overrides",
            "sections-delete-overrides",
        ),
        {"section_id": OWN},
    ),
    Link("sections-get", 200, ("schools-get",), {"school_id": _body("school_id")}),
    Link("sections-get", 200, ("terms-get", "terms-put-overrides"), {"term_id": _body("term_id")}),
    Link("sections-get", 200, ("courses-get",), {"course_id": _body("course_id")}),
    Link(
        "sections-get",
        200,
        ("teachers-list-students",),
        {"user_id": _body("primary_teacher_id")},
    ),
    Link("sync-runs-get", 200, ("districts-get",), {"district_id": _body("district_id")}),
    Link("people-get", 200, ("people-split",), {"person_id": OWN}),
    # From what a write made to the operations on it.
    Link(
        "groups-create",
        201,
        ("groups-get", "groups-rename", "groups-delete", "groups-add-members", "groups-history"),
        {"group_id": OWN},
    ),
    Link(
        "groups-get",
        200,
        ("groups-remove-member",),
        {"group_id": OWN, "user_id": _body("members/0/user_id")},
    ),
    Link("sections-split", 201, ("groups-get", "groups-history"), {"group_id": FIRST}),
    Link("people-merge", 200, ("people-get", "people-split"), {"person_id": OWN}),
    *(
        Link(
            "sync-create",
            status,
            ("sync-runs-get", "sync-runs-approve", "sync-runs-reject"),
            {"run_id": OWN},
        )
        for status in (200, 202)
    ),
    Link(
        "webhooks-create",
        201,
        ("webhooks-get", "webhooks-delete", "webhooks-resume", "webhooks-list-deliveries"),
        {"webhook_id": OWN},
    ),
    Link(
        "webhooks-list-deliveries",
        200,
        ("webhooks-retry-delivery",),
        {"webhook_id": "$request.path.webhook_id", "delivery_id": FIRST},
    ),
)


def document_links(document: dict[str, Any]) -> dict[str, Any]:
    """Add `LINKS` to the answers of the OpenAPI `document`; a name it does not hold is a
    mistake in the table, so it raises."""
    operations = {
        operation["operationId"]: operation
        for item in document["paths"].values()
        for operation in item.values()
        if isinstance(operation, dict) and "operationId" in operation
    }
    for link in LINKS:
        if missing := [name for name in (link.source, *link.targets) if name not in operations]:
            raise LookupError(f"no operation {', '.join(missing)} for the link from {link.source}")
        answer = operations[link.source]["responses"][str(link.status)]
        declared = answer.setdefault("links", {})
        for target in link.targets:
            entry = declared.setdefault(target, {"operationId": target, "parameters": {}})
            entry["parameters"].update(link.parameters)
    return document

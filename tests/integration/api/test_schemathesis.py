"""Schemathesis over every operation of the committed document, with all default checks.

Requests go over real HTTP to the app under uvicorn, against the districts the package
mirrored. Generated ids rarely name a record, so a second test sends each operation that
takes an id the ids of real records, to validate answers that carry data.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.checks import positive_data_acceptance

from app.api.keys import Scope, create_key
from app.main import create_app
from app.settings import Settings
from tests.integration.api.conftest import Keys, Mirrored, SWebhook
from tests.support.server import serve_in_thread

DOCUMENT = Path(__file__).resolve().parents[3] / "openapi" / "openapi.json"
UNKNOWN_DISTRICT = "schemathesis-nowhere"

# Loaded at import, so pytest shows one test per operation; the document is the committed
# one, which `roster openapi --check` holds equal to the app's.
schema = schemathesis.openapi.from_path(DOCUMENT)
# The test sends the key itself (a different one for writes); generated Authorization
# headers, or negative cases that drop it, would be overwritten by it and misjudged. That
# the key is enforced is still checked, by `ignored_auth` probing without it.
schema.config.generation.update(with_security_parameters=False)


@pytest.fixture(scope="module")
def base_url(api_settings: Settings, mirrored: Mirrored) -> Iterator[str]:
    with serve_in_thread(create_app(api_settings)) as url:
        yield url


@pytest.fixture(scope="module")
async def nowhere_key(api_pool: asyncpg.Pool) -> str:
    """Every scope, but only for a district that does not exist."""
    async with api_pool.acquire() as connection:
        created = await create_key(
            connection,
            name="schemathesis writes",
            scopes=[Scope.ADMIN],
            district_ids=[UNKNOWN_DISTRICT],
        )
    return created.secret


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_generated_requests_keep_the_contract(
    case: Case[Any], base_url: str, keys: Keys, nowhere_key: str
) -> None:
    # Writes go out with a key limited to a district that does not exist: a request that
    # passes validation is then refused as 404 (an accepted answer for valid data), so no
    # generated body ever starts a sync or changes a run.
    key = keys.admin if case.method.upper() == "GET" else nowhere_key
    # Every cursor of its documented shape is a position, so generated ones are accepted.
    # An `as_of` of the documented shape (a date-time) may be in the future or before the
    # history kept, which JSON Schema cannot express: it is rightly refused (422).
    query = case.query or {}
    excluded = [positive_data_acceptance] if query.get("as_of") else []
    case.call_and_validate(base_url=base_url, headers=bearer(key), excluded_checks=excluded)


@pytest.fixture(scope="module")
async def record_ids(
    mirrored: Mirrored,
    api_pool: asyncpg.Pool,
    s_group: str,
    s_person: str,
    s_webhook: SWebhook,
) -> dict[str, list[str]]:
    """Ids of real records, by the name of the path parameter that takes them."""
    truth = mirrored.s.truth
    edge = truth.edge_cases
    runs = await api_pool.fetch("SELECT id::text FROM sync_runs ORDER BY created_at LIMIT 2")
    assert runs, "the package's syncs recorded their runs"
    return {
        "students": [edge["student_in_three_schools"], edge["student_sensitive_fields"]],
        "teachers": [
            truth.section_teacher_ids(edge["section_ten_teachers"])[1],  # a co-teacher
            edge["teacher_no_sections"],
        ],
        "contacts": [edge["contact_several_students"]],
        "district_id": [mirrored.s.id, mirrored.other.id],
        "school_id": truth.ids("schools")[:2],
        "term_id": truth.ids("terms")[:2],
        "course_id": truth.ids("courses")[:2],
        "section_id": [edge["section_no_term"], edge["section_ten_teachers"]],
        "run_id": [run["id"] for run in runs],
        "group_id": [s_group],
        "person_id": [s_person],
        "webhook_id": [s_webhook.id],
        "delivery_id": [s_webhook.delivery_id],
    }


def ids_for(record_ids: dict[str, list[str]], path: str, name: str) -> list[str]:
    """The ids the operation at `path` should find, for its parameter `name`."""
    if name != "user_id":
        return record_ids[name]
    if path.startswith("/v1/students/"):
        return record_ids["students"]
    if path.startswith("/v1/teachers/"):
        return record_ids["teachers"]
    return record_ids["students"] + record_ids["teachers"] + record_ids["contacts"]


# Reads that take an id in their path.
READS_BY_ID = sorted(
    path
    for path, item in json.loads(DOCUMENT.read_text())["paths"].items()
    if "{" in path and "get" in item
)


@pytest.mark.parametrize("path", READS_BY_ID)
def test_real_records_keep_the_contract(
    path: str, base_url: str, keys: Keys, record_ids: dict[str, list[str]]
) -> None:
    operation = schema[path]["GET"]
    names = [parameter.name for parameter in operation.path_parameters]
    assert len(names) == 1, "one id per path is all these reads take"
    for record_id in ids_for(record_ids, operation.path, names[0]):
        case = operation.Case(path_parameters={names[0]: record_id})
        response = case.call_and_validate(base_url=base_url, headers=bearer(keys.admin))
        assert response.status_code == 200, (record_id, response.text)

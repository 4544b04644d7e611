"""The committed OpenAPI document: its conventions, and a client generated from it.

The client is generated from `openapi/openapi.json` as committed, not from the running app,
so a document that drifted from the app or lost something a client relies on (an operation,
a field, a media type) fails here the way it would fail a consumer.
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from app.main import create_app
from app.settings import Settings
from tests.integration.api.conftest import Keys, Mirrored
from tests.support.server import serve_in_thread

DOCUMENT = Path(__file__).resolve().parents[3] / "openapi" / "openapi.json"
PACKAGE = "roster_client"
OPERATION_ID = re.compile(r"^[a-z]+(-[a-z]+)*$")
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
PROBLEM_REF = "#/components/schemas/Problem"
UNKNOWN_USER = "0" * 24


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method.upper(), path, operation


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DOCUMENT.read_text())
    return loaded


def test_operation_ids_are_readable_and_unique(document: dict[str, Any]) -> None:
    ids = [operation.get("operationId", "") for _, _, operation in operations(document)]
    unreadable = [operation_id for operation_id in ids if not OPERATION_ID.match(operation_id)]
    assert unreadable == []
    assert len(ids) == len(set(ids))
    assert "users-list-sections-by-term" in ids


def test_every_v1_operation_needs_the_bearer_key(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    bearer = [
        name
        for name, scheme in schemes.items()
        if (scheme["type"], scheme.get("scheme", "").lower()) == ("http", "bearer")
    ]
    assert len(bearer) == 1
    v1 = [(method, path, op) for method, path, op in operations(document) if path[:4] == "/v1/"]
    assert v1
    unprotected = [
        f"{method} {path}"
        for method, path, operation in v1
        if not any(bearer[0] in requirement for requirement in operation.get("security", []))
    ]
    assert unprotected == []


def test_every_error_is_documented_as_a_problem(document: dict[str, Any]) -> None:
    missing: list[str] = []
    for method, path, operation in operations(document):
        responses = operation["responses"]
        required = {"401", "403", "422"} if path.startswith("/v1/") else set()
        errors = required | {status for status in responses if status[0] in "45"}
        for status in sorted(errors):
            content = responses.get(status, {}).get("content", {})
            if content != {"application/problem+json": {"schema": {"$ref": PROBLEM_REF}}}:
                missing.append(f"{method} {path} {status}")
    assert missing == []
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_the_document_says_what_the_api_is_and_where(document: dict[str, Any]) -> None:
    info = document["info"]
    assert "Clever" in info["description"] and "problem+json" in info["description"]
    assert document["servers"] == [{"url": "/", "description": "This server"}]


def test_every_tag_is_described_and_used(document: dict[str, Any]) -> None:
    described = {tag["name"]: tag.get("description", "") for tag in document["tags"]}
    used = {tag for _, _, operation in operations(document) for tag in operation["tags"]}
    assert set(described) == used
    assert all(described.values())


def test_every_operation_has_a_summary_of_its_own(document: dict[str, Any]) -> None:
    # Without one, FastAPI makes the operation id a summary: `districts-list`, `Districts-List`.
    missing = [
        f"{method} {path}"
        for method, path, operation in operations(document)
        if operation.get("summary", "").lower() in ("", operation["operationId"])
    ]
    assert missing == []


def test_the_docs_pages_are_not_operations(document: dict[str, Any]) -> None:
    assert not [
        path for path in document["paths"] if path.startswith(("/docs", "/redoc", "/static"))
    ]


@pytest.fixture(scope="module")
def client_package(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """A client generated from the committed document, imported as `roster_client`."""
    root = tmp_path_factory.mktemp("openapi-client")
    config = root / "config.json"
    # No post hooks: formatting the generated code is slow and proves nothing here.
    config.write_text(json.dumps({"package_name_override": PACKAGE, "post_hooks": []}))
    output = root / "client"
    generator = Path(sys.executable).parent / "openapi-python-client"
    generated = subprocess.run(
        [
            str(generator),
            "generate",
            "--path",
            str(DOCUMENT),
            "--output-path",
            str(output),
            "--config",
            str(config),
            "--fail-on-warning",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    sys.path.insert(0, str(output))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(output))
        for name in [name for name in sys.modules if name.partition(".")[0] == PACKAGE]:
            del sys.modules[name]


def endpoint(package: ModuleType, operation_id: str) -> Any:
    """The generated module of one operation, whichever tag it is filed under."""
    name = operation_id.replace("-", "_")
    api = Path(package.__file__ or "").parent / "api"
    found = sorted(api.glob(f"*/{name}.py"))
    assert len(found) == 1, f"the generated client has no single module for {operation_id}"
    return importlib.import_module(f"{PACKAGE}.api.{found[0].parent.name}.{name}")


@pytest.fixture(scope="module")
def base_url(api_settings: Settings, mirrored: Mirrored) -> Iterator[str]:
    with serve_in_thread(create_app(api_settings)) as url:
        yield url


def client_for(package: ModuleType, base_url: str, key: str) -> Any:
    return package.AuthenticatedClient(
        base_url=base_url, token=key, raise_on_unexpected_status=True
    )


async def test_lists_districts_the_key_may_see(
    client_package: ModuleType, base_url: str, keys: Keys, mirrored: Mirrored
) -> None:
    districts_list = endpoint(client_package, "districts-list")
    models = client_package.models

    async with client_for(client_package, base_url, keys.read) as client:
        everything = await districts_list.asyncio_detailed(client=client)
    assert everything.status_code == 200
    assert isinstance(everything.parsed, models.PageDistrict)
    expected = {mirrored.s.id: mirrored.s.name, mirrored.other.id: mirrored.other.name}
    assert {district.id: district.name for district in everything.parsed.data} == expected
    assert [district.id for district in everything.parsed.data] == sorted(expected)
    assert everything.parsed.next_cursor is None
    assert all(district.active for district in everything.parsed.data)

    async with client_for(client_package, base_url, keys.read_s) as client:
        limited = await districts_list.asyncio(client=client)
    assert [district.id for district in limited.data] == [mirrored.s.id]


async def test_a_students_sections_by_term(
    client_package: ModuleType, base_url: str, keys: Keys, mirrored: Mirrored
) -> None:
    truth = mirrored.s.truth
    no_term_section = truth.edge_cases["section_no_term"]
    student = truth.section_student_ids(no_term_section)[0]
    by_term = endpoint(client_package, "users-list-sections-by-term")

    async with client_for(client_package, base_url, keys.read) as client:
        response = await by_term.asyncio_detailed(student, client=client)
    assert response.status_code == 200
    buckets = response.parsed.data
    sections = [section for bucket in buckets for section in bucket.sections]
    assert sorted(section.id for section in sections) == truth.student_section_ids(student)
    assert {section.role for section in sections} == {"student"}
    assert buckets[-1].term is None
    assert no_term_section in {section.id for section in buckets[-1].sections}
    for bucket in buckets[:-1]:
        assert bucket.term is not None
        assert {section.term_id for section in bucket.sections} == {bucket.term.id}
        assert {section.term.id for section in bucket.sections} == {bucket.term.id}
    dated = [bucket.term.start_date for bucket in buckets[:-1] if bucket.term.start_date]
    assert dated == sorted(dated)


async def test_a_teachers_students_page_by_page(
    client_package: ModuleType, base_url: str, keys: Keys, mirrored: Mirrored
) -> None:
    truth = mirrored.s.truth
    teacher = next(
        teacher_id
        for teacher_id in truth.ids("users", "teacher")
        if len(truth.teacher_student_ids(teacher_id)) >= 25
    )
    expected = truth.teacher_student_ids(teacher)
    taught = set(truth.teacher_section_ids(teacher))
    students_of = endpoint(client_package, "teachers-list-students")
    limit = len(expected) // 3

    seen: list[str] = []
    pages = 0
    cursor: str | None = None
    async with client_for(client_package, base_url, keys.read) as client:
        while True:
            page = await students_of.asyncio(teacher, client=client, limit=limit, cursor=cursor)
            pages += 1
            for student in page.data:
                seen.append(student.id)
                assert "student" in student.roles
                assert set(student.section_ids) <= taught
                assert all(student.id in truth.section_student_ids(s) for s in student.section_ids)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    assert seen == expected
    assert pages == -(-len(expected) // limit)


async def test_unknown_and_unseen_users_are_problems(
    client_package: ModuleType, base_url: str, keys: Keys, mirrored: Mirrored
) -> None:
    users_get = endpoint(client_package, "users-get")
    problem = client_package.models.Problem
    s_student = mirrored.s.truth.ids("users", "student")[0]

    async with client_for(client_package, base_url, keys.read) as client:
        unknown = await users_get.asyncio_detailed(UNKNOWN_USER, client=client)
        found = await users_get.asyncio_detailed(s_student, client=client)
    async with client_for(client_package, base_url, keys.read_other) as client:
        unseen = await users_get.asyncio_detailed(s_student, client=client)
    async with client_for(client_package, base_url, "rk_not-a-key") as client:
        unauthorized = await users_get.asyncio_detailed(s_student, client=client)

    assert found.status_code == 200
    assert found.parsed.id == s_student
    assert found.parsed.district_id == mirrored.s.id
    for response, user_id in ((unknown, UNKNOWN_USER), (unseen, s_student)):
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        assert isinstance(response.parsed, problem)
        assert (response.parsed.status, response.parsed.title) == (404, "Not found")
        assert response.parsed.instance == f"/v1/users/{user_id}"
    assert unauthorized.status_code == 401
    assert isinstance(unauthorized.parsed, problem)
    assert unauthorized.parsed.status == 401

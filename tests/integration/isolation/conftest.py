"""Fixtures: two sandbox districts whose data names each other's records.

Districts A and B are synced clean once. Then each turns hostile, as a misconfigured or
malicious SIS might: a section lists the other district's students and a teacher of it,
another section points at its school, term, course and teacher, a student lists its school,
a contact lists its student, and one record is served under an id the other district owns.
Both are synced again; B first, so A's sync meets B's copy of its id (and the other way
round for B). The mirror is emptied when the package ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import asyncpg
import httpx
import pytest

from app.api.keys import Scope, create_key
from app.settings import Settings
from app.sync.full import SyncOutcome
from app.sync.service import SyncDeps
from sandbox.district import SandboxDistrict
from sandbox.server import RunningSandbox, SandboxConfig, run_in_thread
from tests.integration.sync_sandbox.support import (
    Snapshot,
    sandbox_settings,
    snapshot_rows,
    sync_deps,
    sync_ok,
)
from tests.support.app import app_client
from tests.support.mirror import emptied_pool

# What each district calls the record it serves under the other's id.
HIJACK_NAME = "Hijacked-Copy"


@dataclass(frozen=True)
class Hostility:
    """What one district's hostile data names of the other district (`victim`)."""

    district: SandboxDistrict
    victim: SandboxDistrict
    # Own section listing the victim's students and a teacher of the victim.
    mixed_section: str
    # Own section pointing at the victim's school, term, course and teacher.
    pointing_section: str
    # Own student listing a school of the victim; own contact listing a student of it.
    student: str
    contact: str
    victim_students: tuple[str, ...]
    victim_teacher: str
    victim_school: str
    # The victim's record this district serves a copy of, and its collection.
    hijacked_id: str
    hijacked_collection: str


@dataclass(frozen=True)
class Pair:
    """Both districts after the hostile re-sync."""

    a: Hostility
    b: Hostility
    outcomes: dict[str, SyncOutcome]
    deps: dict[str, SyncDeps]
    # Each district's live rows right before and right after the other's hostile sync.
    untouched: dict[str, tuple[Snapshot, Snapshot]]


@dataclass(frozen=True)
class IsolationKeys:
    a_only: str  # every scope (admin included), district A only
    b_only: str  # the same, district B only
    every: str  # admin, every district


@pytest.fixture(scope="package")
async def isolation_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    async with emptied_pool(database_url) as pool:
        yield pool


@pytest.fixture(scope="package")
def pair_sandbox() -> Iterator[RunningSandbox]:
    with run_in_thread(SandboxConfig.build(size="tiny", seed=71, districts=2)) as running:
        yield running


def _ids(district: SandboxDistrict, collection: str, role: str | None = None) -> list[str]:
    return [record["id"] for record in district.iter_records(collection, role)]


def turn_hostile(district: SandboxDistrict, victim: SandboxDistrict) -> Hostility:
    """Change `district` so that its data names `victim`'s records (see the module doc)."""
    sections = _ids(district, "sections")
    victim_students = tuple(_ids(victim, "users", "student")[:3])
    victim_teacher = _ids(victim, "users", "teacher")[0]
    victim_section = victim.get(_ids(victim, "sections")[0])
    assert victim_section is not None
    victim_school = victim_section[1]["school"]
    mixed, pointing = sections[0], sections[1]

    _, mixed_record = district.get(mixed) or ("", {})
    district.update(mixed, {"teachers": [*mixed_record["teachers"], victim_teacher]})
    district.add_students(mixed, list(victim_students))
    district.update(
        pointing,
        {
            "school": victim_school,
            "term_id": victim_section[1]["term_id"],
            "course": victim_section[1]["course"],
            "teacher": victim_teacher,
            "teachers": [victim_teacher],
        },
    )
    student = _ids(district, "users", "student")[0]
    _, student_record = district.get(student) or ("", {})
    own_schools = student_record["roles"]["student"]["schools"]
    district.update(student, {"roles": {"student": {"schools": [*own_schools, victim_school]}}})
    contact = _ids(district, "users", "contact")[0]
    district.update(
        contact,
        {
            "roles": {
                "contact": {
                    "student_relationships": [
                        {"student": victim_students[0], "relationship": "Parent", "type": "Primary"}
                    ]
                }
            }
        },
    )
    # A copies one of the victim's students, B one of its sections.
    if district.id < victim.id:
        collection, role, hijacked = "users", "student", victim_students[1]
        copy: dict[str, object] = {"name": {"first": HIJACK_NAME, "last": HIJACK_NAME}}
    else:
        collection, role, hijacked = "sections", None, _ids(victim, "sections")[1]
        copy = {"name": HIJACK_NAME}
    district.create_with_id(collection, hijacked, copy, role=role)
    return Hostility(
        district=district,
        victim=victim,
        mixed_section=mixed,
        pointing_section=pointing,
        student=student,
        contact=contact,
        victim_students=victim_students,
        victim_teacher=victim_teacher,
        victim_school=victim_school,
        hijacked_id=hijacked,
        hijacked_collection=collection,
    )


@pytest.fixture(scope="package")
async def pair(
    pair_sandbox: RunningSandbox, settings: Settings, isolation_pool: asyncpg.Pool
) -> Pair:
    a, b = sorted(pair_sandbox.districts, key=lambda district: district.id)
    deps = {
        district.id: sync_deps(
            sandbox_settings(
                settings, sandbox=pair_sandbox, district=district, sensitive_fields_enabled=True
            ),
            pool=isolation_pool,
        )
        for district in (a, b)
    }
    for district in (a, b):
        await sync_ok(deps[district.id], district=district)
    hostile_a, hostile_b = turn_hostile(a, b), turn_hostile(b, a)
    outcomes, untouched = {}, {}
    for district, other in ((b, a), (a, b)):
        before = await snapshot_rows(isolation_pool, district_id=other.id)
        outcomes[district.id] = await sync_ok(deps[district.id], district=district)
        untouched[other.id] = (before, await snapshot_rows(isolation_pool, district_id=other.id))
    return Pair(hostile_a, hostile_b, outcomes, deps, untouched)


@pytest.fixture(scope="package")
async def isolation_keys(isolation_pool: asyncpg.Pool, pair: Pair) -> IsolationKeys:
    async def make(scopes: list[Scope], districts: list[str] | None) -> str:
        async with isolation_pool.acquire() as connection:
            created = await create_key(
                connection, name="isolation", scopes=scopes, district_ids=districts
            )
        return created.secret

    # Every scope, `admin` included: the district limit alone must keep B's data from A.
    limited = [Scope.READ, Scope.WRITE, Scope.SENSITIVE, Scope.SYNC_WRITE, Scope.ADMIN]
    return IsolationKeys(
        a_only=await make(limited, [pair.a.district.id]),
        b_only=await make(limited, [pair.b.district.id]),
        every=await make([Scope.ADMIN], None),
    )


@pytest.fixture(scope="package")
async def isolation_api(
    settings: Settings, isolation_keys: IsolationKeys
) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(settings.model_copy(update={"api_key_cache_seconds": 0.0})) as client:
        yield client

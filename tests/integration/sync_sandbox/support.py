"""Helpers for syncing sandbox districts and comparing the mirror with the generator's truth.

The truth side is computed from `SandboxDistrict.truth` only (never from app code), so a
mismatch points at the sync. Links to records the district does not share are absent on both
sides: the mirror must skip them, and the truth leaves them out.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
from pydantic import SecretStr

from app.mirror.merge import LIVE_TABLES
from app.settings import CleverApiVersion, Settings
from app.sync.full import SyncOutcome
from app.sync.runs import RunStatus, RunTrigger
from app.sync.service import SyncDeps, sync_district
from app.sync.tokens import DistrictTokens
from sandbox.district import SandboxDistrict
from sandbox.server import RunningSandbox

T = TypeVar("T")

ENTITY_COLLECTIONS = ("schools", "terms", "courses", "sections")
ROLES = {
    "students": "student",
    "teachers": "teacher",
    "staff": "staff",
    "district_admins": "district_admin",
    "contacts": "contact",
}
# Roles whose `school` / `schools` become user-school links.
SCHOOL_ROLES = ("student", "teacher", "staff")


# --- set-up and tear-down ---------------------------------------------------------------


def sandbox_settings(
    settings: Settings,
    *,
    sandbox: RunningSandbox,
    district: SandboxDistrict,
    sensitive_fields_enabled: bool = False,
    page_size: int = 10_000,
) -> Settings:
    """`settings` pointed at `district` of a sandbox served over loopback HTTP (v3.1)."""
    return settings.model_copy(
        update={
            "clever_api_base_url": sandbox.base_url,
            "clever_api_version": CleverApiVersion.V3_1,
            "clever_district_tokens": [SecretStr(district.token)],
            "clever_page_size": page_size,
            "sensitive_fields_enabled": sensitive_fields_enabled,
        }
    )


def sync_deps(settings: Settings, *, pool: asyncpg.Pool) -> SyncDeps:
    return SyncDeps(settings=settings, pool=pool, tokens=DistrictTokens(settings))


@dataclass(frozen=True)
class SyncedDistrict:
    """A sandbox district after its first sync."""

    sandbox: RunningSandbox
    district: SandboxDistrict
    deps: SyncDeps
    outcome: SyncOutcome


async def sync_once(deps: SyncDeps, *, district: SandboxDistrict) -> SyncOutcome:
    """One full sync of the district in this process."""
    return await sync_district(deps, district.id, trigger=RunTrigger.CLI)


async def sync_ok(deps: SyncDeps, *, district: SandboxDistrict) -> SyncOutcome:
    """One full sync that must succeed."""
    outcome = await sync_once(deps, district=district)
    assert outcome.status is RunStatus.SUCCEEDED, (outcome.status, outcome.error)
    return outcome


async def wait_for(
    probe: Callable[[], Awaitable[T | None]],
    *,
    what: str,
    seconds: float = 60.0,
    interval: float = 0.1,
    diagnostics: Callable[[], str] | None = None,
) -> T:
    """Poll `probe` until it returns something other than None (or fail after `seconds`)."""
    deadline = time.monotonic() + seconds
    while True:
        result = await probe()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            detail = f"\n{diagnostics()}" if diagnostics is not None else ""
            raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}{detail}")
        await asyncio.sleep(interval)


# --- reading the mirror -----------------------------------------------------------------


Snapshot = dict[str, list[tuple[str, str]]]


async def snapshot_rows(pool: asyncpg.Pool, *, district_id: str) -> Snapshot:
    """Every live row of the district with its `xmin`: equal snapshots mean nothing was
    written, not even a row rewritten with the same values."""
    snapshot: Snapshot = {}
    for table in LIVE_TABLES:
        column = "id" if table == "districts" else "district_id"
        rows = await pool.fetch(
            f"SELECT xmin::text AS version, t::text AS row FROM {table} t"
            f" WHERE t.{column} = $1 ORDER BY 2",
            district_id,
        )
        snapshot[table] = [(row["version"], row["row"]) for row in rows]
    return snapshot


async def staging_tables(pool: asyncpg.Pool, *, run_id: uuid.UUID | None = None) -> list[str]:
    """Staging tables (of one run, or of all runs)."""
    prefix = f"r{run_id.hex}_" if run_id is not None else ""
    rows = await pool.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'roster_staging'"
        " AND starts_with(tablename, $1) ORDER BY 1",
        prefix,
    )
    return [row["tablename"] for row in rows]


async def open_warnings(pool: asyncpg.Pool, *, district_id: str) -> dict[tuple[str, str], set[str]]:
    """Unresolved warning codes by (entity, record id)."""
    rows = await pool.fetch(
        "SELECT entity, record_id, code FROM data_warnings"
        " WHERE district_id = $1 AND resolved_at IS NULL AND record_id IS NOT NULL",
        district_id,
    )
    found: dict[tuple[str, str], set[str]] = {}
    for row in rows:
        found.setdefault((row["entity"], row["record_id"]), set()).add(row["code"])
    return found


async def open_enrollments(pool: asyncpg.Pool, *, district_id: str) -> dict[tuple[str, str], Any]:
    """(section, student) -> the open enrollment row."""
    rows = await pool.fetch(
        "SELECT * FROM enrollments WHERE district_id = $1 AND ended_at IS NULL", district_id
    )
    return {(row["section_id"], row["student_id"]): row for row in rows}


async def run_row(pool: asyncpg.Pool, run_id: uuid.UUID) -> asyncpg.Record:
    row: asyncpg.Record | None = await pool.fetchrow(
        "SELECT * FROM sync_runs WHERE id = $1", run_id
    )
    assert row is not None, f"no sync run {run_id}"
    return row


# --- mirror versus truth ----------------------------------------------------------------


@dataclass(frozen=True)
class Roster:
    """What a district's roster is, in a form both the mirror and the truth can produce."""

    counts: dict[str, int]
    ids: dict[str, frozenset[str]]
    section_students: dict[str, frozenset[str]]
    # Primary teacher first, co-teachers in order.
    section_teachers: dict[str, tuple[str, ...]]
    student_sections: dict[str, frozenset[str]]
    teacher_students: dict[str, frozenset[str]]
    contact_students: dict[str, frozenset[str]]
    # (school, is primary) links of students, teachers and staff.
    user_schools: dict[str, frozenset[tuple[str, bool]]]


def _non_empty(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in mapping.items() if value}


def truth_roster(district: SandboxDistrict) -> Roster:
    """The roster the generator says the district has now."""
    truth = district.truth
    counts = truth.counts()
    ids = {collection: frozenset(truth.ids(collection)) for collection in ENTITY_COLLECTIONS}
    ids["users"] = frozenset(truth.ids("users"))
    for plural, role in ROLES.items():
        ids[plural] = frozenset(truth.ids("users", role))
    sections = sorted(ids["sections"])
    section_students = {s: frozenset(truth.section_student_ids(s)) for s in sections}
    counts["enrollments"] = sum(len(students) for students in section_students.values())
    section_teachers = {s: tuple(truth.section_teacher_ids(s)) for s in sections}
    counts["section_teachers"] = sum(len(teachers) for teachers in section_teachers.values())
    user_schools: dict[str, frozenset[tuple[str, bool]]] = {}
    for role in SCHOOL_ROLES:
        for user_id in truth.ids("users", role):
            record = truth.record(user_id)
            assert record is not None
            primary = record["roles"][role].get("school")
            schools = truth.user_school_ids(user_id)
            user_schools[user_id] = frozenset((school, school == primary) for school in schools)
    return Roster(
        counts=counts,
        ids=ids,
        section_students=_non_empty(section_students),
        section_teachers=_non_empty(section_teachers),
        student_sections=_non_empty(
            {s: frozenset(truth.student_section_ids(s)) for s in ids["students"]}
        ),
        teacher_students=_non_empty(
            {t: frozenset(truth.teacher_student_ids(t)) for t in ids["teachers"]}
        ),
        contact_students=_non_empty(
            {c: frozenset(truth.contact_student_ids(c)) for c in ids["contacts"]}
        ),
        user_schools=_non_empty(user_schools),
    )


async def _grouped(pool: asyncpg.Pool, sql: str, district_id: str) -> dict[str, list[Any]]:
    """`sql` selects (key, array) rows; returns key -> list."""
    return {row[0]: list(row[1]) for row in await pool.fetch(sql, district_id)}


async def mirror_roster(pool: asyncpg.Pool, *, district_id: str) -> Roster:
    """The roster the mirror holds for the district (active rows and links only)."""
    counts: dict[str, int] = {
        "districts": await pool.fetchval(
            "SELECT count(*) FROM districts WHERE id = $1 AND deleted_at IS NULL", district_id
        )
    }
    ids: dict[str, frozenset[str]] = {}
    for collection in (*ENTITY_COLLECTIONS, "users"):
        rows = await pool.fetch(
            f"SELECT id FROM {collection} WHERE district_id = $1 AND deleted_at IS NULL",
            district_id,
        )
        ids[collection] = frozenset(row["id"] for row in rows)
    for plural, role in ROLES.items():
        rows = await pool.fetch(
            "SELECT id FROM users WHERE district_id = $1 AND deleted_at IS NULL"
            " AND $2 = ANY(roles)",
            district_id,
            role,
        )
        ids[plural] = frozenset(row["id"] for row in rows)
    counts |= {name: len(found) for name, found in ids.items()}
    counts["enrollments"] = await pool.fetchval(
        "SELECT count(*) FROM enrollments WHERE district_id = $1 AND ended_at IS NULL",
        district_id,
    )
    counts["section_teachers"] = await pool.fetchval(
        "SELECT count(*) FROM section_teachers WHERE district_id = $1 AND deleted_at IS NULL",
        district_id,
    )
    section_students = await _grouped(
        pool,
        "SELECT section_id, array_agg(student_id) FROM enrollments"
        " WHERE district_id = $1 AND ended_at IS NULL GROUP BY 1",
        district_id,
    )
    section_teachers = await _grouped(
        pool,
        "SELECT section_id, array_agg(teacher_id ORDER BY position) FROM section_teachers"
        " WHERE district_id = $1 AND deleted_at IS NULL GROUP BY 1",
        district_id,
    )
    student_sections = await _grouped(
        pool,
        "SELECT student_id, array_agg(section_id) FROM enrollments"
        " WHERE district_id = $1 AND ended_at IS NULL GROUP BY 1",
        district_id,
    )
    teacher_students = await _grouped(
        pool,
        "SELECT t.teacher_id, array_agg(DISTINCT e.student_id) FROM section_teachers t"
        " JOIN enrollments e ON e.section_id = t.section_id AND e.ended_at IS NULL"
        " WHERE t.district_id = $1 AND t.deleted_at IS NULL GROUP BY 1",
        district_id,
    )
    contact_students = await _grouped(
        pool,
        "SELECT contact_id, array_agg(student_id) FROM contact_relationships"
        " WHERE district_id = $1 AND deleted_at IS NULL GROUP BY 1",
        district_id,
    )
    user_schools = await _grouped(
        pool,
        "SELECT user_id, array_agg(ROW(school_id, is_primary)) FROM user_schools"
        " WHERE district_id = $1 AND deleted_at IS NULL GROUP BY 1",
        district_id,
    )
    return Roster(
        counts=counts,
        ids=ids,
        section_students={k: frozenset(v) for k, v in section_students.items()},
        section_teachers={k: tuple(v) for k, v in section_teachers.items()},
        student_sections={k: frozenset(v) for k, v in student_sections.items()},
        teacher_students={k: frozenset(v) for k, v in teacher_students.items()},
        contact_students={k: frozenset(v) for k, v in contact_students.items()},
        user_schools={k: frozenset((s, p) for s, p in v) for k, v in user_schools.items()},
    )


def _differences(mirror: Mapping[str, Any], truth: Mapping[str, Any], limit: int = 5) -> str:
    """A short description of how two mappings differ (pytest's full diff can be huge)."""
    keys = sorted(set(mirror) | set(truth))
    lines = [
        f"  {key}: mirror={mirror.get(key, '<absent>')!r} truth={truth.get(key, '<absent>')!r}"
        for key in keys
        if mirror.get(key) != truth.get(key)
    ]
    more = f"\n  ... and {len(lines) - limit} more" if len(lines) > limit else ""
    return f"{len(lines)} differ:\n" + "\n".join(lines[:limit]) + more


def assert_same_roster(mirror: Roster, truth: Roster) -> None:
    """Field by field, with a readable account of the first differences."""
    for name in Roster.__dataclass_fields__:
        mirrored: Mapping[str, Any] = getattr(mirror, name)
        expected: Mapping[str, Any] = getattr(truth, name)
        assert mirrored == expected, f"{name}: {_differences(mirrored, expected)}"


async def assert_mirror_matches_truth(pool: asyncpg.Pool, *, district: SandboxDistrict) -> Roster:
    """The mirror holds exactly the district's current roster; returns it."""
    mirrored = await mirror_roster(pool, district_id=district.id)
    assert_same_roster(mirrored, truth_roster(district))
    return mirrored

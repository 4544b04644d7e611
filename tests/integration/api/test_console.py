"""The operator console over HTTP (the app in-process): signing in and out, sessions that
hold no key, CSRF on every form, districts and runs a key may see, sync now, held runs."""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from arq.connections import ArqRedis

from app.api.keys import Scope, create_key, revoke_key
from app.settings import Settings
from sandbox.server import RunningSandbox
from tests.integration.api.conftest import Keys, Mirrored
from tests.integration.api.sync_support import arq_queue, queued_job, restored_queue, run_queued_job
from tests.integration.api.test_sync_api import HeldRun, held  # noqa: F401 (a fixture)
from tests.integration.sync_sandbox.support import sandbox_settings, sync_deps
from tests.support.app import app_client


@pytest.fixture(scope="module")
async def queue(settings: Settings) -> AsyncIterator[ArqRedis]:
    async with arq_queue(settings) as queue:
        yield queue


@pytest.fixture(autouse=True)
async def _restored(
    api_pool: asyncpg.Pool, queue: ArqRedis, mirrored: Mirrored
) -> AsyncIterator[None]:
    async with restored_queue(api_pool, queue, [mirrored.s.id, mirrored.other.id]):
        yield


async def _key(pool: asyncpg.Pool, *scopes: Scope, districts: list[str] | None = None) -> str:
    async with pool.acquire() as connection:
        created = await create_key(
            connection, name="console " + "+".join(scopes), scopes=scopes, district_ids=districts
        )
    return created.secret


@pytest.fixture
async def browser(api_settings: Settings, mirrored: Mirrored) -> AsyncIterator[httpx.AsyncClient]:
    """A client of its own (its own cookies), following no redirect by itself."""
    async with app_client(api_settings) as client:
        yield client


def _token(page: httpx.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text[:500]
    return found.group(1)


async def _sign_in(client: httpx.AsyncClient, key: str) -> httpx.Response:
    form = await client.get("/ui/login")
    return await client.post("/ui/login", data={"key": key, "csrf_token": _token(form)})


async def _signed_in(client: httpx.AsyncClient, key: str) -> str:
    """Sign in; the CSRF token of the session's forms."""
    answer = await _sign_in(client, key)
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/", answer.text
    page = await client.get("/ui/")
    assert page.status_code == 200
    return _token(page)


async def test_signing_in_sets_a_strict_cookie_that_holds_no_key(
    browser: httpx.AsyncClient, api_pool: asyncpg.Pool, queue: ArqRedis, mirrored: Mirrored
) -> None:
    page = await browser.get("/ui/")
    assert page.status_code == 303 and page.headers["location"] == "/ui/login"
    key = await _key(api_pool, Scope.CONSOLE)
    answer = await _sign_in(browser, key)
    assert answer.status_code == 303
    cookie = next(
        value
        for name, value in answer.headers.multi_items()
        if name == "set-cookie" and value.startswith("roster_console=")
    )
    flags = {part.strip().lower() for part in cookie.split(";")}
    assert {"httponly", "samesite=strict", "path=/ui"} <= flags
    assert "secure" not in flags  # plain HTTP here; set over TLS
    session_id = cookie.split(";")[0].split("=", 1)[1]
    assert key not in cookie and session_id not in str(await queue.keys("roster:console:*"))
    for stored in await queue.keys("roster:console:*"):
        assert key.encode() not in await queue.get(stored)

    listing = await browser.get("/ui/")
    assert listing.status_code == 200 and "text/html" in listing.headers["content-type"]
    assert listing.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in listing.headers["content-security-policy"]
    assert listing.headers["x-frame-options"] == "DENY"
    for district in (mirrored.s, mirrored.other):
        assert f'data-district="{district.id}"' in listing.text
    assert "fresh" in listing.text and "connected" in listing.text

    out = await browser.post("/ui/logout", data={"csrf_token": _token(listing)})
    assert out.status_code == 303 and out.headers["location"] == "/ui/login"
    assert (await browser.get("/ui/")).status_code == 303
    # The old cookie is dead on the server too, not only forgotten by this browser.
    browser.cookies.set("roster_console", session_id, path="/ui")
    assert (await browser.get("/ui/")).status_code == 303


async def test_wrong_keys_forms_without_their_token_and_revoked_keys_are_refused(
    browser: httpx.AsyncClient, api_pool: asyncpg.Pool, keys: Keys
) -> None:
    wrong = await _sign_in(browser, "rk_not_a_key")
    assert wrong.status_code == 401 and 'role="alert"' in wrong.text
    reader = await _sign_in(browser, keys.read)
    assert reader.status_code == 403 and "console" in reader.text
    no_token = await browser.post("/ui/login", data={"key": keys.admin})
    assert no_token.status_code == 403
    assert "roster_console=" not in no_token.headers.get("set-cookie", "")

    key = await _key(api_pool, Scope.CONSOLE)
    token = await _signed_in(browser, key)
    district_id = await api_pool.fetchval("SELECT id FROM districts ORDER BY id LIMIT 1")
    for data in ({}, {"csrf_token": "forged", "mode": "full"}):
        refused = await browser.post(f"/ui/districts/{district_id}/sync", data=data)
        assert refused.status_code == 403, refused.text
    assert await api_pool.fetchval("SELECT count(*) FROM sync_runs WHERE status = 'queued'") == 0
    assert (await browser.post("/ui/logout", data={})).status_code == 403

    async with api_pool.acquire() as connection:
        assert await revoke_key(connection, key[:10]) is not None
    assert (await browser.get("/ui/")).status_code == 303
    del token


async def test_a_key_limited_to_a_district_sees_only_it(
    browser: httpx.AsyncClient, api_pool: asyncpg.Pool, mirrored: Mirrored
) -> None:
    key = await _key(api_pool, Scope.CONSOLE, districts=[mirrored.s.id])
    token = await _signed_in(browser, key)
    listing = await browser.get("/ui/")
    assert f'data-district="{mirrored.s.id}"' in listing.text
    assert mirrored.other.id not in listing.text
    district = await browser.get(f"/ui/districts/{mirrored.s.id}")
    assert district.status_code == 200
    # Each run chart is titled on the page, not only for screen readers.
    for title in ("Duration", "Records changed", "Warnings"):
        assert f"<figcaption>{title}, per run</figcaption>" in district.text
    other_run = await api_pool.fetchval(
        "SELECT id FROM sync_runs WHERE district_id = $1 LIMIT 1", mirrored.other.id
    )
    for path in (f"/ui/districts/{mirrored.other.id}", f"/ui/runs/{other_run}"):
        page = await browser.get(path)
        # As for an id that does not exist: nothing of the district shows.
        assert page.status_code == 404 and "No " in page.text and "<table" not in page.text
        # Still signed in: the error page keeps the navigation and sign-out.
        assert 'aria-label="Console"' in page.text and 'action="/ui/logout"' in page.text
    refused = await browser.post(
        f"/ui/districts/{mirrored.other.id}/sync", data={"csrf_token": token, "mode": "full"}
    )
    assert refused.status_code == 404
    assert (await browser.get(f"/ui/runs/{uuid.uuid4()}")).status_code == 404


async def test_sync_now_queues_a_run_whose_page_follows_it_to_its_end(
    browser: httpx.AsyncClient,
    api_pool: asyncpg.Pool,
    queue: ArqRedis,
    mirrored: Mirrored,
    other_sandbox: RunningSandbox,
    api_settings: Settings,
) -> None:
    token = await _signed_in(browser, await _key(api_pool, Scope.ADMIN))
    district = mirrored.other
    answer = await browser.post(
        f"/ui/districts/{district.id}/sync", data={"csrf_token": token, "mode": "incremental"}
    )
    assert answer.status_code == 303
    run_id = answer.headers["location"].removeprefix("/ui/runs/")
    run = await api_pool.fetchrow("SELECT * FROM sync_runs WHERE id = $1", uuid.UUID(run_id))
    assert (run["district_id"], run["mode"], run["status"]) == (
        district.id,
        "incremental",
        "queued",
    )
    assert await queued_job(queue, district.id) is not None
    page = await browser.get(f"/ui/runs/{run_id}")
    assert '<meta http-equiv="refresh"' in page.text and "queued" in page.text

    configured = sandbox_settings(api_settings, sandbox=other_sandbox, district=district)
    await run_queued_job(queue, sync_deps(configured, pool=api_pool), district.id)
    page = await browser.get(f"/ui/runs/{run_id}")
    assert "refresh" not in page.text and "succeeded" in page.text
    history = await browser.get(f"/ui/districts/{district.id}")
    assert run_id[:8] in history.text and history.text.count("<svg") == 3


async def test_a_held_run_shows_why_it_is_held_and_can_be_rejected(
    browser: httpx.AsyncClient,
    api_pool: asyncpg.Pool,
    held: HeldRun,  # noqa: F811
) -> None:
    token = await _signed_in(browser, await _key(api_pool, Scope.CONSOLE))
    page = await browser.get(f"/ui/runs/{held.run_id}")
    assert page.status_code == 200 and 'id="held"' in page.text
    assert f"{held.unshared} of" in page.text.split('id="held"')[1]
    refused = await browser.post(f"/ui/runs/{held.run_id}/reject", data={})
    assert refused.status_code == 403
    rejected = await browser.post(f"/ui/runs/{held.run_id}/reject", data={"csrf_token": token})
    assert rejected.status_code == 303
    status = await api_pool.fetchval("SELECT status FROM sync_runs WHERE id = $1", held.run_id)
    assert status == "rejected"
    again = await browser.post(f"/ui/runs/{held.run_id}/approve", data={"csrf_token": token})
    assert again.status_code == 409


async def test_an_approved_run_s_page_follows_it_until_the_worker_has_applied_it(
    browser: httpx.AsyncClient,
    api_pool: asyncpg.Pool,
    queue: ArqRedis,
    held: HeldRun,  # noqa: F811
) -> None:
    token = await _signed_in(browser, await _key(api_pool, Scope.CONSOLE))
    approved = await browser.post(f"/ui/runs/{held.run_id}/approve", data={"csrf_token": token})
    assert approved.status_code == 303
    # Still held until the worker applies it: the page says so and reloads, offering nothing.
    page = await browser.get(f"/ui/runs/{held.run_id}")
    assert 'id="applying"' in page.text and '<meta http-equiv="refresh"' in page.text
    assert "/approve" not in page.text and "/reject" not in page.text

    await run_queued_job(queue, held.deps, held.district.id)
    page = await browser.get(f"/ui/runs/{held.run_id}")
    assert "succeeded" in page.text and "refresh" not in page.text and "applying" not in page.text


async def test_a_held_run_shows_per_school_what_approving_it_deactivates(
    browser: httpx.AsyncClient,
    api_pool: asyncpg.Pool,
    held: HeldRun,  # noqa: F811
) -> None:
    await _signed_in(browser, await _key(api_pool, Scope.CONSOLE))
    page = (await browser.get(f"/ui/runs/{held.run_id}")).text
    rows = re.findall(
        r'<tr data-school="([^"]*)"><th scope="row">[^<]*</th>'
        r'<td class="num">([\d,]+)</td><td class="num">([\d,]+)</td>',
        page,
    )
    assert rows, page
    by_school = {school: int(users.replace(",", "")) for school, users, _ in rows}
    assert sum(by_school.values()) == held.unshared
    # The same counts from the mirror: the active users the held batch no longer lists.
    staged = {u["id"] for u in held.district.iter_records("users")}
    expected: dict[str, int] = {}
    for row in await api_pool.fetch(
        "SELECT id, primary_school_id FROM users WHERE district_id = $1 AND deleted_at IS NULL",
        held.district.id,
    ):
        if row["id"] not in staged:
            school = row["primary_school_id"] or ""
            expected[school] = expected.get(school, 0) + 1
    assert by_school == {school: n for school, n in expected.items() if n} | {
        school: 0 for school in by_school if school not in expected
    }
    sample = re.findall(r'<tr data-record="([^"]+)"><td>users</td>', page)
    assert sample and not set(sample) & staged


async def _open_warnings(pool: asyncpg.Pool, district_id: str) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await pool.fetch(
        "SELECT code, entity, record_id, field FROM data_warnings"
        " WHERE district_id = $1 AND resolved_at IS NULL",
        district_id,
    )
    return rows


async def test_warnings_are_grouped_filtered_and_exported_as_csv(
    browser: httpx.AsyncClient, api_pool: asyncpg.Pool, mirrored: Mirrored
) -> None:
    await _signed_in(browser, await _key(api_pool, Scope.CONSOLE, districts=[mirrored.s.id]))
    stored = await _open_warnings(api_pool, mirrored.s.id)
    assert stored, "the messy district has warnings"
    page = await browser.get("/ui/warnings")
    assert page.status_code == 200
    groups = re.findall(
        r'<td class="num">([\d,]+)</td>\s*</tr>', page.text.split('id="warnings"')[0]
    )
    assert sum(int(n.replace(",", "")) for n in groups) == len(stored)

    export = await browser.get("/ui/warnings.csv")
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    assert "attachment" in export.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert {(r["code"], r["entity"], r["record_id"], r["field"]) for r in rows} == {
        (w["code"], w["entity"], w["record_id"] or "", w["field"] or "") for w in stored
    }
    assert {r["district_id"] for r in rows} == {mirrored.s.id}

    # One code at one school: the page and the export agree with the mirror.
    code = max({w["code"] for w in stored}, key=lambda c: sum(w["code"] == c for w in stored))
    filtered = await browser.get("/ui/warnings.csv", params={"code": code, "entity": "users"})
    chosen = list(csv.DictReader(io.StringIO(filtered.text)))
    assert {r["code"] for r in chosen} <= {code} and {r["entity"] for r in chosen} <= {"users"}
    assert len(chosen) == sum(w["code"] == code and w["entity"] == "users" for w in stored)
    schools = {r["school_id"] for r in rows if r["school_id"]}
    if schools:
        school = sorted(schools)[0]
        at_school = await browser.get("/ui/warnings.csv", params={"school_id": school})
        assert {r["school_id"] for r in csv.DictReader(io.StringIO(at_school.text))} == {school}
        none = await browser.get("/ui/warnings.csv", params={"school_id": "none"})
        assert all(not r["school_id"] for r in csv.DictReader(io.StringIO(none.text)))

    for bad in ({"code": "Not A Code"}, {"entity": "pets"}, {"status": "maybe"}):
        assert (await browser.get("/ui/warnings", params=bad)).status_code == 422
    # The other district is not one this key may filter on, nor export.
    other = await browser.get("/ui/warnings.csv", params={"district_id": mirrored.other.id})
    assert other.status_code == 404 and mirrored.other.id not in export.text


async def test_look_up_shows_a_student_s_sections_across_schools_and_a_teacher_s_students(
    browser: httpx.AsyncClient, api_pool: asyncpg.Pool, mirrored: Mirrored
) -> None:
    await _signed_in(browser, await _key(api_pool, Scope.CONSOLE, districts=[mirrored.s.id]))
    student_id = mirrored.s.truth.edge_cases["student_in_three_schools"]
    found = await browser.get("/ui/lookup", params={"q": student_id})
    assert found.status_code == 303 and found.headers["location"] == f"/ui/users/{student_id}"
    page = (await browser.get(found.headers["location"])).text
    enrolled = await api_pool.fetch(
        "SELECT s.id, s.school_id FROM enrollments e JOIN sections s ON s.id = e.section_id"
        " WHERE e.student_id = $1 AND e.ended_at IS NULL AND s.deleted_at IS NULL",
        student_id,
    )
    assert len({row["school_id"] for row in enrolled}) == 3
    assert set(re.findall(r'<tr data-section="([^"]+)"', page)) == {row["id"] for row in enrolled}

    # A section's roster, and its teacher's students, as the mirror holds them.
    section_id = enrolled[0]["id"]
    roster = (await browser.get(f"/ui/sections/{section_id}")).text
    students = await api_pool.fetch(
        "SELECT student_id FROM enrollments WHERE section_id = $1 AND ended_at IS NULL",
        section_id,
    )
    assert set(re.findall(r'<tr data-student="([^"]+)"', roster)) == {
        row["student_id"] for row in students
    }
    teacher_id = await api_pool.fetchval(
        "SELECT teacher_id FROM section_teachers WHERE section_id = $1 AND deleted_at IS NULL"
        " ORDER BY position LIMIT 1",
        section_id,
    )
    taught = (await browser.get(f"/ui/users/{teacher_id}")).text
    assert student_id in re.findall(r'<tr data-student="([^"]+)"', taught)

    # A name search lists matches; the other district's records are never among them.
    name = await api_pool.fetchval(
        "SELECT concat_ws(' ', name_first, name_last) FROM users WHERE id = $1", student_id
    )
    listed = await browser.get("/ui/lookup", params={"q": name})
    assert listed.status_code == 200 and f'data-match="{student_id}"' in listed.text
    other_user = await api_pool.fetchval(
        "SELECT id FROM users WHERE district_id = $1 LIMIT 1", mirrored.other.id
    )
    unseen = await browser.get("/ui/lookup", params={"q": other_user})
    assert unseen.status_code == 200 and "data-match=" not in unseen.text
    assert (await browser.get(f"/ui/users/{other_user}")).status_code == 404

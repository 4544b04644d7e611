"""The operator console as an operator uses it: signing in and out, refusals, sync now run by
the worker, a held run approved and applied, warnings filtered and downloaded, a student
looked up; axe-core and screenshots on every page."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from pathlib import Path

from playwright.async_api import Page, expect

from tests.browser.conftest import (
    ADMIN_KEY_NAME,
    RUN_TIMEOUT_MS,
    Check,
    Stack,
    session_cookie,
    sign_in,
)

_RUN_URL = re.compile(r"/ui/runs/([0-9a-f-]{36})$")


def _run_id(page: Page) -> str:
    found = _RUN_URL.search(page.url)
    assert found, page.url
    return found.group(1)


async def _active_users(stack: Stack, district_id: str) -> int:
    count: int = await stack.pool.fetchval(
        "SELECT count(*) FROM users WHERE district_id = $1 AND deleted_at IS NULL", district_id
    )
    return count


async def _runs(stack: Stack, district_id: str) -> int:
    count: int = await stack.pool.fetchval(
        "SELECT count(*) FROM sync_runs WHERE district_id = $1", district_id
    )
    return count


async def test_signing_in_lists_the_districts_and_signing_out_ends_the_session(
    page: Page, stack: Stack, axe: Check, shot: Check
) -> None:
    await page.goto("/ui/")
    await expect(page).to_have_url(f"{stack.url}/ui/login")
    await axe(page, "login")
    await shot(page, "login")
    before = await stack.sessions()

    await sign_in(page, stack.console_key)
    await expect(page).to_have_url(f"{stack.url}/ui/")
    rows = page.locator("tr[data-district]")
    await expect(rows).to_have_count(len(stack.sandbox.districts))
    listed = {await row.get_attribute("data-district") for row in await rows.all()}
    assert listed == {district.id for district in stack.sandbox.districts}
    for district in stack.sandbox.districts:
        row = page.locator(f'tr[data-district="{district.id}"]')
        await expect(row.locator(".badge").first).to_have_text("fresh")
        users = await _active_users(stack, district.id)
        await expect(row.locator("td.num").first).to_have_text(f"{users:,}")
    cookie = await session_cookie(page.context)
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert await stack.sessions() == before + 1
    await axe(page, "districts")
    await shot(page, "districts")

    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(f"{stack.url}/ui/login")
    assert await session_cookie(page.context) is None
    assert await stack.sessions() == before
    await page.goto("/ui/")
    await expect(page).to_have_url(f"{stack.url}/ui/login")


async def test_a_wrong_key_is_refused_and_opens_no_session(
    page: Page, stack: Stack, axe: Check, shot: Check
) -> None:
    before = await stack.sessions()
    await page.goto("/ui/login")
    await page.get_by_label("API key").fill("rk_not_a_key")
    async with page.expect_response(
        lambda response: response.request.method == "POST" and response.url.endswith("/login")
    ) as answer:
        await page.get_by_role("button", name="Sign in").click()
    assert (await answer.value).status == 401
    await expect(page.get_by_role("alert")).to_contain_text("unknown, revoked or expired")
    assert await session_cookie(page.context) is None
    assert await stack.sessions() == before
    await axe(page, "login-refused")
    await shot(page, "login-refused")


async def test_a_form_without_its_csrf_token_is_refused(
    signed_in: Page, stack: Stack, axe: Check, shot: Check
) -> None:
    page = signed_in
    district = stack.routine
    runs = await _runs(stack, district.id)
    row = page.locator(f'tr[data-district="{district.id}"]')
    await row.locator('input[name="csrf_token"]').evaluate("input => input.remove()")
    async with page.expect_response(
        lambda response: response.request.method == "POST" and response.url.endswith("/sync")
    ) as answer:
        await row.get_by_role("button", name="Sync now").click()
    assert (await answer.value).status == 403
    await expect(page.get_by_role("heading", level=1)).to_have_text("Refused")
    await expect(page.get_by_role("alert")).to_contain_text("CSRF token")
    await axe(page, "error")
    await shot(page, "error")

    # The same session's cookie without the token, or with another one: refused alike.
    forms: list[dict[str, str | float | bool]] = [
        {"mode": "full"},
        {"mode": "full", "csrf_token": "forged"},
    ]
    for form in forms:
        refused = await page.request.post(f"/ui/districts/{district.id}/sync", form=form)
        assert refused.status == 403
    refused = await page.request.post("/ui/logout", form={})
    assert refused.status == 403
    assert await _runs(stack, district.id) == runs
    await page.goto("/ui/")
    await expect(page.locator("tr[data-district]")).to_have_count(len(stack.sandbox.districts))


async def test_sync_now_is_run_by_the_worker_and_its_page_follows_it(
    signed_in: Page, stack: Stack, axe: Check, shot: Check
) -> None:
    page = signed_in
    district = stack.routine
    row = page.locator(f'tr[data-district="{district.id}"]')
    await row.get_by_label("Mode").select_option("incremental")
    await row.get_by_role("button", name="Sync now").click()
    await expect(page).to_have_url(_RUN_URL)
    run_id = _run_id(page)
    run = await stack.run(run_id)
    assert (run["district_id"], run["mode"], run["trigger"]) == (district.id, "incremental", "api")

    # The page reloads itself while the run is queued or running.
    await expect(page.locator("#run-status")).to_contain_text("succeeded", timeout=RUN_TIMEOUT_MS)
    await expect(page.locator('meta[http-equiv="refresh"]')).to_have_count(0)
    run = await stack.run(run_id)
    assert run["status"] == "succeeded" and run["finished_at"] is not None, run["error"]
    # The worker process ran it (nothing else here takes jobs off the queue).
    assert [line["status"] for line in stack.worker_said("sync finished", run_id)] == ["succeeded"]
    await axe(page, "run")
    await shot(page, "run")

    await page.get_by_role("link", name=district.id).click()
    await expect(page).to_have_url(f"{stack.url}/ui/districts/{district.id}")
    history = page.locator("#runs tbody tr")
    await expect(history).to_have_count(await _runs(stack, district.id))
    await expect(history.first).to_contain_text(run_id[:8])
    await expect(history.first.locator(".badge")).to_have_text("succeeded")
    await axe(page, "district")
    await shot(page, "district")


async def test_a_held_run_is_approved_and_applied_by_the_worker(
    signed_in: Page, stack: Stack, axe: Check, shot: Check
) -> None:
    page = signed_in
    district = stack.guarded
    active = await _active_users(stack, district.id)
    unshared = district.unshare("users", 0.8, role="student")

    row = page.locator(f'tr[data-district="{district.id}"]')
    await row.get_by_label("Mode").select_option("full")
    await row.get_by_role("button", name="Sync now").click()
    await expect(page).to_have_url(_RUN_URL)
    run_id = _run_id(page)
    # The mass-deactivation guard holds the full sync the worker ran.
    await expect(page.locator("#run-status")).to_contain_text("held", timeout=RUN_TIMEOUT_MS)
    run = await stack.run(run_id)
    assert run["status"] == "held" and f"{unshared} of" in run["held_reason"]
    held = page.locator("#held")
    await expect(held).to_be_visible()
    per_school = await held.locator("#would-deactivate tbody tr td.num:nth-of-type(1)").all()
    assert sum([int((await cell.inner_text()).replace(",", "")) for cell in per_school]) == unshared
    assert await _active_users(stack, district.id) == active
    await axe(page, "run-held")
    await shot(page, "run-held")

    await held.get_by_role("button", name="Approve").click()
    await expect(page).to_have_url(f"{stack.url}/ui/runs/{run_id}")
    await expect(page.locator("#run-status")).to_contain_text("succeeded", timeout=RUN_TIMEOUT_MS)
    run = await stack.run(run_id)
    assert run["status"] == "succeeded" and run["decided_by"] == ADMIN_KEY_NAME
    assert run["counts"]["users"]["deactivated"] == unshared
    assert [line["status"] for line in stack.worker_said("held run applied", run_id)] == [
        "succeeded"
    ]
    assert await _active_users(stack, district.id) == active - unshared
    await expect(page.locator("#held")).to_have_count(0)
    await axe(page, "run-approved")
    await shot(page, "run-approved")


async def test_warnings_are_filtered_and_downloaded_as_a_csv(
    signed_in: Page, stack: Stack, axe: Check, shot: Check
) -> None:
    page = signed_in
    district = stack.routine
    stored = await stack.pool.fetch(
        "SELECT code, entity, record_id FROM data_warnings"
        " WHERE district_id = $1 AND resolved_at IS NULL",
        district.id,
    )
    assert stored, "the district has data warnings"
    code = max(sorted({w["code"] for w in stored}), key=[w["code"] for w in stored].count)
    await page.get_by_role("link", name="Data warnings").click()
    await expect(page).to_have_url(f"{stack.url}/ui/warnings")
    await axe(page, "warnings")
    await shot(page, "warnings")

    await page.get_by_label("District").select_option(district.id)
    await page.get_by_label("Code").select_option(code)
    await page.get_by_role("button", name="Filter").click()
    await expect(page).to_have_url(re.compile(rf"code={code}"))
    expected = {(w["entity"], w["record_id"]) for w in stored if w["code"] == code}
    listed = page.locator("#warnings tbody tr")
    await expect(listed).to_have_count(len(expected))
    await axe(page, "warnings-filtered")

    async with page.expect_download() as started:
        await page.get_by_role("link", name="Download CSV").click()
    download = await started.value
    assert download.suggested_filename.startswith(f"data-warnings-{district.id}-")
    saved = await download.path()
    text = await asyncio.to_thread(Path(saved).read_text, encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {(r["entity"], r["record_id"]) for r in rows} == expected
    assert {(r["district_id"], r["code"]) for r in rows} == {(district.id, code)}


async def test_a_student_in_three_schools_is_looked_up_by_name(
    signed_in: Page, stack: Stack, axe: Check, shot: Check
) -> None:
    page = signed_in
    student_id = stack.routine.truth.edge_cases["student_in_three_schools"]
    name = await stack.pool.fetchval(
        "SELECT concat_ws(' ', name_first, name_last) FROM users WHERE id = $1", student_id
    )
    await page.get_by_role("link", name="Look-up").click()
    await page.get_by_label("User or section").fill(name)
    await page.get_by_role("button", name="Look up").click()
    match = page.locator(f'tr[data-match="{student_id}"]')
    await expect(match).to_have_count(1)
    await axe(page, "lookup")
    await shot(page, "lookup")

    await match.get_by_role("link").first.click()
    await expect(page).to_have_url(f"{stack.url}/ui/users/{student_id}")
    enrolled = await stack.pool.fetch(
        "SELECT s.id, s.school_id FROM enrollments e"
        " JOIN sections s ON s.id = e.section_id AND s.district_id = e.district_id"
        " WHERE e.student_id = $1 AND e.ended_at IS NULL AND s.deleted_at IS NULL",
        student_id,
    )
    assert len({row["school_id"] for row in enrolled}) == 3
    sections = page.locator("tr[data-section]")
    await expect(sections).to_have_count(len(enrolled))
    shown = {await row.get_attribute("data-section") for row in await sections.all()}
    assert shown == {row["id"] for row in enrolled}
    await expect(page.locator("#schools")).to_contain_text("primary")
    await axe(page, "user")
    await shot(page, "user")

    # Its first section's roster lists the student.
    await sections.first.get_by_role("link").click()
    await expect(page).to_have_url(re.compile(r"/ui/sections/"))
    await expect(page.locator(f'#roster tr[data-student="{student_id}"]')).to_have_count(1)
    await axe(page, "section")
    await shot(page, "section")

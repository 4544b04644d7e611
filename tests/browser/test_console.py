"""The operator console as an operator uses it: signing in and out, refusals, sync now run by
the worker, a held run approved and applied; axe-core and screenshots on every page."""

from __future__ import annotations

import re

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

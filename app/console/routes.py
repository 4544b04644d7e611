"""The console's pages and forms under `/ui` (kept out of the OpenAPI document).

Every page needs a signed-in session (`sessions`); without one a page redirects to the
sign-in form. Every form that changes something carries the session's CSRF token, and a
POST without the right one is refused (403) before anything is done. A district the key may
not see is answered 404, as the API does.
"""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, get_args
from urllib.parse import parse_qs

import asyncpg
from arq.connections import ArqRedis
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from app.api.auth import Principal
from app.api.deps import scope_of
from app.api.keys import KeyGrant, Scope, find_key, find_key_by_id
from app.api.limits import Limits
from app.api.warnings import Entity
from app.console import format, queries
from app.console.sessions import (
    COOKIE,
    LOGIN_COOKIE,
    close_session,
    find_session,
    new_token,
    open_session,
    same_token,
)
from app.mirror import merge
from app.mirror.queries import roster
from app.mirror.queries.collections import USERS, find_record
from app.mirror.staging import Staging
from app.settings import Settings
from app.sync.full import SyncError, SyncOptions, decide_held_run
from app.sync.queue import (
    DistrictBusyError,
    RunNotHeldError,
    approval_pending,
    request_approval,
    request_sync,
)
from app.sync.runs import RunMode, RunStatus, RunTrigger

router = APIRouter(prefix="/ui", include_in_schema=False)
_HERE = Path(__file__).parent
templates = Jinja2Templates(directory=_HERE / "templates")
templates.env.filters["ago"] = lambda moment: format.ago(moment, datetime.now(UTC))
templates.env.globals["duration"] = format.duration

_TITLES = {403: "Refused", 404: "Not found", 409: "Not now", 422: "Not understood"}

# Runs still going: their page reloads itself until they end.
_GOING = (RunStatus.QUEUED, RunStatus.RUNNING)


class ConsoleError(Exception):
    """Answered with the console's error page (or, for 303, a redirect to `location`)."""

    def __init__(self, status: int, detail: str, *, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


def install(app: FastAPI) -> None:
    """Serve the console under `/ui`: its pages, its stylesheet, its error pages."""
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=_HERE / "static"), name="console-static")

    async def on_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ConsoleError)
        if exc.status == 303:
            return _redirect(exc.headers["Location"])
        title = _TITLES.get(exc.status, "Something went wrong")
        # A signed-in operator keeps the navigation and sign-out on an error page.
        operator: Operator | None = getattr(request.state, "operator", None)
        response = _page(
            request, "error.html", operator, exc.status, title=title, detail=exc.detail
        )
        response.headers.update(exc.headers)
        return response

    app.add_exception_handler(ConsoleError, on_error)


@dataclass(frozen=True)
class Operator:
    """Who is signed in: the key (as the API sees a caller) and the session's CSRF token."""

    principal: Principal
    csrf_token: str


def _may_use_console(grant: KeyGrant | None) -> bool:
    return grant is not None and bool({Scope.ADMIN, Scope.CONSOLE} & grant.scopes)


async def _operator(request: Request) -> Operator:
    redis: ArqRedis = request.state.redis
    session = await find_session(redis, request.cookies.get(COOKIE))
    if session is not None:
        async with request.state.reads.acquire() as connection:
            grant = await find_key_by_id(connection, session.key_id)
        if grant is not None and _may_use_console(grant):
            operator = request.state.operator = Operator(Principal(grant), session.csrf_token)
            return operator
    raise ConsoleError(303, "Sign in first.", headers={"Location": "/ui/login"})


OperatorDep = Annotated[Operator, Depends(_operator)]


async def _form(request: Request) -> dict[str, str]:
    """The URL-encoded form of a POST: each field's first value."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return {name: values[0] for name, values in parse_qs(body).items()}


async def _checked_form(request: Request, operator: Operator) -> dict[str, str]:
    form = await _form(request)
    if not same_token(form.get("csrf_token"), operator.csrf_token):
        raise ConsoleError(403, "The form's CSRF token is missing or wrong; reload the page.")
    return form


def _page(
    request: Request, template: str, operator: Operator | None, status: int = 200, **context: Any
) -> HTMLResponse:
    settings: Settings = request.state.settings
    return templates.TemplateResponse(
        request,
        template,
        {"operator": operator, "stale_after_hours": settings.sync_stale_after_hours, **context},
        status_code=status,
    )


def _cookie_flags(request: Request) -> dict[str, Any]:
    return {"httponly": True, "samesite": "strict", "secure": request.url.scheme == "https"}


def _redirect(location: str) -> RedirectResponse:
    return RedirectResponse(location, status_code=303)


@router.get("/login", name="console-login-form")
async def login_form(request: Request) -> Response:
    return _login_page(request)


def _login_page(request: Request, error: str | None = None, status: int = 200) -> Response:
    """The sign-in form, with a fresh sign-in CSRF token in its cookie."""
    token = new_token()
    response = _page(request, "login.html", None, status, csrf_token=token, error=error)
    response.set_cookie(LOGIN_COOKIE, token, path="/ui/login", **_cookie_flags(request))
    return response


@router.post("/login", name="console-login")
async def login(request: Request) -> Response:
    form = await _form(request)
    if not same_token(form.get("csrf_token"), request.cookies.get(LOGIN_COOKIE)):
        return _login_page(request, "The sign-in form expired; try again.", 403)
    limits: Limits = request.state.limits
    client = request.client.host if request.client else "unknown"
    await limits.check_lockout(client)
    async with request.state.reads.acquire() as connection:
        grant = await find_key(connection, form.get("key", "").strip())
    if grant is None:
        await limits.failed(client)
        return _login_page(request, "That key is unknown, revoked or expired.", 401)
    if not _may_use_console(grant):
        return _login_page(
            request, "That key may not use the console: it needs `console` or `admin`.", 403
        )
    settings: Settings = request.state.settings
    session_id = await open_session(
        request.state.redis, grant.key_id, ttl_seconds=settings.console_session_hours * 3600
    )
    response = _redirect("/ui/")
    response.set_cookie(
        COOKIE,
        session_id,
        path="/ui",
        max_age=settings.console_session_hours * 3600,
        **_cookie_flags(request),
    )
    response.delete_cookie(LOGIN_COOKIE, path="/ui/login")
    return response


@router.post("/logout", name="console-logout")
async def logout(request: Request, operator: OperatorDep) -> Response:
    await _checked_form(request, operator)
    await close_session(request.state.redis, request.cookies.get(COOKIE))
    response = _redirect("/ui/login")
    response.delete_cookie(COOKIE, path="/ui")
    return response


@router.get("/", name="console-districts")
async def districts_page(request: Request, operator: OperatorDep) -> Response:
    async with request.state.reads.acquire() as connection:
        rows = await queries.districts(connection, operator.principal.district_ids)
    settings: Settings = request.state.settings
    now = datetime.now(UTC)
    listed = [
        {
            **dict(row),
            "freshness": format.freshness(row["fresh_at"], now, settings.sync_stale_after_hours),
            "full_changed": queries.changed(row["full_counts"]),
        }
        for row in rows
    ]
    return _page(request, "districts.html", operator, districts=listed)


def _district_or_404(operator: Operator, district_id: str) -> None:
    if not operator.principal.sees(district_id):
        raise ConsoleError(404, f"No district with id {district_id!r}.")


@router.get("/districts/{district_id}", name="console-district")
async def district_page(request: Request, operator: OperatorDep, district_id: str) -> Response:
    _district_or_404(operator, district_id)
    async with request.state.reads.acquire() as connection:
        name = await connection.fetchval("SELECT name FROM districts WHERE id = $1", district_id)
        if name is None:
            raise ConsoleError(404, f"No district with id {district_id!r}.")
        runs = await queries.runs(connection, district_id)
        cursor, cursor_at = await queries.events_cursor(connection, district_id)
    ended = [run for run in reversed(runs) if run["finished_at"] is not None]
    labels = [run["created_at"].strftime("%Y-%m-%d %H:%M") for run in ended]
    charts = [
        (name, format.bar_chart(format.Series(name, values, unit), labels))
        for name, values, unit in (
            (
                "Duration",
                [
                    (r["finished_at"] - (r["started_at"] or r["created_at"])).total_seconds()
                    for r in ended
                ],
                " s",
            ),
            ("Records changed", [queries.changed(r["counts"]) for r in ended], ""),
            ("Warnings", [r["warnings_count"] for r in ended], ""),
        )
    ]
    return _page(
        request,
        "district.html",
        operator,
        district_id=district_id,
        name=name,
        runs=runs,
        charts=charts,
        cursor=cursor,
        cursor_at=cursor_at,
        changed=queries.changed,
    )


@router.post("/districts/{district_id}/sync", name="console-sync")
async def sync_now(request: Request, operator: OperatorDep, district_id: str) -> Response:
    form = await _checked_form(request, operator)
    _district_or_404(operator, district_id)
    pool: asyncpg.Pool = request.state.pool
    async with pool.acquire() as connection:
        if not await connection.fetchval("SELECT 1 FROM districts WHERE id = $1", district_id):
            raise ConsoleError(404, f"No district with id {district_id!r}.")
    try:
        mode = RunMode(form.get("mode", RunMode.INCREMENTAL))
    except ValueError:
        raise ConsoleError(422, "`mode` is `full` or `incremental`.") from None
    try:
        requested = await request_sync(
            request.state.redis, pool, district_id, mode=mode, trigger=RunTrigger.API
        )
    except DistrictBusyError as exc:
        raise ConsoleError(409, f"{exc}.", headers={"Retry-After": "5"}) from None
    return _redirect(f"/ui/runs/{requested.run_id}")


async def _visible_run(request: Request, operator: Operator, run_id: uuid.UUID) -> Any:
    async with request.state.reads.acquire() as connection:
        run = await queries.run(connection, run_id)
    if run is None or not operator.principal.sees(run["district_id"]):
        raise ConsoleError(404, f"No sync run with id {run_id}.")
    return run


@router.get("/runs/{run_id}", name="console-run")
async def run_page(request: Request, operator: OperatorDep, run_id: uuid.UUID) -> Response:
    run = await _visible_run(request, operator, run_id)
    preview = None
    # An approved run stays held until the worker has applied it.
    applying = False
    if run["status"] == RunStatus.HELD:
        applying = await approval_pending(request.state.redis, run_id, run["district_id"])
        async with request.state.reads.acquire() as connection:
            preview = await merge.held_preview(connection, Staging(run_id), run["district_id"])
    return _page(
        request,
        "run.html",
        operator,
        run=run,
        going=run["status"] in _GOING or applying,
        applying=applying,
        changed=queries.changed(run["counts"]),
        preview=preview,
    )


@router.post("/runs/{run_id}/approve", name="console-run-approve")
async def approve(request: Request, operator: OperatorDep, run_id: uuid.UUID) -> Response:
    await _checked_form(request, operator)
    await _visible_run(request, operator, run_id)
    try:
        await request_approval(
            request.state.redis, request.state.pool, run_id, decided_by=operator.principal.name
        )
    except RunNotHeldError as exc:
        raise ConsoleError(409, f"Sync run {run_id} is {exc.status}: it is not held.") from None
    except DistrictBusyError as exc:
        raise ConsoleError(409, f"{exc}.", headers={"Retry-After": "5"}) from None
    return _redirect(f"/ui/runs/{run_id}")


@router.post("/runs/{run_id}/reject", name="console-run-reject")
async def reject(request: Request, operator: OperatorDep, run_id: uuid.UUID) -> Response:
    await _checked_form(request, operator)
    run = await _visible_run(request, operator, run_id)
    if run["status"] != RunStatus.HELD:
        raise ConsoleError(409, f"Sync run {run_id} is {run['status']}: it is not held.")
    if await approval_pending(request.state.redis, run_id, run["district_id"]):
        raise ConsoleError(409, f"Sync run {run_id} was approved; it is being applied.")
    options = SyncOptions.from_settings(request.state.settings)
    try:
        await decide_held_run(
            request.state.pool,
            run_id,
            approve=False,
            decided_by=operator.principal.name,
            options=options,
        )
    except SyncError as exc:
        raise ConsoleError(409, f"{exc}.") from None
    return _redirect(f"/ui/runs/{run_id}")


# --- data warnings ------------------------------------------------------------------------

_ENTITIES = get_args(Entity)
_STATUSES = ("open", "resolved", "all")
_CODE = re.compile(r"[a-z0-9_]{1,64}")
_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
# Spreadsheets run a cell that starts so as a formula: such values are exported quoted.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _warning_filter(request: Request, operator: Operator) -> queries.WarningFilter:
    """The warnings the page's filters choose, within the key's districts; a value no
    filter takes is refused (422), a district the key may not see is unknown (404)."""
    query = request.query_params

    def chosen(name: str, valid: Any) -> str | None:
        value = query.get(name) or None
        if value is not None and not valid(value):
            raise ConsoleError(422, f"`{name}` cannot be {value[:80]!r}.")
        return value

    district_id = chosen("district_id", _ID.fullmatch)
    if district_id is not None:
        _district_or_404(operator, district_id)
    return queries.WarningFilter(
        operator.principal.district_ids,
        district_id=district_id,
        code=chosen("code", _CODE.fullmatch),
        entity=chosen("entity", _ENTITIES.__contains__),
        school_id=chosen("school_id", _ID.fullmatch),
        status=chosen("status", _STATUSES.__contains__) or "open",
    )


@router.get("/warnings", name="console-warnings")
async def warnings_page(request: Request, operator: OperatorDep) -> Response:
    chosen = _warning_filter(request, operator)
    async with request.state.reads.acquire() as connection:
        groups = await queries.warning_groups(connection, chosen)
        shown = await queries.warnings(connection, chosen)
        codes, schools = await queries.warning_choices(connection, operator.principal.district_ids)
        districts = await queries.district_names(connection, operator.principal.district_ids)
    return _page(
        request,
        "warnings.html",
        operator,
        chosen=chosen,
        groups=groups,
        total=sum(group["warnings"] for group in groups),
        warnings=shown,
        codes=codes,
        schools=schools,
        districts=districts,
        entities=_ENTITIES,
        statuses=_STATUSES,
        no_school=queries.NO_SCHOOL,
        export=f"/ui/warnings.csv?{request.url.query}" if request.url.query else "/ui/warnings.csv",
    )


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


@router.get("/warnings.csv", name="console-warnings-csv")
async def warnings_csv(request: Request, operator: OperatorDep) -> Response:
    """The chosen warnings, every one of them, as a CSV to send to the district."""
    chosen = _warning_filter(request, operator)
    reads: asyncpg.Pool = request.state.reads

    async def lines() -> AsyncIterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(queries.WARNING_COLUMNS)
        async with reads.acquire() as connection, connection.transaction(readonly=True):
            async for row in queries.each_warning(connection, chosen):
                writer.writerow([_cell(row[name]) for name in queries.WARNING_COLUMNS])
                if buffer.tell() > 64 * 1024:
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
        yield buffer.getvalue()

    day = datetime.now(UTC).strftime("%Y-%m-%d")
    name = f"data-warnings-{chosen.district_id or 'all'}-{day}.csv"
    return StreamingResponse(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# --- look-up ------------------------------------------------------------------------------

# A teacher's students listed on the teacher's page.
STUDENTS_SHOWN = 500


@router.get("/lookup", name="console-lookup")
async def lookup_page(request: Request, operator: OperatorDep) -> Response:
    text = (request.query_params.get("q") or "").strip()
    if len(text) > 200:
        raise ConsoleError(422, "Search for at most 200 characters.")
    matches: list[asyncpg.Record] = []
    if text:
        async with request.state.reads.acquire() as connection:
            matches = await queries.find_records(connection, text, operator.principal.district_ids)
        exact = [match for match in matches if match["exact"]]
        if len(exact) == 1:
            match = exact[0]
            return _redirect(f"/ui/{match['kind']}s/{match['id']}")
    return _page(request, "lookup.html", operator, q=text, matches=matches)


@router.get("/users/{user_id}", name="console-user")
async def user_page(request: Request, operator: OperatorDep, user_id: str) -> Response:
    scope = scope_of(operator.principal)
    async with request.state.reads.acquire() as connection:
        found = await find_record(connection, USERS, user_id, scope)
        if found is None:
            raise ConsoleError(404, f"No user with id {user_id!r}.")
        district_id, body = found
        user = json.loads(body)
        by_term = await roster.user_sections_by_term(connection, user_id, scope, role=None)
        students: list[Any] = []
        if "teacher" in user["roles"]:
            owned = await roster.teacher_students(
                connection, user_id, scope, limit=STUDENTS_SHOWN, after=None
            )
            students = [json.loads(row) for _, row in owned.rows] if owned else []
        schools = await queries.user_schools(connection, user_id, district_id)
    return _page(
        request,
        "user.html",
        operator,
        user=user,
        buckets=json.loads(by_term.body)["data"] if by_term else [],
        students=students[:STUDENTS_SHOWN],
        more_students=len(students) > STUDENTS_SHOWN,
        schools=schools,
    )


@router.get("/sections/{section_id}", name="console-section")
async def section_page(request: Request, operator: OperatorDep, section_id: str) -> Response:
    scope = scope_of(operator.principal)
    async with request.state.reads.acquire() as connection:
        detail = await roster.section_detail(connection, section_id, scope)
    if detail is None:
        raise ConsoleError(404, f"No section with id {section_id!r}.")
    return _page(request, "section.html", operator, section=json.loads(detail))

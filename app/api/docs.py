"""The API's documentation: the prose of the OpenAPI document, and the pages that show it.

`/docs` (Swagger UI) and `/redoc` (ReDoc) load their scripts, stylesheet and icon from the
app itself, under `ASSETS_PATH`, as the `fastapi-standalone-docs` package ships them:
FastAPI's own pages fetch them from a CDN (and ReDoc its fonts from Google), so they would
not render on a machine without internet access, and would tell those hosts who reads the
docs. `create_app` turns FastAPI's pages off and serves these. None of it is in the OpenAPI
document.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DESCRIPTION = """\
The roster of school districts mirrored from the Clever Data API, cleaned and
school-agnostic: a student's sections across every school, a teacher's students, sections
by term, as of now or of an earlier date. Local edits kept beside the mirror (overrides,
custom groups, people) show in the same answers, and a change feed and outbound webhooks
tell what changed.

Every `/v1` endpoint needs an API key, sent as `Authorization: Bearer rk_...`. A key holds
scopes (`roster:read`, `roster:write`, `roster:sensitive`, `sync:write`, `admin`) and may be
limited to some districts: another district's record is then 404, exactly like one that
does not exist. Each key has a budget of requests per minute, told in its `RateLimit-*`
headers.

Every error is a problem document (RFC 9457, `application/problem+json`)."""

# One entry per tag the routers use, in the order the docs pages show them.
TAGS: list[dict[str, Any]] = [
    {"name": "health", "description": "Liveness, readiness and Prometheus metrics; no key."},
    {
        "name": "districts",
        "description": "The districts mirrored from Clever: their sync state, their connection, "
        "and whether their sensitive student fields are kept.",
    },
    {"name": "schools", "description": "Schools, with their sections and users."},
    {"name": "terms", "description": "Terms, with their sections."},
    {"name": "courses", "description": "Courses, with their sections."},
    {
        "name": "sections",
        "description": "Sections, with their school, course, term, teachers and students.",
    },
    {
        "name": "users",
        "description": "Users of every role: a user's sections in any school, a teacher's "
        "students, a student's teachers and contacts.",
    },
    {
        "name": "overrides",
        "description": "Local values shown instead of Clever's for users, sections and terms, "
        "kept across syncs.",
    },
    {
        "name": "groups",
        "description": "Custom groups of one district's students, made by hand or split from "
        "a section, with the history of their changes.",
    },
    {
        "name": "people",
        "description": "People: the user records that are one person (linked by email, or "
        "merged and split by hand).",
    },
    {
        "name": "sync",
        "description": "Queue a district's sync, with a key or a signed webhook; follow its "
        "runs; approve or reject a run the mass-change guard held.",
    },
    {
        "name": "data warnings",
        "description": "Problems the syncs found in the districts' data, open and resolved.",
    },
    {
        "name": "changes",
        "description": "The change feed: every change after a cursor, to keep a copy current.",
    },
    {
        "name": "webhooks",
        "description": "Outbound webhooks: the change feed posted to a subscriber's URL, with "
        "each delivery's attempts.",
    },
    {"name": "audit", "description": "The audit trail of the requests that presented a key."},
]

# Relative, so a client resolves the paths against wherever it read the document.
SERVERS: list[dict[str, Any]] = [{"url": "/", "description": "This server"}]

ASSETS_PATH = "/static/docs"
SWAGGER_JS = "swagger/swagger-ui-bundle.js"
SWAGGER_CSS = "swagger/swagger-ui.css"
REDOC_JS = "redoc/redoc.standalone.js"
FAVICON = "fastapi/favicon.png"

router = APIRouter(include_in_schema=False)


def assets() -> StaticFiles:
    """The pages' scripts, stylesheets and icon, to mount at `ASSETS_PATH`."""
    return StaticFiles(packages=[("fastapi_standalone_docs", "static")])


def _root(request: Request) -> str:
    # Behind a proxy that serves the app under a prefix, every URL of the page needs it.
    root_path: str = request.scope.get("root_path", "")
    return root_path.rstrip("/")


def _asset(request: Request, name: str) -> str:
    return f"{_root(request)}{ASSETS_PATH}/{name}"


@router.get("/docs", name="docs-swagger-ui")
async def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI on the app's OpenAPI document."""
    return get_swagger_ui_html(
        openapi_url=_root(request) + request.app.openapi_url,
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=_asset(request, SWAGGER_JS),
        swagger_css_url=_asset(request, SWAGGER_CSS),
        swagger_favicon_url=_asset(request, FAVICON),
        oauth2_redirect_url=None,
        # Swagger UI would otherwise show a badge image from the online validator.
        swagger_ui_parameters={"validatorUrl": None},
    )


@router.get("/redoc", name="docs-redoc")
async def redoc(request: Request) -> HTMLResponse:
    """ReDoc on the app's OpenAPI document."""
    return get_redoc_html(
        openapi_url=_root(request) + request.app.openapi_url,
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=_asset(request, REDOC_JS),
        redoc_favicon_url=_asset(request, FAVICON),
        with_google_fonts=False,
    )

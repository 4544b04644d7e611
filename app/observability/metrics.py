"""Prometheus metrics of the HTTP API."""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram
from starlette.routing import Match, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HTTP_REQUESTS = Counter(
    "roster_http_requests_total",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "roster_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template.",
    ["route", "method"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

ANSWERS = Counter(
    "roster_api_answers_total",
    "Answers of the hot reads, by where they came from: `kept` (memory), `read` (Postgres),"
    " `not_modified` (304, from either).",
    ["source"],
)


def route_template(scope: Scope, asked: Scope | None = None) -> str:
    """The matched route's path template (`/v1/users/{user_id}`), so labels stay bounded.

    The router records the API route it matched in the scope. Other routes (the OpenAPI
    document, the static files' mounts) it does not: those are matched again here against
    `asked`, the request as it came in, a mount labelled by its path. Paths no route
    matches share one label.
    """
    route = scope.get("route")
    if route is not None:
        return str(getattr(route, "path", "unmatched"))
    if asked is None:
        return "unmatched"
    router = getattr(scope.get("app"), "router", None)
    for candidate in getattr(router, "routes", ()):
        if isinstance(candidate, Route | Mount):
            match, _ = candidate.matches(asked)
            if match is Match.FULL:
                return candidate.path
    return "unmatched"


# Where the first middleware to work out a request's route label leaves it for the others.
ROUTE_LABEL = "roster.route_label"


def route_label(scope: Scope, asked: Scope) -> str:
    """`route_template` of the request, worked out once per request and kept in its scope."""
    label: str | None = scope.get(ROUTE_LABEL)
    if label is None:
        label = scope[ROUTE_LABEL] = route_template(scope, asked)
    return label


class MetricsMiddleware:
    """Counts and times every HTTP request (pure ASGI: no per-request task overhead)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        # Routing rewrites the scope (a mount moves its prefix into `root_path`).
        asked = {key: scope.get(key) for key in ("type", "path", "root_path", "method")}

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = route_label(scope, asked)
            method = scope["method"]
            HTTP_REQUESTS.labels(route, method, str(status)).inc()
            HTTP_LATENCY.labels(route, method).observe(time.perf_counter() - started)

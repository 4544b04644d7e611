"""What the API keeps of each keyed request once it is answered: an audit event, and the
key's `RateLimit-*` headers on the answer. And what a write answered here means for the
answers kept in memory: they are dropped before the client hears of the write, so it reads
its own writes (other processes hear of it from Postgres, `app.api.answers`).

Authentication (`app.api.auth`) leaves a `Caller` in the request's state; requests that
never reached it (health, metrics, unknown paths, the inbound Clever webhook) are not
audited. Every request, keyed or not, is also one line of the access log (`roster.access`):
method, route template, status, duration and key id, never a query value or a body.
"""

from __future__ import annotations

import logging
import time

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.answers import EVERY_DISTRICT, AnswerCache
from app.api.auth import Caller
from app.audit import AuditEvent, AuditLog, now
from app.observability.metrics import route_label

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

access_logger = logging.getLogger("roster.access")


class AccessMiddleware:
    """Pure ASGI, so it sees the status of every answer, errors included."""

    def __init__(self, app: ASGIApp, *, log_requests: bool = True) -> None:
        self.app = app
        self.log_requests = log_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path, root_path = scope["path"], scope.get("root_path", "")
        # The request's own copy of the lifespan state, as uvicorn makes one (other servers
        # may share one dict across requests): `Caller` is per request.
        state = scope["state"] = dict(scope.get("state", {}))
        status = 500
        writes = scope["method"] not in READ_METHODS

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                answers: AnswerCache | None = state.get("answers")
                if writes and answers is not None:
                    answers.changed(EVERY_DISTRICT)
                caller: Caller | None = state.get("caller")
                if caller is not None and caller.quota is not None:
                    headers = MutableHeaders(scope=message)
                    for name, value in caller.quota.headers().items():
                        headers.setdefault(name, value)
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            caller = state.get("caller")
            audit: AuditLog | None = state.get("audit")
            route = route_label(
                scope,
                {"type": "http", "path": path, "root_path": root_path, "method": scope["method"]},
            )
            if caller is not None and audit is not None:
                audit.record(
                    AuditEvent(
                        at=now(),
                        key_id=caller.key_id,
                        method=scope["method"],
                        route=route,
                        status=status,
                        client=caller.client if caller.key_id is None else None,
                    )
                )
            if self.log_requests and access_logger.isEnabledFor(logging.INFO):
                access_logger.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "route": route,
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                        "key_id": str(caller.key_id) if caller and caller.key_id else None,
                    },
                )

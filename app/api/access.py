"""What the API keeps of each keyed request once it is answered: an audit event, and the
key's `RateLimit-*` headers on the answer. And what a write answered here means for the
answers kept in memory: they are dropped before the client hears of the write, so it reads
its own writes (other processes hear of it from Postgres, `app.api.answers`).

Authentication (`app.api.auth`) leaves a `Caller` in the request's state; requests that
never reached it (health, metrics, unknown paths, the inbound Clever webhook) are not
audited.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.answers import EVERY_DISTRICT, AnswerCache
from app.api.auth import Caller
from app.audit import AuditEvent, AuditLog, now
from app.observability.metrics import route_template

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class AccessMiddleware:
    """Pure ASGI, so it sees the status of every answer, errors included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
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
            if caller is not None and audit is not None:
                audit.record(
                    AuditEvent(
                        at=now(),
                        key_id=caller.key_id,
                        method=scope["method"],
                        route=route_template(scope),
                        status=status,
                        client=caller.client if caller.key_id is None else None,
                    )
                )

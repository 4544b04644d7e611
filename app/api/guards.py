"""What every HTTP request passes before any route sees it: a bounded body, safe headers.

Both are pure ASGI middleware, so they work before FastAPI parses anything:

* `BodyLimitMiddleware` reads an announced body itself, at most `max_bytes` of it and within
  `timeout_seconds`, and hands the app the bytes it read. A larger body is refused (413) as
  soon as its `Content-Length` or its bytes so far say so, a slow one (408) when the time is
  up: nothing downstream (authentication, webhook signatures) can be made to buffer more.
* `SecurityHeadersMiddleware` marks every response `X-Content-Type-Options: nosniff`, and
  roster data and syncs (`/v1/...`, `/sync`) `Cache-Control: no-store`: student records
  must not be kept by browsers or shared caches.
"""

from __future__ import annotations

import asyncio

import orjson
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.problems import PROBLEM_CONTENT_TYPE

# Paths whose answers must not be stored: roster data and the sync endpoints.
NO_STORE_PREFIXES = ("/v1/", "/sync", "/ui/")
# The console's pages load only the app's own files, run no inline script and may not be
# framed by another site (its forms approve and start syncs).
CONSOLE_PREFIX = "/ui/"
CONSOLE_HEADERS = (
    (
        b"content-security-policy",
        b"default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    ),
    (b"x-frame-options", b"DENY"),
)


async def send_problem(
    send: Send, scope: Scope, status: int, title: str, detail: str, *, close: bool = False
) -> None:
    """Answer with a problem document from middleware (no `Request` exists there)."""
    body = orjson.dumps(
        {
            "type": "about:blank",
            "title": title,
            "status": status,
            "detail": detail,
            "instance": scope.get("path", ""),
        }
    )
    headers = [
        (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    if close:
        # The rest of the body is never read: the connection cannot carry another request.
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _BodyRefused(Exception):
    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


class BodyLimitMiddleware:
    """Refuse request bodies over `max_bytes` (413) or slower than `timeout_seconds` (408)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, timeout_seconds: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_seconds = timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        length = headers.get("content-length")
        if length is None and "transfer-encoding" not in headers:
            await self.app(scope, receive, send)  # no body announced: nothing to bound
            return
        try:
            if length is not None and not length.isdigit():
                raise _BodyRefused(400, "Bad Request", "Content-Length is not a number of bytes.")
            if length is not None and int(length) > self.max_bytes:
                raise self._too_large()
            async with asyncio.timeout(self.timeout_seconds):
                body = await self._read(receive)
        except _BodyRefused as refused:
            await send_problem(
                send, scope, refused.status, refused.title, refused.detail, close=True
            )
            return
        except TimeoutError:
            await send_problem(
                send,
                scope,
                408,
                "Request Timeout",
                f"The request body took longer than {self.timeout_seconds:g} s to arrive.",
                close=True,
            )
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _BodyRefused(400, "Bad Request", "The client left before its body ended.")
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise self._too_large()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _too_large(self) -> _BodyRefused:
        return _BodyRefused(
            413, "Content Too Large", f"Request bodies are limited to {self.max_bytes} bytes."
        )


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that delivers the body already read, then waits for the disconnect."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class SecurityHeadersMiddleware:
    """`nosniff` on every response; `no-store` on roster data and its errors; a content
    security policy that forbids framing on the console's pages."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        no_store = scope["path"].startswith(NO_STORE_PREFIXES)
        console = scope["path"].startswith(CONSOLE_PREFIX)
        replaced = {b"x-content-type-options"}
        if no_store:
            replaced.add(b"cache-control")
        if console:
            replaced |= {name for name, _ in CONSOLE_HEADERS}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if name.lower() not in replaced
                ]
                headers.append((b"x-content-type-options", b"nosniff"))
                if no_store:
                    headers.append((b"cache-control", b"no-store"))
                if console:
                    headers.extend(CONSOLE_HEADERS)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)

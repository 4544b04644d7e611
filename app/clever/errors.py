"""Errors raised by the Clever client.

Every error names the request that failed (method and path with query) and the HTTP
status when there was one. None of them ever holds a token: requests carry credentials
in headers, and the path is taken from the URL only.
"""

from __future__ import annotations

from typing import Any


class CleverError(Exception):
    """Base of every error the Clever client raises.

    Attributes:
        method: HTTP method of the failed request (`GET`).
        path: path and query of the failed request (`/v3.0/users?limit=100`).
        status: HTTP status of the last answer, or None when there was none (timeout,
            connection error).
    """

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        path: str = "",
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.method = method
        self.path = path
        self.status = status

    def __str__(self) -> str:
        request = f"{self.method} {self.path}".strip()
        status = f" -> {self.status}" if self.status is not None else ""
        return f"{self.message} ({request}{status})" if request else self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, method={self.method!r}, "
            f"path={self.path!r}, status={self.status!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments are lost by the default exception pickling, and arq
        # pickles the exceptions of failed jobs.
        return (type(self), (self.message,), self.__dict__.copy())


class CleverAuthError(CleverError):
    """Clever answered 401: the token (or the app's client credentials) was rejected.

    A sync cannot go on with this token; the message reads
    `token rejected for district <district id or 'unknown'>`.
    """


class CleverRequestError(CleverError):
    """A permanent failure that retrying cannot fix.

    Clever answered 400, 413, 501 or another unexpected status, or sent an answer the
    client cannot follow (a paging link to another host, a paging loop, a body of the
    wrong shape). These point at a bug, on our side or Clever's.
    """


class CleverTransientError(CleverError):
    """Clever kept failing (5xx, 429, timeouts, connection errors, undecodable bodies)
    until the retry budget was spent. Trying the whole operation again later may succeed.

    Attributes:
        attempts: how many requests were made before giving up.
    """

    attempts: int = 0


class CleverEventsUnavailable(CleverError):
    """The events endpoint cannot serve this district: the `starting_after` cursor is
    unknown or expired (404), or events are not enabled for the district (403).

    The sync answers this by falling back to a full sync.
    """

"""Injected faults, rate limiting and per-district request counts for `/v3.x` requests.

Faults are counted per district: with `rate_limit_every=5`, every fifth request made with a
district's token is answered 429, whatever the route. The middleware is plain ASGI so it can
do what a framework response cannot: cut a body short, or drop the connection unanswered.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from sandbox.district import SandboxDistrict

API_PREFIXES = ("/v3.0/", "/v3.1/")


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """Which faults to inject; every `*_every` counts a district's requests (0 disables)."""

    latency_ms: float = 0.0
    rate_limit_every: int = 0
    rate_limit_reset_seconds: float = 1.0
    retry_after: bool = False
    error_every: int = 0
    error_burst: int = 1
    error_statuses: tuple[int, ...] = (500, 502, 503)
    truncate_every: int = 0
    drop_every: int = 0
    revoked_districts: frozenset[str] = frozenset()
    requests_per_minute: int = 1200
    enforce_rate_limit: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (what `GET /sandbox/faults` shows)."""
        data = asdict(self)
        data["error_statuses"] = list(self.error_statuses)
        data["revoked_districts"] = sorted(self.revoked_districts)
        return data

    def merged(self, changes: Mapping[str, Any]) -> FaultConfig:
        """A copy with some settings changed; unknown names raise ValueError."""
        known = {item.name for item in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown fault settings: {', '.join(sorted(unknown))}")
        values = dict(changes)
        if "error_statuses" in values:
            values["error_statuses"] = tuple(int(code) for code in values["error_statuses"])
        if "revoked_districts" in values:
            values["revoked_districts"] = frozenset(values["revoked_districts"])
        updated = replace(self, **values)
        if updated.error_burst < 1 or not updated.error_statuses:
            raise ValueError("error_burst must be >= 1 and error_statuses non-empty")
        return updated


DROP, ERROR, RATE_LIMIT, TRUNCATE = "drop", "error", "rate_limit", "truncate"


def planned_fault(config: FaultConfig, request_number: int) -> tuple[str, int] | None:
    """The fault (kind, HTTP status) for a district's `request_number`-th request (1-based).

    Errors come in bursts: the last `error_burst` requests of every `error_every` fail,
    cycling through `error_statuses`. When several faults fall on one request the first of
    drop, error, rate limit, truncation wins.
    """
    n = request_number
    if config.drop_every and n % config.drop_every == 0:
        return DROP, 0
    if config.error_every:
        position = (n - 1) % config.error_every
        first_failing = config.error_every - min(config.error_burst, config.error_every)
        if position >= first_failing:
            statuses = config.error_statuses
            return ERROR, statuses[(position - first_failing) % len(statuses)]
    if config.rate_limit_every and n % config.rate_limit_every == 0:
        return RATE_LIMIT, 429
    if config.truncate_every and n % config.truncate_every == 0:
        return TRUNCATE, 200
    return None


@dataclass
class DistrictStats:
    """Requests served for one district (or for requests without a valid token)."""

    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    window_start: float = 0.0
    window_requests: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "requests": self.requests,
            "statuses": {str(code): count for code, count in sorted(self.statuses.items())},
            "faults": dict(self.faults),
        }


class ConnectionDropped(Exception):
    """Raised to drop a connection when the server gives no way to close it silently."""


class RequestStats:
    """Thread-safe per-district request counters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stats: dict[str, DistrictStats] = {}

    def begin(self, key: str, now: float) -> tuple[DistrictStats, int, int]:
        """Count a request; returns its stats, its number and the requests in this minute."""
        with self._lock:
            stats = self._stats.setdefault(key, DistrictStats())
            stats.requests += 1
            if now - stats.window_start >= 60:
                stats.window_start = now
                stats.window_requests = 0
            stats.window_requests += 1
            return stats, stats.requests, stats.window_requests

    def finish(self, stats: DistrictStats, status: int, fault: str | None) -> None:
        """Record how a request was answered."""
        with self._lock:
            stats.statuses[status] += 1
            if fault:
                stats.faults[fault] += 1

    def snapshot(self) -> dict[str, Any]:
        """Every district's counters, plus the total."""
        with self._lock:
            return {
                "total": sum(stats.requests for stats in self._stats.values()),
                "districts": {key: stats.to_dict() for key, stats in self._stats.items()},
            }

    def requests(self, key: str) -> int:
        """Requests counted for one district id."""
        with self._lock:
            stats = self._stats.get(key)
            return stats.requests if stats else 0

    def reset(self) -> None:
        """Forget every counter (fault schedules restart from request 1)."""
        with self._lock:
            self._stats.clear()


UNAUTHENTICATED = "unauthenticated"


def bearer_token(scope: Scope) -> str | None:
    """The bearer token of a request, if any."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


async def _send_json(send: Send, status: int, body: Mapping[str, Any], headers: list[Any]) -> None:
    payload = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


async def _drop_connection(receive: Receive) -> None:
    """Close the client's connection without a byte of response.

    Uvicorn's `receive` is a method of its per-request cycle, which holds the transport;
    aborting it is exactly a dropped connection. Waiting for the disconnect it causes stops
    uvicorn from answering 500 for us afterwards.
    """
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    if transport is None or not hasattr(transport, "abort"):
        raise ConnectionDropped("connection dropped by the sandbox")
    transport.abort()
    while (await receive())["type"] != "http.disconnect":
        pass


class FaultMiddleware:
    """Counts `/v3.x` requests per district and injects the configured faults."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        district_for_token: Callable[[str | None], SandboxDistrict | None],
        faults: Callable[[], FaultConfig],
        stats: RequestStats,
    ) -> None:
        self.app = app
        self._district_for_token = district_for_token
        self._faults = faults
        self.stats = stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIXES):
            await self.app(scope, receive, send)
            return
        config = self._faults()
        district = self._district_for_token(bearer_token(scope))
        now = time.time()
        key = district.id if district else UNAUTHENTICATED
        stats, number, in_window = self.stats.begin(key, now)
        if config.latency_ms > 0:
            await asyncio.sleep(config.latency_ms / 1000)

        limit = config.requests_per_minute
        reset_at = int(stats.window_start + 60)
        remaining = max(0, limit - in_window)
        fault = None
        if district is not None and district.id not in config.revoked_districts:
            fault = planned_fault(config, number)
            if fault is None and config.enforce_rate_limit and in_window > limit:
                fault = RATE_LIMIT, 429
        if fault and fault[0] == RATE_LIMIT:
            remaining = 0
            if config.rate_limit_every and not (config.enforce_rate_limit and in_window > limit):
                reset_at = int(now + config.rate_limit_reset_seconds)
        rate_headers = [
            (b"x-ratelimit-limit", str(limit).encode()),
            (b"x-ratelimit-remaining", str(remaining).encode()),
            (b"x-ratelimit-reset", str(reset_at).encode()),
        ]

        if district is not None and district.id in config.revoked_districts:
            self.stats.finish(stats, 401, "revoked")
            await _send_json(send, 401, {"message": "invalid or revoked token"}, rate_headers)
            return
        if fault is None:
            await self.app(scope, receive, self._recording(send, stats, rate_headers))
            return
        kind, status = fault
        self.stats.finish(stats, status, kind)
        if kind == DROP:
            await _drop_connection(receive)
        elif kind == ERROR:
            await _send_json(send, status, {"message": "internal error"}, rate_headers)
        elif kind == RATE_LIMIT:
            headers = list(rate_headers)
            if config.retry_after:
                wait = max(0, math.ceil(reset_at - now))
                headers.append((b"retry-after", str(wait).encode()))
            await _send_json(send, 429, {"message": "rate limit exceeded"}, headers)
        else:
            await self.app(scope, receive, self._truncating(send, rate_headers))

    def _recording(self, send: Send, stats: DistrictStats, headers: list[Any]) -> Send:
        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.stats.finish(stats, message["status"], None)
                message = {**message, "headers": [*message.get("headers", ()), *headers]}
            await send(message)

        return wrapped

    @staticmethod
    def _truncating(send: Send, headers: list[Any]) -> Send:
        """Pass the response on with only the first half of its body."""
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = b"".join(chunks)
            cut = body[: max(1, len(body) // 2)]
            kept = [
                (name, value)
                for name, value in start.get("headers", ())
                if name.lower() != b"content-length"
            ]
            await send(
                {
                    **start,
                    "headers": [*kept, (b"content-length", str(len(cut)).encode()), *headers],
                }
            )
            await send({"type": "http.response.body", "body": cut})

        return wrapped

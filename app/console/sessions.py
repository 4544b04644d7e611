"""Console sessions: the only writer of `roster:console:session:*` in Redis.

Signing in with an API key makes a session: a random id sent as an `HttpOnly`,
`SameSite=Strict` cookie (`Secure` over TLS), its CSRF token, and the id of the key it
was opened with. Redis keeps the session under a digest of its id, so neither the key nor
the cookie's value is stored. Every request checks the key again: a key revoked or expired
ends its sessions at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass

import orjson
from arq.connections import ArqRedis

COOKIE = "roster_console"
# The login form's CSRF token, before there is a session to hold one.
LOGIN_COOKIE = "roster_console_login"
_PREFIX = "roster:console:session:"


@dataclass(frozen=True)
class ConsoleSession:
    key_id: uuid.UUID
    csrf_token: str


def new_token() -> str:
    return secrets.token_urlsafe(32)


def same_token(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison; a missing token never matches."""
    return bool(given and expected) and hmac.compare_digest(str(given), str(expected))


def _redis_key(session_id: str) -> str:
    return _PREFIX + hashlib.sha256(session_id.encode()).hexdigest()


async def open_session(redis: ArqRedis, key_id: uuid.UUID, *, ttl_seconds: int) -> str:
    """A new session for the key; returns its id (the cookie's value)."""
    session_id = new_token()
    value = orjson.dumps({"key_id": str(key_id), "csrf_token": new_token()})
    await redis.set(_redis_key(session_id), value, ex=ttl_seconds)
    return session_id


async def find_session(redis: ArqRedis, session_id: str | None) -> ConsoleSession | None:
    if not session_id:
        return None
    value = await redis.get(_redis_key(session_id))
    if value is None:
        return None
    stored = orjson.loads(value)
    return ConsoleSession(uuid.UUID(stored["key_id"]), stored["csrf_token"])


async def close_session(redis: ArqRedis, session_id: str | None) -> None:
    if session_id:
        await redis.delete(_redis_key(session_id))

"""API keys: created once, stored as a SHA-256 digest, looked up by the digest."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import asyncpg

KEY_PREFIX = "rk_"
# Characters of a key shown in listings: enough to recognise it, far too few to use it.
SHOWN_CHARACTERS = 10


class Scope(StrEnum):
    READ = "roster:read"
    # Local edits: overrides, custom groups, people links.
    WRITE = "roster:write"
    SENSITIVE = "roster:sensitive"
    SYNC_WRITE = "sync:write"
    ADMIN = "admin"


@dataclass(frozen=True)
class ApiKeyInfo:
    """What a listing shows of a key (never the secret)."""

    id: uuid.UUID
    name: str
    prefix: str
    scopes: tuple[str, ...]
    district_ids: tuple[str, ...] | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class CreatedKey:
    info: ApiKeyInfo
    # The only time the key exists outside the caller's hands.
    secret: str


def digest(secret: str) -> bytes:
    """Keys are random 256-bit strings, so a plain SHA-256 is enough (no slow KDF needed)."""
    return hashlib.sha256(secret.encode()).digest()


def _info(record: asyncpg.Record) -> ApiKeyInfo:
    districts = record["district_ids"]
    return ApiKeyInfo(
        id=record["id"],
        name=record["name"],
        prefix=record["prefix"],
        scopes=tuple(record["scopes"]),
        district_ids=tuple(districts) if districts is not None else None,
        created_at=record["created_at"],
        last_used_at=record["last_used_at"],
        revoked_at=record["revoked_at"],
    )


async def create_key(
    connection: asyncpg.Connection,
    *,
    name: str,
    scopes: Sequence[Scope],
    district_ids: Sequence[str] | None = None,
) -> CreatedKey:
    """Store a new key; `district_ids` None lets it see every district."""
    if not name.strip():
        raise ValueError("a key needs a name")
    if not scopes:
        raise ValueError("a key needs at least one scope")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    record = await connection.fetchrow(
        "INSERT INTO api_keys (id, name, prefix, secret_hash, scopes, district_ids)"
        " VALUES ($1, $2, $3, $4, $5, $6) RETURNING *",
        uuid.uuid4(),
        name.strip(),
        secret[:SHOWN_CHARACTERS],
        digest(secret),
        sorted({Scope(scope).value for scope in scopes}),
        sorted(set(district_ids)) if district_ids is not None else None,
    )
    assert record is not None
    return CreatedKey(_info(record), secret)


async def list_keys(connection: asyncpg.Connection) -> list[ApiKeyInfo]:
    records = await connection.fetch("SELECT * FROM api_keys ORDER BY created_at, id")
    return [_info(record) for record in records]


async def revoke_key(connection: asyncpg.Connection, key: str) -> ApiKeyInfo | None:
    """Revoke a key by id, or by the prefix shown in listings when it is unambiguous."""
    try:
        key_id: uuid.UUID | None = uuid.UUID(key)
    except ValueError:
        key_id = None
    records = await connection.fetch(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())"
        " WHERE id = $1"
        "    OR (prefix = $2 AND (SELECT count(*) FROM api_keys WHERE prefix = $2) = 1)"
        " RETURNING *",
        key_id,
        key,
    )
    return _info(records[0]) if records else None


@dataclass(frozen=True)
class KeyGrant:
    """What a presented key may do."""

    key_id: uuid.UUID
    name: str
    scopes: frozenset[str]
    district_ids: frozenset[str] | None


async def find_key(connection: asyncpg.Connection, secret: str) -> KeyGrant | None:
    """The grant of an unrevoked key. Its `last_used_at` is kept to the minute: written only
    when older, so a busy key does not update its row on every lookup."""
    record = await connection.fetchrow(
        "SELECT id, name, scopes, district_ids,"
        " last_used_at IS NULL OR last_used_at < now() - interval '1 minute' AS stale"
        " FROM api_keys WHERE secret_hash = $1 AND revoked_at IS NULL",
        digest(secret),
    )
    if record is None:
        return None
    if record["stale"]:
        await connection.execute(
            "UPDATE api_keys SET last_used_at = now() WHERE id = $1", record["id"]
        )
    districts = record["district_ids"]
    return KeyGrant(
        key_id=record["id"],
        name=record["name"],
        scopes=frozenset(record["scopes"]),
        district_ids=frozenset(districts) if districts is not None else None,
    )

"""API keys: created once, stored as a SHA-256 digest, looked up by the digest.

A key may expire (`expires_at`); rotating one issues a successor with the same name, scopes
and districts, and lets the old key live on for a grace period, so its clients can move over
without an outage.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import asyncpg

KEY_PREFIX = "rk_"
# Characters of a key shown in listings: enough to recognise it, far too few to use it.
SHOWN_CHARACTERS = 10
_DURATION = re.compile(r"(\d{1,6})([mhdw])")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class Scope(StrEnum):
    READ = "roster:read"
    # Local edits: overrides, custom groups, people links.
    WRITE = "roster:write"
    SENSITIVE = "roster:sensitive"
    SYNC_WRITE = "sync:write"
    # The operator console (`/ui`): every district's syncs and warnings, without SQL.
    CONSOLE = "console"
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
    expires_at: datetime | None
    replaced_by: uuid.UUID | None


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
        expires_at=record["expires_at"],
        replaced_by=record["replaced_by"],
    )


def parse_duration(text: str) -> timedelta:
    """`90d`, `12h`, `30m` or `2w` as a timedelta; ValueError for anything else."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or int(match[1]) == 0:
        raise ValueError(f"{text!r} is not a duration such as 90d, 12h, 30m or 2w")
    return timedelta(seconds=int(match[1]) * _UNIT_SECONDS[match[2]])


async def create_key(
    connection: asyncpg.Connection,
    *,
    name: str,
    scopes: Sequence[Scope],
    district_ids: Sequence[str] | None = None,
    expires_in: timedelta | None = None,
) -> CreatedKey:
    """Store a new key; `district_ids` None lets it see every district, `expires_in` None
    lets it live until revoked."""
    if not name.strip():
        raise ValueError("a key needs a name")
    if not scopes:
        raise ValueError("a key needs at least one scope")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    record = await connection.fetchrow(
        "INSERT INTO api_keys (id, name, prefix, secret_hash, scopes, district_ids, expires_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, now() + $7) RETURNING *",
        uuid.uuid4(),
        name.strip(),
        secret[:SHOWN_CHARACTERS],
        digest(secret),
        sorted({Scope(scope).value for scope in scopes}),
        sorted(set(district_ids)) if district_ids is not None else None,
        expires_in,
    )
    assert record is not None
    return CreatedKey(_info(record), secret)


class RotationError(Exception):
    """The key cannot be rotated; the message says why."""


async def rotate_key(
    connection: asyncpg.Connection,
    key: str,
    *,
    grace: timedelta,
    expires_in: timedelta | None = None,
) -> tuple[ApiKeyInfo, CreatedKey]:
    """Issue a successor of `key` (id or unique prefix) and let `key` expire after `grace`.

    The successor has the key's name, scopes and districts. Its lifetime is `expires_in`,
    or else the old key's (created to expires), so a 90-day key is succeeded by one. Returns
    the old key as it now is, and the successor with its secret.
    """
    async with connection.transaction():
        old = await _find_for_update(connection, key)
        if old is None:
            raise RotationError(f"no key with id or unique prefix {key!r}")
        if old["revoked_at"] is not None:
            raise RotationError(f"key {old['id']} is revoked")
        if old["replaced_by"] is not None:
            raise RotationError(f"key {old['id']} was rotated already, to {old['replaced_by']}")
        if old["expired"]:
            raise RotationError(f"key {old['id']} has expired")
        lifetime = expires_in
        if lifetime is None and old["expires_at"] is not None:
            lifetime = old["expires_at"] - old["created_at"]
        successor = await create_key(
            connection,
            name=old["name"],
            scopes=[Scope(scope) for scope in old["scopes"]],
            district_ids=old["district_ids"],
            expires_in=lifetime,
        )
        record = await connection.fetchrow(
            "UPDATE api_keys SET replaced_by = $2,"
            " expires_at = least(coalesce(expires_at, 'infinity'), now() + $3)"
            " WHERE id = $1 RETURNING *",
            old["id"],
            successor.info.id,
            grace,
        )
    assert record is not None
    return _info(record), successor


async def _find_for_update(connection: asyncpg.Connection, key: str) -> asyncpg.Record | None:
    """The key with this id, this secret, or this prefix when only one key has it, locked."""
    return await connection.fetchrow(
        "SELECT *, expires_at <= now() AS expired FROM api_keys"
        " WHERE id = $1 OR secret_hash = $3"
        "    OR (prefix = $2 AND (SELECT count(*) FROM api_keys WHERE prefix = $2) = 1)"
        " FOR UPDATE",
        _as_uuid(key),
        key,
        digest(key),
    )


def _as_uuid(key: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(key)
    except ValueError:
        return None


async def list_keys(connection: asyncpg.Connection) -> list[ApiKeyInfo]:
    records = await connection.fetch("SELECT * FROM api_keys ORDER BY created_at, id")
    return [_info(record) for record in records]


@dataclass(frozen=True)
class Revocation:
    key: ApiKeyInfo
    # Revoked before this call: the revocation changed nothing.
    already: bool


async def revoke_key(connection: asyncpg.Connection, key: str) -> Revocation | None:
    """Revoke a key by id, by its secret, or by the prefix shown in listings when it is
    unambiguous. A key revoked already keeps the time it was first revoked."""
    async with connection.transaction():
        found = await _find_for_update(connection, key)
        if found is None:
            return None
        if found["revoked_at"] is not None:
            return Revocation(_info(found), already=True)
        record = await connection.fetchrow(
            "UPDATE api_keys SET revoked_at = now() WHERE id = $1 RETURNING *", found["id"]
        )
    assert record is not None
    return Revocation(_info(record), already=False)


@dataclass(frozen=True)
class KeyGrant:
    """What a presented key may do."""

    key_id: uuid.UUID
    name: str
    scopes: frozenset[str]
    district_ids: frozenset[str] | None
    # When the key stops working (a cached grant is checked against it on every use).
    expires_at: datetime | None = None


_GRANT_COLUMNS = (
    "id, name, scopes, district_ids, expires_at,"
    " last_used_at IS NULL OR last_used_at < now() - interval '1 minute' AS stale"
)
_USABLE = "revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())"


async def find_key(connection: asyncpg.Connection, secret: str) -> KeyGrant | None:
    """The grant of a key neither revoked nor expired. Its `last_used_at` is kept to the
    minute: written only when older, so a busy key does not update its row on every lookup."""
    record = await connection.fetchrow(
        f"SELECT {_GRANT_COLUMNS} FROM api_keys WHERE secret_hash = $1 AND {_USABLE}",
        digest(secret),
    )
    return await _grant(connection, record)


async def find_key_by_id(connection: asyncpg.Connection, key_id: uuid.UUID) -> KeyGrant | None:
    """As `find_key`, for a key known by its id (a console session's)."""
    record = await connection.fetchrow(
        f"SELECT {_GRANT_COLUMNS} FROM api_keys WHERE id = $1 AND {_USABLE}", key_id
    )
    return await _grant(connection, record)


async def _grant(connection: asyncpg.Connection, record: asyncpg.Record | None) -> KeyGrant | None:
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
        expires_at=record["expires_at"],
    )

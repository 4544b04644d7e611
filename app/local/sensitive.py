"""Whether a district's sensitive student fields are kept: the only writer of
`districts.sensitive_fields_enabled`, and of the erasure that disabling it means.

A district's flag is recorded at its first sync from `SENSITIVE_FIELDS_ENABLED`; after that
only an administrator changes it. Disabling erases every stored value (the `sensitive`
column and the fields in the raw record) in the same transaction. A sync that staged its
batch while the fields were enabled checks the flag again in its merge transaction, so a
district disabled mid-run keeps nothing either.
"""

from __future__ import annotations

import asyncpg

from app.sync.normalize import SENSITIVE_STUDENT_FIELDS

_FIELDS = "ARRAY[" + ", ".join(f"'{name}'" for name in SENSITIVE_STUDENT_FIELDS) + "]"
_WITHOUT_FIELDS = "raw" + "".join(
    f" #- '{{roles,student,{name}}}'" for name in SENSITIVE_STUDENT_FIELDS
)


async def set_enabled(connection: asyncpg.Connection, district_id: str, enabled: bool) -> bool:
    """Enable or disable the district's sensitive fields (False: no such district).
    Disabling erases what is stored; enabling keeps them from the next sync on."""
    async with connection.transaction():
        found = await connection.fetchval(
            "UPDATE districts SET sensitive_fields_enabled = $2 WHERE id = $1 RETURNING true",
            district_id,
            enabled,
        )
        if found and not enabled:
            await erase(connection, district_id)
    return bool(found)


async def erase(connection: asyncpg.Connection, district_id: str) -> int:
    """Remove every sensitive value of the district's users; how many users held one.

    Their content hash is cleared, so the next sync writes them from Clever afresh.
    """
    status = await connection.execute(
        f"""
        UPDATE users SET sensitive = NULL, raw = {_WITHOUT_FIELDS}, content_hash = NULL,
               updated_at = now()
        WHERE district_id = $1
          AND (sensitive IS NOT NULL OR raw -> 'roles' -> 'student' ?| {_FIELDS})
        """,
        district_id,
    )
    return int(status.rsplit(" ", 1)[-1])


async def hold_flag(connection: asyncpg.Connection, district_id: str) -> None:
    """First in a sync's merge transaction: the flag cannot change until it commits, and a
    change under way is waited for.

    Without it a disable could erase, the merge then write users the erase did not touch
    and read the flag before the disable committed: those users would keep their values.
    """
    await connection.execute("SELECT FROM districts WHERE id = $1 FOR SHARE", district_id)


async def settle_after_merge(
    connection: asyncpg.Connection, district_id: str, *, staged_with: bool, default: bool
) -> None:
    """Last in a sync's merge transaction (after `hold_flag`): record a new district's flag
    (`default`, from SENSITIVE_FIELDS_ENABLED), and erase what the batch brought if it was
    staged with the fields (`staged_with`) but the district does not keep them."""
    flag = await connection.fetchval(
        "SELECT sensitive_fields_enabled FROM districts WHERE id = $1", district_id
    )
    if flag is None:
        flag = default
        await connection.execute(
            "UPDATE districts SET sensitive_fields_enabled = $2 WHERE id = $1", district_id, flag
        )
    if staged_with and not flag:
        await erase(connection, district_id)

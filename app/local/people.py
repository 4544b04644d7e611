"""People across roles: the only writer of `people` and `person_links`.

A district's teacher, staff and district-admin records that share one valid normalized email
are one person. Students and contacts are never linked (Clever: their ids and emails must not
be merged), so a record with either role has no person. Every other record has one, alone if
its email is missing or invalid.

`link` runs in each sync's merge transaction. A person keeps its id while its records keep
their email; a record whose email changed moves to the person of its new email (and, if it
was its person's only record, takes the person along). Such a move leaves a
`person_link_changed` warning. Linking and corrections of one district take turns (an
advisory lock held to the end of their transaction).

Administrators correct links (`split`, `merge`); those links are `pinned` and syncs leave
them as they are.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

LINKED_ROLES = ("teacher", "staff", "district_admin")
NEVER_LINKED_ROLES = ("student", "contact")
LINK_CHANGED = "person_link_changed"

# SQL: the user `u` may have a person.
ELIGIBLE = (
    f"u.roles && ARRAY{list(LINKED_ROLES)}::text[]"
    f" AND NOT u.roles && ARRAY{list(NEVER_LINKED_ROLES)}::text[]"
)


@dataclass(frozen=True)
class LinkChange:
    """A record that moved to another person: the warning's record and detail."""

    user_id: str
    detail: str


class PeopleError(Exception):
    """A correction that cannot be made (the API answers 422 with the message)."""


class UnknownUser(Exception):
    """A user id that no record the caller may see has (the API answers 404)."""


async def _lock(connection: asyncpg.Connection, district_id: str) -> None:
    """Serialise the district's linking and corrections until the transaction ends."""
    await connection.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"roster:people:{district_id}"
    )


async def link(connection: asyncpg.Connection, district_id: str) -> list[LinkChange]:
    """Bring the district's automatic links up to date; the records that moved. Run in a
    transaction (the district's people are locked until it ends)."""
    await _lock(connection, district_id)
    rows = await connection.fetch(
        f"""
        SELECT u.id, CASE WHEN u.email_valid THEN u.email_normalized END AS email,
               pl.person_id, pl.pinned
        FROM users u
        LEFT JOIN person_links pl ON pl.user_id = u.id AND pl.district_id = u.district_id
        WHERE u.district_id = $1 AND u.deleted_at IS NULL AND {ELIGIBLE}
        ORDER BY u.id
        """,
        district_id,
    )
    people = await connection.fetch(
        "SELECT p.id, p.email, (SELECT count(*) FROM person_links pl WHERE pl.person_id = p.id)"
        " AS links FROM people p WHERE p.district_id = $1",
        district_id,
    )
    by_email: dict[str, uuid.UUID] = {r["email"]: r["id"] for r in people if r["email"]}
    email_of: dict[uuid.UUID, str | None] = {r["id"]: r["email"] for r in people}
    # Every record a person has, deactivated and pinned ones included.
    links: Counter[uuid.UUID] = Counter({r["id"]: r["links"] for r in people})
    rekeyed: dict[uuid.UUID, str | None] = {}
    new_people: list[tuple[uuid.UUID, str | None]] = []
    moved: list[tuple[str, uuid.UUID]] = []
    changes: list[LinkChange] = []
    for row in rows:
        if row["pinned"]:
            continue
        current: uuid.UUID | None = row["person_id"]
        email: str | None = row["email"]
        if email is not None and email in by_email:
            target = by_email[email]
        elif current is not None and links[current] == 1:
            # Alone on its person: the record takes it along to its new email (or none).
            target = current
            old = email_of[current]
            if old is not None and by_email.get(old) == current:
                del by_email[old]
            email_of[current] = rekeyed[current] = email
            if email is not None:
                by_email[email] = current
        else:
            target = uuid.uuid4()
            new_people.append((target, email))
            email_of[target] = email
            if email is not None:
                by_email[email] = target
        if target == current:
            continue
        moved.append((row["id"], target))
        links[target] += 1
        if current is not None:
            links[current] -= 1
            changes.append(
                LinkChange(
                    row["id"],
                    f"linked to person {target} by email {email!r} (was person {current})"
                    if email
                    else f"no longer linked by email to person {current}",
                )
            )
    # Emails move in two steps, so that two people trading places never share one.
    await connection.executemany(
        "UPDATE people SET email = NULL WHERE id = $1", [(person,) for person in rekeyed]
    )
    await connection.executemany(
        "UPDATE people SET email = $2 WHERE id = $1 AND $2::text IS NOT NULL",
        list(rekeyed.items()),
    )
    await connection.executemany(
        "INSERT INTO people (id, district_id, email) VALUES ($1, $2, $3)",
        [(person, district_id, email) for person, email in new_people],
    )
    await _set_links(connection, district_id, moved, pinned=False)
    # Records that may no longer have a person (they became a student or contact).
    await connection.execute(
        """
        DELETE FROM person_links pl USING users u
        WHERE pl.district_id = $1 AND u.id = pl.user_id AND u.district_id = pl.district_id
          AND u.roles && $2::text[]
        """,
        district_id,
        list(NEVER_LINKED_ROLES),
    )
    return changes


async def _set_links(
    connection: asyncpg.Connection,
    district_id: str,
    links: Sequence[tuple[str, uuid.UUID]],
    *,
    pinned: bool,
) -> None:
    await connection.executemany(
        """
        INSERT INTO person_links (user_id, district_id, person_id, pinned) VALUES ($1, $2, $3, $4)
        ON CONFLICT (user_id) DO UPDATE
        SET person_id = EXCLUDED.person_id, pinned = EXCLUDED.pinned, linked_at = now()
        """,
        [(user_id, district_id, person, pinned) for user_id, person in links],
    )


async def person_of(
    connection: asyncpg.Connection, record_id: str, district_ids: list[str] | None
) -> asyncpg.Record | None:
    """(id, district_id) of the person with this id, or of the user with this id, among the
    districts (None: any)."""
    try:
        person_id: uuid.UUID | None = uuid.UUID(record_id)
    except ValueError:
        person_id = None
    row: asyncpg.Record | None = await connection.fetchrow(
        """
        SELECT p.id, p.district_id FROM people p
        WHERE (p.id = $1 OR p.id = (SELECT person_id FROM person_links WHERE user_id = $2))
          AND ($3::text[] IS NULL OR p.district_id = ANY($3::text[]))
        """,
        person_id,
        record_id,
        district_ids,
    )
    return row


async def _eligible(
    connection: asyncpg.Connection, district_id: str, user_ids: Sequence[str]
) -> None:
    found = {
        row["id"]
        for row in await connection.fetch(
            f"SELECT u.id FROM users u WHERE u.id = ANY($1::text[]) AND u.district_id = $2"
            f" AND u.deleted_at IS NULL AND {ELIGIBLE}",
            list(user_ids),
            district_id,
        )
    }
    if missing := [user_id for user_id in user_ids if user_id not in found]:
        raise PeopleError(
            "not teacher, staff or district-admin records of the person's district "
            f"(students and contacts are never linked): {', '.join(map(repr, missing[:10]))}"
        )


async def split(
    connection: asyncpg.Connection, person_id: uuid.UUID, district_id: str, user_id: str
) -> uuid.UUID:
    """Take a record out of its person into a person of its own, for good (pinned)."""
    await _lock(connection, district_id)
    member = await connection.fetchval(
        "SELECT true FROM person_links WHERE user_id = $1 AND person_id = $2", user_id, person_id
    )
    if not member:
        raise PeopleError(f"{user_id!r} is not a record of person {person_id}")
    others = await connection.fetchval(
        "SELECT count(*) FROM person_links WHERE person_id = $1 AND user_id <> $2",
        person_id,
        user_id,
    )
    if not others:
        raise PeopleError(f"{user_id!r} is the only record of person {person_id}")
    alone = uuid.uuid4()
    await connection.execute(
        "INSERT INTO people (id, district_id) VALUES ($1, $2)", alone, district_id
    )
    await _set_links(connection, district_id, [(user_id, alone)], pinned=True)
    return alone


async def merge(
    connection: asyncpg.Connection, district_ids: list[str] | None, user_ids: Sequence[str]
) -> uuid.UUID:
    """Make the records one person, for good (pinned): the person of the first record."""
    rows = await connection.fetch(
        "SELECT id, district_id FROM users WHERE id = ANY($1::text[])"
        " AND ($2::text[] IS NULL OR district_id = ANY($2::text[]))",
        list(user_ids),
        district_ids,
    )
    found = {row["id"]: row["district_id"] for row in rows}
    if missing := [user_id for user_id in user_ids if user_id not in found]:
        raise UnknownUser(missing[0])
    if len(set(found.values())) != 1:
        raise PeopleError("user_ids must be records of one district")
    district_id = found[user_ids[0]]
    await _lock(connection, district_id)
    await _eligible(connection, district_id, user_ids)
    target: uuid.UUID | None = await connection.fetchval(
        "SELECT person_id FROM person_links WHERE user_id = $1", user_ids[0]
    )
    if target is None:  # not linked yet (the district has not been synced since)
        target = uuid.uuid4()
        await connection.execute(
            "INSERT INTO people (id, district_id) VALUES ($1, $2)", target, district_id
        )
    await _set_links(connection, district_id, [(u, target) for u in user_ids], pinned=True)
    return target

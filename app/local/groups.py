"""Custom groups of a district's students: the only writer of `groups`, `group_members` and
`group_changes`.

A group belongs to one district and is owned by one of its teachers; only students of that
district are members. Syncs never change a group: a member who leaves the section the group
was made from stays, and one whose Clever record is deactivated shows as inactive until it
is restored. Every change is recorded in `group_changes` (who, when, what) in the same
transaction as the change.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg
import orjson


class GroupError(Exception):
    """A request a group cannot take (the API answers 422 with the message)."""


async def _record(
    connection: asyncpg.Connection,
    group_id: uuid.UUID,
    actor: str,
    action: str,
    detail: dict[str, Any],
) -> None:
    await connection.execute(
        "INSERT INTO group_changes (group_id, actor, action, detail) VALUES ($1, $2, $3, $4)",
        group_id,
        actor,
        action,
        orjson.dumps(detail),
    )


async def check_owner(connection: asyncpg.Connection, district_id: str, owner_id: str) -> None:
    """GroupError unless `owner_id` is an active teacher of the district."""
    is_teacher = await connection.fetchval(
        "SELECT true FROM users WHERE id = $1 AND district_id = $2 AND deleted_at IS NULL"
        " AND 'teacher' = ANY(roles)",
        owner_id,
        district_id,
    )
    if not is_teacher:
        raise GroupError(f"owner_id {owner_id!r} is not a teacher of the group's district")


async def check_students(
    connection: asyncpg.Connection, district_id: str, user_ids: Iterable[str]
) -> list[str]:
    """The ids, deduplicated in order; GroupError naming those that are not students of the
    district (another district's ids read as unknown ones)."""
    wanted = list(dict.fromkeys(user_ids))
    found = {
        row["id"]
        for row in await connection.fetch(
            "SELECT id FROM users WHERE id = ANY($1::text[]) AND district_id = $2"
            " AND 'student' = ANY(roles)",
            wanted,
            district_id,
        )
    }
    missing = [user_id for user_id in wanted if user_id not in found]
    if missing:
        shown = ", ".join(repr(user_id) for user_id in missing[:10])
        raise GroupError(f"not students of the group's district: {shown}")
    return wanted


async def section_students(
    connection: asyncpg.Connection, district_id: str, section_id: str
) -> list[str]:
    """The section's current, active students, by last name, first name and id."""
    rows = await connection.fetch(
        """
        SELECT u.id FROM enrollments e
        JOIN users u ON u.id = e.student_id AND u.district_id = e.district_id
        WHERE e.section_id = $1 AND e.district_id = $2 AND e.ended_at IS NULL
          AND u.deleted_at IS NULL
        ORDER BY u.name_last, u.name_first, u.id
        """,
        section_id,
        district_id,
    )
    return [row["id"] for row in rows]


async def teacher_students(
    connection: asyncpg.Connection, district_id: str, teacher_id: str
) -> set[str]:
    """The current students of every active section the teacher teaches."""
    rows = await connection.fetch(
        """
        SELECT DISTINCT e.student_id FROM section_teachers st
        JOIN sections s ON s.id = st.section_id AND s.district_id = st.district_id
             AND s.deleted_at IS NULL
        JOIN enrollments e ON e.section_id = st.section_id AND e.district_id = st.district_id
             AND e.ended_at IS NULL
        WHERE st.teacher_id = $1 AND st.district_id = $2 AND st.deleted_at IS NULL
        """,
        teacher_id,
        district_id,
    )
    return {row["student_id"] for row in rows}


async def create_group(
    connection: asyncpg.Connection,
    *,
    district_id: str,
    name: str,
    owner_id: str,
    member_ids: Sequence[str],
    source_section_id: str | None,
    actor: str,
) -> uuid.UUID:
    """A new group with its members (already checked). Run in the caller's transaction."""
    group_id = uuid.uuid4()
    await connection.execute(
        "INSERT INTO groups (id, district_id, name, owner_id, source_section_id, created_by)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        group_id,
        district_id,
        name,
        owner_id,
        source_section_id,
        actor,
    )
    await _insert_members(connection, group_id, district_id, member_ids, actor)
    detail: dict[str, Any] = {"name": name, "owner_id": owner_id, "member_ids": list(member_ids)}
    if source_section_id is not None:
        detail["source_section_id"] = source_section_id
    await _record(connection, group_id, actor, "created", detail)
    return group_id


async def _insert_members(
    connection: asyncpg.Connection,
    group_id: uuid.UUID,
    district_id: str,
    user_ids: Sequence[str],
    actor: str,
) -> list[str]:
    rows = await connection.fetch(
        """
        INSERT INTO group_members (group_id, user_id, district_id, added_by)
        SELECT $1, user_id, $3, $4 FROM unnest($2::text[]) AS user_id
        ON CONFLICT (group_id, user_id) DO NOTHING
        RETURNING user_id
        """,
        group_id,
        list(user_ids),
        district_id,
        actor,
    )
    added = {row["user_id"] for row in rows}
    return [user_id for user_id in user_ids if user_id in added]


async def lock_group(
    connection: asyncpg.Connection, group_id: uuid.UUID, district_ids: list[str] | None
) -> asyncpg.Record | None:
    """The active group (id, district_id), locked for a change, if the districts (None: any)
    hold it."""
    row: asyncpg.Record | None = await connection.fetchrow(
        "SELECT id, district_id, name FROM groups WHERE id = $1 AND deleted_at IS NULL"
        " AND ($2::text[] IS NULL OR district_id = ANY($2::text[])) FOR UPDATE",
        group_id,
        district_ids,
    )
    return row


async def rename_group(
    connection: asyncpg.Connection, group_id: uuid.UUID, old_name: str, name: str, actor: str
) -> None:
    if name == old_name:
        return
    await connection.execute(
        "UPDATE groups SET name = $2, updated_at = now() WHERE id = $1", group_id, name
    )
    await _record(connection, group_id, actor, "renamed", {"from": old_name, "to": name})


async def delete_group(connection: asyncpg.Connection, group_id: uuid.UUID, actor: str) -> None:
    """Soft delete: the group and its history stay, read only with `include_inactive`."""
    await connection.execute(
        "UPDATE groups SET deleted_at = now(), updated_at = now() WHERE id = $1", group_id
    )
    await _record(connection, group_id, actor, "deleted", {})


async def add_members(
    connection: asyncpg.Connection,
    group_id: uuid.UUID,
    district_id: str,
    user_ids: Sequence[str],
    actor: str,
) -> list[str]:
    """Add students (already checked); the ids that were not members yet."""
    added = await _insert_members(connection, group_id, district_id, user_ids, actor)
    if added:
        await connection.execute("UPDATE groups SET updated_at = now() WHERE id = $1", group_id)
        await _record(connection, group_id, actor, "members_added", {"user_ids": added})
    return added


async def remove_member(
    connection: asyncpg.Connection, group_id: uuid.UUID, user_id: str, actor: str
) -> bool:
    """Remove one member; False when they were not one."""
    removed = await connection.fetchval(
        "DELETE FROM group_members WHERE group_id = $1 AND user_id = $2 RETURNING true",
        group_id,
        user_id,
    )
    if removed:
        await connection.execute("UPDATE groups SET updated_at = now() WHERE id = $1", group_id)
        await _record(connection, group_id, actor, "member_removed", {"user_id": user_id})
    return bool(removed)


def round_robin(student_ids: Sequence[str], count: int) -> list[list[str]]:
    """Deal the students into `count` groups in turn: sizes differ by one at most."""
    return [list(student_ids[index::count]) for index in range(count)]

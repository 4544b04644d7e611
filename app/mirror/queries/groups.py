"""Reads of custom groups: one group, a user's groups, a section's groups, a group's history.

Groups are looked up only within the districts the key may see, like mirrored records.
"""

from __future__ import annotations

import uuid

import asyncpg

from app.mirror.queries import shapes
from app.mirror.queries.collections import Visibility
from app.mirror.queries.sql import Params, where

_GROUP = shapes.group_json("g")


def _visible(scope: Visibility, params: Params, conditions: list[str]) -> None:
    if scope.district_ids is not None:
        conditions.append(f"g.district_id = ANY({params.add(scope.district_ids)}::text[])")
    if not scope.include_inactive:
        conditions.append("g.deleted_at IS NULL")


async def get_group(
    connection: asyncpg.Connection, group_id: uuid.UUID, scope: Visibility
) -> str | None:
    """The group's JSON, or None when the key may not see it."""
    params = Params()
    conditions = [f"g.id = {params.add(group_id)}"]
    _visible(scope, params, conditions)
    body: str | None = await connection.fetchval(
        f"SELECT {_GROUP} FROM groups g {where(conditions)}", *params.values
    )
    return body


async def groups_of(
    connection: asyncpg.Connection,
    scope: Visibility,
    *,
    user_id: str | None = None,
    section_id: str | None = None,
    limit: int,
    after: str | None,
) -> list[tuple[str, str]]:
    """Up to `limit + 1` (id, JSON) of the groups a user owns or is a member of, or that
    were made from a section, in id order."""
    params = Params()
    conditions: list[str] = []
    if user_id is not None:
        user = params.add(user_id)
        conditions.append(
            f"(g.owner_id = {user} OR EXISTS (SELECT 1 FROM group_members m"
            f" WHERE m.group_id = g.id AND m.user_id = {user}))"
        )
    if section_id is not None:
        conditions.append(f"g.source_section_id = {params.add(section_id)}")
    _visible(scope, params, conditions)
    if after is not None:
        conditions.append(f"g.id::text > {params.add(after)}")
    rows = await connection.fetch(
        f"SELECT g.id::text, {_GROUP} FROM groups g {where(conditions)}"
        f" ORDER BY g.id::text LIMIT {params.add(limit + 1)}",
        *params.values,
    )
    return [(row[0], row[1]) for row in rows]


async def group_history(
    connection: asyncpg.Connection, group_id: uuid.UUID, scope: Visibility
) -> str | None:
    """`{"data": [change, ...]}` oldest first, or None when the key may not see the group."""
    params = Params()
    conditions = [f"g.id = {params.add(group_id)}"]
    _visible(Visibility(scope.district_ids, include_inactive=True), params, conditions)
    change = shapes.json_object(
        {"at": "c.at", "actor": "c.actor", "action": "c.action", "detail": "c.detail"}
    )
    body: str | None = await connection.fetchval(
        f"""
        SELECT json_build_object('data', (
            SELECT coalesce(json_agg({change} ORDER BY c.id), '[]'::json)
            FROM group_changes c WHERE c.group_id = g.id))
        FROM groups g {where(conditions)}
        """,
        *params.values,
    )
    return body

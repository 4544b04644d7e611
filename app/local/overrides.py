"""Local values shown instead of Clever's: the only writer of `overrides`.

An override is keyed by district, record kind and Clever id, one row per field, so it lives
on through syncs, soft deletes and restores. Beside the value it keeps `clever_value`, what
Clever had when the override was set: a sync that finds Clever's value moved since (and not
to the override's value) opens an `override_shadowed` warning (see `shadowed_sql`).
"""

from __future__ import annotations

from collections.abc import Mapping

import asyncpg
import orjson

# Clever's current value of each overridable field, as jsonb, of the live row `r`.
CLEVER_VALUES: dict[str, dict[str, str]] = {
    "users": {
        "preferred_name": "to_jsonb(r.preferred_first_name)",
        "graduation_year": "to_jsonb(r.graduation_year)",
    },
    "sections": {"display_name": "to_jsonb(r.display_name)"},
    "terms": {
        "name": "to_jsonb(r.name)",
        "active": "to_jsonb(r.deleted_at IS NULL)",
        "lineage_id": "to_jsonb(COALESCE(r.lineage_id, r.id))",
    },
}

SHADOWED = "override_shadowed"


async def set_overrides(
    connection: asyncpg.Connection,
    entity: str,
    district_id: str,
    record_id: str,
    changes: Mapping[str, object],
    *,
    actor: str,
) -> None:
    """Set (or, for a None value, remove) the record's overrides of `changes`' fields.

    Setting a field again records Clever's value of now as the one the override was set
    over. Run in the caller's transaction, with the record known to exist.
    """
    fields = CLEVER_VALUES[entity]
    for field, value in changes.items():
        if value is None:
            await connection.execute(
                "DELETE FROM overrides WHERE district_id = $1 AND entity = $2"
                " AND record_id = $3 AND field = $4",
                district_id,
                entity,
                record_id,
                field,
            )
            continue
        await connection.execute(
            f"""
            INSERT INTO overrides AS o
                (district_id, entity, record_id, field, value, clever_value, updated_by)
            SELECT r.district_id, $2, r.id, $4, $5::jsonb, {fields[field]}, $6
            FROM {entity} r WHERE r.id = $3 AND r.district_id = $1
            ON CONFLICT (district_id, entity, record_id, field) DO UPDATE
            SET value = EXCLUDED.value, clever_value = EXCLUDED.clever_value,
                updated_at = now(), updated_by = EXCLUDED.updated_by
            """,
            district_id,
            entity,
            record_id,
            field,
            orjson.dumps(value),
            actor,
        )


async def clear_overrides(
    connection: asyncpg.Connection, entity: str, district_id: str, record_id: str
) -> int:
    """Remove every override of the record; how many there were."""
    status = await connection.execute(
        "DELETE FROM overrides WHERE district_id = $1 AND entity = $2 AND record_id = $3",
        district_id,
        entity,
        record_id,
    )
    return int(status.rsplit(" ", 1)[-1])


def shadowed_sql(district: str) -> str:
    """SELECT the `override_shadowed` warnings of the district `district` (a placeholder):
    (entity, record_id, field, code, detail) of every override whose record's Clever value
    is no longer the one it was set over, nor the override's own value."""
    parts = []
    for entity, fields in CLEVER_VALUES.items():
        for field, clever in fields.items():
            parts.append(
                f"""
                SELECT '{entity}'::text AS entity, o.record_id, o.field, '{SHADOWED}'::text AS code,
                       'Clever now sends ' || COALESCE(({clever})::text, 'null')
                       || ' (it sent ' || COALESCE(o.clever_value::text, 'null')
                       || ' when the override was set); the override '
                       || o.value::text || ' is still shown' AS detail
                FROM overrides o JOIN {entity} r
                     ON r.id = o.record_id AND r.district_id = o.district_id
                WHERE o.district_id = {district} AND o.entity = '{entity}'
                  AND o.field = '{field}'
                  AND ({clever}) IS DISTINCT FROM o.clever_value
                  AND ({clever}) IS DISTINCT FROM o.value
                """
            )
    return " UNION ALL ".join(parts)

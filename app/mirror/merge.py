"""Apply a staged batch to the live tables with set-based SQL.

One set of merge rules serves both a full sync (the batch is the whole district; anything
absent is deleted) and an incremental one (the batch is the records some events touched plus
the ids they deleted). The caller runs `apply_batch` inside one transaction, so readers see
all of a batch or none of it.

Rules:
* Records: staged rows whose `content_hash` matches an active live row are skipped without a
  write (a hash anti-join, not a probe per row); the rest are upserted. A full batch is
  Clever's snapshot and always wins, so a full sync converges to what Clever serves even
  if its `last_modified` went back; in a batch of events an older `last_modified` never
  overwrites a newer one (events may come late or twice). Deleted ids get `deleted_at`; a
  record that comes back is restored.
* Districts never mix. A staged record whose id the mirror holds for another
  district is not stored (`foreign_id`): it cannot overwrite, move or deactivate that
  district's record. A reference to another district's record is dropped before the merge
  (`foreign_reference` on the record that lists it): a link is not stored, a reference
  column (a section's school, term, course or teacher, a user's primary school) is left
  empty. Every join below matches `district_id` as well as ids.
* Links (a section's teachers and students, a user's schools, a contact's students) are
  facts of the record that lists them: for every record in the batch (or deleted by it) the
  live links become exactly the staged ones. Links to records the mirror does not have are
  skipped with a warning.
* Enrollments keep history: a new one starts a row, a vanished one gets `ended_at`.
* Warnings: new ones are inserted, changed ones updated, and open ones the batch no longer
  sees (within what it covers) resolved. Nothing is written for warnings seen again.
  Overrides are never written here: every batch warns of those whose Clever value moved
  (`override_shadowed`). Staff records are linked into people after the merge, and a record
  that moved to another person is warned of (`person_link_changed`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import asyncpg

from app.local import overrides, people
from app.mirror.staging import ENTITY_KINDS, Staging

# Entities in the order they are merged: what others reference comes first.
ENTITY_ORDER = ("districts", "schools", "terms", "courses", "users", "sections")

# How many ids a warning's detail lists before summarising the rest.
DETAIL_IDS = 10


@dataclass
class EntityCounts:
    created: int = 0
    updated: int = 0
    deactivated: int = 0
    unchanged: int = 0


@dataclass
class BatchCounts:
    """What applying a batch changed, per entity and link table."""

    entities: dict[str, EntityCounts] = field(default_factory=dict)
    links: dict[str, EntityCounts] = field(default_factory=dict)
    warnings_opened: int = 0
    # Open warnings the batch found still true: of the whole district for a full batch (an
    # unchanged record's warnings still hold), of the records it staged otherwise.
    warnings_seen_again: int = 0
    warnings_resolved: int = 0

    @property
    def warnings_found(self) -> int:
        """The problems the batch found, new or already known."""
        return self.warnings_opened + self.warnings_seen_again

    def as_dict(self) -> dict[str, dict[str, int]]:
        result = {name: vars(counts) for name, counts in self.entities.items()}
        result |= {name: vars(counts) for name, counts in self.links.items()}
        result["data_warnings"] = {
            "opened": self.warnings_opened,
            "seen_again": self.warnings_seen_again,
            "resolved": self.warnings_resolved,
        }
        return result


@dataclass(frozen=True)
class Deactivations:
    """How many active users and sections a full batch would deactivate, of how many."""

    users: int
    active_users: int
    sections: int
    active_sections: int

    def exceeds(self, max_ratio: float) -> bool:
        return any(
            active > 0 and removed / active > max_ratio
            for removed, active in (
                (self.users, self.active_users),
                (self.sections, self.active_sections),
            )
        )


async def prepare(
    connection: asyncpg.Connection, staging: Staging, district_id: str, *, full: bool
) -> None:
    """Dedupe staged records and, for a full batch, stage every absent record as deleted.

    Must run before `deactivations` and `apply_batch`, in the same transaction.
    """
    if full:
        # A full batch compares whole tables: hash joins over everything beat per-row index
        # probes, and the planner must not gamble on a nested loop because the live tables'
        # statistics are stale (they often are right after a big sync). Hashes need memory.
        await connection.execute("SET LOCAL enable_nestloop = off")
        await connection.execute("SET LOCAL work_mem = '256MB'")
    await staging.analyze(connection)
    for entity in ENTITY_ORDER:
        await _dedupe(connection, staging, entity)
    await _skip_foreign_ids(connection, staging, district_id)
    await _drop_foreign_references(connection, staging, district_id)
    if full:
        for entity in ENTITY_ORDER[1:]:
            await connection.execute(
                f"""
                INSERT INTO {staging.table("deletions")} (entity, id)
                SELECT '{entity}', t.id FROM {entity} t
                WHERE t.district_id = $1 AND t.deleted_at IS NULL
                  AND NOT EXISTS (SELECT 1 FROM {staging.table(entity)} s WHERE s.id = t.id)
                """,
                district_id,
            )
        await connection.execute(f"ANALYZE {staging.table('deletions')}")


async def _dedupe(connection: asyncpg.Connection, staging: Staging, entity: str) -> None:
    """Keep one staged row per id (the newest), warning about the rest.

    Clever should never list a record twice, but if it does the upsert must not see it twice.
    """
    table = staging.table(entity)
    duplicates = await connection.fetch(
        f"SELECT id, count(*) AS copies FROM {table} GROUP BY id HAVING count(*) > 1"
    )
    if not duplicates:
        return
    await connection.execute(
        f"""
        DELETE FROM {table} s USING (
            SELECT ctid, row_number() OVER (
                PARTITION BY id ORDER BY source_last_modified DESC NULLS LAST, ctid DESC
            ) AS rank
            FROM {table}
        ) ranked
        WHERE s.ctid = ranked.ctid AND ranked.rank > 1
        """
    )
    # The copies' links were all staged: one per key is kept (the last staged), so their
    # upsert does not meet a key twice either.
    for spec in LINKS:
        if spec.owner_entity != entity:
            continue
        keys = ", ".join(spec.keys)
        link = staging.table(spec.table)
        await connection.execute(
            f"""
            DELETE FROM {link} s USING (
                SELECT ctid, row_number() OVER (PARTITION BY {keys} ORDER BY ctid DESC) AS rank
                FROM {link} WHERE {spec.keys[0]} = ANY($1::text[])
            ) ranked
            WHERE s.ctid = ranked.ctid AND ranked.rank > 1
            """,
            [row["id"] for row in duplicates],
        )
    await connection.executemany(
        f"INSERT INTO {staging.table('warnings')} (entity, record_id, field, code, detail)"
        " VALUES ($1, $2, 'id', 'duplicate_record', $3)",
        [(entity, row["id"], f"listed {row['copies']} times") for row in duplicates],
    )


# The staged links each kind of record owns: (link table, owner column).
_OWNED_LINKS: dict[str, tuple[tuple[str, str], ...]] = {
    "users": (("user_schools", "user_id"), ("contact_relationships", "contact_id")),
    "sections": (("section_teachers", "section_id"), ("enrollments", "section_id")),
}

# Columns of a record that name another record: (entity, column, referenced table).
_REFERENCE_COLUMNS = (
    ("sections", "school_id", "schools"),
    ("sections", "course_id", "courses"),
    ("sections", "term_id", "terms"),
    ("sections", "primary_teacher_id", "users"),
    ("users", "primary_school_id", "schools"),
)

# Staged links that name another record:
# (link table, owner entity, owner column, referencing column, referenced table, field).
_REFERENCE_LINKS = (
    ("section_teachers", "sections", "section_id", "teacher_id", "users", "teachers"),
    ("enrollments", "sections", "section_id", "student_id", "users", "students"),
    ("user_schools", "users", "user_id", "school_id", "schools", "schools"),
    ("contact_relationships", "users", "contact_id", "student_id", "users",
     "student_relationships"),
)  # fmt: skip

FOREIGN_ID_DETAIL = "this id belongs to a record of another district; not stored"


async def _skip_foreign_ids(
    connection: asyncpg.Connection, staging: Staging, district_id: str
) -> None:
    """Unstage records whose id the mirror holds for another district (`foreign_id`).

    Ids are global primary keys: storing such a record would take over the other district's
    row. Its links and other warnings go with it. Rows staged as unchanged (no `raw`) were
    matched within this district, so only fully staged ones are checked.
    """
    staged_warnings = staging.table("warnings")
    for entity in ENTITY_ORDER[1:]:
        skipped = await connection.fetchval(
            f"""
            WITH skipped AS (
                DELETE FROM {staging.table(entity)} s USING {entity} t
                WHERE t.id = s.id AND t.district_id <> $1 AND s.raw IS NOT NULL
                RETURNING s.id
            ), unwarned AS (
                DELETE FROM {staged_warnings} i USING skipped
                WHERE i.entity = '{entity}' AND i.record_id = skipped.id
            ), warned AS (
                INSERT INTO {staged_warnings} (entity, record_id, field, code, detail)
                SELECT '{entity}', id, 'id', 'foreign_id', '{FOREIGN_ID_DETAIL}' FROM skipped
                RETURNING 1
            )
            SELECT count(*) FROM warned
            """,
            district_id,
        )
        if not skipped:
            continue
        for link, owner in _OWNED_LINKS.get(entity, ()):
            await connection.execute(
                f"""
                DELETE FROM {staging.table(link)} l USING {staged_warnings} i
                WHERE i.code = 'foreign_id' AND i.entity = '{entity}' AND l.{owner} = i.record_id
                """
            )


async def _drop_foreign_references(
    connection: asyncpg.Connection, staging: Staging, district_id: str
) -> None:
    """Drop staged references to records of another district (`foreign_reference`).

    A reference column is emptied (the record as Clever sent it stays in `raw`), and its
    content hash changed with it: a row stored while the reference still pointed nowhere
    (the other district not synced yet) has the hash of the same record, and must not be
    skipped as unchanged. A link is unstaged. The warning counts what was dropped without
    naming the other district's ids.
    """
    staged_warnings = staging.table("warnings")
    for entity, column, target in _REFERENCE_COLUMNS:
        await connection.execute(
            f"""
            WITH dropped AS (
                UPDATE {staging.table(entity)} s
                SET {column} = NULL, content_hash = sha256(s.content_hash || '\\x00'::bytea)
                FROM {target} t
                WHERE t.id = s.{column} AND t.district_id <> $1 AND s.raw IS NOT NULL
                RETURNING s.id
            )
            INSERT INTO {staged_warnings} (entity, record_id, field, code, detail)
            SELECT '{entity}', id, '{column}', 'foreign_reference',
                   'refers to a record of another district; not stored'
            FROM dropped
            """,
            district_id,
        )
    for link, owner_entity, owner, ref, target, field_name in _REFERENCE_LINKS:
        await connection.execute(
            f"""
            WITH dropped AS (
                DELETE FROM {staging.table(link)} l USING {target} t
                WHERE t.id = l.{ref} AND t.district_id <> $1
                RETURNING l.{owner} AS owner
            )
            INSERT INTO {staged_warnings} (entity, record_id, field, code, detail)
            SELECT '{owner_entity}', owner, '{field_name}', 'foreign_reference',
                   count(*) || ' link(s) to records of another district not stored'
            FROM dropped GROUP BY owner
            """,
            district_id,
        )


async def deactivations(
    connection: asyncpg.Connection, staging: Staging, district_id: str
) -> Deactivations:
    """What a prepared batch would deactivate, for the mass-change guard."""
    row = await connection.fetchrow(
        f"""
        SELECT
            (SELECT count(*) FROM {staging.table("deletions")} d
              JOIN users t ON t.id = d.id WHERE d.entity = 'users'
              AND t.deleted_at IS NULL) AS users,
            (SELECT count(*) FROM users WHERE district_id = $1 AND deleted_at IS NULL)
              AS active_users,
            (SELECT count(*) FROM {staging.table("deletions")} d
              JOIN sections t ON t.id = d.id WHERE d.entity = 'sections'
              AND t.deleted_at IS NULL) AS sections,
            (SELECT count(*) FROM sections WHERE district_id = $1 AND deleted_at IS NULL)
              AS active_sections
        """,
        district_id,
    )
    assert row is not None
    return Deactivations(
        users=row["users"],
        active_users=row["active_users"],
        sections=row["sections"],
        active_sections=row["active_sections"],
    )


@dataclass(frozen=True)
class HeldPreview:
    """What a held full batch would deactivate, by school (the users' primary school, the
    sections' school; None for none), with a sample of the records."""

    by_school: list[asyncpg.Record]  # school_id, school_name, users, sections
    sample: list[asyncpg.Record]  # entity, id, name, school_id, school_name


async def held_preview(
    connection: asyncpg.Connection, staging: Staging, district_id: str, *, sample: int = 20
) -> HeldPreview | None:
    """What approving a held batch would deactivate, read from its kept staging tables
    (None once they are gone): the active users and sections its records do not list.

    The guard's own count comes from `prepare`, inside the transaction it rolled back; this
    reads the same absence (a live record without a staged one) without preparing anything.
    """
    users, sections = staging.table("users"), staging.table("sections")
    if not await connection.fetchval(
        "SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL", users, sections
    ):
        return None
    absent = f"""
        SELECT 'users' AS entity, u.id, concat_ws(' ', u.name_first, u.name_last) AS name,
               u.primary_school_id AS school_id
        FROM users u
        WHERE u.district_id = $1 AND u.deleted_at IS NULL
          AND NOT EXISTS (SELECT 1 FROM {users} s WHERE s.id = u.id)
        UNION ALL
        SELECT 'sections', x.id, x.display_name, x.school_id
        FROM sections x
        WHERE x.district_id = $1 AND x.deleted_at IS NULL
          AND NOT EXISTS (SELECT 1 FROM {sections} s WHERE s.id = x.id)
    """
    by_school = await connection.fetch(
        f"""
        SELECT a.school_id, sc.name AS school_name,
               count(*) FILTER (WHERE a.entity = 'users') AS users,
               count(*) FILTER (WHERE a.entity = 'sections') AS sections
        FROM ({absent}) a
        LEFT JOIN schools sc ON sc.id = a.school_id AND sc.district_id = $1
        GROUP BY a.school_id, sc.name
        ORDER BY count(*) DESC, sc.name NULLS LAST, a.school_id NULLS LAST
        """,
        district_id,
    )
    # A sample of each kind, in id order (the same records on every reload).
    sampled = await connection.fetch(
        f"""
        SELECT a.entity, a.id, a.name, a.school_id, sc.name AS school_name
        FROM (
            SELECT *, row_number() OVER (PARTITION BY entity ORDER BY id) AS n FROM ({absent}) r
        ) a
        LEFT JOIN schools sc ON sc.id = a.school_id AND sc.district_id = $1
        WHERE a.n <= $2
        ORDER BY a.entity DESC, a.id
        """,
        district_id,
        sample,
    )
    return HeldPreview(by_school, sampled)


async def apply_batch(
    connection: asyncpg.Connection,
    staging: Staging,
    district_id: str,
    run_id: uuid.UUID,
    *,
    full: bool,
) -> BatchCounts:
    """Merge a prepared batch into the live tables. Call inside the caller's transaction."""
    # For this transaction only: the change log's triggers stamp every change with the run,
    # and the change notifications name the district (API processes drop what they kept).
    await connection.execute(
        "SELECT set_config('roster.run_id', $1, true), set_config('roster.district_id', $2, true)",
        str(run_id),
        district_id,
    )
    counts = BatchCounts()
    for entity in ENTITY_ORDER:
        counts.entities[entity] = await _merge_entity(
            connection, staging, entity, district_id, full=full
        )
        counts.entities[entity].deactivated = await _deactivate(
            connection, staging, entity, district_id
        )
    for entity, (same, closest) in _LINEAGE.items():
        if full or await _staged(connection, staging, entity):
            await _link_lineage(connection, entity, same, closest, district_id)
    await _refresh_section_display_names(connection, staging, district_id, full=full)
    await _end_links_to_deactivated(connection, staging, district_id)
    await _stage_reference_warnings(connection, staging, district_id, full=full)
    for spec in (USER_SCHOOLS, CONTACT_RELATIONSHIPS, SECTION_TEACHERS):
        counts.links[spec.table] = await _merge_links(connection, staging, spec, district_id)
    counts.links["enrollments"] = await _merge_enrollments(connection, staging, district_id)
    if full or await _people_staged(connection, staging):
        await connection.executemany(
            f"INSERT INTO {staging.table('warnings')} (entity, record_id, field, code, detail)"
            f" VALUES ('users', $1, 'email', '{people.LINK_CHANGED}', $2)",
            [
                (change.user_id, change.detail)
                for change in await people.link(connection, district_id)
            ],
        )
    await connection.execute(
        f"INSERT INTO {staging.table('warnings')} (entity, record_id, field, code, detail)"
        f" {overrides.shadowed_sql('$1')}",
        district_id,
    )
    counts.warnings_opened, counts.warnings_resolved = await _merge_warnings(
        connection, staging, district_id, run_id, full=full
    )
    if full:
        found = await connection.fetchval(
            "SELECT count(*) FROM data_warnings WHERE district_id = $1 AND resolved_at IS NULL",
            district_id,
        )
    else:
        found = await connection.fetchval(
            "SELECT count(*) FROM (SELECT DISTINCT entity, record_id, field, code"
            f" FROM {staging.table('warnings')}) seen"
        )
    counts.warnings_seen_again = max(0, found - counts.warnings_opened)
    for spec in LINKS:
        counts.links[spec.table].unchanged = await _unchanged_links(
            connection, staging, spec, counts.links[spec.table], district_id, full=full
        )
    return counts


async def _merge_entity(
    connection: asyncpg.Connection, staging: Staging, entity: str, district_id: str, *, full: bool
) -> EntityCounts:
    kind = ENTITY_KINDS[entity]
    columns = kind.columns
    select_list = ", ".join(
        "convert_from(s.raw, 'UTF8')::jsonb" if column == "raw" else f"s.{column}"
        for column in columns
    )
    source = "changed s"
    if entity == "sections":
        # Written with its display name, so that a new section is not written twice (its
        # course and teacher are merged already); `_refresh_section_display_names` follows
        # the changes of courses and teachers.
        columns = (*columns, "display_name")
        select_list += f", {_DISPLAY_NAME}"
        source += _DISPLAY_NAME_JOINS.format(district="$1")
    column_list = ", ".join(columns)
    updates = ", ".join(f"{column} = EXCLUDED.{column}" for column in columns if column != "id")
    district_column = "" if entity == "districts" else "district_id, "
    district_value = "" if entity == "districts" else "$1, "
    same_district = "" if entity == "districts" else "AND t.district_id = EXCLUDED.district_id"
    newer = (
        "true"
        if full
        else "(t.source_last_modified IS NULL OR EXCLUDED.source_last_modified IS NULL"
        " OR EXCLUDED.source_last_modified >= t.source_last_modified)"
    )
    row = await connection.fetchrow(
        f"""
        WITH changed AS (
            SELECT s.* FROM {staging.table(entity)} s
            WHERE s.raw IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM {entity} t
                WHERE t.id = s.id AND t.content_hash = s.content_hash AND t.deleted_at IS NULL
            )
        ), upserted AS (
            INSERT INTO {entity} AS t ({district_column}{column_list})
            SELECT {district_value}{select_list} FROM {source}
            ON CONFLICT (id) DO UPDATE SET {updates}, updated_at = now(), deleted_at = NULL
            WHERE {newer} {same_district}
            RETURNING (xmax = 0) AS created
        )
        SELECT
            count(*) FILTER (WHERE created) AS created,
            count(*) FILTER (WHERE NOT created) AS updated,
            (SELECT count(*) FROM {staging.table(entity)}) AS staged
        FROM upserted
        """,
        *([district_id] if entity != "districts" else []),
    )
    assert row is not None
    return EntityCounts(
        created=row["created"],
        updated=row["updated"],
        unchanged=row["staged"] - row["created"] - row["updated"],
    )


async def _deactivate(
    connection: asyncpg.Connection, staging: Staging, entity: str, district_id: str
) -> int:
    result: str = await connection.execute(
        f"""
        UPDATE {entity} t SET deleted_at = now(), updated_at = now()
        FROM {staging.table("deletions")} d
        WHERE d.entity = '{entity}' AND t.id = d.id AND t.deleted_at IS NULL
          {"" if entity == "districts" else "AND t.district_id = $1"}
        """,
        *([district_id] if entity != "districts" else []),
    )
    return _affected(result)


# A section's display name (alias `s`, with its course `c` and primary teacher `u` joined by
# `_DISPLAY_NAME_JOINS`): its name, or `Course - Period N - Teacher`.
_DISPLAY_NAME = """COALESCE(
    s.name,
    concat_ws(' - ',
        COALESCE(c.name, s.subject, 'Section'),
        'Period ' || s.period,
        NULLIF(concat_ws(' ', u.name_first, u.name_last), '')),
    'Section ' || s.id)"""
_DISPLAY_NAME_JOINS = """
    LEFT JOIN courses c ON c.id = s.course_id AND c.district_id = {district}
    LEFT JOIN users u ON u.id = s.primary_teacher_id AND u.district_id = {district}"""


async def _refresh_section_display_names(
    connection: asyncpg.Connection, staging: Staging, district_id: str, *, full: bool
) -> None:
    """Named sections show their name; unnamed ones `Course - Period N - Teacher`.

    Only rows whose display name differs are written, so an unchanged district costs no write.
    A full batch looks at every section of the district; a batch of events only at the
    sections it staged, or whose course or primary teacher it staged (found through indexes:
    a batch of a few thousand students must not cost a pass over the district's sections).
    """
    conditions = "s.district_id = $1"
    args: list[object] = [district_id]
    if not full:
        affected: list[str] = await connection.fetchval(
            f"""
            SELECT coalesce(array_agg(DISTINCT id), '{{}}') FROM (
                SELECT id FROM {staging.table("sections")} WHERE raw IS NOT NULL
                UNION ALL
                SELECT x.id FROM {staging.table("courses")} c
                JOIN sections x ON x.course_id = c.id AND x.district_id = $1
                WHERE c.raw IS NOT NULL
                UNION ALL
                SELECT st.section_id FROM {staging.table("users")} u
                JOIN section_teachers st ON st.teacher_id = u.id AND st.district_id = $1
                     AND st.position = 0
                WHERE u.raw IS NOT NULL
            ) a
            """,
            district_id,
        )
        if not affected:
            return
        conditions += " AND s.id = ANY($2::text[])"
        args.append(affected)
    await connection.execute(
        f"""
        UPDATE sections t SET display_name = g.display_name
        FROM (
            SELECT s.id, {_DISPLAY_NAME} AS display_name
            FROM sections s {_DISPLAY_NAME_JOINS.format(district="s.district_id")}
            WHERE {conditions}
        ) g
        WHERE t.id = g.id AND t.display_name IS DISTINCT FROM g.display_name
        """,
        *args,
    )


async def _end_links_to_deactivated(
    connection: asyncpg.Connection, staging: Staging, district_id: str
) -> None:
    """End links that point at records this batch deactivated, warning on their owners.

    Owners staged in full get their links rebuilt anyway, and owners deleted in the batch
    lose them (with no warning: a record that is gone has no problems); this covers owners
    that did not change (an unchanged section listing a student who left). The warning
    makes the next full sync look at the owner again, so the link returns if the record
    does.
    """
    deletions = staging.table("deletions")
    for link, owner_entity, owner, ref, target, field_name, code, ends in (
        ("enrollments", "sections", "section_id", "student_id", "users", "students",
         "unknown_student", "ended_at"),
        ("section_teachers", "sections", "section_id", "teacher_id", "users", "teachers",
         "unknown_teacher", "deleted_at"),
        ("user_schools", "users", "user_id", "school_id", "schools", "schools",
         "unknown_school", "deleted_at"),
        ("contact_relationships", "users", "contact_id", "student_id", "users",
         "student_relationships", "unknown_student", "deleted_at"),
    ):  # fmt: skip
        stamp = (
            "ended_at = now()" if ends == "ended_at" else "deleted_at = now(), updated_at = now()"
        )
        await connection.execute(
            f"""
            WITH ended AS (
                UPDATE {link} t SET {stamp}
                WHERE t.district_id = $1 AND t.{ends} IS NULL
                  AND t.{ref} IN (SELECT id FROM {deletions} WHERE entity = '{target}')
                  AND t.{owner} NOT IN (
                      SELECT id FROM {staging.table(owner_entity)} WHERE raw IS NOT NULL
                      UNION ALL
                      SELECT id FROM {deletions} WHERE entity = '{owner_entity}'
                  )
                RETURNING t.{owner} AS owner, t.{ref} AS ref
            )
            INSERT INTO {staging.table("warnings")} (entity, record_id, field, code, detail)
            SELECT '{owner_entity}', owner, '{field_name}', '{code}',
                   count(*) || ' not shared: '
                   || array_to_string((array_agg(ref ORDER BY ref))[1:{DETAIL_IDS}], ', ')
            FROM ended GROUP BY owner
            """,
            district_id,
        )


async def _stage_reference_warnings(
    connection: asyncpg.Connection, staging: Staging, district_id: str, *, full: bool
) -> None:
    """Warn about references to records the mirror does not have.

    The referencing rows are kept (a section keeps its `term_id`); links are skipped when
    merged. Checked against the live tables, so a batch of events sees the whole mirror.
    """
    staged_warnings = staging.table("warnings")
    for column, target, code in (
        ("school_id", "schools", "unknown_school"),
        ("course_id", "courses", "unknown_course"),
        ("term_id", "terms", "unknown_term"),
    ):
        await connection.execute(
            f"""
            INSERT INTO {staged_warnings} (entity, record_id, field, code, detail)
            SELECT 'sections', s.id, '{column}', '{code}', s.{column}
            FROM {staging.table("sections")} s
            WHERE s.{column} IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM {target} t
                WHERE t.id = s.{column} AND t.district_id = $1 AND t.deleted_at IS NULL
            )
            """,
            district_id,
        )
    for link, owner_entity, owner, ref, field_name, code in (
        ("section_teachers", "sections", "section_id", "teacher_id", "teachers", "unknown_teacher"),
        ("enrollments", "sections", "section_id", "student_id", "students", "unknown_student"),
        ("user_schools", "users", "user_id", "school_id", "schools", "unknown_school"),
        (
            "contact_relationships",
            "users",
            "contact_id",
            "student_id",
            "student_relationships",
            "unknown_student",
        ),
    ):
        target = "schools" if ref == "school_id" else "users"
        await connection.execute(
            f"""
            INSERT INTO {staged_warnings} (entity, record_id, field, code, detail)
            SELECT '{owner_entity}', l.{owner}, '{field_name}', '{code}',
                   count(*) || ' not shared: '
                   || array_to_string((array_agg(l.{ref} ORDER BY l.{ref}))[1:{DETAIL_IDS}], ', ')
            FROM {staging.table(link)} l
            WHERE NOT EXISTS (
                SELECT 1 FROM {target} t
                WHERE t.id = l.{ref} AND t.district_id = $1 AND t.deleted_at IS NULL
            )
            GROUP BY l.{owner}
            """,
            district_id,
        )
    # Over the whole district for a full batch; otherwise for the sections the batch
    # staged (whose warnings it speaks for), counting their peers among all sections.
    staged = f"SELECT {{}} FROM {staging.table('sections')} WHERE raw IS NOT NULL"
    peers_of_staged = (
        "" if full else f" AND (school_id, name) IN ({staged.format('school_id, name')})"
    )
    staged_only = "" if full else f" AND s.id IN ({staged.format('id')})"
    await connection.execute(
        f"""
        INSERT INTO {staged_warnings} (entity, record_id, field, code, detail)
        SELECT 'sections', s.id, 'name', 'duplicate_section_name',
               'same name as ' || (s.peers - 1) || ' other section(s) in its school'
        FROM (
            SELECT id, count(*) OVER (PARTITION BY school_id, name) AS peers
            FROM sections
            WHERE district_id = $1 AND deleted_at IS NULL
              AND name IS NOT NULL AND school_id IS NOT NULL{peers_of_staged}
        ) s
        WHERE s.peers > 1{staged_only}
        """,
        district_id,
    )
    await connection.execute(f"ANALYZE {staged_warnings}")


def _scope(staging: Staging, owner_entity: str, owner_column: str) -> str:
    """SQL condition limiting live links to those this batch speaks for: the links of
    records it staged in full, and of records it deleted. A record a full sync found
    unchanged keeps its links as they are."""
    # One IN over a UNION ALL, not two INs joined by OR: the planner can then probe the
    # link's index per owner instead of scanning every link of the district.
    return (
        f"t.{owner_column} IN (SELECT id FROM {staging.table(owner_entity)}"
        f" WHERE raw IS NOT NULL UNION ALL SELECT id FROM {staging.table('deletions')}"
        f" WHERE entity = '{owner_entity}')"
    )


@dataclass(frozen=True)
class _LinkSpec:
    table: str
    owner_entity: str
    keys: tuple[str, ...]
    values: tuple[str, ...]
    # (column, table) pairs a staged link must find active to be kept.
    references: tuple[tuple[str, str], ...]
    # SQL condition on the live row `t`: the link holds now.
    active: str = "t.deleted_at IS NULL"


USER_SCHOOLS = _LinkSpec(
    table="user_schools",
    owner_entity="users",
    keys=("user_id", "role", "school_id"),
    values=("is_primary",),
    references=(("school_id", "schools"),),
)
CONTACT_RELATIONSHIPS = _LinkSpec(
    table="contact_relationships",
    owner_entity="users",
    keys=("contact_id", "student_id"),
    values=("relationship", "type"),
    references=(("student_id", "users"),),
)
SECTION_TEACHERS = _LinkSpec(
    table="section_teachers",
    owner_entity="sections",
    keys=("section_id", "teacher_id"),
    values=("position", "is_primary"),
    references=(("teacher_id", "users"),),
)
# Enrollments keep their history: merged by `_merge_enrollments`, not `_merge_links`.
ENROLLMENTS = _LinkSpec(
    table="enrollments",
    owner_entity="sections",
    keys=("section_id", "student_id"),
    values=(),
    references=(("student_id", "users"),),
    active="t.ended_at IS NULL",
)
LINKS = (USER_SCHOOLS, CONTACT_RELATIONSHIPS, SECTION_TEACHERS, ENROLLMENTS)


async def _unchanged_links(
    connection: asyncpg.Connection,
    staging: Staging,
    spec: _LinkSpec,
    counts: EntityCounts,
    district_id: str,
    *,
    full: bool,
) -> int:
    """Live links the batch speaks for and left as they were: every link of the district
    for a full batch (an unchanged record's links stand), those of its records otherwise."""
    scope = "" if full else f" AND {_scope(staging, spec.owner_entity, spec.keys[0])}"
    holding: int = await connection.fetchval(
        f"SELECT count(*) FROM {spec.table} t WHERE t.district_id = $1 AND {spec.active}{scope}",
        district_id,
    )
    return max(0, holding - counts.created - counts.updated)


async def _merge_links(
    connection: asyncpg.Connection,
    staging: Staging,
    spec: _LinkSpec,
    district_id: str,
) -> EntityCounts:
    """Make the live links of every record in the batch exactly the staged ones.

    Links are soft-deleted and restored like records; only differing rows are written.
    """
    staged = staging.table(spec.table)
    owner_column = spec.keys[0]
    known = " AND ".join(
        f"EXISTS (SELECT 1 FROM {target} r WHERE r.id = s.{column}"
        " AND r.district_id = $1 AND r.deleted_at IS NULL)"
        for column, target in spec.references
    )
    same_keys = " AND ".join(f"t.{key} = s.{key}" for key in spec.keys)
    same_values = "".join(f" AND t.{value} IS NOT DISTINCT FROM s.{value}" for value in spec.values)
    all_columns = (*spec.keys, *spec.values)
    column_list = ", ".join(all_columns)
    updates = ", ".join(f"{value} = EXCLUDED.{value}" for value in spec.values)
    row = await connection.fetchrow(
        f"""
        WITH changed AS (
            SELECT s.* FROM {staged} s
            WHERE {known} AND NOT EXISTS (
                SELECT 1 FROM {spec.table} t
                WHERE {same_keys}{same_values} AND t.deleted_at IS NULL
            )
        ), upserted AS (
            INSERT INTO {spec.table} AS t (district_id, {column_list})
            SELECT $1, {column_list} FROM changed
            ON CONFLICT ({", ".join(spec.keys)}) DO UPDATE
            SET {updates + ", " if updates else ""}updated_at = now(), deleted_at = NULL
            RETURNING (xmax = 0) AS created
        )
        SELECT count(*) FILTER (WHERE created) AS created,
               count(*) FILTER (WHERE NOT created) AS updated
        FROM upserted
        """,
        district_id,
    )
    assert row is not None
    result = await connection.execute(
        f"""
        UPDATE {spec.table} t SET deleted_at = now(), updated_at = now()
        WHERE t.district_id = $1 AND t.deleted_at IS NULL
          AND {_scope(staging, spec.owner_entity, owner_column)}
          AND NOT EXISTS (
              SELECT 1 FROM {staged} s WHERE {same_keys} AND {known}
          )
        """,
        district_id,
    )
    return EntityCounts(
        created=row["created"], updated=row["updated"], deactivated=_affected(result)
    )


async def _merge_enrollments(
    connection: asyncpg.Connection, staging: Staging, district_id: str
) -> EntityCounts:
    """Start enrollments that appeared, end the ones that vanished; never rewrite history."""
    staged = staging.table("enrollments")
    known = (
        "EXISTS (SELECT 1 FROM users r WHERE r.id = s.student_id"
        " AND r.district_id = $1 AND r.deleted_at IS NULL)"
    )
    ended = await connection.execute(
        f"""
        UPDATE enrollments t SET ended_at = now()
        WHERE t.district_id = $1 AND t.ended_at IS NULL
          AND {_scope(staging, "sections", "section_id")}
          AND NOT EXISTS (
              SELECT 1 FROM {staged} s
              WHERE s.section_id = t.section_id AND s.student_id = t.student_id AND {known}
          )
        """,
        district_id,
    )
    started = await connection.execute(
        f"""
        INSERT INTO enrollments (section_id, student_id, district_id)
        SELECT DISTINCT s.section_id, s.student_id, $1 FROM {staged} s
        WHERE {known} AND NOT EXISTS (
            SELECT 1 FROM enrollments t
            WHERE t.section_id = s.section_id AND t.student_id = s.student_id
              AND t.ended_at IS NULL
        )
        """,
        district_id,
    )
    return EntityCounts(created=_affected(started), deactivated=_affected(ended))


async def _merge_warnings(
    connection: asyncpg.Connection,
    staging: Staging,
    district_id: str,
    run_id: uuid.UUID,
    *,
    full: bool,
) -> tuple[int, int]:
    """Open new warnings, update changed ones, resolve the ones no longer seen."""
    staged_warnings = staging.table("warnings")
    opened = await connection.fetchval(
        f"""
        WITH seen AS (
            SELECT DISTINCT ON (entity, record_id, field, code)
                   entity, record_id, field, code, detail
            FROM {staged_warnings}
            ORDER BY entity, record_id, field, code
        ), written AS (
            INSERT INTO data_warnings AS w
                (district_id, entity, record_id, field, code, detail, first_run_id)
            SELECT $1, entity, record_id, field, code, detail, $2 FROM seen s
            WHERE NOT EXISTS (
                SELECT 1 FROM data_warnings w
                WHERE w.district_id = $1 AND w.entity = s.entity
                  AND w.record_id IS NOT DISTINCT FROM s.record_id
                  AND w.field IS NOT DISTINCT FROM s.field AND w.code = s.code
                  AND w.detail IS NOT DISTINCT FROM s.detail AND w.resolved_at IS NULL
            )
            ON CONFLICT (district_id, entity, record_id, field, code) DO UPDATE
            SET detail = EXCLUDED.detail, resolved_at = NULL, resolved_run_id = NULL,
                first_seen_at = CASE WHEN w.resolved_at IS NULL THEN w.first_seen_at
                                     ELSE now() END,
                first_run_id = CASE WHEN w.resolved_at IS NULL THEN w.first_run_id
                                    ELSE EXCLUDED.first_run_id END
            RETURNING (xmax = 0 OR w.first_run_id = $2) AS opened
        )
        SELECT count(*) FILTER (WHERE opened) FROM written
        """,
        district_id,
        run_id,
    )
    # A batch speaks for the records it staged in full or deleted; a full one also for the
    # warnings it computes over the whole district.
    covered = " OR ".join(
        f"(w.entity = '{entity}' AND w.record_id IN ("
        f"SELECT id FROM {staging.table(entity)} WHERE raw IS NOT NULL"
        f" UNION ALL SELECT id FROM {staging.table('deletions')} WHERE entity = '{entity}'))"
        for entity in ENTITY_ORDER
    )
    # Every batch stages the district's shadowed overrides (there are few).
    covered += f" OR w.code = '{overrides.SHADOWED}'"
    if full:
        covered += (
            " OR w.record_id IS NULL"
            " OR w.code IN ('duplicate_section_name', 'duplicate_record', 'foreign_id')"
        )
    resolved = await connection.execute(
        f"""
        UPDATE data_warnings w SET resolved_at = now(), resolved_run_id = $2
        WHERE w.district_id = $1 AND w.resolved_at IS NULL AND ({covered})
          AND NOT EXISTS (
              SELECT 1 FROM {staged_warnings} s
              WHERE s.entity = w.entity AND s.record_id IS NOT DISTINCT FROM w.record_id
                AND s.field IS NOT DISTINCT FROM w.field AND s.code = w.code
          )
        """,
        district_id,
        run_id,
    )
    return int(opened or 0), _affected(resolved)


async def _staged(connection: asyncpg.Connection, staging: Staging, entity: str) -> bool:
    """Whether the batch changed or deleted records of `entity`."""
    changed: bool = await connection.fetchval(
        f"SELECT EXISTS (SELECT 1 FROM {staging.table(entity)} WHERE raw IS NOT NULL)"
        f" OR EXISTS (SELECT 1 FROM {staging.table('deletions')} WHERE entity = '{entity}')"
    )
    return changed


async def _people_staged(connection: asyncpg.Connection, staging: Staging) -> bool:
    """Whether the batch staged a user who has or may get a person: one with a linked role,
    or one linked now (whose role may have changed). Other users leave people as they are,
    so a batch of students' events skips linking the district's staff again."""
    staged: bool = await connection.fetchval(
        f"SELECT EXISTS (SELECT 1 FROM {staging.table('users')} s"
        f" WHERE s.roles && ARRAY{list(people.LINKED_ROLES)}::text[]"
        "    OR EXISTS (SELECT 1 FROM person_links pl WHERE pl.user_id = s.id))"
    )
    return staged


# A record Clever recreated: the old one deactivated within this time of the new one's
# first appearance (the same sync, or the events of a day).
_RECREATED_WITHIN = "interval '1 day'"

# When a new term or course `n` continues a deactivated one `o` of its district, and which
# of several such `o` it continues first: for courses, one with the same number and name
# before one that shares only one of them (a district may have several "Algebra I").
_LINEAGE = {
    "terms": (
        "o.name = n.name AND o.start_date <= n.end_date AND n.start_date <= o.end_date",
        "",
    ),
    "courses": (
        "(o.number = n.number OR o.name = n.name)",
        "(o.number IS NOT DISTINCT FROM n.number AND o.name IS NOT DISTINCT FROM n.name) DESC,"
        " (o.number IS NOT DISTINCT FROM n.number) DESC,",
    ),
}


async def _link_lineage(
    connection: asyncpg.Connection, entity: str, same: str, closest: str, district_id: str
) -> None:
    """Chain terms (courses) Clever recreated with new ids: `lineage_id` is the chain's
    first record's id, null when it continues none (its lineage is its own id: a new record
    is not written again to say so).

    An active record that starts no chain of its own continues the newest deactivated one
    of its district that it resembles (`_LINEAGE`: the closest first), was first seen
    before it, was deactivated around when it appeared (`_RECREATED_WITHIN`), and has no
    other successor.
    A lineage cut by an override (`lineage_id` set to the record's own id) is kept, and a
    chain through a cut record starts there.
    """

    def cut(row: str) -> str:
        """The row's lineage as an override sets it (only ever to its own id), or null."""
        return (
            f"(SELECT ov.value #>> '{{}}' FROM overrides ov"
            f" WHERE ov.district_id = {row}.district_id AND ov.entity = '{entity}'"
            f" AND ov.record_id = {row}.id AND ov.field = 'lineage_id')"
        )

    of_o = f"COALESCE({cut('o')}, o.lineage_id, o.id)"
    await connection.execute(
        f"""
        WITH linked AS (
            SELECT n.id, ((
                SELECT {of_o} FROM {entity} o
                WHERE o.district_id = n.district_id AND o.id <> n.id
                  AND o.deleted_at IS NOT NULL AND o.first_seen_at < n.first_seen_at
                  AND o.deleted_at BETWEEN n.first_seen_at - {_RECREATED_WITHIN}
                                       AND n.first_seen_at + {_RECREATED_WITHIN}
                  AND {same}
                  AND NOT EXISTS (
                      SELECT 1 FROM {entity} s
                      WHERE s.district_id = o.district_id AND s.id NOT IN (o.id, n.id)
                        AND s.lineage_id = {of_o} AND s.first_seen_at > o.first_seen_at
                  )
                ORDER BY {closest} o.deleted_at DESC, o.id LIMIT 1
            )) AS lineage_id
            FROM {entity} n
            WHERE n.district_id = $1 AND n.deleted_at IS NULL
              AND (n.lineage_id IS NULL OR n.lineage_id = n.id)
              AND {cut("n")} IS NULL
        )
        UPDATE {entity} t SET lineage_id = l.lineage_id
        FROM linked l
        WHERE t.id = l.id AND t.lineage_id IS DISTINCT FROM l.lineage_id
        """,
        district_id,
    )


async def resolve_override_warnings(
    connection: asyncpg.Connection, district_id: str, entity: str, record_id: str
) -> int:
    """Resolve the record's `override_shadowed` warnings that no longer hold (its override
    was removed or set again over Clever's value of now); how many."""
    status = await connection.execute(
        f"""
        UPDATE data_warnings w SET resolved_at = now()
        WHERE w.district_id = $1 AND w.entity = $2 AND w.record_id = $3
          AND w.code = '{overrides.SHADOWED}' AND w.resolved_at IS NULL
          AND w.field NOT IN (
              SELECT s.field FROM ({overrides.shadowed_sql("$1")}) s
              WHERE s.entity = $2 AND s.record_id = $3
          )
        """,
        district_id,
        entity,
        record_id,
    )
    return _affected(status)


def _affected(status: str) -> int:
    """Rows affected, from a command status such as `UPDATE 12` or `INSERT 0 5`."""
    return int(status.rsplit(" ", 1)[-1])


LIVE_TABLES = (
    *ENTITY_ORDER,
    "user_schools",
    "contact_relationships",
    "section_teachers",
    "enrollments",
    "data_warnings",
)


async def analyze_live(connection: asyncpg.Connection) -> None:
    """Refresh the planner's statistics after a batch changed many rows, so readers and the
    next sync get good plans without waiting for autovacuum."""
    for table in LIVE_TABLES:
        await connection.execute(f"ANALYZE {table}")

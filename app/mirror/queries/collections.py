"""Lists and lookups of one kind of record: districts, schools, terms, courses, sections, users."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from app.mirror.queries import as_of, shapes
from app.mirror.queries.sql import Params, where


@dataclass(frozen=True)
class Visibility:
    """What a caller may see and asked to see."""

    # None: every district.
    district_ids: list[str] | None
    include_inactive: bool = False
    sensitive: bool = False
    # Answer as the mirror knew the records then (None: now).
    as_of: datetime | None = None


@dataclass
class Listing:
    """One page of a collection: filters beyond the common ones come as SQL conditions,
    which a route adds (with their parameters) before the page is read."""

    scope: Visibility
    limit: int
    after: str | None = None
    updated_since: datetime | None = None
    district_id: str | None = None
    conditions: list[str] = field(default_factory=list)
    params: Params = field(default_factory=Params)


@dataclass(frozen=True)
class Kind:
    """A table of records and the JSON shape the API shows of them."""

    table: str
    alias: str
    # The column naming the record's district (`id` for districts themselves).
    district_column: str
    # (alias, show sensitive fields) -> the JSON expression of a row.
    shape: Callable[[str, bool], str]
    # The entity's name among overridable records, when it has overrides to join.
    overridable: str | None = None

    def body(self, scope: Visibility) -> str:
        return self.shape(self.alias, scope.sensitive)

    @property
    def joins(self) -> str:
        """What the shape needs joined after `{table} {alias}`."""
        if self.overridable is None:
            return ""
        return shapes.overrides_join(self.alias, self.overridable)

    @property
    def active(self) -> str:
        """SQL: the record is active (a reactivated term is, though Clever deleted it)."""
        if self.table == "terms":
            return shapes.term_active(self.alias)
        return f"{self.alias}.deleted_at IS NULL"


DISTRICTS = Kind("districts", "d", "id", lambda alias, _: shapes.district_json(alias))
SCHOOLS = Kind("schools", "sc", "district_id", lambda alias, _: shapes.school_json(alias))
TERMS = Kind("terms", "t", "district_id", lambda alias, _: shapes.term_json(alias), "terms")
COURSES = Kind("courses", "c", "district_id", lambda alias, _: shapes.course_json(alias))
SECTIONS = Kind(
    "sections", "s", "district_id", lambda alias, _: shapes.section_json(alias), "sections"
)
USERS = Kind(
    "users",
    "u",
    "district_id",
    lambda alias, sensitive: shapes.user_json(alias, sensitive=sensitive),
    "users",
)


@dataclass(frozen=True)
class Lineage:
    """How a term's or course's lineage is read (a term's may be cut by an override)."""

    of: Callable[[str], str]
    overridable: str | None = None

    def joins(self, alias: str) -> str:
        return "" if self.overridable is None else shapes.overrides_join(alias, self.overridable)


LINEAGES = {TERMS: Lineage(shapes.term_lineage, "terms"), COURSES: Lineage(shapes.course_lineage)}


async def list_records(
    connection: asyncpg.Connection, kind: Kind, listing: Listing
) -> list[tuple[str, str]]:
    """Up to `limit + 1` rows of (id, JSON) in id order, after the cursor's id."""
    sql, args = list_sql(kind, listing)
    return [(row[0], row[1]) for row in await connection.fetch(sql, *args)]


def list_sql(kind: Kind, listing: Listing) -> tuple[str, list[Any]]:
    """The statement `list_records` runs, and its parameters."""
    alias, params = kind.alias, listing.params.copy()
    conditions = list(listing.conditions)
    district = f"{alias}.{kind.district_column}"
    district_ids = listing.scope.district_ids
    if district_ids is not None and len(district_ids) == 1:
        # Most keys see one district: `=` lets the (district_id, id) index hand rows over in
        # id order, where `= ANY(...)` fetches all of the district's rows to sort them.
        conditions.append(f"{district} = {params.add(district_ids[0])}")
    elif district_ids is not None:
        conditions.append(f"{district} = ANY({params.add(district_ids)}::text[])")
    if listing.district_id is not None:
        conditions.append(f"{district} = {params.add(listing.district_id)}")
    if not listing.scope.include_inactive:
        conditions.append(kind.active)
    if listing.updated_since is not None:
        updated = shapes.updated_at(alias, overridable=kind.overridable is not None)
        conditions.append(f"{updated} >= {params.add(listing.updated_since)}")
    if listing.after is not None:
        conditions.append(f"{alias}.id > {params.add(listing.after)}")
    sql = f"""
        SELECT {alias}.id, {kind.body(listing.scope)}
        FROM {kind.table} {alias} {kind.joins}
        {where(conditions)}
        ORDER BY {alias}.id
        LIMIT {params.add(listing.limit + 1)}
    """
    return sql, params.values


async def get_record(
    connection: asyncpg.Connection, kind: Kind, record_id: str, scope: Visibility
) -> str | None:
    """A record's JSON, or None when it does not exist or the scope may not see it."""
    found = await find_record(connection, kind, record_id, scope)
    return found[1] if found is not None else None


async def find_record(
    connection: asyncpg.Connection, kind: Kind, record_id: str, scope: Visibility
) -> tuple[str, str] | None:
    """A record's district and JSON, or None when it does not exist or the scope may not
    see it. The scope is part of the lookup, so a record of another district costs what a
    missing one costs."""
    alias, params = kind.alias, Params()
    conditions = [f"{alias}.id = {params.add(record_id)}"]
    if scope.district_ids is not None:
        district = f"{alias}.{kind.district_column}"
        conditions.append(f"{district} = ANY({params.add(scope.district_ids)}::text[])")
    if not scope.include_inactive:
        conditions.append(kind.active)
    row = await as_of.fetch_owned(
        connection,
        f"SELECT {alias}.{kind.district_column}, {kind.active}, {kind.body(scope)}"
        f" FROM {kind.table} {alias} {kind.joins} {where(conditions)}",
        params.values,
        instant=scope.as_of,
        owner_table=kind.table,
        owner_id=record_id,
        district_ids=scope.district_ids,
    )
    if row is None or not visible(scope, row[0], active=row[1]):
        return None
    return row[0], row[2]


def visible(scope: Visibility, district_id: str | None, *, active: bool) -> bool:
    """Whether a record of `district_id` (None: no such record) may be shown."""
    if district_id is None or (not active and not scope.include_inactive):
        return False
    return scope.district_ids is None or district_id in scope.district_ids


async def list_sections_of(
    connection: asyncpg.Connection,
    parent: Kind,
    parent_id: str,
    listing: Listing,
    *,
    term_id: str | None = None,
    lineage_id: str | None = None,
) -> list[tuple[str, str]] | None:
    """A page of the sections of a school, term or course (`parent`), optionally of one
    term; None when the key may not see the parent. With `lineage_id`, the sections of
    every term (course) of that lineage, when the parent is one of them (else none).

    An inactive parent still lists its sections: a deleted term's sections stay active.
    """
    seen = Visibility(district_ids=listing.scope.district_ids, include_inactive=True)
    found = await find_record(connection, parent, parent_id, seen)
    if found is None:
        return None
    column = {SCHOOLS: "school_id", TERMS: "term_id", COURSES: "course_id"}[parent]
    params = listing.params
    district = params.add(found[0])
    if lineage_id is None:
        listing.conditions.append(f"s.{column} = {params.add(parent_id)}")
    else:
        lineage = LINEAGES[parent]
        of_lineage = (
            f"SELECT x.id FROM {parent.table} x {lineage.joins('x')}"
            f" WHERE x.district_id = {district} AND {lineage.of('x')} = {params.add(lineage_id)}"
        )
        listing.conditions.append(f"s.{column} IN ({of_lineage})")
        listing.conditions.append(f"{params.add(parent_id)} IN ({of_lineage})")
    listing.conditions.append(f"s.district_id = {district}")
    if term_id is not None:
        listing.conditions.append(f"s.term_id = {listing.params.add(term_id)}")
    return await list_records(connection, SECTIONS, listing)

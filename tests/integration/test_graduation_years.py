"""The graduation year inferred from a student's grade, on dates either side of the start of
a school year, as Postgres computes it for every user the API shows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date

import asyncpg
import pytest

from app.mirror.queries.shapes import inferred_graduation_year
from app.settings import to_asyncpg_url
from app.sync.normalize import GRADE_LEVELS

# Grade -> years after the end of the school year under way; None: nothing is inferred.
AFTER_THIS_YEAR: dict[str | None, int | None] = {
    **{str(grade): 12 - grade for grade in range(1, 13)},
    "Kindergarten": 12,
    "TransitionalKindergarten": 13,
    "PreKindergarten": 13,
    "Preschool": None,
    "InfantToddler": None,
    "13": None,
    "PostGraduate": None,
    "Ungraded": None,
    "Other": None,
    None: None,
}

# (date, first month of the school year) -> the calendar year that school year ends in.
SCHOOL_YEAR_ENDS = [
    (date(2026, 6, 30), 7, 2026),
    (date(2026, 7, 1), 7, 2027),
    (date(2027, 1, 15), 7, 2027),
    (date(2026, 7, 31), 8, 2026),
    (date(2026, 8, 1), 8, 2027),
    (date(2026, 1, 1), 1, 2026),
    (date(2026, 12, 31), 1, 2026),
]


@pytest.fixture
async def pg(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(to_asyncpg_url(database_url))
    yield connection
    await connection.close()


@pytest.mark.parametrize(("on", "start_month", "ends"), SCHOOL_YEAR_ENDS)
async def test_every_grade_on_either_side_of_the_school_year_start(
    pg: asyncpg.Connection, on: date, start_month: int, ends: int
) -> None:
    sql = "SELECT " + inferred_graduation_year("$1::int", on="$2::date", start_month="$3::int")
    for grade, after in AFTER_THIS_YEAR.items():
        level = GRADE_LEVELS.get(grade) if grade is not None else None
        inferred = await pg.fetchval(sql, level, on, start_month)
        assert inferred == (None if after is None else ends + after), (grade, on, start_month)


async def test_the_start_month_comes_from_the_connection_setting(
    database_url: str,
) -> None:
    sql = "SELECT " + inferred_graduation_year("12", on="'2026-07-15'::date")
    default = await asyncpg.connect(to_asyncpg_url(database_url))
    september = await asyncpg.connect(
        to_asyncpg_url(database_url),
        server_settings={"roster.school_year_start_month": "9"},
    )
    try:
        assert await default.fetchval(sql) == 2027
        assert await september.fetchval(sql) == 2026
    finally:
        await default.close()
        await september.close()

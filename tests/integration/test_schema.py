"""The schema stores what Clever sends, including references to records it did not share."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection


async def _insert_district(connection: AsyncConnection, district_id: str = "d1") -> None:
    await connection.execute(
        text("INSERT INTO districts (id, name) VALUES (:id, 'Test district')"), {"id": district_id}
    )


async def test_section_with_unshared_references_is_stored(connection: AsyncConnection) -> None:
    await _insert_district(connection)
    await connection.execute(
        text(
            "INSERT INTO sections (id, district_id, school_id, course_id, term_id,"
            " primary_teacher_id, name)"
            " VALUES ('s1', 'd1', 'no-school', 'no-course', 'no-term', 'no-teacher', :name)"
        ),
        {"name": "Ñandú " + "x" * 5000},
    )
    await connection.execute(
        text(
            "INSERT INTO enrollments (section_id, student_id, district_id)"
            " VALUES ('s1', 'unshared-student', 'd1')"
        )
    )
    await connection.execute(
        text(
            "INSERT INTO section_teachers (section_id, teacher_id, district_id, position,"
            " is_primary) VALUES ('s1', 'no-teacher', 'd1', 0, true)"
        )
    )
    name = (await connection.execute(text("SELECT name FROM sections WHERE id = 's1'"))).scalar()
    assert name is not None and name.startswith("Ñandú") and len(name) == 5006


async def test_only_id_and_district_are_required(connection: AsyncConnection) -> None:
    await _insert_district(connection)
    for table in ("schools", "users", "sections", "terms", "courses"):
        await connection.execute(
            text(f"INSERT INTO {table} (id, district_id) VALUES ('{table}-1', 'd1')")
        )
    raw = await connection.execute(text("SELECT raw, roles FROM users WHERE id = 'users-1'"))
    assert raw.one() == ({}, [])


async def test_one_open_enrollment_per_student_and_section(connection: AsyncConnection) -> None:
    await _insert_district(connection)
    insert = text(
        "INSERT INTO enrollments (section_id, student_id, district_id, ended_at)"
        " VALUES ('s1', 'u1', 'd1', :ended_at)"
    )
    await connection.execute(insert, {"ended_at": datetime(2025, 1, 1, tzinfo=UTC)})
    await connection.execute(insert, {"ended_at": None})  # history: a second stay
    with pytest.raises(IntegrityError):
        async with connection.begin_nested():
            await connection.execute(insert, {"ended_at": None})


async def test_records_need_a_known_district(connection: AsyncConnection) -> None:
    with pytest.raises(IntegrityError):
        async with connection.begin_nested():
            await connection.execute(
                text("INSERT INTO schools (id, district_id) VALUES ('x', 'unknown')")
            )


async def test_warning_without_record_id_is_one_row(connection: AsyncConnection) -> None:
    insert = text(
        "INSERT INTO data_warnings (district_id, entity, record_id, field, code)"
        " VALUES ('d1', 'users', NULL, 'id', 'missing_id') ON CONFLICT DO NOTHING"
    )
    await connection.execute(insert)
    await connection.execute(insert)
    count = await connection.execute(text("SELECT count(*) FROM data_warnings"))
    assert count.scalar() == 1

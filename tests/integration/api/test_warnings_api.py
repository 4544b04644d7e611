"""Data warnings over the API equal what the `data_warnings` table holds."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import asyncpg
import httpx
import pytest

from app.api.pagination import encode_cursor
from app.api.sync_schemas import DataWarning
from tests.integration.api.conftest import Keys, Mirrored
from tests.integration.api.sync_support import Json, assert_problem, bearer

Row = dict[str, Any]
# Added to the S district's warnings for the module: the sync of an unchanged district
# resolves nothing, and the resolved filter and counts need some.
RESOLVED_ADDED = 5


@pytest.fixture(scope="module")
async def rows(api_pool: asyncpg.Pool, mirrored: Mirrored) -> AsyncIterator[list[Row]]:
    """Every warning in the table, as the API must show them (ordered by id)."""
    added = await api_pool.fetch(
        "INSERT INTO data_warnings (district_id, entity, record_id, field, code, detail,"
        "                           first_run_id, resolved_at, resolved_run_id)"
        " SELECT $1, 'users', 'fixed-' || g, 'email', code, 'fixed since', NULL, now(),"
        "        gen_random_uuid()"
        " FROM generate_series(1, $2) g,"
        "      LATERAL (SELECT CASE WHEN g % 2 = 0 THEN 'invalid_email' ELSE 'fixed_only' END"
        "               AS code) c"
        " RETURNING id",
        mirrored.s.id,
        RESOLVED_ADDED,
    )
    records = await api_pool.fetch("SELECT * FROM data_warnings ORDER BY id")
    try:
        yield [_expected(record) for record in records]
    finally:
        await api_pool.execute(
            "DELETE FROM data_warnings WHERE id = ANY($1::bigint[])", [r["id"] for r in added]
        )


def _expected(record: asyncpg.Record) -> Row:
    return {
        "id": record["id"],
        "district_id": record["district_id"],
        "entity": record["entity"],
        "record_id": record["record_id"],
        "field": record["field"],
        "code": record["code"],
        "detail": record["detail"],
        "first_seen_at": record["first_seen_at"],
        "first_run_id": _text(record["first_run_id"]),
        "resolved": record["resolved_at"] is not None,
        "resolved_at": record["resolved_at"],
        "resolved_run_id": _text(record["resolved_run_id"]),
    }


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _shown(warning: Json) -> Row:
    assert set(warning) == set(DataWarning.model_fields)
    parsed = dict(warning)
    for key in ("first_seen_at", "resolved_at"):
        if parsed[key] is not None:
            parsed[key] = datetime.fromisoformat(parsed[key])
    return parsed


async def _walk(api: httpx.AsyncClient, key: str, limit: int, **params: str) -> list[Row]:
    found: list[Row] = []
    cursor: str | None = None
    for _ in range(1000):
        query = {**params, "limit": str(limit)} | ({"cursor": cursor} if cursor else {})
        response = await api.get("/v1/data-warnings", params=query, headers=bearer(key))
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["data"]) <= limit
        found.extend(_shown(warning) for warning in page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            return found
    raise AssertionError("the pages never ended")


def _where(rows: list[Row], test: Callable[[Row], bool]) -> list[Row]:
    return [row for row in rows if test(row)]


async def test_the_s_district_has_warnings_of_several_kinds(
    rows: list[Row], mirrored: Mirrored
) -> None:
    s_rows = _where(rows, lambda r: r["district_id"] == mirrored.s.id)
    assert len({row["code"] for row in s_rows}) >= 3
    assert {row["entity"] for row in s_rows} >= {"users", "sections"}
    assert sum(row["resolved"] for row in s_rows) == RESOLVED_ADDED
    assert any(row["first_run_id"] is not None for row in s_rows)


async def test_every_warning_is_listed_once_in_id_order(
    api: httpx.AsyncClient, keys: Keys, rows: list[Row]
) -> None:
    for limit in (97, 1000):
        assert await _walk(api, keys.read, limit) == rows


async def test_filters_select_exactly_the_matching_warnings(
    api: httpx.AsyncClient, keys: Keys, rows: list[Row], mirrored: Mirrored
) -> None:
    s, other = mirrored.s.id, mirrored.other.id
    open_codes = Counter(r["code"] for r in rows if r["district_id"] == s and not r["resolved"])
    code = open_codes.most_common(2)[1][0]  # a code with open warnings, not the commonest
    cases: list[tuple[dict[str, str], Callable[[Row], bool]]] = [
        ({"district_id": s}, lambda r: r["district_id"] == s),
        ({"district_id": other}, lambda r: r["district_id"] == other),
        ({"entity": "sections"}, lambda r: r["entity"] == "sections"),
        ({"code": code}, lambda r: r["code"] == code),
        ({"resolved": "true"}, lambda r: r["resolved"]),
        ({"resolved": "false"}, lambda r: not r["resolved"]),
        (
            {"district_id": s, "entity": "users", "code": "invalid_email", "resolved": "true"},
            lambda r: (
                (r["district_id"], r["entity"], r["code"], r["resolved"])
                == (s, "users", "invalid_email", True)
            ),
        ),
        ({"code": "no_such_code"}, lambda r: False),
    ]
    for params, test in cases:
        expected = _where(rows, test)
        assert await _walk(api, keys.read, 250, **params) == expected, params
    assert _where(rows, lambda r: r["code"] == code and r["resolved"] is False)


async def test_district_limited_keys_see_only_their_districts_warnings(
    api: httpx.AsyncClient, keys: Keys, rows: list[Row], mirrored: Mirrored
) -> None:
    s, other = mirrored.s.id, mirrored.other.id
    assert await _walk(api, keys.read_s, 1000) == _where(rows, lambda r: r["district_id"] == s)
    assert await _walk(api, keys.read_s, 1000, district_id=other) == []
    assert await _walk(api, keys.read_other, 1000) == _where(
        rows, lambda r: r["district_id"] == other
    )


def _counts(rows: list[Row]) -> list[Json]:
    codes = sorted({row["code"] for row in rows})
    return [
        {
            "code": code,
            "district_id": None,
            "entity": None,
            "school_id": None,
            "open": sum(1 for r in rows if r["code"] == code and not r["resolved"]),
            "resolved": sum(1 for r in rows if r["code"] == code and r["resolved"]),
        }
        for code in codes
    ]


async def _summary(api: httpx.AsyncClient, key: str, **params: str) -> list[Json]:
    response = await api.get("/v1/data-warnings/summary", params=params, headers=bearer(key))
    assert response.status_code == 200, response.text
    data: list[Json] = response.json()["data"]
    return data


async def test_the_summary_counts_open_and_resolved_warnings_per_code(
    api: httpx.AsyncClient, keys: Keys, rows: list[Row], mirrored: Mirrored
) -> None:
    s, other = mirrored.s.id, mirrored.other.id
    s_rows = _where(rows, lambda r: r["district_id"] == s)
    summary = await _summary(api, keys.read, district_id=s)
    assert summary == _counts(s_rows)
    fixed_only = next(entry for entry in summary if entry["code"] == "fixed_only")
    # The fixture added it for odd numbers up to RESOLVED_ADDED (1, 3, 5), all resolved.
    assert (fixed_only["open"], fixed_only["resolved"]) == (0, 3)
    assert await _summary(api, keys.read) == _counts(rows)
    assert await _summary(api, keys.read_s) == _counts(s_rows)
    assert await _summary(api, keys.read_s, district_id=other) == []
    assert await _summary(api, keys.read_other) == _counts(
        _where(rows, lambda r: r["district_id"] == other)
    )


async def test_the_summary_counts_per_district_kind_and_school_when_asked(
    api: httpx.AsyncClient, keys: Keys, api_pool: asyncpg.Pool, mirrored: Mirrored
) -> None:
    response = await api.get(
        "/v1/data-warnings/summary",
        params=[("by", "district"), ("by", "entity"), ("by", "school")],
        headers=bearer(keys.read_s),
    )
    assert response.status_code == 200, response.text
    summary = response.json()["data"]
    # The same counts from the mirror: a user's school is its primary school, a section's
    # its school, a school's itself.
    expected = await api_pool.fetch(
        """
        SELECT w.code, w.district_id, w.entity,
               CASE w.entity WHEN 'schools' THEN sc.id WHEN 'users' THEN su.id
                    WHEN 'sections' THEN ss.id END AS school_id,
               count(*) FILTER (WHERE w.resolved_at IS NULL) AS open,
               count(*) FILTER (WHERE w.resolved_at IS NOT NULL) AS resolved
        FROM data_warnings w
        LEFT JOIN schools sc ON w.entity = 'schools' AND sc.id = w.record_id
        LEFT JOIN users u ON w.entity = 'users' AND u.id = w.record_id
        LEFT JOIN schools su ON su.id = u.primary_school_id
        LEFT JOIN sections x ON w.entity = 'sections' AND x.id = w.record_id
        LEFT JOIN schools ss ON ss.id = x.school_id
        WHERE w.district_id = $1
        GROUP BY 1, 2, 3, 4
        """,
        mirrored.s.id,
    )
    assert sorted(summary, key=str) == sorted((dict(row) for row in expected), key=str)
    assert {entry["district_id"] for entry in summary} == {mirrored.s.id}
    assert any(entry["school_id"] for entry in summary)
    bad = await api.get(
        "/v1/data-warnings/summary", params={"by": "pets"}, headers=bearer(keys.read)
    )
    assert_problem(bad, 422)


@pytest.mark.parametrize(
    "params",
    [
        {"entity": "students"},
        {"code": "Bad Code"},
        {"resolved": "sometimes"},
        {"district_id": "no spaces allowed"},
        {"limit": "0"},
        {"limit": "1001"},
        {"cursor": "%%%"},
        {"cursor": encode_cursor("not-an-id")},
        {"cursor": encode_cursor("-1")},
    ],
)
async def test_bad_parameters_are_422(
    api: httpx.AsyncClient, keys: Keys, params: dict[str, str]
) -> None:
    response = await api.get("/v1/data-warnings", params=params, headers=bearer(keys.read))
    assert_problem(response, 422)


@pytest.mark.parametrize("path", ["/v1/data-warnings", "/v1/data-warnings/summary"])
async def test_reading_warnings_needs_roster_read(
    api: httpx.AsyncClient, keys: Keys, path: str
) -> None:
    assert_problem(await api.get(path), 401)
    assert_problem(await api.get(path, headers=bearer(keys.revoked)), 401)
    assert_problem(await api.get(path, headers=bearer(keys.sync)), 403)
    assert (await api.get(path, headers=bearer(keys.sensitive))).status_code == 200

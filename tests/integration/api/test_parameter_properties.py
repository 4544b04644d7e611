"""No value of any typed parameter reaches Postgres as an error: 4xx, never 5xx.

Every GET route and each of its query parameters is taken from the app itself. Hypothesis
sends values across each type's whole range: date-times from year 1 to 9999 with every
offset, integers far past 64 bits, odd strings, and cursors forged around what the API
issues. The app is served by uvicorn over real HTTP, keep-alive connection reused, so an
error that dropped the connection would show too.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any, get_args

import httpx
import pytest
from fastapi.routing import APIRoute
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.routing import compile_path

from app.main import create_app
from app.settings import Settings
from tests.integration.api.conftest import Keys, Mirrored
from tests.integration.api.reads_support import api_routes, bearer
from tests.support.server import serve_in_thread

# The console's pages too: a query value they do not take must not break them either.
GET_ROUTES = [route for route in api_routes(pages=True) if "GET" in (route.methods or set())]

TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=80)
# Around the edges of Postgres's integers too.
EDGE_INTS = st.sampled_from([2**31, 2**63 - 1, 2**63, 10**19 - 1, 10**19, -(2**63) - 1])
HUGE_INTS = st.one_of(EDGE_INTS, st.integers(min_value=-(10**30), max_value=10**30)).map(str)


@st.composite
def iso_datetimes(draw: st.DrawFn) -> str:
    """ISO 8601 date-times over Python's whole range, with any offset Python accepts."""
    # Half of them in the first or last day Python knows: where an offset overflows UTC.
    edge_day = st.sampled_from([datetime(1, 1, 1), datetime(9999, 12, 31)]).flatmap(
        lambda day: st.datetimes(min_value=day, max_value=day.replace(hour=23, minute=59))
    )
    moment = draw(
        st.one_of(
            edge_day,
            st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)),
        )
    )
    text = moment.isoformat(sep=draw(st.sampled_from(["T", " "])))
    offset = draw(
        st.one_of(
            st.just(""),
            st.just("Z"),
            st.builds(
                lambda sign, hours, minutes: f"{sign}{hours:02d}:{minutes:02d}",
                st.sampled_from("+-"),
                st.integers(0, 23),
                st.integers(0, 59),
            ),
        )
    )
    return text + offset


# Times whose UTC falls outside year 1 to 9999: what used to reach asyncpg and fail there.
UTC_OVERFLOWS = (
    "9999-12-31T23:59:59-01:00",
    "0001-01-01T00:00:00+01:00",
    "0001-01-01T00:00:00+23:59",
    "9999-12-31T23:59:59-23:59",
    "9999-12-31T23:59:59.999999-00:01",
)
DATETIMES = st.one_of(st.sampled_from(UTC_OVERFLOWS), iso_datetimes(), TEXT)


def _b64(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


# Cursors at the edges of what lists decode them to: ids past Postgres's bigint, run
# positions past year 9999, keys with NUL, and the JSON-framed shape of an older release.
FORGED_CURSORS = (
    str(2**63),
    "9999999999999999999",
    f"9999999999999999-{uuid.UUID(int=1).hex}",
    f"0-{'f' * 32}",
    _b64("before\x00after"),
    _b64(json.dumps([1, str(2**63)])),
    _b64("\udcff".encode("utf-8", "surrogatepass")),  # a lone surrogate, UTF-8 encoded
)
CURSORS = st.one_of(
    st.sampled_from(FORGED_CURSORS),
    TEXT,
    st.builds(_b64, TEXT),
    HUGE_INTS,
    st.builds(lambda micros, run: f"{micros}-{run.hex}", HUGE_INTS, st.uuids()),
)


def _query_params(route: APIRoute) -> dict[str, Any]:
    """Query parameter name -> its annotation, the route's own and its dependencies'."""
    found: dict[str, Any] = {}
    dependants = [route.dependant]
    while dependants:
        dependant = dependants.pop()
        found |= {param.alias: param.field_info.annotation for param in dependant.query_params}
        dependants += dependant.dependencies
    return found


def _strategy(name: str, annotation: Any) -> st.SearchStrategy[str]:
    types = set(get_args(annotation)) | {annotation}
    if name == "cursor":
        return CURSORS
    if datetime in types:
        return DATETIMES
    if int in types:
        return st.one_of(HUGE_INTS, TEXT)
    if bool in types:
        return st.one_of(st.sampled_from(["true", "false", "1", "0", "yes", "maybe"]), TEXT)
    return TEXT


@pytest.fixture(scope="module")
def base_url(api_settings: Settings, mirrored: Mirrored) -> Iterator[str]:
    with serve_in_thread(create_app(api_settings)) as url:
        yield url


@pytest.fixture(scope="module")
def client(base_url: str, keys: Keys) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, headers=bearer(keys.admin), timeout=30) as client:
        yield client


def _path_values(mirrored: Mirrored) -> dict[str, list[str]]:
    truth = mirrored.s.truth
    edge = truth.edge_cases
    section = truth.record(edge["section_ten_teachers"]) or {}
    return {
        "district_id": [mirrored.s.id],
        "school_id": [section.get("school", "")],
        "term_id": [section.get("term_id", "")],
        "course_id": [section.get("course", "")],
        "section_id": [edge["section_ten_teachers"]],
        "user_id": [edge["student_in_three_schools"], section.get("teacher", "")],
        "run_id": [str(uuid.uuid4())],
        "group_id": [str(uuid.uuid4())],
        "person_id": [str(uuid.uuid4())],
        "webhook_id": [str(uuid.uuid4())],
        "delivery_id": [str(uuid.uuid4())],
    }


QUERY_ROUTES = [route for route in GET_ROUTES if _query_params(route)]


@pytest.mark.parametrize("route", QUERY_ROUTES, ids=[route.path for route in QUERY_ROUTES])
def test_no_query_value_is_a_server_error(
    client: httpx.Client, mirrored: Mirrored, route: APIRoute
) -> None:
    params = _query_params(route)
    names = sorted(params)
    path_values = _path_values(mirrored)
    path_names = list(compile_path(route.path)[2])

    @settings(
        max_examples=50,
        derandomize=True,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(
        focus=st.sampled_from(names).flatmap(
            lambda focus: st.tuples(st.just(focus), _strategy(focus, params[focus]))
        ),
        others=st.fixed_dictionaries(
            {}, optional={name: _strategy(name, params[name]) for name in names}
        ),
        path_choice=st.integers(0, 1),
    )
    def check(focus: tuple[str, str], others: dict[str, str], path_choice: int) -> None:
        # One parameter is always sent, so each gets its share of the examples.
        data = others | {focus[0]: focus[1]}
        path = route.path
        for name in path_names:
            options = path_values[name]
            path = path.replace("{" + name + "}", options[path_choice % len(options)])
        response = client.get(path, params=data)
        assert response.status_code < 500, (path, data, response.text)
        assert response.headers["content-type"].startswith(
            ("application/json", "application/problem+json", "text/plain", "text/html")
        )

    check()


@pytest.mark.parametrize("value", UTC_OVERFLOWS)
def test_updated_since_outside_what_utc_can_hold_is_422(
    client: httpx.Client, mirrored: Mirrored, value: str
) -> None:
    routes = [route for route in GET_ROUTES if "updated_since" in _query_params(route)]
    assert len(routes) == 9
    path_values = _path_values(mirrored)
    for route in routes:
        path = route.path
        for name in compile_path(route.path)[2]:
            path = path.replace("{" + name + "}", path_values[name][0])
        response = client.get(path, params={"updated_since": value})
        assert response.status_code == 422, (route.path, value, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        (error,) = response.json()["errors"]
        assert error["loc"] == ["query", "updated_since"]


@pytest.mark.parametrize("cursor", FORGED_CURSORS)
def test_a_cursor_is_a_position_or_a_422_naming_it(client: httpx.Client, cursor: str) -> None:
    for path in ("/v1/data-warnings", "/v1/sync/runs", "/v1/users"):
        response = client.get(path, params={"cursor": cursor})
        assert response.status_code in (200, 422), (path, cursor, response.text)
        if response.status_code == 422:  # not of this list's shape
            [error] = response.json()["errors"]
            assert error["loc"] == ["query", "cursor"], response.text

"""Keyset cursors and the page envelope: round-tripping, and every cursor of the declared
shape a position, nothing else accepted."""

from __future__ import annotations

import base64
import re

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.api.pagination import CURSOR_PATTERN, decode_cursor, encode_cursor, page_response
from app.api.problems import ProblemError


def _b64(payload: bytes) -> str:
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


@pytest.mark.parametrize("key", ["5cb652b80010000000000000", "a", "é ü", "x" * 500])
def test_a_cursor_gives_back_its_key(key: str) -> None:
    cursor = encode_cursor(key)
    assert decode_cursor(cursor) == key
    assert re.fullmatch(CURSOR_PATTERN, cursor)


@given(st.from_regex(CURSOR_PATTERN, fullmatch=True).filter(bool))
def test_every_cursor_of_the_declared_shape_is_a_position(cursor: str) -> None:
    key = decode_cursor(cursor)
    assert "\x00" not in key
    key.encode()  # text Postgres can hold: no lone surrogates


@pytest.mark.parametrize("cursor", ["", "garbage!", "é", "a", "abcde", "ab=="])
def test_a_cursor_of_another_shape_is_a_422(cursor: str) -> None:
    with pytest.raises(ProblemError) as raised:
        decode_cursor(cursor)
    assert raised.value.status == 422


def test_forged_bytes_become_a_key_postgres_can_hold() -> None:
    assert decode_cursor(_b64(b"before\x00after")) == "before\ufffdafter"
    assert decode_cursor(_b64(b"\xff\xfe")) == "\ufffd\ufffd"


def test_a_page_points_past_its_last_row_only_when_more_follow() -> None:
    rows = [("a", '{"id":"a"}'), ("b", '{"id":"b"}'), ("c", '{"id":"c"}')]
    full = orjson.loads(page_response(rows, 2).body)
    assert full["data"] == [{"id": "a"}, {"id": "b"}]
    assert decode_cursor(full["next_cursor"]) == "b"
    last = orjson.loads(page_response(rows, 3).body)
    assert (len(last["data"]), last["next_cursor"]) == (3, None)
    assert orjson.loads(page_response([], 10).body) == {"data": [], "next_cursor": None}

"""Keyset cursors and the page envelope: opaque, round-tripping, refused when forged."""

from __future__ import annotations

import base64

import orjson
import pytest

from app.api.pagination import decode_cursor, encode_cursor, page_response
from app.api.problems import ProblemError


def _b64(payload: bytes) -> str:
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


@pytest.mark.parametrize("key", ["5cb652b80010000000000000", "a", "é ü", "x" * 500])
def test_a_cursor_gives_back_its_key(key: str) -> None:
    cursor = encode_cursor(key)
    assert decode_cursor(cursor) == key
    assert cursor.replace("-", "").replace("_", "").isalnum()


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "garbage!",
        "é",
        _b64(b"not json"),
        _b64(b'{"a": 1}'),
        _b64(b"[1, 2]"),
        _b64(b'[2, "5cb652b80010000000000000"]'),
        _b64(b'[1, "a", "b"]'),
        _b64(b"7"),
        _b64(b'"ab"'),
        _b64(orjson.dumps([1, "before\x00after"])),
    ],
)
def test_a_cursor_this_api_did_not_write_is_a_422(cursor: str) -> None:
    with pytest.raises(ProblemError) as raised:
        decode_cursor(cursor)
    assert raised.value.status == 422


def test_a_page_points_past_its_last_row_only_when_more_follow() -> None:
    rows = [("a", '{"id":"a"}'), ("b", '{"id":"b"}'), ("c", '{"id":"c"}')]
    full = orjson.loads(page_response(rows, 2).body)
    assert full["data"] == [{"id": "a"}, {"id": "b"}]
    assert decode_cursor(full["next_cursor"]) == "b"
    last = orjson.loads(page_response(rows, 3).body)
    assert (len(last["data"]), last["next_cursor"]) == (3, None)
    assert orjson.loads(page_response([], 10).body) == {"data": [], "next_cursor": None}

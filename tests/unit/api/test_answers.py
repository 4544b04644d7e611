"""The answer cache's bookkeeping: what it serves, after which changes it stops, its bounds."""

from __future__ import annotations

from app.api.answers import EVERY_DISTRICT, Answer, AnswerCache

A, B = "district-a", "district-b"


def _listening(max_bytes: int = 1000) -> AnswerCache:
    cache = AnswerCache(max_bytes)
    cache.listening = True
    return cache


def test_an_answer_is_served_until_a_change_of_its_district_is_heard() -> None:
    cache = _listening()
    cache.put("k", Answer(A, b'{"data":[]}'), cache.mark())
    kept = cache.get("k")
    assert kept is not None and kept.answer.body == b'{"data":[]}'

    cache.changed(B)
    assert cache.get("k") is not None

    cache.changed(A)
    assert cache.get("k") is None
    assert cache.size == 0


def test_an_answer_read_before_a_change_is_not_kept() -> None:
    cache = _listening()
    mark = cache.mark()
    cache.changed(A)  # committed while the read ran: the read may have seen the old data
    cache.put("k", Answer(A, b"{}"), mark)
    assert cache.get("k") is None

    mark = cache.mark()
    cache.put("k", Answer(A, b"{}"), mark)
    assert cache.get("k") is not None


def test_a_change_of_every_district_drops_everything() -> None:
    cache = _listening()
    cache.put("a", Answer(A, b"{}"), cache.mark())
    cache.put("b", Answer(B, b"{}"), cache.mark())
    cache.changed(EVERY_DISTRICT)
    assert cache.get("a") is None and cache.get("b") is None


def test_nothing_is_kept_or_served_while_not_listening() -> None:
    cache = _listening()
    cache.put("k", Answer(A, b"{}"), cache.mark())
    cache.listening = False
    assert cache.get("k") is None
    cache.put("j", Answer(A, b"{}"), cache.mark())
    cache.listening = True
    assert cache.get("j") is None


def test_a_cache_of_no_bytes_keeps_nothing() -> None:
    cache = AnswerCache(0)
    cache.listening = True
    cache.put("k", Answer(A, b"{}"), cache.mark())
    assert cache.get("k") is None


def test_the_least_recently_used_answers_go_first_within_the_bytes() -> None:
    cache = _listening(max_bytes=800)
    body = b"x" * 100
    for key in "abcdefgh":
        cache.put(key, Answer(A, body), cache.mark())
    assert cache.size == 800
    assert cache.get("a") is not None  # now the most recently used
    cache.put("i", Answer(A, body), cache.mark())
    assert cache.size == 800
    assert cache.get("b") is None
    assert cache.get("a") is not None and cache.get("i") is not None


def test_an_answer_larger_than_its_share_is_not_kept() -> None:
    cache = _listening(max_bytes=800)
    cache.put("big", Answer(A, b"x" * 101), cache.mark())
    assert cache.get("big") is None and cache.size == 0


def test_the_etag_is_the_same_for_the_same_bytes_only() -> None:
    assert Answer(A, b"{}").etag == Answer(B, b"{}").etag
    assert Answer(A, b"{}").etag != Answer(A, b"[]").etag
    assert Answer(A, b"{}").etag.startswith('"') and Answer(A, b"{}").etag.endswith('"')

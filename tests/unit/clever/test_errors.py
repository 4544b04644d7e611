"""Clever errors: readable, picklable, and naming the request."""

from __future__ import annotations

import pickle

import pytest

from app.clever import (
    CleverAuthError,
    CleverError,
    CleverEventsUnavailable,
    CleverRequestError,
    CleverTransientError,
)


@pytest.mark.parametrize(
    "cls",
    [
        CleverError,
        CleverAuthError,
        CleverRequestError,
        CleverTransientError,
        CleverEventsUnavailable,
    ],
)
def test_errors_name_the_request_and_survive_pickling(cls: type[CleverError]) -> None:
    error = cls("something failed", method="GET", path="/v3.0/users?limit=5", status=503)

    copy = pickle.loads(pickle.dumps(error))

    assert isinstance(copy, cls)
    assert isinstance(copy, CleverError)
    assert str(copy) == str(error) == "something failed (GET /v3.0/users?limit=5 -> 503)"
    assert (copy.method, copy.path, copy.status) == ("GET", "/v3.0/users?limit=5", 503)
    assert repr(copy) == (
        f"{cls.__name__}('something failed', method='GET', path='/v3.0/users?limit=5', status=503)"
    )


def test_error_without_request_or_status() -> None:
    assert str(CleverError("plain")) == "plain"
    assert str(CleverError("timed out", method="GET", path="/v3.0/terms")) == (
        "timed out (GET /v3.0/terms)"
    )


def test_transient_error_keeps_attempts_through_pickling() -> None:
    error = CleverTransientError("gave up", method="GET", path="/v3.0/x", status=None)
    error.attempts = 7

    assert pickle.loads(pickle.dumps(error)).attempts == 7

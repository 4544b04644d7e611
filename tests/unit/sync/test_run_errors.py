"""A run's error in words: a database connection the server ended is named as such, however
asyncpg reports the statement that found out."""

from __future__ import annotations

import asyncpg

from app.sync.full import describe, is_connection_lost


def _raised_while_handling(outer: BaseException, inner: BaseException) -> BaseException:
    """`outer` as raised while `inner` was being handled (its `__context__`)."""
    try:
        try:
            raise inner
        except BaseException:
            raise outer  # noqa: B904 - the context is the point
    except BaseException as error:
        return error


def test_a_termination_behind_a_closed_transaction_is_named() -> None:
    terminated = asyncpg.exceptions.AdminShutdownError(
        "terminating connection due to administrator command"
    )
    error = _raised_while_handling(
        asyncpg.InterfaceError(
            "cannot call Transaction.__aexit__(): the underlying connection is closed"
        ),
        terminated,
    )
    assert is_connection_lost(error)
    assert describe(error) == (
        "database connection lost (AdminShutdownError: terminating connection due to"
        " administrator command)"
    )


def test_a_statement_on_a_connection_still_consuming_the_servers_farewell_is_named() -> None:
    # The server's "terminating connection" reached an idle connection; the next statement.
    error = asyncpg.InternalClientError(
        "cannot switch to state 15; another operation (2) is in progress"
    )
    assert is_connection_lost(error)
    assert describe(error).startswith("database connection lost: the server closed it")


def test_other_client_errors_are_not_taken_for_a_lost_connection() -> None:
    error = asyncpg.InternalClientError(
        "cannot switch to state 12; another operation (11) is in progress"
    )
    assert not is_connection_lost(error)
    assert describe(error) == f"InternalClientError: {error}"

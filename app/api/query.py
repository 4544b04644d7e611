"""Query strings may carry only the parameters an endpoint declares.

A misspelt filter (`?school=...` for `?school_id=...`) would otherwise be ignored, and the
caller would get every row instead of the ones it asked for, with nothing to say why.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from app.api.problems import ProblemError


def _query_parameters(dependant: Dependant) -> set[str]:
    names = {field.alias for field in dependant.query_params}
    for dependency in dependant.dependencies:
        names |= _query_parameters(dependency)
    return names


def declared_query_parameters(route: APIRoute) -> set[str]:
    """The query parameters of an endpoint and of all its dependencies (a handful of
    dependants to walk: cheaper than any cache keyed by route)."""
    return _query_parameters(route.dependant)


def reject_unknown_query_parameters(request: Request) -> None:
    """422 for a query parameter the endpoint does not take.

    Called once the caller is authenticated (`app.api.auth.require`, the sync webhook), so a
    request without a valid key is 401 whatever its query string.
    """
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    unknown = sorted(set(request.query_params) - declared_query_parameters(route))
    if unknown:
        raise ProblemError(
            422,
            "The request has parameters this endpoint does not take: see `errors`.",
            title="Invalid request",
            errors=[
                {"loc": ["query", name], "msg": "Unknown parameter", "type": "extra_forbidden"}
                for name in unknown
            ],
        )

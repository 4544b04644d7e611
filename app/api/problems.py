"""RFC 9457 problem details for every error the API returns."""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse
from starlette.routing import Match

PROBLEM_CONTENT_TYPE = "application/problem+json"

logger = logging.getLogger(__name__)


class Problem(BaseModel):
    """An error response (RFC 9457). Extension members may follow the standard ones."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None


class ProblemError(Exception):
    """Raise from anywhere in a request to answer with a problem document."""

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title or HTTPStatus(status).phrase)
        self.status = status
        self.detail = detail
        self.title = title or HTTPStatus(status).phrase
        self.headers = headers
        self.extra = extra


def problem_response(
    request: Request,
    status: int,
    detail: str | None = None,
    *,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        **extra,
    }
    return JSONResponse(
        jsonable_encoder({k: v for k, v in body.items() if v is not None}),
        status_code=status,
        media_type=PROBLEM_CONTENT_TYPE,
        headers=headers,
    )


def problem_error_response(request: Request, exc: ProblemError) -> JSONResponse:
    """The answer to a raised ProblemError, for code that runs before the app's handlers."""
    return problem_response(
        request, exc.status, exc.detail, title=exc.title, headers=exc.headers, **exc.extra
    )


async def _problem_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    return problem_error_response(request, exc)


async def _http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail: str | None = exc.detail if isinstance(exc.detail, str) else None
    if detail == HTTPStatus(exc.status_code).phrase:
        detail = None
    headers = dict(exc.headers) if exc.headers else None
    if exc.status_code == 405:
        headers = (headers or {}) | {"Allow": ", ".join(_allowed_methods(request))}
    return problem_response(request, exc.status_code, detail, headers=headers)


def _allowed_methods(request: Request) -> list[str]:
    """Every method the request's path takes: Starlette names only those of the first route
    that matched the path, and a path may have a route per method."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(error["loc"]), "msg": error["msg"], "type": error["type"]}
        for error in exc.errors()
    ]
    return problem_response(
        request,
        422,
        "The request has invalid parameters: see `errors`.",
        title="Invalid request",
        errors=errors,
    )


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error", extra={"path": request.url.path})
    return problem_response(request, 500, "An unexpected error occurred.")


def install_problem_handlers(app: FastAPI) -> None:
    """Make every error, from routing, validation or our code, a problem+json response."""
    app.add_exception_handler(ProblemError, _problem_error)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unhandled)


VALIDATION_DESCRIPTION = "Invalid parameters or body; the `errors` member lists them."
# The OpenAPI `responses` entry for the 422 of any endpoint that takes input.
VALIDATION_RESPONSE: dict[str, Any] = {"model": Problem, "description": VALIDATION_DESCRIPTION}


def not_found_responses(what: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for an endpoint that answers 404 for an unknown or unseen id."""
    return {404: {"model": Problem, "description": f"No such {what} the API key may see."}}


_PROBLEM_REF = "#/components/schemas/Problem"


def document_problems(document: dict[str, Any]) -> dict[str, Any]:
    """Describe every error response of an OpenAPI document as it is sent: problem+json.

    FastAPI documents additional responses as `application/json`, and a 422 it adds on its
    own with its `HTTPValidationError` body; clients generated from either would expect a
    shape and a media type the API never sends. `document` is changed in place.
    """
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("Problem", Problem.model_json_schema())

    def problem_content() -> dict[str, Any]:
        return {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": _PROBLEM_REF}}}

    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            if "requestBody" in operation:
                # FastAPI answers 400 itself, before validation, for a body it cannot decode.
                operation["responses"].setdefault(
                    "400",
                    {"description": "The body could not be decoded.", "content": problem_content()},
                )
            for status, response in operation.get("responses", {}).items():
                if not status.startswith(("4", "5")):
                    continue
                content = response.get("content", {})
                schema = content.get("application/json", {}).get("schema", {})
                if status == "422" and schema.get("$ref", "").endswith("/HTTPValidationError"):
                    response.update(description=VALIDATION_DESCRIPTION, content=problem_content())
                elif schema == {"$ref": _PROBLEM_REF}:
                    content[PROBLEM_CONTENT_TYPE] = content.pop("application/json")
    if "/HTTPValidationError" not in json.dumps(document.get("paths", {})):
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
    return document

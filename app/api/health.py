"""Liveness, readiness and metrics endpoints (no API key needed)."""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

from fastapi import APIRouter, Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel

from app.api.auth import authenticate, check_scope
from app.api.keys import Scope
from app.api.problems import Problem, problem_response
from app.observability.sync_metrics import SyncMetrics

logger = logging.getLogger(__name__)

router = APIRouter(tags=["health"])

CHECK_TIMEOUT_SECONDS = 3.0


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ok"] = "ok"
    checks: dict[str, str]


@router.get("/healthz", operation_id="health-live", summary="Liveness", response_model=Health)
async def healthz() -> Health:
    """The process is up and serving requests."""
    return Health()


@router.get(
    "/readyz",
    operation_id="health-ready",
    summary="Readiness of Postgres and Redis",
    response_model=Readiness,
    responses={503: {"model": Problem, "description": "Postgres or Redis is unreachable."}},
)
async def readyz(request: Request) -> Readiness | Response:
    """Postgres and Redis both answer; 503 (with the failing checks) when either does not."""
    postgres, redis = await asyncio.gather(_check_postgres(request), _check_redis(request))
    checks = {"postgres": postgres, "redis": redis}
    if all(result == "ok" for result in checks.values()):
        return Readiness(checks=checks)
    return problem_response(
        request, 503, "A backing service is unreachable.", title="Not ready", checks=checks
    )


async def _check_postgres(request: Request) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            async with request.state.reads.acquire() as connection:
                await connection.fetchval("SELECT 1")
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return "ok"


async def _check_redis(request: Request) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            await request.state.redis.ping()
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return "ok"


@router.get(
    "/metrics",
    operation_id="health-metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus metrics."}},
)
async def metrics(request: Request) -> Response:
    """Prometheus metrics of this process (no key needed) and, scraped with a key holding
    `read` (`Authorization: Bearer ...`, optional), the sync figures of the districts that
    key may see (read from Postgres: the same on every replica)."""
    body = generate_latest()
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    if not secret:
        return Response(body, media_type=CONTENT_TYPE_LATEST)
    credentials = HTTPAuthorizationCredentials(scheme=scheme, credentials=secret.strip())
    principal = await authenticate(request, credentials)
    check_scope(request, principal, Scope.READ)
    collector = SyncMetrics()
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            async with request.state.pool.acquire() as connection:
                await collector.refresh(connection, principal.district_ids)
    except Exception as exc:  # the process's figures are still worth serving
        logger.warning("sync metrics not read", extra={"error": repr(exc)})
        return Response(body, media_type=CONTENT_TYPE_LATEST)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return Response(body + generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

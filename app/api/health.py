"""Liveness, readiness and metrics endpoints (no API key needed)."""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text

from app.api.problems import Problem, problem_response
from app.observability.sync_metrics import METRICS_REGISTRY, SYNC_METRICS

logger = logging.getLogger(__name__)

router = APIRouter(tags=["health"])

CHECK_TIMEOUT_SECONDS = 3.0


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ok"] = "ok"
    checks: dict[str, str]


@router.get("/healthz", operation_id="health-live", response_model=Health)
async def healthz() -> Health:
    """The process is up and serving requests."""
    return Health()


@router.get(
    "/readyz",
    operation_id="health-ready",
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
            async with request.state.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
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
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus metrics."}},
)
async def metrics(request: Request) -> Response:
    """Prometheus metrics: this process's HTTP figures, and every district's sync figures
    (read from Postgres, the same on every replica)."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            async with request.state.pool.acquire() as connection:
                await SYNC_METRICS.refresh(connection)
    except Exception as exc:  # the HTTP figures are still worth serving
        logger.warning("sync metrics not refreshed", extra={"error": repr(exc)})
    return Response(generate_latest(METRICS_REGISTRY), media_type=CONTENT_TYPE_LATEST)

"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypedDict

import asyncpg
from arq.connections import ArqRedis
from fastapi import FastAPI
from fastapi.routing import APIRoute

from app.api import (
    audit,
    changes,
    courses,
    districts,
    docs,
    groups,
    health,
    overrides,
    people,
    schools,
    sections,
    sync,
    terms,
    users,
    warnings,
    webhooks,
)
from app.api.access import AccessMiddleware
from app.api.answers import AnswerCache, ChangeListener, KeptAnswersMiddleware
from app.api.auth import KeyCache
from app.api.guards import BodyLimitMiddleware, SecurityHeadersMiddleware
from app.api.limits import Limits
from app.api.links import document_links
from app.api.problems import document_problems, install_problem_handlers
from app.audit import AuditLog
from app.console import routes as console
from app.mirror.pg import create_pool, listening_connection
from app.observability.metrics import MetricsMiddleware
from app.redis import create_redis
from app.settings import Settings, load_settings
from app.sync.tokens import DistrictTokens

# Connections for sync triggers and decisions, which are rare next to reads.
WRITE_POOL_SIZE = 4


class AppState(TypedDict):
    """What lifespan builds once per process; endpoints reach it as `request.state.<key>`."""

    settings: Settings
    redis: ArqRedis
    # Plain asyncpg: `reads` for the roster reads (they return JSON built by Postgres) and
    # API key lookups, `pool` for sync triggers and decisions.
    pool: asyncpg.Pool
    reads: asyncpg.Pool
    keys: KeyCache
    # Hot read answers until their district's data changes, told by `listener`.
    answers: AnswerCache
    # Rate limits and lock-outs, counted in Redis across API processes.
    limits: Limits
    # The audit trail's buffer, written to Postgres every second.
    audit: AuditLog
    # Which Clever token serves which district: learned once, refreshed at most every few
    # minutes, so asking for a district's first sync rarely reaches Clever.
    tokens: DistrictTokens


def _operation_id(route: APIRoute) -> str:
    return route.name


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API. Settings are read now (a bad value fails here, naming the variable);
    connections are opened in lifespan."""
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[AppState]:
        redis = create_redis(settings)
        # Reads take no locks and set no session state, so their connections skip the
        # reset round trip; everything else (sync triggers hold advisory locks) keeps it.
        reads = await create_pool(
            settings,
            min_size=0,
            max_size=settings.api_pool_size,
            application_name="roster-api",
            light_reset=True,
        )
        pool = await create_pool(
            settings, min_size=0, max_size=WRITE_POOL_SIZE, application_name="roster-api"
        )
        audit_log = AuditLog(pool)
        audit_log.start()
        answers = AnswerCache(settings.api_answer_cache_mb * 1024 * 1024)
        listener = None
        if settings.api_answer_cache_mb:
            listener = asyncio.create_task(
                ChangeListener(lambda: listening_connection(settings), answers).run(),
                name="change-listener",
            )
        try:
            yield {
                "settings": settings,
                "redis": redis,
                "pool": pool,
                "reads": reads,
                "keys": KeyCache(settings.api_key_cache_seconds),
                "answers": answers,
                "limits": Limits(
                    redis,
                    per_minute=settings.api_rate_limit_per_minute,
                    failures_before_lockout=settings.api_auth_failures_before_lockout,
                    lockout_seconds=settings.api_auth_lockout_seconds,
                ),
                "audit": audit_log,
                "tokens": DistrictTokens(settings),
            }
        finally:
            if listener is not None:
                listener.cancel()
                await asyncio.gather(listener, return_exceptions=True)
            await audit_log.stop()
            await pool.close()
            await reads.close()
            await redis.aclose()

    app = FastAPI(
        title="Roster mirror",
        version="1.0.0",
        summary="School-agnostic roster data mirrored from Clever.",
        description=docs.DESCRIPTION,
        openapi_tags=docs.TAGS,
        servers=docs.SERVERS,
        # FastAPI's pages load their scripts from a CDN; `app.api.docs` serves its own.
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
        # A redirect to the slash-less path would be built from the Host header, which the
        # client chooses: `/v1/districts/` is a 404 like any other unknown path.
        redirect_slashes=False,
    )
    install_problem_handlers(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_links(document_problems(FastAPI.openapi(app)))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    # Outermost last: metrics see every answer, refused bodies and error pages included.
    # Innermost, before routing: kept answers, which skip the route's dependencies.
    app.add_middleware(KeptAnswersMiddleware)
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.api_max_body_bytes,
        timeout_seconds=settings.api_body_timeout_seconds,
    )
    app.add_middleware(AccessMiddleware, log_requests=settings.access_log)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(MetricsMiddleware)
    app.include_router(health.router)
    console.install(app)
    app.include_router(docs.router)
    app.mount(docs.ASSETS_PATH, docs.assets(), name="docs-assets")
    for router in (
        districts.router,
        schools.router,
        terms.router,
        courses.router,
        sections.router,
        users.router,
        overrides.router,
        groups.router,
        people.router,
        sync.router,
        sync.webhook_router,
        warnings.router,
        changes.router,
        webhooks.router,
        audit.router,
    ):
        app.include_router(router)
    return app

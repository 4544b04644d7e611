"""The Redis connection shared by the API (enqueueing jobs) and readiness checks."""

from __future__ import annotations

from arq.connections import ArqRedis, RedisSettings

from app.settings import Settings


def redis_settings(settings: Settings) -> RedisSettings:
    """arq's connection settings for REDIS_URL."""
    return RedisSettings.from_dsn(settings.require_redis_url())


def create_redis(settings: Settings) -> ArqRedis:
    """A lazily connecting arq Redis client: the API starts even while Redis is down,
    and `/readyz` reports it."""
    redis: ArqRedis = ArqRedis.from_url(
        settings.require_redis_url(),
        socket_connect_timeout=5,
        socket_timeout=10,
        health_check_interval=30,
    )
    return redis

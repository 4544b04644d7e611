"""The app in-process for tests: lifespan run, an HTTP client over ASGI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from app.main import create_app
from app.settings import Settings


@asynccontextmanager
async def app_client(
    settings: Settings, *, client_address: str = "127.0.0.1"
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app built from `settings`, lifespan included, for the block; its
    requests come from `client_address`."""
    async with served(create_app(settings), client_address=client_address) as client:
        yield client


@asynccontextmanager
async def served(
    app: FastAPI, *, client_address: str = "127.0.0.1"
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app already built (with test-only routes, say), lifespan included."""
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app, client=(client_address, 123))
        async with httpx.AsyncClient(transport=transport, base_url="http://roster.test") as client:
            yield client

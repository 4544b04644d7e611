"""The app in-process for tests: lifespan run, an HTTP client over ASGI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from asgi_lifespan import LifespanManager

from app.main import create_app
from app.settings import Settings


@asynccontextmanager
async def app_client(
    settings: Settings, *, client_address: str = "127.0.0.1"
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app built from `settings`, lifespan included, for the block; its
    requests come from `client_address`."""
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app, client=(client_address, 123))
        async with httpx.AsyncClient(transport=transport, base_url="http://roster.test") as client:
            yield client

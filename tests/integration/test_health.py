"""Health endpoints, the docs pages and problem+json errors of the running app."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

import httpx
import pytest

from app.main import create_app
from app.settings import Settings
from tests.support.app import app_client, served

PROBLEM = "application/problem+json"
# What the pages' HTML names to fetch: attributes, and Swagger UI's `url: '...'`.
PAGE_URL = re.compile(r"""(?:src|href|spec-url)="([^"]*)"|url: '([^']*)'""")
ASSET_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


async def test_healthz(api_client: httpx.AsyncClient) -> None:
    response = await api_client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_with_both_servers_up(api_client: httpx.AsyncClient) -> None:
    response = await api_client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"postgres": "ok", "redis": "ok"}}


@pytest.mark.parametrize(
    ("override", "failing"),
    [
        ({"database_url": "postgresql://postgres@127.0.0.1:1/nowhere"}, "postgres"),
        ({"redis_url": "redis://127.0.0.1:1/0"}, "redis"),
    ],
)
async def test_readyz_503_when_a_server_is_unreachable(
    settings: Settings, override: dict[str, str], failing: str
) -> None:
    async with app_client(settings.model_copy(update=override)) as client:
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.headers["content-type"] == PROBLEM
        body = response.json()
        assert body["status"] == 503
        assert body["checks"][failing].startswith("error")
        healthy = {"postgres", "redis"} - {failing}
        assert all(body["checks"][name] == "ok" for name in healthy)


async def test_unknown_route_is_problem_json(api_client: httpx.AsyncClient) -> None:
    response = await api_client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
    assert response.json() == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "instance": "/v1/nothing-here",
    }


async def test_wrong_method_is_problem_json(api_client: httpx.AsyncClient) -> None:
    response = await api_client.delete("/healthz")
    assert response.status_code == 405
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["title"] == "Method Not Allowed"


async def test_validation_and_unexpected_errors_are_problem_json(settings: Settings) -> None:
    app = create_app(settings)

    @app.get("/test/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    @app.get("/test/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    async with served(app) as client:
        invalid = await client.get("/test/items/abc")
        assert invalid.status_code == 422
        assert invalid.headers["content-type"] == PROBLEM
        assert invalid.json()["errors"][0]["loc"] == ["path", "item_id"]

        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as raw_client:
            failed = await raw_client.get("/test/boom")
        assert failed.status_code == 500
        assert failed.headers["content-type"] == PROBLEM
        assert "secret internals" not in failed.text


async def test_metrics_count_requests_by_route(api_client: httpx.AsyncClient) -> None:
    for path in ("/healthz", "/docs", "/openapi.json", "/ui/static/console.css", "/nowhere"):
        await api_client.get(path)
    response = await api_client.get("/metrics")
    assert response.status_code == 200
    for route, status in (
        ("/healthz", 200),
        ("/docs", 200),
        ("/openapi.json", 200),
        ("/ui/static", 200),  # a mount is labelled by its path, whatever the file
        ("unmatched", 404),
    ):
        assert (
            f'roster_http_requests_total{{method="GET",route="{route}",status="{status}"}}'
            in response.text
        ), route


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
async def test_the_docs_pages_load_only_what_the_app_serves(
    api_client: httpx.AsyncClient, path: str
) -> None:
    page = await api_client.get(path)
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    # Nothing from another host: no absolute or scheme-relative URL anywhere in the page.
    assert re.search(r"https?:|//", page.text) is None
    urls = {first or second for first, second in PAGE_URL.findall(page.text)}
    assert "/openapi.json" in urls
    assets = urls - {"/openapi.json"}
    assert {PurePosixPath(url).suffix for url in assets} >= {".js", ".png"}
    for url in assets:
        assert url.startswith("/static/docs/")
        asset = await api_client.get(url)
        assert asset.status_code == 200, url
        media_type = asset.headers["content-type"].partition(";")[0]
        assert media_type == ASSET_TYPES[PurePosixPath(url).suffix], url
        assert asset.content


async def test_swagger_ui_asks_no_online_validator(api_client: httpx.AsyncClient) -> None:
    # Left to its default, Swagger UI shows a badge that its validator's host renders.
    assert '"validatorUrl": null' in (await api_client.get("/docs")).text

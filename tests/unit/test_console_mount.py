"""The command API serves the built web console at /console (and its account pages) from its own origin."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from command_api.app import build_app
from command_api.settings import Settings


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html><div id=root></div>")
    (tmp_path / "assets" / "index-abc.js").write_text("console.log(1)")
    return tmp_path


@pytest.fixture
async def client(dist: Path) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app(Settings(dev_mode=True, console_dir=dist)))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        yield http


@pytest.mark.parametrize("path", ["/console", "/console/", "/console/sessions", "/console/chats/x", "/login",
                                  "/register", "/verify?userId=u&token=t", "/reset-password?email=a"])
async def test_spa_pages_fall_back_to_index_html(client: httpx.AsyncClient, path: str) -> None:
    r = await client.get(path)
    assert r.status_code == 200 and "id=root" in r.text
    assert r.headers["cache-control"] == "no-cache"


async def test_assets_are_served_and_a_missing_one_is_a_404_not_the_page(client: httpx.AsyncClient) -> None:
    r = await client.get("/console/assets/index-abc.js")
    assert r.status_code == 200 and r.text == "console.log(1)"
    assert (await client.get("/console/assets/missing.js")).status_code == 404
    assert (await client.get("/console/assets/..%2F..%2Findex.html")).status_code == 404


async def test_api_routes_are_not_shadowed_and_the_console_is_not_in_the_openapi(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/nope")).status_code == 404
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert not [p for p in paths if p.startswith(("/console", "/login", "/register", "/verify", "/reset-password"))]


async def test_an_unbuilt_console_says_how_to_build_it(tmp_path: Path) -> None:
    app = build_app(Settings(dev_mode=True, console_dir=tmp_path / "missing"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
        r = await http.get("/console")
    assert r.status_code == 503 and "npm run build" in r.text

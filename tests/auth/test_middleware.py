"""The middleware's deny-by-default, on a small app (a route added without a policy row)."""
from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from yunying import auth
from yunying.auth.middleware import AuthMiddleware
from yunying.settings import Settings

KEY = "yk_unit_0123456789abcdef"


async def who(request: Request) -> JSONResponse:
    return JSONResponse({"id": request.state.principal.id, "kind": request.state.principal.kind})


@pytest.fixture
def app(tmp_path: Path) -> Starlette:
    a = auth.start(Settings(data=tmp_path, api_key=KEY), environ={})
    return Starlette(routes=[Route("/api/new-thing", who), Route("/health", who)],
                     middleware=[Middleware(AuthMiddleware, a.identifier)])  # as the archive installs it


async def _get(app: Starlette, path: str, key: str | None = KEY) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        return await c.get(path, headers=headers)


@pytest.mark.anyio
async def test_a_route_without_a_policy_row_is_refused_even_with_a_full_key(app: Starlette) -> None:
    resp = await _get(app, "/api/new-thing")
    assert resp.status_code == 403 and 'error="insufficient_scope"' in resp.headers["www-authenticate"]
    assert (await _get(app, "/api/new-thing", None)).status_code == 401


@pytest.mark.anyio
async def test_open_route_gets_an_anonymous_principal(app: Starlette) -> None:
    resp = await _get(app, "/health", None)
    assert resp.json() == {"id": "anonymous", "kind": "anonymous"}
    assert (await _get(app, "/health", "stale-or-forged-token")).status_code == 200


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"

"""A real HTTP server running the provider alone (uvicorn on a free port, in a thread), with a
directory in memory and one protected probe route that answers with the verified principal."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from benchmarks.net import free_port
from dicomweb.oidc import routes as oidc_routes
from yunying.auth.identify import InvalidToken
from yunying.auth.oidc import Oidc, build_oidc
from yunying.auth.oidc.users import Account, MemoryDirectory
from yunying.auth.store import open_store
from yunying.settings import Settings

READ = frozenset({"dicomweb.read", "download"})
REDIRECT = "https://viewer.example/callback"


@dataclass
class ProviderServer:
    url: str
    oidc: Oidc
    directory: MemoryDirectory
    public_id: str  # a browser app (PKCE, no secret)
    system_id: str  # a confidential client with client_credentials
    system_secret: str


def make_directory() -> MemoryDirectory:
    d = MemoryDirectory()
    d.add(Account("u-alice", "alice", "Alice", "h1", frozenset({"doctor"}), READ), "alice-password-1")
    d.add(Account("u-bob", "bob", "Bob", "h1", frozenset({"doctor"}), READ, must_change_password=True),
          "bob-first-pass")
    return d


@contextmanager
def provider_server(tmp: Path, trusted: list[dict[str, Any]] | None = None) -> Iterator[ProviderServer]:
    port = free_port()
    settings = Settings(data=tmp, host="127.0.0.1", http_port=port, oidc_trusted_issuers=trusted or [])
    directory = make_directory()
    oidc = build_oidc(settings, open_store(tmp), directory)

    async def probe(request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        try:
            principal = await asyncio.to_thread(oidc.verifier, token) if scheme.lower() == "bearer" else None
        except InvalidToken as exc:
            return JSONResponse({"error": str(exc)}, 401, {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if principal is None:
            return JSONResponse({"error": "no token"}, 401, {"WWW-Authenticate": "Bearer"})
        return JSONResponse({"kind": principal.kind, "id": principal.id, "hospital": principal.hospital,
                             "permissions": sorted(principal.permissions), "roles": sorted(principal.roles)})

    async def callback(request: Request) -> Response:  # a browser app's redirect URI
        return Response(f"<p id=code>{'code' in request.query_params}</p>", media_type="text/html")

    app = Starlette(routes=[*oidc_routes(oidc), Route("/probe", probe), Route("/callback", callback)])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    store = oidc.provider.store
    public_id, _ = store.add_client("viewer", [REDIRECT], "openid profile dicomweb.read download",
                                    ["authorization_code", "refresh_token"], public=True, hospital="h1")
    system_id, secret = store.add_client("pacs", [], "dicomweb.read dicomweb.write", ["client_credentials"],
                                         public=False, hospital="h1")
    assert secret is not None
    try:
        yield ProviderServer(f"http://127.0.0.1:{port}", oidc, directory, public_id, system_id, secret)
    finally:
        server.should_exit = True
        thread.join(10)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def login_and_get_code(http: httpx.Client, base: str, client_id: str, challenge: str,
                       username: str = "alice", password: str = "alice-password-1",
                       scope: str = "openid profile dicomweb.read") -> str:
    """The browser's part: authorize -> login page -> form post -> redirect with the code."""
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT, "scope": scope,
              "state": "st-1", "nonce": "n-1", "code_challenge": challenge, "code_challenge_method": "S256"}
    r = http.get(f"{base}/oauth/authorize", params=params)
    assert r.status_code == 302, r.text
    login = r.headers["location"]
    assert login.startswith("/login?")
    page = http.get(base + login)
    assert page.status_code == 200 and 'name="password"' in page.text
    next_url = parse_qs(urlsplit(login).query)["next"][0]
    r = http.post(f"{base}/login", data={"username": username, "password": password, "next": next_url})
    assert r.status_code == 303, r.text
    r = http.get(base + r.headers["location"])
    assert r.status_code == 302, r.text
    query = parse_qs(urlsplit(r.headers["location"]).query)
    assert r.headers["location"].startswith(REDIRECT) and query["state"] == ["st-1"]
    return query["code"][0]
